//! Reports: one [`Report`] document, built masked, rendered by every reporter.
//!
//! Reporters never touch the network; they read the document (and, for live progress, the
//! engine's events).

pub mod document;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod progress;
mod scan;
pub mod stream;
pub mod terminal;

pub use document::{
    AssertionRecord, AttemptRecord, FlowOutcome, FlowRecord, GateVerdict, IntegrityRecord, Masked,
    Phase, StepOutcome, StepRecord, VersionRecord, WaitRecord, Warning, WarningKind,
};

use crate::engine::RunResult;
use crate::engine::result::LatencyCounts;
use crate::redact::{Mask, Redactor, shown_url};
use crate::suite::Plan;
use crate::verdict::{Reason, Verdict, counted};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// The JSON report, schema 1; terminal and other reports render from it too. It is built
/// masked: secrets appear nowhere in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub schema: u32,
    pub tool: String,
    pub version: String,
    pub suite: String,
    pub base_url: Option<String>,
    pub started_at: String,
    pub duration_ms: u64,
    pub verdict: GateVerdict,
    pub reasons: Vec<String>,
    /// The reasons that no step, setup, wait or integrity result shows by itself (a deadline,
    /// flows not run, `[gate]` limits, a flow that did not finish): what the JUnit `gate`
    /// testcase carries, so that no failure is counted twice.
    #[serde(default)]
    pub gate_reasons: Vec<String>,
    pub summary: Summary,
    /// `[wait]`: whether staging became ready, after how many polls (null without `[wait]`).
    pub wait: Option<WaitRecord>,
    pub integrity: Vec<IntegrityRecord>,
    pub deployed_version: Option<VersionRecord>,
    pub setup: Vec<StepRecord>,
    /// `[[teardown]]` steps, run once after every flow: their failures are warnings.
    #[serde(default)]
    pub teardown: Vec<StepRecord>,
    pub flows: Vec<FlowRecord>,
    /// Things that did not fail the gate but need a look: failed cleanups, warned flows.
    pub warnings: Vec<Warning>,
    /// The last line of the terminal output.
    pub headline: String,
    /// Sharded runs and merged reports only: `sha256:<hex>` over the selected flows' files,
    /// `preflight.toml`, the lock and the selection; the same for every shard of one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite_digest: Option<String>,
    /// `run` only: `sha256:<hex>` over the suite's files and the selected flows (not the base
    /// URL, variables or CI run): runs of one suite share it, so a report of an earlier run can
    /// be the `--baseline` of a later one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite_files_digest: Option<String>,
    /// `run --shard K/N` only: which part this is, and what `merge` needs to judge the whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// `--baseline` only: each step's latency against the baseline run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline::BaselineRecord>,
    /// `preflight serve` only: which run of the server this is, and what asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<ServeRecord>,
    /// Never written: set when `flows` holds only the flows kept whole (a run whose flows
    /// were streamed to the report files as they finished), for what the renderers draw of
    /// every flow.
    #[serde(skip)]
    #[schemars(skip)]
    pub streamed: Option<StreamedFlows>,
}

/// Where the reports that list every flow (JSON, JUnit) find them.
#[derive(Clone, Copy)]
pub enum AllFlows<'a> {
    /// `report.flows` is every flow.
    InReport,
    /// Written to a spool as they finished; `report.flows` holds only the flows kept whole.
    Spooled(&'a stream::Spool),
}

impl AllFlows<'_> {
    /// Every flow, in path order, one at a time.
    pub fn for_each(
        self,
        report: &Report,
        each: &mut dyn FnMut(FlowRecord) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match self {
            AllFlows::InReport => report.flows.iter().try_for_each(|f| each(f.clone())),
            AllFlows::Spooled(spool) => spool.for_each(each),
        }
    }

    /// The JSON report with every flow.
    pub fn write_json(self, report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
        match self {
            AllFlows::InReport => report.write_json(&mut &mut *out),
            AllFlows::Spooled(spool) => {
                json::write_head(&json::Head::of(report), &mut &mut *out)?;
                spool.copy_to(out)?;
                json::write_tail(report, spool.flows() > 0, &mut &mut *out)
            }
        }
    }
}

/// What the renderers need of every flow when the report holds only the flows kept whole.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamedFlows {
    /// Every flow step's and cleanup's latency.
    pub latencies: LatencyCounts,
    /// The latest end of a flow step, in ms from the start of the run.
    pub last_step_end_ms: u64,
}

