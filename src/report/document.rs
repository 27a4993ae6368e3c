//! The report document, schema 1: the public, versioned type every output renders from.
//!
//! It is built from the engine's results (never the engine's structs serialized), and it is
//! masked when built: the engine already shows sensitive values as `***` at their source, and
//! [`Masked`] takes one more look, field by field, at whatever came from staging once secrets
//! were learned during the run (secret captures). Enumerations are enums, so that a secret
//! equal to a word of the report's vocabulary can never change its meaning.

use crate::check::Assertion;
use crate::engine;
use crate::integrity::{IntegrityResult, VersionResult};
use crate::redact::Mask;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The gate's verdict as reports write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateVerdict {
    Pass,
    Fail,
    Aborted,
}

impl GateVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            GateVerdict::Pass => "pass",
            GateVerdict::Fail => "fail",
            GateVerdict::Aborted => "aborted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlowOutcome {
    Passed,
    Failed,
    /// A non-critical flow that failed: reported, but the gate may still pass.
    Warned,
    /// Never started (deadline, setup failure, interrupt).
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Step,
    Cleanup,
}

/// What kind of thing did not fail the gate but needs a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A non-critical flow failed.
    NonCriticalFlowFailed,
    /// A cleanup failed, could not run for a missing capture, or did not finish: test data
    /// may be left behind.
    CleanupFailed,
    /// A `[[teardown]]` step failed, could not run for a missing capture, or did not finish:
    /// test data may be left behind. `flow` is empty.
    TeardownFailed,
    /// `--baseline`: a step is slower than in the baseline run by more than `[gate]` allows.
    LatencyRegression,
    /// `[openapi]` with `validate = "warn"`: a response breaks the document's contract.
    ContractViolation,
    /// `[openapi]`: a step's method and path match no operation of the document (once per
    /// method and path).
    UndocumentedOperation,
}

/// Something that did not fail the gate but needs a look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Warning {
    pub kind: WarningKind,
    pub flow: String,
    /// The step (or cleanup) it is about.
    pub step: Option<String>,
    /// What a person reads: `cleanup failed: flow 'x', step 'y': ...`.
    pub message: String,
}

/// One step as it ran (or did not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRecord {
    pub name: String,
    pub phase: Phase,
    pub method: String,
    /// The final URL requested (after redirects), secrets as `***`; `null` when it could not
    /// be built.
    pub url: Option<String>,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    /// When the step began (its first attempt), in ms from the start of the run; absent for
    /// a step that never began. With `latency_ms` and the attempts' own, a timeline can be
    /// drawn from the report alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When its last attempt (the one `status` is of) began; absent when it is `started_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_started_ms: Option<u64>,
    pub attempts: u32,
    /// Passed, but only after a failed attempt.
    pub flaky: bool,
    /// The failed attempts before the last one, when the step was retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<AttemptRecord>,
    pub outcome: StepOutcome,
    /// Why the step could not complete (connect, TLS, timeout, body too large, template...).
    /// Failed assertions are not errors: they are in `assertions`.
    pub error: Option<String>,
    pub assertions: Vec<AssertionRecord>,
    /// Why a step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// For failed steps: the start of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_excerpt: Option<String>,
    /// For failed steps: the request headers sent (sensitive ones masked).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
    /// The step has `poll`: its earlier attempts are polls whose expectations did not hold
    /// yet, which is expected, not flaky. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub polled: bool,
    /// With `-vv` only: the request and the response, masked and cut to excerpts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeRecord>,
}

/// What `-vv` shows of one step's exchange (`run -vv`): headers in the order sent or received,
/// sensitive values as `***`, bodies cut to about 2 KB (JSON pretty-printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExchangeRecord {
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
}

impl Masked<ExchangeRecord> for engine::result::ExchangeDetail {
    fn masked(&self, mask: &dyn Mask) -> ExchangeRecord {
        let headers = |list: &[(String, String)]| {
            list.iter()
                .map(|(n, v)| (mask.mask_header_name(n), text(v, mask)))
                .collect()
        };
        ExchangeRecord {
            request_headers: headers(&self.request_headers),
            request_body: opt(&self.request_body, mask),
            response_headers: headers(&self.response_headers),
            response_body: opt(&self.response_body, mask),
        }
    }
}

impl StepRecord {
    pub fn skipped(name: &str, phase: Phase, method: &str, because: impl Into<String>) -> Self {
        StepRecord {
            name: name.to_string(),
            phase,
            method: method.to_string(),
            url: None,
            status: None,
            latency_ms: None,
            started_ms: None,
            last_attempt_started_ms: None,
            attempts: 0,
            flaky: false,
            earlier_attempts: Vec::new(),
            outcome: StepOutcome::Skipped,
            error: None,
            assertions: Vec::new(),
            skipped_because: Some(because.into()),
            body_excerpt: None,
            request_headers: BTreeMap::new(),
            polled: false,
            exchange: None,
        }
    }

