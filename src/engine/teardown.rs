//! `[[teardown]]`: steps run once after every flow has finished, also after failures, the
//! deadline, fail-fast and an interrupt. They are run like cleanups: never raced against the
//! stop, but cut off when the cleanup grace time after a stop runs out. They never change the
//! verdict; a failed one is a warning.

use super::Shared;
use super::flow::{grace_over, run_timed};
use super::jar::Jar;
use super::result::{Phase, StepOutcome, StepResult};
use super::scope::FlowScope;
use crate::suite::Step;
use serde_json::Map;
use std::collections::HashMap;

/// The error of a teardown step cut off (or never started) when the grace time ran out.
pub const TEARDOWN_UNFINISHED: &str = "teardown did not finish: test data may be left behind";

/// Runs the teardown steps in order, with the `[[setup]]` captures; `setup` is what setup did,
/// to tell a capture that was tried (and may have created something) from one never tried.
pub async fn run_teardown(shared: &Shared, setup: &[StepResult]) -> Vec<StepResult> {
    let plan = shared.plan.clone();
    let jar = Jar::default();
    let no_vars = Map::new();
    let mut scope = FlowScope {
        plan: &plan,
        flow_vars: &no_vars,
        setup: &shared.setup_captures,
        captures: HashMap::new(),
        run_id: &shared.run_id,
    };
    let mut results = Vec::with_capacity(plan.teardown.len());
    for step in &plan.teardown {
        let result = match unrunnable(shared, step, &scope, setup) {
            Some(result) => result,
            None => run_one(shared, step, &mut scope, &jar).await,
        };
        results.push(result);
    }
    results
}

/// One teardown step, cut off when the grace time after a stop runs out.
async fn run_one(shared: &Shared, step: &Step, scope: &mut FlowScope<'_>, jar: &Jar) -> StepResult {
    let unfinished = || {
        let method = step.method.as_str();
        StepResult::unfinished(&step.name, Phase::Cleanup, method, TEARDOWN_UNFINISHED)
    };
    if shared
        .cleanup_time_left()
        .is_some_and(|left| left.is_zero())
    {
        return unfinished();
    }
    tokio::select! {
        result = run_timed(super::flow::StepRun { shared, flow: None, step, phase: Phase::Cleanup, jar }, scope) => result,
        () = grace_over(shared) => unfinished(),
    }
}

/// A teardown step that needs a capture that never happened cannot run. If the setup step
/// that makes it was tried, it may have created what the teardown deletes: failed, a warning.
/// Otherwise nothing was created: skipped.
fn unrunnable(
    shared: &Shared,
    step: &Step,
    scope: &FlowScope<'_>,
    setup: &[StepResult],
) -> Option<StepResult> {
    let (missing, never) = super::scope::missing_captures(step, scope);
    if missing.is_empty() {
        return None;
    }
    let tried = shared.plan.setup.iter().zip(setup).any(|(plan, result)| {
        result.outcome != StepOutcome::Skipped
            && plan
                .captures
                .iter()
                .any(|c| missing.contains(&c.name.as_str()))
    });
    let method = step.method.as_str();
    Some(if tried {
        let error = format!("{never}: the teardown could not run, test data may be left behind");
        StepResult::unfinished(&step.name, Phase::Cleanup, method, &error)
    } else {
        let because = format!("{never}: the step that makes it did not run");
        StepResult::skipped(&step.name, Phase::Cleanup, method, because)
    })
}
