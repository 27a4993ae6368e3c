//! Runs a [`Plan`]: setup, then the flows concurrently, each followed by its cleanups.
//!
//! One scheduler owns all concurrency: a semaphore bounds the flows in flight, a `JoinSet`
//! collects them, and one `CancellationToken` stops everything on the deadline or a signal.
//! The engine never prints: it emits [`Event`]s and returns a [`RunResult`].

pub mod event;
pub mod flow;
pub mod http;
pub mod jar;
mod preflight;
pub mod record;
mod rehearse;
pub mod result;
pub mod scope;
mod sink;
pub mod teardown;

pub use event::{Event, EventSink};
pub use rehearse::{EachFlow, rehearse, rehearse_rest};
pub use result::{
    ContractNote, FlowOutcome, FlowResult, FlowTally, Phase, RunResult, StepOutcome, StepResult,
    Stop,
};
pub use sink::{FlowSink, SinkHandle};

use crate::integrity;
use crate::redact::Redactor;
use crate::suite::Plan;
use flow::CLEANUP_GRACE;
use jar::Jar;
use record::FlowRecord;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why steps cut short by a signal did not complete (their `error`, or `skipped_because`).
pub const INTERRUPTED: &str = "interrupted";

/// How to run, beyond what the plan says.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub show_sensitive_headers: bool,
    pub events: EventSink,
    /// Cancelled from outside (signals): the run stops as for a deadline, verdict aborted.
    pub interrupt: CancellationToken,
    /// The first critical failure stops new flows; running ones stop at their next step.
    pub fail_fast: bool,
    /// `-vv`: keep, for every step, the request and the response as they may be shown. Off,
    /// nothing of them is kept beyond what a failure shows, so memory stays bounded.
    pub capture_exchanges: bool,
    /// Where each flow goes as soon as it and every flow before it are done. Without one,
    /// the result keeps every flow; with one, only the notable flows and the sink's own.
    pub sink: Option<SinkHandle>,
}

/// What every flow task shares.
pub struct Shared {
    pub plan: Arc<Plan>,
    pub http: http::Http,
    pub redactor: Arc<Redactor>,
    pub events: EventSink,
    /// Deadline or signal: in-flight requests are abandoned, cleanups get a grace time.
    pub cancel: CancellationToken,
    /// A child of `cancel`, also cancelled by fail-fast: no new flow or step starts, but
    /// in-flight requests finish and cleanups run normally.
    pub halt: CancellationToken,
    pub stop: Arc<OnceLock<(Stop, Instant)>>,
    /// The flow whose failure triggered `--fail-fast`.
    pub failed_fast: OnceLock<String>,
    pub fail_fast: bool,
    pub setup_captures: HashMap<String, Value>,
    pub run_id: String,
    pub show_sensitive_headers: bool,
    pub capture_exchanges: bool,
    /// The start of the run: steps and attempts are timed from it.
    pub started: Instant,
}

impl Shared {
    fn new(
        plan: Arc<Plan>,
        http: http::Http,
        redactor: Arc<Redactor>,
        options: &RunOptions,
    ) -> Self {
        let cancel = CancellationToken::new();
        Shared {
            plan,
            http,
            redactor,
            events: options.events.clone(),
            halt: cancel.child_token(),
            cancel,
            failed_fast: OnceLock::new(),
            fail_fast: options.fail_fast,
            stop: Arc::new(OnceLock::new()),
            setup_captures: HashMap::new(),
            run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            show_sensitive_headers: options.show_sensitive_headers,
            capture_exchanges: options.capture_exchanges,
            started: Instant::now(),
        }
    }

    /// Now, in ms from the start of the run.
    pub fn offset_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Why the run was stopped, for the steps it cut short.
    pub fn stop_reason(&self) -> String {
        match self.stop.get() {
            Some((Stop::Deadline { deadline_ms }, _)) => format!(
                "deadline of {} exceeded",
                humantime::format_duration(Duration::from_millis(*deadline_ms))
            ),
            Some((Stop::Interrupted, _)) => INTERRUPTED.into(),
            None => match self.failed_fast.get() {
                Some(flow) => format!("fail-fast: flow '{flow}' failed"),
                None => "cancelled".into(),
            },
        }
    }

    /// Whether new flows and steps must not start.
    pub fn halted(&self) -> bool {
        self.halt.is_cancelled()
    }

    /// Called when a critical flow failed.
    pub fn critical_flow_failed(&self, flow: &str) {
        if self.fail_fast && self.failed_fast.set(flow.to_string()).is_ok() {
            self.halt.cancel();
        }
    }