    pub fn failed_assertions(&self) -> impl Iterator<Item = &AssertionRecord> {
        self.assertions.iter().filter(|a| !a.passed)
    }
}

/// One flow of `preflight list --json`: a stable shape for scripts (schema: `preflight schema
/// list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListedFlow {
    pub name: String,
    /// The flow file, relative to the suite directory.
    pub file: String,
    pub tags: Vec<String>,
    pub critical: bool,
    /// `[[step]]` entries.
    pub steps: usize,
    /// `[[cleanup]]` entries.
    pub cleanups: usize,
}

impl ListedFlow {
    pub fn of(flow: &crate::suite::Flow, body: &crate::suite::FlowSteps) -> ListedFlow {
        ListedFlow {
            name: flow.name.clone(),
            file: flow.file.clone(),
            tags: flow.tags.to_vec(),
            critical: flow.critical,
            steps: body.steps.len(),
            cleanups: body.cleanup.len(),
        }
    }
}

/// The evaluated form of one expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AssertionRecord {
    pub subject: String,
    pub op: String,
    pub expected: serde_json::Value,
    pub actual: serde_json::Value,
    pub passed: bool,
    /// Why it failed, when the values alone do not say (schema errors, bad regex, no JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One failed try of a retried step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttemptRecord {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
    /// When it began, in ms from the start of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowRecord {
    pub name: String,
    pub file: String,
    pub tags: Vec<String>,
    pub critical: bool,
    pub outcome: FlowOutcome,
    pub duration_ms: u64,
    pub steps: Vec<StepRecord>,
}

impl FlowRecord {
    /// The flow with every value that came from staging masked once more: a flow written
    /// before the run learned a secret (a secret capture of a later flow) is masked again
    /// with it. Masking what is masked already changes nothing.
    pub fn masked_again(mut self, mask: &dyn Mask) -> FlowRecord {
        let again = |value: &mut Option<String>| {
            if let Some(v) = value.as_mut() {
                *v = mask.mask_text(v);
            }
        };
        for step in &mut self.steps {
            again(&mut step.url);
            again(&mut step.error);
            again(&mut step.skipped_because);
            again(&mut step.body_excerpt);
            for attempt in &mut step.earlier_attempts {
                again(&mut attempt.error);
            }
            for assertion in &mut step.assertions {
                assertion.expected = mask.mask_value(&assertion.expected);
                assertion.actual = mask.mask_value(&assertion.actual);
                again(&mut assertion.message);
            }
            for value in step.request_headers.values_mut() {
                *value = mask.mask_text(value);
            }
            if let Some(exchange) = &mut step.exchange {
                let headers = exchange
                    .request_headers
                    .iter_mut()
                    .chain(exchange.response_headers.iter_mut());
                for (name, value) in headers {
                    *name = mask.mask_header_name(name);
                    *value = mask.mask_text(value);
                }
                again(&mut exchange.request_body);
                again(&mut exchange.response_body);
            }
        }
        self
    }

    /// A flow that passed with no flaky or failed step or cleanup: what the
    /// HTML waterfall and the Markdown table may leave out of a large run.
    pub fn is_plain_pass(&self) -> bool {
        self.outcome == FlowOutcome::Passed
            && !self
                .steps
                .iter()
                .any(|s| s.flaky || s.outcome == StepOutcome::Failed)
    }

    /// The first failed step of the flow (not a cleanup).
    pub fn failed_step(&self) -> Option<&StepRecord> {
        self.steps
            .iter()
            .find(|s| s.phase == Phase::Step && s.outcome == StepOutcome::Failed)
    }

    pub fn failed_cleanups(&self) -> impl Iterator<Item = &StepRecord> {
        self.steps
            .iter()
            .filter(|s| s.phase == Phase::Cleanup && s.outcome == StepOutcome::Failed)
    }
}

/// How `[wait]` went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaitRecord {
    pub ready: bool,
    pub polls: u32,
    pub waited_ms: u64,
    /// The last status, error or version seen while not ready.
    pub last: Option<String>,
}

/// One pinned config file, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IntegrityRecord {
    pub file: String,
    /// `sha256:<hex>` from the lock, or `<no lock entry>`.
    pub expected: String,
    /// `sha256:<hex>` of the local file, `<missing>` or `<unreadable: reason>`.
    pub actual: String,
    /// With `served_at`: `sha256:<hex>` of what staging served, or why nothing was.
    pub served: Option<String>,
    pub passed: bool,
    /// The failure: `config mismatch: <file>: expected ..., found ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The deployed version, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VersionRecord {
    pub expected: String,
    pub actual: Option<String>,
    pub passed: bool,
    /// Why no version could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VersionRecord {
    /// `staging runs <actual>, expected <expected>`, when the check failed.
    pub fn message(&self) -> Option<String> {
        self.as_result().message()
    }

    fn as_result(&self) -> VersionResult {
        VersionResult {
            expected: self.expected.clone(),
            actual: self.actual.clone(),
            passed: self.passed,
            error: self.error.clone(),
        }
    }
}

