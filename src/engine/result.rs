//! What a run produced, as data: the engine fills it, the verdict and reports read it.

use crate::check::Assertion;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowOutcome {
    Passed,
    Failed,
    /// A non-critical flow that failed: reported, but the gate may still pass.
    Warned,
    /// Never started (deadline, setup failure, interrupt).
    Skipped,
}

impl FlowOutcome {
    /// A flow that failed (or stopped half-way) fails the gate when critical, warns otherwise.
    pub fn of(failed: bool, critical: bool) -> FlowOutcome {
        match (failed, critical) {
            (false, _) => FlowOutcome::Passed,
            (true, true) => FlowOutcome::Failed,
            (true, false) => FlowOutcome::Warned,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Step,
    Cleanup,
}

/// One step as it ran (or did not).
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub name: String,
    pub phase: Phase,
    pub method: String,
    /// The final URL requested (after redirects); `null` when it could not be built.
    pub url: Option<String>,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub attempts: u32,
    /// Passed, but only after a failed attempt.
    pub flaky: bool,
    /// The failed attempts before the last one, when the step was retried.
    pub earlier_attempts: Vec<Attempt>,
    pub outcome: StepOutcome,
    /// Why the step could not complete (connect, TLS, timeout, body too large, template...).
    /// Failed assertions are not errors: they are in `assertions`.
    pub error: Option<String>,
    pub assertions: Vec<Assertion>,
    /// Why a step was skipped.
    pub skipped_because: Option<String>,
    /// For failed steps: the start of the response body.
    pub body_excerpt: Option<String>,
    /// For failed steps: the request headers sent (sensitive ones masked).
    pub request_headers: BTreeMap<String, String>,
    /// Sent under `poll`: its earlier attempts are polls, expected, not flakiness.
    pub polled: bool,
    /// With `-vv` only: the request and the response as they may be shown (masked, cut).
    pub exchange: Option<Box<ExchangeDetail>>,
    /// When the step began, in ms from the start of the run (`None`: it never began).
    pub started_ms: Option<u64>,
    /// When its last attempt (the one `status` is of) began, after retries or polls.
    pub last_attempt_started_ms: Option<u64>,
    /// What the `[openapi]` contract found that warns rather than fails, already masked.
    pub contract_notes: Vec<ContractNote>,
}

/// An `[openapi]` finding that is a warning: an operation the document does not have, or a
/// violation under `validate = "warn"`. Its text is already masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractNote {
    /// `GET /pets/1`: matches no operation of the document.
    Undocumented(String),
    /// `openapi schema: /0/name: "name" is a required property`.
    Violation(String),
}

/// What `-vv` shows of one exchange, every value already in its shown form: secrets as `***`,
/// sensitive header values as `***` unless `--show-sensitive-headers`, bodies masked by value
/// before they were cut to an excerpt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeDetail {
    /// The request headers sent, in the order sent.
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub response_headers: Vec<(String, String)>,
    /// JSON pretty-printed.
    pub response_body: Option<String>,
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
            earlier_attempts: Vec::new(),
            outcome: StepOutcome::Skipped,
            error: None,
            assertions: Vec::new(),
            skipped_because: Some(because.into()),
            body_excerpt: None,
            request_headers: BTreeMap::new(),
            polled: false,
            exchange: None,
            started_ms: None,
            last_attempt_started_ms: None,
            contract_notes: Vec::new(),
        }
    }

    /// A step that did not complete because it was cut off: failed with `error`, no response.
    pub fn unfinished(name: &str, phase: Phase, method: &str, error: &str) -> Self {
        StepResult {
            attempts: 1,
            outcome: StepOutcome::Failed,
            error: Some(error.to_string()),
            skipped_because: None,
            ..StepResult::skipped(name, phase, method, "")
        }
    }

    pub fn failed_assertions(&self) -> impl Iterator<Item = &Assertion> {
        self.assertions.iter().filter(|a| !a.passed)
    }
}

/// One failed try of a retried step.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
    /// When it began, in ms from the start of the run.
    pub started_ms: Option<u64>,
}