    /// Tells the live reporters that a flow is done (ran, never started, or was cut off), so
    /// that no progress line is left behind.
    pub fn flow_finished(&self, index: usize, result: &FlowResult) {
        self.events.emit(Event::FlowFinished {
            flow: index,
            name: result.name.clone(),
            outcome: result.outcome,
            duration: Duration::from_millis(result.duration_ms),
        });
    }

    /// `None` while the run goes on; after a stop, what is left of the cleanup grace time.
    pub fn cleanup_time_left(&self) -> Option<Duration> {
        self.stop
            .get()
            .map(|(_, at)| CLEANUP_GRACE.saturating_sub(at.elapsed()))
    }
}

/// Runs the plan to the end and returns everything that happened. It does not judge: that is
/// [`crate::verdict`]'s job.
///
/// Order: local integrity, the `[version]` check and each `served_at` hash,
/// `[[setup]]`, then the flows, each followed by its cleanups.
pub async fn run(plan: Arc<Plan>, redactor: Arc<Redactor>, options: RunOptions) -> RunResult {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let settings = &plan.settings;
    let http = match http::Http::new(&settings.tls) {
        Ok(http) => http,
        Err(e) => {
            let integrity = integrity::verify_plan(&plan);
            return not_run(&plan, started_at, integrity, vec![e], options.sink);
        }
    };
    let mut shared = Shared::new(plan.clone(), http, redactor, &options);
    shared.events.emit(Event::RunStarted {
        flows: plan.flows.len(),
    });
    let watcher = watch_stop(&shared, settings.deadline, &options.interrupt);
    let mut integrity = verify_local_in_time(&shared).await;

    let wait = match &settings.wait {
        Some(policy) => Some(preflight::wait_until_ready(&shared, policy).await),
        None => None,
    };
    let not_ready = wait.as_ref().is_some_and(|w| !w.ready);
    let deployed_version = match &settings.version {
        Some(check) if !not_ready => Some(preflight::check_version(&shared, check).await),
        _ => None,
    };
    if !not_ready {
        preflight::check_served(&shared, &mut integrity).await;
    }
    let version_failed = deployed_version.as_ref().is_some_and(|v| !v.passed);
    let setup = if not_ready || version_failed {
        Vec::new()
    } else {
        run_setup(&mut shared).await
    };
    let setup_failed = setup.iter().any(|s| s.outcome != StepOutcome::Passed);

    let shared = Arc::new(shared);
    let mut delivery = sink::Delivery::new(options.sink);
    let internal_errors = if not_ready || version_failed || setup_failed {
        Vec::new()
    } else {
        run_flows(&shared, &mut delivery).await
    };
    // The deadline is the gate's: one that passes while teardown runs cuts the teardown
    // short (a warning) but does not fail checks that all ran in time. A signal still aborts.
    let stopped_before_teardown = shared.stop.get().map(|(stop, _)| stop.clone());
    // Setup may have created something whenever it started, whatever happened after.
    let teardown = if not_ready || version_failed {
        Vec::new()
    } else {
        teardown::run_teardown(&shared, &setup).await
    };
    watcher.abort();
    let not_started = if not_ready {
        "staging not ready".to_string()
    } else if version_failed {
        "staging does not run the expected version".to_string()
    } else if setup_failed {
        "setup failed".to_string()
    } else {
        shared.stop_reason()
    };
    delivery.fill(&plan.flows, |flow| skipped_flow(&plan, flow, &not_started));
    let (flows, streamed) = delivery.finish();
    shared.events.emit(Event::RunFinished);
    RunResult {
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        setup,
        flows,
        streamed,
        teardown,
        stopped: match (stopped_before_teardown, shared.stop.get()) {
            (Some(stop), _) => Some(stop),
            (None, Some((Stop::Interrupted, _))) => Some(Stop::Interrupted),
            (None, _) => None,
        },
        internal_errors,
        wait,
        integrity,
        deployed_version,
    }
}

/// Hashes the pinned files on a blocking thread, so that the deadline and a signal stop the
/// run even while a huge file is read: what was not hashed then is a mismatch.
async fn verify_local_in_time(shared: &Shared) -> Vec<integrity::IntegrityResult> {
    let plan = shared.plan.clone();
    let hashing = tokio::task::spawn_blocking(move || integrity::verify_plan(&plan));
    let settings = &shared.plan.settings;
    let not_hashed = |why: String| {
        integrity::judge_local(&settings.integrity, shared.plan.lock.as_ref(), |_| {
            Err(format!("<unreadable: {why}>"))
        })
    };
    tokio::select! {
        done = hashing => done.unwrap_or_else(|e| not_hashed(format!("hashing failed: {e}"))),
        () = shared.cancel.cancelled() => not_hashed(shared.stop_reason()),
    }
}