/// How a run of `preflight serve` came about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServeRecord {
    /// The server's number for this run: `GET /runs/{run_id}`.
    pub run_id: String,
    pub trigger: Trigger,
    /// The `Idempotency-Key` header, or the Flagger payload's `checksum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The Flagger webhook payload that asked for the run (its `token` never kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagger: Option<FlaggerRecord>,
    /// Variables the request set (names allowed by `--allow-var`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
}

/// What started a run of `preflight serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `POST /run`.
    Request,
    /// `--every`.
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Request => "request",
            Trigger::Schedule => "schedule",
        }
    }
}

/// A Flagger webhook payload, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlaggerRecord {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub phase: Option<String>,
    pub checksum: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Which shard a report is, and what `merge` needs to judge the whole as one run would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShardRecord {
    /// 1-based.
    pub index: usize,
    pub count: usize,
    /// Every selected flow of the whole run (all shards), in path order.
    pub selected: Vec<String>,
    /// The suite's `[gate]` policy.
    pub gate: GateRecord,
    /// The deadline, when this shard hit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_exceeded_ms: Option<u64>,
    /// Failures of the engine itself in this shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal_errors: Vec<String>,
}

/// The `[gate]` policy, as a shard report carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateRecord {
    /// `null`: non-critical failures never fail the gate.
    pub max_noncritical_failures: Option<usize>,
    pub max_p95_latency_ms: Option<u64>,
    pub fail_on_flaky: bool,
}

impl GateRecord {
    pub fn of(gate: &crate::suite::GatePolicy) -> GateRecord {
        GateRecord {
            max_noncritical_failures: gate.max_noncritical_failures,
            max_p95_latency_ms: gate.max_p95_latency.map(|d| d.as_millis() as u64),
            fail_on_flaky: gate.fail_on_flaky,
        }
    }

    pub fn policy(&self) -> crate::suite::GatePolicy {
        crate::suite::GatePolicy {
            max_noncritical_failures: self.max_noncritical_failures,
            max_p95_latency: self
                .max_p95_latency_ms
                .map(std::time::Duration::from_millis),
            fail_on_flaky: self.fail_on_flaky,
            // A shard report carries no baseline: `merge` compares nothing.
            latency_regression: crate::suite::RegressionPolicy::default(),
        }
    }
}

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

/// Why a file is no report to read back.
#[derive(Debug, thiserror::Error)]
pub enum ReportFileError {
    #[error(transparent)]
    Unreadable(#[from] crate::fs::read::ReadError),
    #[error("{0}")]
    NotAReport(String),
}

impl Report {
    /// Reads back a JSON report this tool wrote: a regular file, JSON of schema 1 of
    /// preflight. `preflight report`, `--baseline` and `serve --state-dir` read them (`merge`
    /// reads a shard report's flows with [`json::read_flows`] too, but keeps none whole).
    pub fn read(path: &std::path::Path) -> Result<Report, ReportFileError> {
        // Read as a stream, with no size limit: a report of many flows can be larger than
        // any file a suite names. Its flows are never held as text but one at a time; the
        // rest of it is (see `json::read_flows`).
        let file = crate::fs::read::open_regular(path)?;
        let report = json::read_report(file).map_err(ReportFileError::NotAReport)?;
        if report.schema != 1 || report.tool != "preflight" {
            return Err(ReportFileError::NotAReport(format!(
                "schema {} of tool `{}`",
                report.schema, report.tool
            )));
        }
        Ok(report)
    }

    /// Builds the report from the run, masked: every value that came from staging, and every
    /// text made from one, goes through `redactor` on its way in.
    pub fn new(plan: &Plan, result: &RunResult, verdict: &Verdict, redactor: &Redactor) -> Report {
        let base_url = plan
            .settings
            .base_url
            .as_ref()
            .map(|u| redactor.mask_text(&shown_url(u)));
        Report::of_result(&plan.settings.name, base_url, result, verdict, redactor)
    }

