//! Serde structs close to the files: what the user wrote, with spans kept for errors.
//!
//! Free-form parts (status, operator tables, captures, `json` bodies) stay `toml::Value` here
//! and are interpreted in `compile.rs`, where every problem can be located and collected.
//! The same structs generate the editor schemas (`preflight schema suite|flow`); doc comments
//! become the hover text.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as JsonValue;
use std::collections::BTreeMap;
use toml::{Spanned, Value};

/// `preflight.toml`: the suite settings. Every key is optional.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSuite {
    /// The suite's name in reports (default: the directory's name).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Staging's base URL; `path`s are appended to it. Overridden by PREFLIGHT_BASE_URL, then --base-url.
    #[schemars(with = "Option<String>")]
    pub base_url: Option<Spanned<String>>,
    /// Flows in flight at once (default 8).
    #[schemars(with = "Option<u32>", range(min = 1, max = 10000))]
    pub concurrency: Option<Spanned<i64>>,
    /// Per-request timeout, body included, e.g. "10s" (default 10s).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Deadline of the whole run, wait included, e.g. "5m" (default 5m).
    #[schemars(with = "Option<String>")]
    pub deadline: Option<Spanned<String>>,
    /// Follow redirects, at most 10 hops (default false).
    pub follow_redirects: Option<bool>,
    /// Accept invalid TLS certificates (default false).
    #[schemars(with = "Option<bool>")]
    pub insecure: Option<Spanned<bool>>,
    /// An extra trusted root CA, PEM, relative to the suite directory.
    #[schemars(with = "Option<String>")]
    pub ca_cert: Option<Spanned<String>>,
    /// Mutual TLS: the client certificate, PEM.
    #[schemars(with = "Option<String>")]
    pub client_cert: Option<Spanned<String>>,
    /// Mutual TLS: the client key, PEM.
    #[schemars(with = "Option<String>")]
    pub client_key: Option<Spanned<String>>,
    /// Larger response bodies fail the step, e.g. "10MiB" (default 10MiB).
    #[schemars(with = "Option<String>")]
    pub max_body: Option<Spanned<String>>,
    /// Headers sent with every request (steps may override).
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub headers: Option<IndexMap<String, Spanned<String>>>,
    /// Template variables: strings, numbers, booleans, arrays or tables.
    #[schemars(with = "Option<BTreeMap<String, JsonValue>>")]
    pub vars: Option<IndexMap<String, Spanned<Value>>>,
    /// The default retry policy of every step.
    #[schemars(with = "Option<RawRetry>")]
    pub retry: Option<Spanned<RawRetry>>,
    /// Poll staging until it is ready, before any flow starts.
    #[schemars(with = "Option<RawWait>")]
    pub wait: Option<Spanned<RawWait>>,
    /// The verdict policy.
    #[schemars(with = "Option<RawGate>")]
    pub gate: Option<Spanned<RawGate>>,
    /// Config files pinned by SHA-256 in preflight.lock.
    #[schemars(with = "Option<Vec<RawIntegrity>>")]
    pub integrity: Option<Vec<Spanned<RawIntegrity>>>,
    /// The version staging must report.
    #[schemars(with = "Option<RawVersion>")]
    pub version: Option<Spanned<RawVersion>>,
    /// An OpenAPI 3.0 or 3.1 document every response is checked against.
    #[schemars(with = "Option<RawOpenApi>")]
    pub openapi: Option<Spanned<RawOpenApi>>,
    /// Steps run once before any flow; their captures are visible to every flow.
    pub setup: Option<Vec<RawStep>>,
    /// Steps run once after every flow has finished (also after failures, the deadline and an
    /// interrupt); they see the [[setup]] captures. A failed teardown is a warning.
    pub teardown: Option<Vec<RawStep>>,
}

/// `[openapi]`: contract checking of every response.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOpenApi {
    /// The OpenAPI document (JSON or YAML), relative to preflight.toml.
    #[schemars(with = "String")]
    pub spec: Spanned<String>,
    /// "strict" (the default): a violation fails the step; "warn": it is a warning.
    #[schemars(with = "Option<ContractMode>")]
    pub validate: Option<Spanned<String>>,
}

/// What a contract violation does.
#[derive(JsonSchema)]
#[allow(dead_code)]
enum ContractMode {
    #[serde(rename = "strict")]
    Strict,
    #[serde(rename = "warn")]
    Warn,
}