/// Builds document values from engine values, masking what came from staging.
pub trait Masked<T> {
    fn masked(&self, mask: &dyn Mask) -> T;
}

fn text(value: &str, mask: &dyn Mask) -> String {
    mask.mask_text(value)
}

fn opt(value: &Option<String>, mask: &dyn Mask) -> Option<String> {
    value.as_deref().map(|v| mask.mask_text(v))
}

impl Masked<StepRecord> for engine::StepResult {
    fn masked(&self, mask: &dyn Mask) -> StepRecord {
        StepRecord {
            name: self.name.clone(),
            phase: match self.phase {
                engine::Phase::Step => Phase::Step,
                engine::Phase::Cleanup => Phase::Cleanup,
            },
            method: self.method.clone(),
            url: opt(&self.url, mask),
            status: self.status,
            latency_ms: self.latency_ms,
            started_ms: self.started_ms,
            last_attempt_started_ms: self
                .last_attempt_started_ms
                .filter(|at| Some(*at) != self.started_ms),
            attempts: self.attempts,
            flaky: self.flaky,
            earlier_attempts: self
                .earlier_attempts
                .iter()
                .map(|a| AttemptRecord {
                    status: a.status,
                    error: opt(&a.error, mask),
                    latency_ms: a.latency_ms,
                    started_ms: a.started_ms,
                })
                .collect(),
            outcome: match self.outcome {
                engine::StepOutcome::Passed => StepOutcome::Passed,
                engine::StepOutcome::Failed => StepOutcome::Failed,
                engine::StepOutcome::Skipped => StepOutcome::Skipped,
            },
            error: opt(&self.error, mask),
            assertions: self.assertions.iter().map(|a| a.masked(mask)).collect(),
            skipped_because: opt(&self.skipped_because, mask),
            body_excerpt: opt(&self.body_excerpt, mask),
            request_headers: self
                .request_headers
                .iter()
                .map(|(name, value)| (name.clone(), text(value, mask)))
                .collect(),
            polled: self.polled,
            exchange: self.exchange.as_ref().map(|e| e.masked(mask)),
        }
    }
}

impl Masked<AssertionRecord> for Assertion {
    fn masked(&self, mask: &dyn Mask) -> AssertionRecord {
        AssertionRecord {
            subject: self.subject.clone(),
            op: self.op.clone(),
            expected: mask.mask_value(&self.expected),
            actual: mask.mask_value(&self.actual),
            passed: self.passed,
            message: opt(&self.message, mask),
        }
    }
}

impl Masked<FlowRecord> for engine::FlowResult {
    fn masked(&self, mask: &dyn Mask) -> FlowRecord {
        FlowRecord {
            name: self.name.clone(),
            file: self.file.clone(),
            tags: self.tags.clone(),
            critical: self.critical,
            outcome: match self.outcome {
                engine::FlowOutcome::Passed => FlowOutcome::Passed,
                engine::FlowOutcome::Failed => FlowOutcome::Failed,
                engine::FlowOutcome::Warned => FlowOutcome::Warned,
                engine::FlowOutcome::Skipped => FlowOutcome::Skipped,
            },
            duration_ms: self.duration_ms,
            steps: self.steps.iter().map(|s| s.masked(mask)).collect(),
        }
    }
}

impl Masked<WaitRecord> for engine::result::WaitResult {
    fn masked(&self, mask: &dyn Mask) -> WaitRecord {
        WaitRecord {
            ready: self.ready,
            polls: self.polls,
            waited_ms: self.waited_ms,
            last: opt(&self.last, mask),
        }
    }
}

impl Masked<IntegrityRecord> for IntegrityResult {
    fn masked(&self, mask: &dyn Mask) -> IntegrityRecord {
        IntegrityRecord {
            file: self.file.clone(),
            expected: self.expected.clone(),
            actual: text(&self.actual, mask),
            served: opt(&self.served, mask),
            passed: self.passed,
            message: opt(&self.message, mask),
            hint: self.hint.clone(),
        }
    }
}

impl Masked<VersionRecord> for VersionResult {
    fn masked(&self, mask: &dyn Mask) -> VersionRecord {
        VersionRecord {
            expected: text(&self.expected, mask),
            actual: opt(&self.actual, mask),
            passed: self.passed,
            error: opt(&self.error, mask),
        }
    }
}
