//! What a flow has done so far, kept outside its task: a flow task aborted after the stop
//! grace time (or one that panicked) loses its future, and with it everything it held, so each
//! step result is recorded here as soon as it exists and the scheduler reads what was recorded.

use super::flow::CLEANUP_UNFINISHED;
use super::result::{FlowOutcome, FlowResult, Phase, StepOutcome, StepResult};
use crate::suite::{Flow, FlowSteps, Step};
use std::sync::Mutex;
use std::time::Instant;

/// The step results of one flow, in the order they happened.
#[derive(Debug)]
pub struct FlowRecord {
    started: Instant,
    inner: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    steps: Vec<StepResult>,
    /// The step in flight: what was cut off if the task ends here.
    running: Option<(String, Phase, String)>,
}

impl FlowRecord {
    /// An empty record whose clock starts now.
    pub fn start() -> FlowRecord {
        FlowRecord {
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // A panic while holding the lock cannot leave a half-pushed result: keep what is there.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `step` is about to run.
    pub fn running(&self, step: &Step, phase: Phase) {
        self.lock().running = Some((step.name.clone(), phase, step.method.to_string()));
    }

    /// A step result, final.
    pub fn push(&self, result: StepResult) {
        let mut recorded = self.lock();
        recorded.running = None;
        recorded.steps.push(result);
    }

    /// Whether no step was tried yet (each recorded one was skipped).
    pub fn nothing_tried(&self) -> bool {
        let recorded = self.lock();
        recorded
            .steps
            .iter()
            .all(|s| s.outcome == StepOutcome::Skipped)
    }

    /// Whether a step or cleanup of `flow` that captures `name` was tried, whatever came back.
    pub fn tried_to_capture(&self, body: &FlowSteps, name: &str) -> bool {
        let recorded = self.lock();
        let of = |phase: Phase| recorded.steps.iter().filter(move |s| s.phase == phase);
        let steps = of(Phase::Step).zip(&body.steps);
        let cleanups = of(Phase::Cleanup).zip(&body.cleanup);
        steps.chain(cleanups).any(|(result, step)| {
            result.outcome != StepOutcome::Skipped && step.captures.iter().any(|c| c.name == name)
        })
    }

    /// The flow's result from what was recorded.
    pub fn finish(&self, flow: &Flow, outcome: FlowOutcome) -> FlowResult {
        FlowResult {
            name: flow.name.clone(),
            file: flow.file.clone(),
            tags: flow.tags.to_vec(),
            critical: flow.critical,
            outcome,
            duration_ms: self.started.elapsed().as_millis() as u64,
            steps: std::mem::take(&mut self.lock().steps),
        }
    }

    /// The result of a flow whose task ended without returning one (aborted after the grace
    /// time, or panicked): every recorded step kept, the one in flight failed with `why` (a
    /// cleanup: not finished, test data may be left behind), the rest skipped.
    pub fn cut_off(&self, flow: &Flow, body: &FlowSteps, why: &str) -> FlowResult {
        let mut recorded = self.lock();
        if let Some((name, phase, method)) = recorded.running.take() {
            let error = match phase {
                Phase::Step => why,
                Phase::Cleanup => CLEANUP_UNFINISHED,
            };
            recorded
                .steps
                .push(StepResult::unfinished(&name, phase, &method, error));
        }
        let done = |phase| recorded.steps.iter().filter(|s| s.phase == phase).count();
        let (steps_done, cleanups_done) = (done(Phase::Step), done(Phase::Cleanup));
        let rest: Vec<StepResult> = body
            .steps
            .iter()
            .skip(steps_done)
            .map(|s| (s, Phase::Step))
            .chain(
                body.cleanup
                    .iter()
                    .skip(cleanups_done)
                    .map(|s| (s, Phase::Cleanup)),
            )
            .map(|(s, phase)| match phase {
                Phase::Step => StepResult::skipped(&s.name, phase, s.method.as_str(), why),
                // Never run, so whatever the steps created is still there.
                Phase::Cleanup => {
                    StepResult::unfinished(&s.name, phase, s.method.as_str(), CLEANUP_UNFINISHED)
                }
            })
            .collect();
        recorded.steps.extend(rest);
        let failed = recorded
            .steps
            .iter()
            .any(|s| s.phase == Phase::Step && s.outcome != StepOutcome::Passed);
        drop(recorded);
        self.finish(flow, FlowOutcome::of(failed, flow.critical))
    }
}