/// When a step is tried again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Total tries, 1 = no retry (default 1).
    #[schemars(with = "Option<u32>", range(min = 1, max = 100))]
    pub attempts: Option<Spanned<i64>>,
    /// The first wait, doubled after each try, capped at 10s (default "200ms").
    #[schemars(with = "Option<String>")]
    pub backoff: Option<Spanned<String>>,
    /// What is retried (default all three). Never 4xx or assertion failures.
    #[schemars(with = "Option<Vec<RetryOn>>")]
    pub on: Option<Vec<Spanned<String>>>,
}

/// Polling: a step sent again while its expectations fail (an order that becomes paid later).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    /// Total sends, the first included, 1 to 1000.
    #[schemars(with = "u32", range(min = 1, max = 1000))]
    pub attempts: Spanned<i64>,
    /// The wait between two sends, e.g. "500ms".
    #[schemars(with = "String")]
    pub interval: Spanned<String>,
    /// A POST or PATCH may have taken effect at each send (a second order): it is polled only
    /// when this is true (default false).
    pub non_idempotent: Option<bool>,
}

/// A failure kind that may be retried.
#[derive(JsonSchema)]
#[allow(dead_code)]
enum RetryOn {
    #[serde(rename = "connect")]
    Connect,
    #[serde(rename = "timeout")]
    Timeout,
    #[serde(rename = "5xx")]
    ServerError,
}

/// Readiness gate, polled before any flow starts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWait {
    /// The path to poll.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// The status that means ready: same forms as expect.status (default "2xx").
    #[serde(default)]
    #[schemars(schema_with = "status_schema")]
    pub status: Option<Spanned<Value>>,
    /// Not ready by then: verdict FAIL, "staging not ready" (default "60s").
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Time between polls (default "1s").
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
}

/// Verdict policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    /// -1 = non-critical failures never fail the gate (default).
    #[schemars(with = "Option<i64>", range(min = -1))]
    pub max_noncritical_failures: Option<Spanned<i64>>,
    /// Fail when the p95 of all step latencies is over this, e.g. "800ms".
    #[schemars(with = "Option<String>")]
    pub max_p95_latency: Option<Spanned<String>>,
    /// A critical step that passed only after a retry fails the gate.
    pub fail_on_flaky: Option<bool>,
    /// With `--baseline`: a step slower than in the baseline run by more than this percentage
    /// (and by more than `min_latency_regression`) has regressed, e.g. "50%" (the default).
    #[schemars(with = "Option<String>")]
    pub max_latency_regression: Option<Spanned<String>>,
    /// With `--baseline`: a step must also be slower by more than this to have regressed,
    /// e.g. "50ms" (the default).
    #[schemars(with = "Option<String>")]
    pub min_latency_regression: Option<Spanned<String>>,
    /// With `--baseline`: a regressed step fails the gate instead of warning.
    pub fail_on_latency_regression: Option<bool>,
}

/// A config file pinned by SHA-256.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIntegrity {
    /// The file, relative to the suite directory.
    #[schemars(with = "String")]
    pub file: Spanned<String>,
    /// Staging must serve byte-identical content at this path.
    #[schemars(with = "Option<String>")]
    pub served_at: Option<Spanned<String>>,
}

/// The deployed-version check.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVersion {
    /// The path that reports the version.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// A JSONPath to the version in the body.
    #[schemars(with = "Option<String>")]
    pub json: Option<Spanned<String>>,
    /// Or: the header that holds the version.
    #[schemars(with = "Option<String>")]
    pub header: Option<Spanned<String>>,
    /// The version staging must run, usually "{{ env.GIT_SHA }}".
    #[schemars(with = "String")]
    pub expect: Spanned<String>,
}

/// One flow file: steps run in order, share one cookie jar and their captures.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    /// The flow's name (default: the file's stem).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Tags for --tag / --skip-tag.
    pub tags: Option<Vec<String>>,
    /// false = a failure only warns (default true).
    pub critical: Option<bool>,
    /// Flow variables, overriding suite [vars].
    #[schemars(with = "Option<BTreeMap<String, JsonValue>>")]
    pub vars: Option<IndexMap<String, Spanned<Value>>>,
    /// Rows: the flow runs once per row, the row's values as variables (over [vars]), named
    /// `name [key=value, ...]`. Write `each = [{ currency = "EUR" }, { currency = "USD" }]` or
    /// `[[each]]` tables.
    #[schemars(with = "Option<Vec<BTreeMap<String, JsonValue>>>")]
    pub each: Option<Spanned<Vec<Spanned<RawRow>>>>,
    /// The steps, in order.
    pub step: Option<Vec<RawStep>>,
    /// Steps that always run after the steps, pass or fail.
    pub cleanup: Option<Vec<RawStep>>,
}