    /// Builds the report of `result` for the suite `suite` whose base URL shows as `base_url`:
    /// `merge` builds its report of records already masked this way too.
    pub fn of_result(
        suite: &str,
        base_url: Option<String>,
        result: &RunResult,
        verdict: &Verdict,
        mask: &dyn Mask,
    ) -> Report {
        let flows: Vec<FlowRecord> = result.flows.iter().map(|f| f.masked(mask)).collect();
        let tally = result.tally();
        let latencies = result.latencies();
        let teardown: Vec<StepRecord> = result.teardown.iter().map(|s| s.masked(mask)).collect();
        let mut warnings = warnings(&flows);
        warnings.extend(teardown_warnings(&teardown));
        warnings.extend(contract_warnings(result, mask));
        Report {
            schema: 1,
            tool: "preflight".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            suite: suite.to_string(),
            base_url,
            started_at: result.started_at.clone(),
            duration_ms: result.duration_ms,
            verdict: match verdict {
                Verdict::Passed => GateVerdict::Pass,
                Verdict::Failed(_) => GateVerdict::Fail,
                Verdict::Aborted(_) => GateVerdict::Aborted,
            },
            reasons: verdict
                .reason_lines()
                .iter()
                .map(|r| mask.mask_text(r))
                .collect(),
            gate_reasons: gate_reasons(verdict, &flows, result)
                .iter()
                .map(|r| mask.mask_text(r))
                .collect(),
            summary: Summary {
                flows: tally.total,
                passed: tally.passed,
                failed: tally.failed,
                warned: tally.warned,
                skipped: tally.skipped,
                flaky: tally.flaky,
                latency_ms: Latency {
                    p50: latencies.percentile(50),
                    p95: latencies.percentile(95),
                    max: latencies.max(),
                },
            },
            wait: result.wait.as_ref().map(|w| w.masked(mask)),
            integrity: result.integrity.iter().map(|r| r.masked(mask)).collect(),
            deployed_version: result.deployed_version.as_ref().map(|v| v.masked(mask)),
            setup: result.setup.iter().map(|s| s.masked(mask)).collect(),
            teardown,
            flows,
            headline: mask.mask_text(&headline(result, verdict, warnings.len())),
            warnings,
            suite_digest: None,
            suite_files_digest: None,
            shard: None,
            baseline: None,
            serve: None,
            streamed: result.streamed.as_ref().map(|tally| StreamedFlows {
                latencies: tally.latencies.clone(),
                last_step_end_ms: tally.last_step_end_ms,
            }),
        }
    }

    /// Adds the comparison with a baseline run: its regressions are warnings, unless they
    /// failed the gate (then they are among the reasons already). The last line counts them.
    pub fn add_baseline(
        &mut self,
        record: crate::baseline::BaselineRecord,
        result: &RunResult,
        verdict: &Verdict,
        mask: &dyn Mask,
    ) {
        if !record.fail_on_latency_regression {
            self.add_warnings(crate::baseline::warnings(&record), result, verdict, mask);
        }
        self.baseline = Some(record);
    }

    /// Adds warnings that no record of the run carries (a merged run's `[openapi]` warnings,
    /// from its shards' reports; latency regressions); the last line counts them.
    pub fn add_warnings(
        &mut self,
        warnings: Vec<Warning>,
        result: &RunResult,
        verdict: &Verdict,
        mask: &dyn Mask,
    ) {
        self.warnings.extend(warnings);
        // Masked as when the report was built: reasons quote staging (a version, an error).
        self.headline = mask.mask_text(&headline(result, verdict, self.warnings.len()));
    }

    /// Streams the JSON to `out`: a large report is never held whole as text.
    pub fn write_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        json::write_report(self, out)
    }

    /// The JSON as text. A report is plain data (strings, numbers, enums): it always
    /// serializes, so a failure here could only be a bug, and it still never panics.
    pub fn to_json(&self) -> String {
        let mut text = Vec::new();
        match self.write_json(&mut text) {
            // Valid UTF-8 as serde_json writes it: taken as it is, not copied.
            Ok(()) => String::from_utf8(text)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
        }
    }
}

/// The reasons of a failed verdict that no record of the run shows as a failure itself.
fn gate_reasons(verdict: &Verdict, flows: &[FlowRecord], result: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    for reason in verdict.reasons() {
        match reason {
            Reason::FlowsFailed { failed, .. } => {
                let unshown = failed.iter().filter(|(name, _)| {
                    flows
                        .iter()
                        .find(|f| &f.name == name)
                        .is_none_or(|f| f.failed_step().is_none())
                });
                out.extend(unshown.map(|(name, why)| format!("flow '{name}' {why}")));
            }
            Reason::SetupFailed { .. }
                if result
                    .setup
                    .iter()
                    .any(|s| s.outcome == crate::engine::StepOutcome::Failed) => {}
            Reason::ConfigMismatch { .. } | Reason::WrongVersion(_) | Reason::NotReady { .. } => {}
            other => out.extend(other.details()),
        }
    }
    out
}

