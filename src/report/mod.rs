//! Reports: one [`Report`] document, redacted once, rendered by every reporter.
//!
//! Reporters never touch the network; they read the document (and, for live progress, the
//! engine's events).

pub mod junit;
pub mod markdown;
pub mod progress;
pub mod terminal;

use crate::engine::result::WaitResult;
use crate::engine::result::percentile;
use crate::engine::{FlowOutcome, RunResult, StepResult};
use crate::integrity::{IntegrityResult, VersionResult};
use crate::redact::Redactor;
use crate::suite::Plan;
use crate::verdict::{Reason, Verdict, counted};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// The JSON report, schema 1 (SPEC 7); terminal and other reports render from it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub schema: u32,
    pub tool: String,
    pub version: String,
    pub suite: String,
    pub base_url: Option<String>,
    pub started_at: String,
    pub duration_ms: u64,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub summary: Summary,
    /// `[wait]`: whether staging became ready, after how many polls (null without `[wait]`).
    pub wait: Option<WaitResult>,
    pub integrity: Vec<IntegrityResult>,
    pub deployed_version: Option<VersionResult>,
    pub setup: Vec<StepResult>,
    pub flows: Vec<FlowResult>,
    /// Things that did not fail the gate but need a look: failed cleanups, warned flows.
    pub warnings: Vec<String>,
    /// The last line of the terminal output.
    pub headline: String,
}

pub use crate::engine::FlowResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    pub flows: usize,
    pub passed: usize,
    pub failed: usize,
    pub warned: usize,
    pub skipped: usize,
    pub flaky: usize,
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Latency {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub max: Option<u64>,
}

impl Report {
    /// Builds the report and redacts every secret in it, in one place.
    pub fn new(plan: &Plan, result: &RunResult, verdict: &Verdict, redactor: &Redactor) -> Report {
        let count = |o: FlowOutcome| result.flows.iter().filter(|f| f.outcome == o).count();
        let latencies = result.latencies();
        let warnings = warnings(result);
        let report = Report {
            schema: 1,
            tool: "preflight".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            suite: plan.settings.name.clone(),
            base_url: plan.settings.base_url.as_ref().map(|u| u.to_string()),
            started_at: result.started_at.clone(),
            duration_ms: result.duration_ms,
            verdict: verdict.name().into(),
            reasons: verdict.reason_lines(),
            summary: Summary {
                flows: result.flows.len(),
                passed: count(FlowOutcome::Passed),
                failed: count(FlowOutcome::Failed),
                warned: count(FlowOutcome::Warned),
                skipped: count(FlowOutcome::Skipped),
                flaky: result
                    .flows
                    .iter()
                    .filter(|f| f.steps.iter().any(|s| s.flaky))
                    .count(),
                latency_ms: Latency {
                    p50: percentile(&latencies, 50),
                    p95: percentile(&latencies, 95),
                    max: latencies.iter().max().copied(),
                },
            },
            wait: result.wait.clone(),
            integrity: result.integrity.clone(),
            deployed_version: result.deployed_version.clone(),
            setup: result.setup.clone(),
            flows: result.flows.clone(),
            headline: headline(result, verdict, warnings.len()),
            warnings,
        };
        report.redacted(redactor)
    }

    /// Every string of the report with secrets replaced by `***`.
    fn redacted(self, redactor: &Redactor) -> Report {
        if redactor.is_empty() {
            return self;
        }
        let mut value = serde_json::to_value(&self).expect("a report always serializes");
        redactor.redact_document(
            &mut value,
            &["verdict", "outcome", "phase"],
            &["expected", "actual"],
        );
        serde_json::from_value(value).expect("redaction keeps the report's shape")
    }

    /// Streams the JSON to `out`: a large report is never held whole as text.
    pub fn write_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        out.write_all(b"\n")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes") + "\n"
    }
}

fn warnings(result: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    for flow in &result.flows {
        if flow.outcome == FlowOutcome::Warned {
            let step = flow
                .failed_step()
                .map_or(String::new(), |s| format!(" at step '{}'", s.name));
            out.push(format!("non-critical flow '{}' failed{step}", flow.name));
        }
        for cleanup in flow.failed_cleanups() {
            let why = cleanup.error.clone().unwrap_or_else(|| {
                cleanup
                    .failed_assertions()
                    .map(junit::assertion_line)
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            let (flow, step) = (&flow.name, &cleanup.name);
            out.push(if why == crate::engine::flow::CLEANUP_UNFINISHED {
                format!("{why} (flow '{flow}', step '{step}')")
            } else {
                format!("cleanup failed: flow '{flow}', step '{step}': {why}")
            });
        }
    }
    out
}

/// The last line of `run` (SPEC 8).
fn headline(result: &RunResult, verdict: &Verdict, warnings: usize) -> String {
    match verdict {
        Verdict::Passed => format!(
            "GATE PASSED: {}, {} failed, {}, {}",
            counted(result.flows.len(), "flow"),
            result
                .flows
                .iter()
                .filter(|f| f.outcome == FlowOutcome::Failed)
                .count(),
            counted(warnings, "warning"),
            shown_duration(result.duration_ms)
        ),
        Verdict::Failed(reasons) => {
            let parts: Vec<String> = reasons.iter().map(Reason::summary).collect();
            format!("GATE FAILED: {}", parts.join("; "))
        }
        // What went wrong after the interrupt (a report not written) is said too.
        Verdict::Aborted(reasons) => {
            let parts: Vec<String> = std::iter::once(crate::engine::INTERRUPTED.to_string())
                .chain(reasons.iter().map(Reason::summary))
                .collect();
            format!("GATE ABORTED: {}", parts.join("; "))
        }
    }
}

/// `48ms` under a second, `3.4s` above.
fn shown_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}