/// One row of `each`: variable name -> value.
pub type RawRow = IndexMap<String, Spanned<Value>>;

/// A `[[step]]`, `[[cleanup]]` or `[[setup]]` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Default: "METHOD path".
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Default GET.
    #[schemars(with = "Option<String>")]
    pub method: Option<Spanned<String>>,
    /// Appended to base_url.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// An absolute URL instead of `path`.
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// Query parameters (arrays repeat the key).
    #[schemars(with = "Option<BTreeMap<String, JsonValue>>")]
    pub query: Option<IndexMap<String, Spanned<Value>>>,
    /// Request headers.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub headers: Option<IndexMap<String, Spanned<String>>>,
    /// A JSON body; a string that is exactly one placeholder keeps the value's type.
    #[schemars(with = "Option<JsonValue>")]
    pub json: Option<Spanned<Value>>,
    /// A raw text body.
    #[schemars(with = "Option<String>")]
    pub body: Option<Spanned<String>>,
    /// A file sent as is, relative to the suite directory.
    #[schemars(with = "Option<String>")]
    pub body_file: Option<Spanned<String>>,
    /// A form body (application/x-www-form-urlencoded).
    #[schemars(with = "Option<BTreeMap<String, JsonValue>>")]
    pub form: Option<IndexMap<String, Spanned<Value>>>,
    /// Overrides the suite's timeout, e.g. "5s".
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Overrides the suite's [retry].
    #[schemars(with = "Option<RawRetry>")]
    pub retry: Option<Spanned<RawRetry>>,
    /// Send the step again while its expectations fail, until they hold or attempts run out.
    #[schemars(with = "Option<RawPoll>")]
    pub poll: Option<Spanned<RawPoll>>,
    /// What the response must be (status defaults to "2xx").
    pub expect: Option<RawExpect>,
    /// Values for later steps: a JSONPath string, or { json | header | body_regex | cookie, secret }.
    #[serde(default)]
    #[schemars(schema_with = "captures_schema")]
    pub capture: Option<IndexMap<String, Spanned<Value>>>,
}

/// Expectations on the response.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// An integer (201), a list ([200, 201]) or a class ("2xx"). Default "2xx".
    #[serde(default)]
    #[schemars(schema_with = "status_schema")]
    pub status: Option<Spanned<Value>>,
    /// Time to the full response body, e.g. "500ms".
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Spanned<String>>,
    /// An operator table on the raw body (a plain value means equals).
    #[serde(default)]
    #[schemars(schema_with = "expectation_schema")]
    pub body: Option<Spanned<Value>>,
    /// Header name (case-insensitive) -> value or operator table.
    #[serde(default)]
    #[schemars(schema_with = "expectations_schema")]
    pub headers: Option<IndexMap<String, Spanned<Value>>>,
    /// JSONPath (RFC 9535) -> value or operator table.
    #[serde(default)]
    #[schemars(schema_with = "expectations_schema")]
    pub json: Option<IndexMap<Spanned<String>, Spanned<Value>>>,
}

fn status_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "An integer (201), a list ([200, 201]) or a class (\"2xx\").",
        "anyOf": [
            { "type": "integer", "minimum": 100, "maximum": 599 },
            { "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 }, "minItems": 1 },
            { "type": "string", "pattern": "^[1-5]xx$" }
        ]
    })
}

fn expectation_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let any = serde_json::json!({});
    let properties: serde_json::Map<String, JsonValue> = crate::suite::compile::OPERATORS
        .iter()
        .map(|op| (op.to_string(), any.clone()))
        .collect();
    schemars::json_schema!({
        "description": "A plain value means equals; a table is an operator table.",
        "anyOf": [
            { "type": ["string", "number", "boolean", "array", "null"] },
            { "type": "object", "properties": properties, "additionalProperties": false, "minProperties": 1 }
        ]
    })
}

fn expectations_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let one = expectation_schema(generator);
    schemars::json_schema!({ "type": "object", "additionalProperties": one })
}

fn captures_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {
            "anyOf": [
                { "type": "string", "description": "A JSONPath on the JSON body." },
                {
                    "type": "object",
                    "properties": {
                        "json": { "type": "string" },
                        "header": { "type": "string" },
                        "body_regex": { "type": "string" },
                        "cookie": { "type": "string" },
                        "secret": { "type": "boolean" }
                    },
                    "additionalProperties": false
                }
            ]
        }
    })
}