impl Attempt {
    /// One try and how long it took: an error (a timeout, a reset) is timed like an answer,
    /// since it was waited for all the same.
    pub fn of(
        result: &Result<super::http::Exchange, super::http::RequestError>,
        elapsed: std::time::Duration,
        started_ms: u64,
    ) -> Attempt {
        let latency_ms = Some(elapsed.as_millis() as u64);
        let started_ms = Some(started_ms);
        match result {
            Ok(exchange) => Attempt {
                status: Some(exchange.status.as_u16()),
                error: None,
                latency_ms,
                started_ms,
            },
            Err(e) => Attempt {
                status: None,
                error: Some(e.to_string()),
                latency_ms,
                started_ms,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
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
    /// Whether the flow did anything but simply pass: failed, warned, skipped, a flaky step,
    /// a step or cleanup that did not pass. Such a flow is always kept whole after it is
    /// reported (the verdict and every report name it); a flow that simply passed may be
    /// reduced to the counts of [`FlowTally`].
    pub fn is_notable(&self) -> bool {
        self.outcome != FlowOutcome::Passed
            || self
                .steps
                .iter()
                .any(|s| s.flaky || s.outcome != StepOutcome::Passed)
    }

    /// The first failed step of the flow (not a cleanup).
    pub fn failed_step(&self) -> Option<&StepResult> {
        self.steps
            .iter()
            .find(|s| s.phase == Phase::Step && s.outcome == StepOutcome::Failed)
    }
}

/// How `[wait]` went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitResult {
    pub ready: bool,
    pub polls: u32,
    pub waited_ms: u64,
    /// The last status, error or version seen while not ready.
    pub last: Option<String>,
}

impl WaitResult {
    pub fn new(ready: bool, polls: u32, started: std::time::Instant, last: Option<String>) -> Self {
        WaitResult {
            ready,
            polls,
            waited_ms: started.elapsed().as_millis() as u64,
            last,
        }
    }
}

/// Why a run was cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Deadline { deadline_ms: u64 },
    Interrupted,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub started_at: String,
    pub duration_ms: u64,
    pub setup: Vec<StepResult>,
    /// In path order, every selected flow, started or not; when the flows were streamed to a
    /// [`super::FlowSink`] (see `streamed`), only the flows kept whole.
    pub flows: Vec<FlowResult>,
    /// `Some` when the flows went to a sink as they finished: what is known of every flow,
    /// kept or not. `None`: `flows` holds every flow.
    pub streamed: Option<FlowTally>,
    pub stopped: Option<Stop>,
    /// Failures of the engine itself (a panicked task); any one fails the gate.
    pub internal_errors: Vec<String>,
    pub wait: Option<WaitResult>,
    pub integrity: Vec<crate::integrity::IntegrityResult>,
    pub deployed_version: Option<crate::integrity::VersionResult>,
    /// `[[teardown]]`, after every flow: never part of the verdict.
    pub teardown: Vec<StepResult>,
}

impl RunResult {
    /// What is known of every flow: the streamed tally, or one counted from `flows`.
    pub fn tally(&self) -> std::borrow::Cow<'_, FlowTally> {
        match &self.streamed {
            Some(tally) => std::borrow::Cow::Borrowed(tally),
            None => std::borrow::Cow::Owned(FlowTally::of(&self.flows)),
        }
    }

    /// Every latency of the run: setup steps, flow steps and cleanups.
    pub fn latencies(&self) -> LatencyCounts {
        let mut counts = self.tally().latencies.clone();
        self.setup
            .iter()
            .filter_map(|s| s.latency_ms)
            .for_each(|ms| counts.add(ms));
        counts
    }
}

/// What is counted of every flow as it is reported, whether it is kept whole or not: a few
/// numbers, the latency counts and the `[openapi]` notes (which are warnings).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlowTally {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub warned: usize,
    pub skipped: usize,
    /// Flows with at least one flaky step.
    pub flaky: usize,
    /// Every step's and cleanup's latency.
    pub latencies: LatencyCounts,
    /// The latest end of any step (start plus latency), in ms from the start of the run.
    pub last_step_end_ms: u64,
    /// `[openapi]` notes in flow order: (flow, step, note); an undocumented operation once.
    pub contract_notes: Vec<(String, String, ContractNote)>,
    /// The undocumented operations among them.
    undocumented: std::collections::HashSet<String>,
}

