//! JSON Schemas generated from the types the loader and the reports use, so they cannot drift:
//! editors validate suite and flow files with them (taplo / Even Better TOML), and pipelines
//! validate `--json` reports.

use crate::report::Report;
use crate::suite::raw::{RawFlow, RawSuite};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `preflight.toml`.
    Suite,
    /// A flow file.
    Flow,
    /// The `--json` report (schema 1).
    Report,
    /// The output of `preflight list --json`.
    List,
}

/// The schema as pretty JSON.
pub fn render(kind: Kind) -> String {
    let (mut schema, title) = match kind {
        Kind::Suite => (
            schemars::schema_for!(RawSuite),
            "preflight suite settings (preflight.toml)",
        ),
        Kind::Flow => (schemars::schema_for!(RawFlow), "preflight flow file"),
        Kind::Report => (
            schemars::schema_for!(Report),
            "preflight JSON report, schema 1",
        ),
        Kind::List => (
            schemars::schema_for!(Vec<crate::report::document::ListedFlow>),
            "preflight list --json",
        ),
    };
    schema.insert("title".into(), title.into());
    serde_json::to_string_pretty(&schema).expect("a schema always serializes")
}