/// Runs `[[setup]]` alone, before any flow; the deadline and an interrupt still stop it.
async fn run_setup(shared: &mut Shared) -> Vec<StepResult> {
    let plan = shared.plan.clone();
    let jar = Jar::default();
    let mut results = Vec::new();
    let mut captures = HashMap::new();
    let mut failed = false;
    for step in &plan.setup {
        if failed || shared.cancel.is_cancelled() {
            let because = if failed {
                "an earlier setup step failed".to_string()
            } else {
                shared.stop_reason()
            };
            results.push(StepResult::skipped(
                &step.name,
                Phase::Step,
                step.method.as_str(),
                because,
            ));
            continue;
        }
        let mut scope = scope::FlowScope {
            plan: &plan,
            flow_vars: &serde_json::Map::new(),
            setup: &HashMap::new(),
            captures: std::mem::take(&mut captures),
            run_id: &shared.run_id,
        };
        let run = flow::StepRun {
            shared,
            flow: None,
            step,
            phase: Phase::Step,
            jar: &jar,
        };
        let result = flow::run_timed(run, &mut scope).await;
        captures = scope.captures;
        failed = result.outcome != StepOutcome::Passed;
        results.push(result);
    }
    shared.setup_captures = captures;
    results
}

/// Runs the flows concurrently, at most `concurrency` at once, in path order as slots free up.
/// Each finished flow goes to `delivery`; the flows never started are left to the caller.
async fn run_flows(shared: &Arc<Shared>, delivery: &mut sink::Delivery) -> Vec<String> {
    let plan = &shared.plan;
    let mut internal_errors = Vec::new();
    let slots = Arc::new(Semaphore::new(plan.settings.concurrency));
    let mut tasks = JoinSet::new();
    let mut started: Started = HashMap::new();
    for index in 0..plan.flows.len() {
        // Finished flows are collected while waiting for a slot, so that at most
        // `concurrency` task cells (each as large as a whole flow future) are alive at once.
        let permit = loop {
            tokio::select! {
                biased;
                () = shared.halt.cancelled() => break None,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    collect(done, &mut started, shared, delivery, &mut internal_errors);
                }
                permit = slots.clone().acquire_owned() => {
                    break Some(permit.expect("the semaphore is never closed"));
                }
            }
        };
        let Some(permit) = permit else { break };
        let shared = shared.clone();
        let record = Arc::new(FlowRecord::start());
        let kept = record.clone();
        // Each flow holds its slot to the end, cleanups included.
        let handle = tasks.spawn(async move {
            let _slot = permit;
            let flow = &shared.plan.flows[index];
            // A stored flow is read and compiled again here, on the task: its steps live as long as it.
            match shared.plan.steps_of(flow) {
                Ok(steps) => (
                    flow::run_flow(&shared, index, flow, &steps, &record).await,
                    None,
                ),
                Err(why) => {
                    let result = uncompiled_flow(flow, &why);
                    shared.flow_finished(index, &result);
                    (result, Some(format!("flow '{}': {why}", flow.name)))
                }
            }
        });
        started.insert(handle.id(), (index, kept));
    }
    // After a stop, running flows get their cleanup grace time; past it, they are aborted.
    loop {
        let next = tokio::select! {
            done = tasks.join_next_with_id() => done,
            () = hard_stop(shared) => {
                tasks.abort_all();
                tasks.join_next_with_id().await
            }
        };
        let Some(done) = next else { break };
        collect(done, &mut started, shared, delivery, &mut internal_errors);
    }
    internal_errors
}

/// Each running flow task: its flow's index and what it recorded so far.
type Started = HashMap<tokio::task::Id, (usize, Arc<FlowRecord>)>;

fn collect(
    done: Result<(tokio::task::Id, (FlowResult, Option<String>)), tokio::task::JoinError>,
    started: &mut Started,
    shared: &Shared,
    delivery: &mut sink::Delivery,
    internal_errors: &mut Vec<String>,
) {
    let (id, outcome) = match done {
        Ok((id, result)) => (id, Ok(result)),
        Err(error) => (error.id(), Err(error)),
    };
    let Some((index, record)) = started.remove(&id) else {
        return;
    };
    let flow = &shared.plan.flows[index];
    let result = match outcome {
        Ok((result, internal_error)) => {
            internal_errors.extend(internal_error);
            result
        }
        Err(error) => {
            // A panic must fail the gate, never vanish; an abort after the grace time only
            // happens after a stop, which already decides the verdict. Either way the flow keeps
            // every step result it recorded.
            let why = if error.is_panic() {
                internal_errors.push(format!("flow '{}' panicked", flow.name));
                "flow task panicked".to_string()
            } else {
                shared.stop_reason()
            };
            let result = match shared.plan.steps_of(flow) {
                Ok(steps) => record.cut_off(flow, &steps, &why),
                Err(_) => uncompiled_flow(flow, &why),
            };
            shared.flow_finished(index, &result);
            result
        }
    };
    delivery.finished(index, result);
}

