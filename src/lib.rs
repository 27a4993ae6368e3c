//! preflight: a staging pre-flight gate. Loads a suite of TOML flows, runs them concurrently
//! against staging, and returns one verdict a pipeline can trust.
//!
//! The crate reads like its user documentation: [`suite`] turns files into a validated plan,
//! [`check`] evaluates expectations, [`engine`] runs the plan and emits events, [`report`]
//! renders results, [`verdict`] maps them to the exit code, and [`cli`] wires it together.

pub mod baseline;
pub mod check;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod fs;
pub mod init;
pub mod integrity;
pub mod merge;
pub mod openapi;
pub mod problem;
pub mod redact;
pub mod report;
mod say;
pub mod schema;
pub mod serve;
pub mod shard;
pub mod suite;
pub mod template;
pub mod tls;
pub mod urlencode;
pub mod verdict;