fn warnings(flows: &[FlowRecord]) -> Vec<Warning> {
    let mut out = Vec::new();
    for flow in flows {
        if flow.outcome == FlowOutcome::Warned {
            let step = flow.failed_step().map(|s| s.name.clone());
            let at = step
                .as_ref()
                .map_or(String::new(), |s| format!(" at step '{s}'"));
            out.push(Warning {
                kind: WarningKind::NonCriticalFlowFailed,
                flow: flow.name.clone(),
                step,
                message: format!("non-critical flow '{}' failed{at}", flow.name),
            });
        }
        for cleanup in flow.failed_cleanups() {
            let why = failure_reason(cleanup);
            let (name, step) = (&flow.name, &cleanup.name);
            let message = if why == crate::engine::flow::CLEANUP_UNFINISHED {
                format!("{why} (flow '{name}', step '{step}')")
            } else {
                format!("cleanup failed: flow '{name}', step '{step}': {why}")
            };
            out.push(Warning {
                kind: WarningKind::CleanupFailed,
                flow: name.clone(),
                step: Some(step.clone()),
                message,
            });
        }
    }
    out
}

/// `[openapi]` notes of every step that ran: each violation under `validate = "warn"`, and
/// each undocumented operation once (by method and path), at the first step that sent it.
fn contract_warnings(result: &RunResult, mask: &dyn Mask) -> Vec<Warning> {
    use crate::engine::ContractNote;
    let of_steps = |steps: &'_ [crate::engine::StepResult]| -> Vec<(String, String, ContractNote)> {
        steps
            .iter()
            .flat_map(|s| {
                s.contract_notes
                    .iter()
                    .map(|n| (String::new(), s.name.clone(), n.clone()))
            })
            .collect()
    };
    // The flows' notes were gathered as the flows finished, in path order.
    let tally = result.tally();
    let notes = of_steps(&result.setup)
        .into_iter()
        .chain(tally.contract_notes.iter().cloned())
        .chain(of_steps(&result.teardown));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (flow, step, note) in notes {
        let at = if flow.is_empty() {
            format!("step '{step}'")
        } else {
            format!("flow '{flow}', step '{step}'")
        };
        let (kind, message) = match &note {
            ContractNote::Undocumented(operation) => {
                if !seen.insert(operation.clone()) {
                    continue;
                }
                (
                    WarningKind::UndocumentedOperation,
                    format!("operation not in the OpenAPI document: {operation} ({at})"),
                )
            }
            ContractNote::Violation(why) => (
                WarningKind::ContractViolation,
                format!("contract violation: {at}: {why}"),
            ),
        };
        out.push(Warning {
            kind,
            flow,
            step: Some(step),
            message: mask.mask_text(&message),
        });
    }
    out
}

/// Why a step that only warns failed: its error, else its failed assertions.
fn failure_reason(step: &StepRecord) -> String {
    step.error.clone().unwrap_or_else(|| {
        step.failed_assertions()
            .map(junit::assertion_line)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// One warning per failed teardown step: test data may be left behind.
fn teardown_warnings(teardown: &[StepRecord]) -> Vec<Warning> {
    let failed = teardown.iter().filter(|s| s.outcome == StepOutcome::Failed);
    failed
        .map(|step| {
            let why = failure_reason(step);
            let message = if why == crate::engine::teardown::TEARDOWN_UNFINISHED {
                format!("{why} (step '{}')", step.name)
            } else {
                format!("teardown failed: step '{}': {why}", step.name)
            };
            Warning {
                kind: WarningKind::TeardownFailed,
                flow: String::new(),
                step: Some(step.name.clone()),
                message,
            }
        })
        .collect()
}

/// The last line of `run`.
fn headline(result: &RunResult, verdict: &Verdict, warnings: usize) -> String {
    match verdict {
        Verdict::Passed => format!(
            "GATE PASSED: {}, {} failed, {}, {}",
            counted(result.tally().total, "flow"),
            result.tally().failed,
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
