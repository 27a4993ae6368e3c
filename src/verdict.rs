//! The run, judged: [`Verdict`] from a [`RunResult`], and the exit code from a verdict, each
//! in one exhaustive place. The rule is fail closed: PASS only when every critical check ran
//! and passed.

use crate::engine::{FlowOutcome, INTERRUPTED, Phase, RunResult, StepOutcome, Stop};
use crate::suite::GatePolicy;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(Vec<Reason>),
    /// Interrupted by a signal; the reasons are what else went wrong after it (a report that
    /// could not be written): still exit 130, but never silently.
    Aborted(Vec<Reason>),
}

/// Why the gate failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Critical flows that failed: (flow, `failed at step 'x'` or why it did not finish).
    FlowsFailed {
        failed: Vec<(String, String)>,
        total: usize,
    },
    FlowsNotRun {
        count: usize,
    },
    SetupFailed {
        step: String,
    },
    /// Pinned config files that do not match the lock (locally or as served).
    ConfigMismatch {
        messages: Vec<String>,
    },
    /// `staging runs <actual>, expected <expected>`.
    WrongVersion(String),
    /// `[wait]` ended before staging was ready.
    NotReady {
        last: Option<String>,
        polls: u32,
    },
    /// `[gate] max_noncritical_failures` broken.
    TooManyNoncriticalFailures {
        failed: usize,
        limit: usize,
    },
    /// `[gate] max_p95_latency` broken.
    SlowP95 {
        p95: Duration,
        limit: Duration,
    },
    /// `[gate] fail_on_flaky`: critical steps that passed only after a retry.
    Flaky {
        steps: Vec<String>,
    },
    Deadline {
        deadline: Duration,
    },
    Internal(String),
    ReportNotWritten(String),
    /// `--baseline` with `[gate] fail_on_latency_regression`: steps slower than the baseline
    /// run (each `'flow' / 'step': 40ms -> 124ms (+210%)`).
    LatencyRegressed {
        steps: Vec<String>,
    },
    /// `merge`: the shard reports do not make up one whole run (a shard missing or given
    /// twice, different suites, an aborted shard, a flow in two shards).
    Merge(String),
}

impl Reason {
    /// The form of the last line: `2 of 12 flows failed`.
    pub fn summary(&self) -> String {
        match self {
            Reason::FlowsFailed { failed, total } => {
                format!(
                    "{} of {} {} failed",
                    failed.len(),
                    total,
                    plural(*total, "flow")
                )
            }
            Reason::FlowsNotRun { count } => format!("{} not run", counted(*count, "flow")),
            Reason::SetupFailed { step } => format!("setup step '{step}' failed"),
            Reason::ConfigMismatch { messages } => {
                format!("config mismatch in {}", counted(messages.len(), "file"))
            }
            Reason::WrongVersion(message) => message.clone(),
            Reason::NotReady { last, polls } => match last {
                Some(last) => format!(
                    "staging not ready after {} (last: {last})",
                    counted(*polls as usize, "poll")
                ),
                None => format!(
                    "staging not ready after {}",
                    counted(*polls as usize, "poll")
                ),
            },
            Reason::TooManyNoncriticalFailures { failed, limit } => format!(
                "{} failed, over the limit of {limit}",
                counted(*failed, "non-critical flow")
            ),
            Reason::SlowP95 { p95, limit } => format!(
                "p95 latency {} over {}",
                humantime::format_duration(*p95),
                humantime::format_duration(*limit)
            ),
            Reason::Flaky { steps } => format!(
                "{} passed only after a retry",
                counted(steps.len(), "critical step")
            ),
            Reason::Deadline { deadline } => format!(
                "deadline {} exceeded",
                humantime::format_duration(*deadline)
            ),
            Reason::Internal(e) => format!("internal error: {e}"),
            Reason::ReportNotWritten(e) => e.clone(),
            Reason::LatencyRegressed { steps } => {
                format!("{} slower than the baseline", counted(steps.len(), "step"))
            }
            Reason::Merge(e) => e.clone(),
        }
    }