/// What is known of a run whose engine task failed (a panic): nothing ran to the end, so every
/// flow is skipped and the failure is an internal error, which fails the gate. The reports are
/// still written from it, so that none left by an earlier run stands at their paths. A sink
/// starts its account over: what it took before the panic is dropped.
pub fn failed_run(plan: &Plan, why: String, sink: Option<SinkHandle>) -> RunResult {
    if let Some(sink) = &sink {
        sink.lock().restart();
    }
    let mut delivery = sink::Delivery::new(sink);
    delivery.fill(&plan.flows, |f| {
        skipped_flow(plan, f, "the run did not complete")
    });
    let (flows, streamed) = delivery.finish();
    RunResult {
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        duration_ms: 0,
        setup: Vec::new(),
        flows,
        streamed,
        stopped: None,
        internal_errors: vec![why],
        wait: None,
        integrity: Vec::new(),
        deployed_version: None,
        teardown: Vec::new(),
    }
}

/// A flow that never started: each step skipped `because`. (Steps that can no longer be
/// compiled are left out: the flow is skipped either way.)
pub(crate) fn skipped_flow(plan: &Plan, flow: &crate::suite::Flow, because: &str) -> FlowResult {
    let steps = plan.steps_of(flow).map_or_else(
        |_| Vec::new(),
        |body| {
            body.steps
                .iter()
                .map(|s| StepResult::skipped(&s.name, Phase::Step, s.method.as_str(), because))
                .collect()
        },
    );
    not_started(flow, FlowOutcome::Skipped, steps)
}

/// A flow whose steps could not be compiled again from its file: failed, with nothing sent.
/// (The caller also records an internal error, so that the gate fails even for a non-critical
/// flow: this is preflight's fault, not staging's.)
fn uncompiled_flow(flow: &crate::suite::Flow, why: &str) -> FlowResult {
    let step = StepResult {
        attempts: 0,
        ..StepResult::unfinished(&flow.file, Phase::Step, "", why)
    };
    not_started(flow, FlowOutcome::of(true, flow.critical), vec![step])
}

/// The result of a flow that never started, with these step results.
fn not_started(
    flow: &crate::suite::Flow,
    outcome: FlowOutcome,
    steps: Vec<StepResult>,
) -> FlowResult {
    FlowResult {
        name: flow.name.clone(),
        file: flow.file.clone(),
        tags: flow.tags.to_vec(),
        critical: flow.critical,
        outcome,
        duration_ms: 0,
        steps,
    }
}

fn not_run(
    plan: &Plan,
    started_at: String,
    integrity: Vec<integrity::IntegrityResult>,
    internal_errors: Vec<String>,
    sink: Option<SinkHandle>,
) -> RunResult {
    let mut delivery = sink::Delivery::new(sink);
    delivery.fill(&plan.flows, |f| {
        skipped_flow(plan, f, "the run could not start")
    });
    let (flows, streamed) = delivery.finish();
    RunResult {
        started_at,
        duration_ms: 0,
        setup: Vec::new(),
        teardown: Vec::new(),
        flows,
        streamed,
        stopped: None,
        internal_errors,
        wait: None,
        integrity,
        deployed_version: None,
    }
}

/// Stops the run when the deadline passes or the interrupt token fires.
fn watch_stop(
    shared: &Shared,
    deadline: Duration,
    interrupt: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (stop, cancel, interrupt) = (
        shared.stop.clone(),
        shared.cancel.clone(),
        interrupt.clone(),
    );
    tokio::spawn(async move {
        let reason = tokio::select! {
            () = tokio::time::sleep(deadline) => Stop::Deadline { deadline_ms: deadline.as_millis() as u64 },
            () = interrupt.cancelled() => Stop::Interrupted,
        };
        let _ = stop.set((reason, Instant::now()));
        cancel.cancel();
    })
}

/// Resolves once a stop happened and the cleanup grace time (plus a margin) has passed.
async fn hard_stop(shared: &Shared) {
    shared.cancel.cancelled().await;
    let at = shared.stop.get().map_or_else(Instant::now, |(_, at)| *at);
    tokio::time::sleep_until((at + CLEANUP_GRACE + Duration::from_secs(1)).into()).await;
}