impl FlowTally {
    /// The tally of flows all held in memory.
    pub fn of(flows: &[FlowResult]) -> FlowTally {
        let mut tally = FlowTally::default();
        flows.iter().for_each(|f| tally.add(f));
        tally
    }

    /// Adds the tally of other flows (counted apart, in parallel: only the `[openapi]` notes
    /// depend on the order, and they follow this tally's).
    pub fn merge(&mut self, other: FlowTally) {
        self.total += other.total;
        self.passed += other.passed;
        self.failed += other.failed;
        self.warned += other.warned;
        self.skipped += other.skipped;
        self.flaky += other.flaky;
        self.latencies.merge(other.latencies);
        self.last_step_end_ms = self.last_step_end_ms.max(other.last_step_end_ms);
        for (flow, step, note) in other.contract_notes {
            self.note(flow, step, note);
        }
    }

    /// Keeps an `[openapi]` note; an undocumented operation only the first time.
    fn note(&mut self, flow: String, step: String, note: ContractNote) {
        if let ContractNote::Undocumented(operation) = &note
            && !self.undocumented.insert(operation.clone())
        {
            return;
        }
        self.contract_notes.push((flow, step, note));
    }

    /// Counts one more flow (the flows come in path order).
    pub fn add(&mut self, flow: &FlowResult) {
        self.total += 1;
        match flow.outcome {
            FlowOutcome::Passed => self.passed += 1,
            FlowOutcome::Failed => self.failed += 1,
            FlowOutcome::Warned => self.warned += 1,
            FlowOutcome::Skipped => self.skipped += 1,
        }
        if flow.steps.iter().any(|s| s.flaky) {
            self.flaky += 1;
        }
        for step in &flow.steps {
            if let Some(ms) = step.latency_ms {
                self.latencies.add(ms);
            }
            let start = step.last_attempt_started_ms.or(step.started_ms);
            if let Some(start) = start {
                let end = start.saturating_add(step.latency_ms.unwrap_or(0));
                self.last_step_end_ms = self.last_step_end_ms.max(end);
            }
            for note in &step.contract_notes {
                self.note(flow.name.clone(), step.name.clone(), note.clone());
            }
        }
    }
}

/// Latencies in whole milliseconds, counted by value: exact percentiles (the gate's p95 is
/// judged as before) in memory bounded by the number of distinct values, which the request
/// timeout bounds, whatever the number of steps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyCounts {
    counts: std::collections::BTreeMap<u64, u64>,
    total: u64,
}

impl LatencyCounts {
    pub fn add(&mut self, ms: u64) {
        *self.counts.entry(ms).or_default() += 1;
        self.total += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds the counts of other latencies.
    pub fn merge(&mut self, other: LatencyCounts) {
        for (ms, count) in other.counts {
            *self.counts.entry(ms).or_default() += count;
        }
        self.total += other.total;
    }

    pub fn max(&self) -> Option<u64> {
        self.counts.keys().next_back().copied()
    }

    /// Nearest-rank percentile, as [`percentile`] over every value.
    pub fn percentile(&self, p: usize) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p as u64) * self.total).div_ceil(100).max(1);
        let mut seen = 0;
        for (value, count) in &self.counts {
            seen += count;
            if seen >= rank {
                return Some(*value);
            }
        }
        self.max()
    }

    /// Each distinct value with how often it occurred, smallest first.
    pub fn values(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts.iter().map(|(v, c)| (*v, *c))
    }
}

/// Nearest-rank percentile of values held whole: what [`LatencyCounts::percentile`] must
/// agree with.
#[cfg(test)]
pub fn percentile(values: &[u64], p: usize) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn counted_latencies_give_the_same_percentiles() {
        let values: Vec<u64> = (0..500).map(|i| (i * 7919) % 613).collect();
        let mut counts = super::LatencyCounts::default();
        values.iter().for_each(|v| counts.add(*v));
        for p in [1, 50, 95, 99, 100] {
            assert_eq!(counts.percentile(p), percentile(&values, p), "p{p}");
        }
        assert_eq!(counts.max(), values.iter().max().copied());
        assert_eq!(super::LatencyCounts::default().percentile(50), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