    /// The form of the JSON report's `reasons`: one entry per failed flow.
    pub fn details(&self) -> Vec<String> {
        match self {
            Reason::FlowsFailed { failed, .. } => failed
                .iter()
                .map(|(flow, why)| format!("flow '{flow}' {why}"))
                .collect(),
            Reason::ConfigMismatch { messages } => messages.clone(),
            Reason::Flaky { steps } => steps.iter().map(|s| format!("flaky step {s}")).collect(),
            Reason::LatencyRegressed { steps } => steps
                .iter()
                .map(|s| format!("slower than the baseline: {s}"))
                .collect(),
            other => vec![other.summary()],
        }
    }
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Passed => "pass",
            Verdict::Failed(_) => "fail",
            Verdict::Aborted(_) => "aborted",
        }
    }

    pub fn reasons(&self) -> &[Reason] {
        match self {
            Verdict::Failed(reasons) | Verdict::Aborted(reasons) => reasons,
            Verdict::Passed => &[],
        }
    }

    /// The JSON report's `reasons`: `interrupted` first for an aborted run, then one entry per
    /// failed flow, config mismatch or other reason.
    pub fn reason_lines(&self) -> Vec<String> {
        let interrupted = matches!(self, Verdict::Aborted(_)).then(|| INTERRUPTED.to_string());
        interrupted
            .into_iter()
            .chain(self.reasons().iter().flat_map(Reason::details))
            .collect()
    }

    /// One more reason: a pass becomes a fail; an aborted run stays aborted (exit 130) and
    /// keeps the reason.
    pub fn add_reason(self, reason: Reason) -> Verdict {
        match self {
            Verdict::Passed => Verdict::Failed(vec![reason]),
            Verdict::Failed(mut reasons) => {
                reasons.push(reason);
                Verdict::Failed(reasons)
            }
            Verdict::Aborted(mut reasons) => {
                reasons.push(reason);
                Verdict::Aborted(reasons)
            }
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Verdict::Passed => 0,
            Verdict::Failed(_) => 1,
            Verdict::Aborted(_) => 130,
        })
    }
}

/// Judges a run under the suite's `[gate]` policy. Each part adds the reasons of one kind, in
/// the order the last line lists them.
pub fn judge(result: &RunResult, gate: &GatePolicy) -> Verdict {
    if result.stopped == Some(Stop::Interrupted) {
        return Verdict::Aborted(Vec::new());
    }
    let mut reasons = run_cut_short(result);
    reasons.extend(staging_checks(result));
    reasons.extend(critical_failures(result));
    reasons.extend(gate_limits(result, gate));
    reasons.extend(unproven(result));
    if reasons.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(reasons)
    }
}

/// Internal errors, the deadline, and a staging that never became ready.
fn run_cut_short(result: &RunResult) -> Vec<Reason> {
    let mut reasons: Vec<Reason> = result
        .internal_errors
        .iter()
        .cloned()
        .map(Reason::Internal)
        .collect();
    if let Some(Stop::Deadline { deadline_ms }) = result.stopped {
        reasons.push(Reason::Deadline {
            deadline: Duration::from_millis(deadline_ms),
        });
    }
    if let Some(wait) = result.wait.as_ref().filter(|w| !w.ready) {
        reasons.push(Reason::NotReady {
            last: wait.last.clone(),
            polls: wait.polls,
        });
    }
    reasons
}

