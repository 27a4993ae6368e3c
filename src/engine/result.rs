//! What a run produced, as data: the engine fills it, the verdict and reports read it.

use crate::check::Assertion;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowOutcome {
    Passed,
    Failed,
    /// A non-critical flow that failed: reported, but the gate may still pass.
    Warned,
    /// Never started (deadline, setup failure, interrupt).
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Step,
    Cleanup,
}

/// One step as it ran (or did not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub phase: Phase,
    pub method: String,
    /// The final URL requested (after redirects); `null` when it could not be built.
    pub url: Option<String>,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub attempts: u32,
    pub flaky: bool,
    pub outcome: StepOutcome,
    /// Why the step could not complete (connect, TLS, timeout, body too large, template...).
    /// Failed assertions are not errors: they are in `assertions`.
    pub error: Option<String>,
    pub assertions: Vec<Assertion>,
    /// Why a step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// For failed steps: the start of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_excerpt: Option<String>,
    /// For failed steps: the request headers sent (sensitive ones masked).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
}

impl StepResult {
    pub fn skipped(name: &str, phase: Phase, method: &str, because: impl Into<String>) -> Self {
        StepResult {
            name: name.to_string(),
            phase,
            method: method.to_string(),
            url: None,
            status: None,
            latency_ms: None,
            attempts: 0,
            flaky: false,
            outcome: StepOutcome::Skipped,
            error: None,
            assertions: Vec::new(),
            skipped_because: Some(because.into()),
            body_excerpt: None,
            request_headers: BTreeMap::new(),
        }
    }

    pub fn failed_assertions(&self) -> impl Iterator<Item = &Assertion> {
        self.assertions.iter().filter(|a| !a.passed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowResult {
    pub name: String,
    pub file: String,
    pub tags: Vec<String>,
    pub critical: bool,
    pub outcome: FlowOutcome,
    pub duration_ms: u64,
    pub steps: Vec<StepResult>,
}

impl FlowResult {
    /// The first failed step of the flow (not a cleanup).
    pub fn failed_step(&self) -> Option<&StepResult> {
        self.steps
            .iter()
            .find(|s| s.phase == Phase::Step && s.outcome == StepOutcome::Failed)
    }

    pub fn failed_cleanups(&self) -> impl Iterator<Item = &StepResult> {
        self.steps
            .iter()
            .filter(|s| s.phase == Phase::Cleanup && s.outcome == StepOutcome::Failed)
    }
}

/// Why a run was cut short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    Deadline { deadline_ms: u64 },
    Interrupted,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub started_at: String,
    pub duration_ms: u64,
    pub setup: Vec<StepResult>,
    /// In path order, every selected flow, started or not.
    pub flows: Vec<FlowResult>,
    pub stopped: Option<Stop>,
    /// Failures of the engine itself (a panicked task); any one fails the gate.
    pub internal_errors: Vec<String>,
    pub integrity: Vec<crate::integrity::IntegrityResult>,
    pub deployed_version: Option<crate::integrity::VersionResult>,
}
