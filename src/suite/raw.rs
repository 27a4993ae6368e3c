//! Serde structs close to the files: what the user wrote, with spans kept for errors.
//!
//! Free-form parts (status, operator tables, captures, `json` bodies) stay `toml::Value` here
//! and are interpreted in `compile.rs`, where every problem can be located and collected.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::{Spanned, Value};

/// `preflight.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuite {
    pub name: Option<Spanned<String>>,
    pub base_url: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub deadline: Option<Spanned<String>>,
    pub follow_redirects: Option<bool>,
    pub insecure: Option<Spanned<bool>>,
    pub ca_cert: Option<Spanned<String>>,
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    pub max_body: Option<Spanned<String>>,
    pub headers: Option<IndexMap<String, Spanned<String>>>,
    pub vars: Option<IndexMap<String, Spanned<Value>>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub wait: Option<Spanned<RawWait>>,
    pub gate: Option<Spanned<RawGate>>,
    pub integrity: Option<Vec<Spanned<RawIntegrity>>>,
    pub version: Option<Spanned<RawVersion>>,
    pub setup: Option<Vec<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<String>>,
    pub on: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWait {
    pub path: Spanned<String>,
    pub status: Option<Spanned<Value>>,
    pub timeout: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub max_noncritical_failures: Option<Spanned<i64>>,
    pub max_p95_latency: Option<Spanned<String>>,
    pub fail_on_flaky: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntegrity {
    pub file: Spanned<String>,
    pub served_at: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVersion {
    pub path: Spanned<String>,
    pub json: Option<Spanned<String>>,
    pub header: Option<Spanned<String>>,
    pub expect: Spanned<String>,
}

/// One flow file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    pub name: Option<Spanned<String>>,
    pub tags: Option<Vec<String>>,
    pub critical: Option<bool>,
    pub vars: Option<IndexMap<String, Spanned<Value>>>,
    pub step: Option<Vec<RawStep>>,
    pub cleanup: Option<Vec<RawStep>>,
}

/// A `[[step]]`, `[[cleanup]]` or `[[setup]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub query: Option<IndexMap<String, Spanned<Value>>>,
    pub headers: Option<IndexMap<String, Spanned<String>>>,
    pub json: Option<Spanned<Value>>,
    pub body: Option<Spanned<String>>,
    pub body_file: Option<Spanned<String>>,
    pub form: Option<IndexMap<String, Spanned<Value>>>,
    pub timeout: Option<Spanned<String>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub expect: Option<RawExpect>,
    pub capture: Option<IndexMap<String, Spanned<Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub status: Option<Spanned<Value>>,
    pub max_latency: Option<Spanned<String>>,
    pub body: Option<Spanned<Value>>,
    pub headers: Option<IndexMap<String, Spanned<Value>>>,
    pub json: Option<IndexMap<Spanned<String>, Spanned<Value>>>,
}