/// Pinned config, the deployed version and `[[setup]]`: what must hold before any flow counts.
fn staging_checks(result: &RunResult) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let mismatches: Vec<String> = result
        .integrity
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            r.message
                .clone()
                .unwrap_or_else(|| format!("config mismatch: {}", r.file))
        })
        .collect();
    if !mismatches.is_empty() {
        reasons.push(Reason::ConfigMismatch {
            messages: mismatches,
        });
    }
    if let Some(message) = result.deployed_version.as_ref().and_then(|v| v.message()) {
        reasons.push(Reason::WrongVersion(message));
    }
    if let Some(step) = result
        .setup
        .iter()
        .find(|s| s.outcome != StepOutcome::Passed)
    {
        reasons.push(Reason::SetupFailed {
            step: step.name.clone(),
        });
    }
    reasons
}

/// Critical flows that failed, each with the step it failed at or why it did not finish.
fn critical_failures(result: &RunResult) -> Option<Reason> {
    let failed: Vec<(String, String)> = result
        .flows
        .iter()
        .filter(|f| f.critical && f.outcome == FlowOutcome::Failed)
        .map(|f| {
            let why = match f.failed_step() {
                Some(step) => format!("failed at step '{}'", step.name),
                // Stopped half-way (fail-fast, deadline) or cut off: say by what.
                None => match f
                    .steps
                    .iter()
                    .find_map(|s| s.skipped_because.as_ref().or(s.error.as_ref()))
                {
                    Some(reason) => format!("did not finish ({reason})"),
                    None => "failed".to_string(),
                },
            };
            (f.name.clone(), why)
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(Reason::FlowsFailed {
        failed,
        total: result.tally().total,
    })
}

/// The `[gate]` limits: non-critical failures, p95 latency, flaky critical steps.
fn gate_limits(result: &RunResult, gate: &GatePolicy) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let warned = result.tally().warned;
    if let Some(limit) = gate
        .max_noncritical_failures
        .filter(|limit| warned > *limit)
    {
        reasons.push(Reason::TooManyNoncriticalFailures {
            failed: warned,
            limit,
        });
    }
    if let Some(limit) = gate.max_p95_latency {
        let p95 = result.latencies().percentile(95).map(Duration::from_millis);
        if let Some(p95) = p95.filter(|p95| *p95 > limit) {
            reasons.push(Reason::SlowP95 { p95, limit });
        }
    }
    if gate.fail_on_flaky {
        // Setup steps are as critical as it gets: a failed one fails the gate.
        let setup = result
            .setup
            .iter()
            .filter(|s| s.flaky)
            .map(|s| format!("'{}' of setup", s.name));
        // A cleanup never changes the verdict, flaky or not.
        let flows = result.flows.iter().filter(|f| f.critical).flat_map(|f| {
            f.steps
                .iter()
                .filter(|s| s.flaky && s.phase == Phase::Step)
                .map(move |s| format!("'{}' of flow '{}'", s.name, f.name))
        });
        let steps: Vec<String> = setup.chain(flows).collect();
        if !steps.is_empty() {
            reasons.push(Reason::Flaky { steps });
        }
    }
    reasons
}

/// Fail closed: flows that never ran, and records that do not prove a pass.
fn unproven(result: &RunResult) -> Vec<Reason> {
    let mut reasons = Vec::new();
    // Counted over every flow: the flows kept whole include every one that did not pass.
    let tally = result.tally();
    let not_run = tally.skipped;
    if not_run > 0 {
        reasons.push(Reason::FlowsNotRun { count: not_run });
    }
    // Belt and braces: a critical flow counts as passed only if each of its steps really ran
    // and passed, whatever its recorded outcome says. (Such a flow is notable: always kept.)
    let lying = result.flows.iter().any(|f| {
        f.critical
            && f.outcome == FlowOutcome::Passed
            && f.steps
                .iter()
                .any(|s| s.phase == Phase::Step && s.outcome != StepOutcome::Passed)
    });
    if lying {
        reasons.push(Reason::Internal(
            "a flow reported passed with a step that did not pass".into(),
        ));
    }
    if tally.total == 0 {
        reasons.push(Reason::Internal("no flow was run".into()));
    }
    reasons
}

/// `1 flow`, `2 flows`.
pub fn counted(n: usize, noun: &str) -> String {
    format!("{n} {}", plural(n, noun))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// Exit code for "nothing was run": bad command line or invalid suite.
pub const EXIT_INVALID: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FlowResult, StepResult};

    fn judge_default(result: &RunResult) -> Verdict {
        judge(result, &GatePolicy::default())
    }

    fn step(outcome: StepOutcome) -> StepResult {
        StepResult {
            outcome,
            error: None,
            ..StepResult::skipped("s", Phase::Step, "GET", "")
        }
    }

    fn flow(
        name: &str,
        critical: bool,
        outcome: FlowOutcome,
        steps: Vec<StepResult>,
    ) -> FlowResult {
        FlowResult {
            name: name.into(),
            file: format!("{name}.toml"),
            tags: vec![],
            critical,
            outcome,
            duration_ms: 1,
            steps,
        }
    }

    fn run(flows: Vec<FlowResult>) -> RunResult {
        RunResult {
            started_at: String::new(),
            duration_ms: 1,
            setup: vec![],
            flows,
            streamed: None,
            teardown: vec![],
            stopped: None,
            internal_errors: vec![],
            wait: None,
            integrity: vec![],
            deployed_version: None,
        }
    }

    #[test]
    fn passes_only_when_every_critical_flow_passed() {
        let ok = run(vec![flow(
            "a",
            true,
            FlowOutcome::Passed,
            vec![step(StepOutcome::Passed)],
        )]);
        assert_eq!(judge_default(&ok), Verdict::Passed);
        let warned = run(vec![
            flow(
                "a",
                true,
                FlowOutcome::Passed,
                vec![step(StepOutcome::Passed)],
            ),
            flow(
                "b",
                false,
                FlowOutcome::Warned,
                vec![step(StepOutcome::Failed)],
            ),
        ]);
        assert_eq!(judge_default(&warned), Verdict::Passed);
        let failed = run(vec![
            flow(
                "a",
                true,
                FlowOutcome::Failed,
                vec![step(StepOutcome::Failed)],
            ),
            flow(
                "b",
                true,
                FlowOutcome::Passed,
                vec![step(StepOutcome::Passed)],
            ),
        ]);
        let verdict = judge_default(&failed);
        assert_eq!(verdict.reasons()[0].summary(), "1 of 2 flows failed");
        assert_eq!(
            verdict.reasons()[0].details(),
            ["flow 'a' failed at step 's'"]
        );
    }

    #[test]
    fn fails_closed_on_stops_internal_errors_and_inconsistent_records() {
        let mut stopped = run(vec![flow("a", true, FlowOutcome::Skipped, vec![])]);
        stopped.stopped = Some(Stop::Deadline { deadline_ms: 1000 });
        let reasons: Vec<String> = judge_default(&stopped)
            .reasons()
            .iter()
            .map(Reason::summary)
            .collect();
        assert_eq!(reasons, ["deadline 1s exceeded", "1 flow not run"]);
        stopped.stopped = Some(Stop::Interrupted);
        assert_eq!(judge_default(&stopped), Verdict::Aborted(vec![]));
        assert_eq!(judge_default(&stopped).exit_code(), ExitCode::from(130));
        let mut internal = run(vec![flow(
            "a",
            true,
            FlowOutcome::Passed,
            vec![step(StepOutcome::Passed)],
        )]);
        internal.internal_errors.push("flow 'a' panicked".into());
        assert!(matches!(judge_default(&internal), Verdict::Failed(_)));
        let lying = run(vec![flow(
            "a",
            true,
            FlowOutcome::Passed,
            vec![step(StepOutcome::Skipped)],
        )]);
        assert!(matches!(judge_default(&lying), Verdict::Failed(_)));
        assert!(matches!(judge_default(&run(vec![])), Verdict::Failed(_)));
    }
}
