//! A rehearsal: every request whose values are known before the run (from `[vars]`, `--var`,
//! the environment and the built-ins) is built exactly as the run will build it, without
//! sending anything. `check` and `run` both rehearse, so that what `check` accepts `run` can
//! build: a variable holding `..` in a path, an environment variable that is not a URL, a
//! header value with a line break, a pattern that is not a regex. Requests that use captures
//! are only known during the run.

use super::flow::{Looks, build_request};
use super::scope::FlowScope;
use crate::check::Op;
use crate::problem::Problem;
use crate::redact::{Mask, Redactor};
use crate::suite::{Body, Flow, FlowBody, FlowSteps, Plan, Step, Target};
use crate::template::{Scope, Template};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// Every request and pattern of the plan that cannot be built, as a problem of its file.
pub fn rehearse(plan: &Plan) -> Vec<Problem> {
    rehearse_flows(plan, false)
}

/// [`rehearse`], but for the stored flows rehearsed while the plan loaded (see
/// `suite::load_rehearsed`): right after a load, with the plan unchanged since.
pub fn rehearse_rest(plan: &Plan) -> Vec<Problem> {
    rehearse_flows(plan, true)
}

fn rehearse_flows(plan: &Plan, skip_rehearsed: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    // One redactor for the whole rehearsal: building one compiles a pattern per secret.
    let redactor = plan.redactor(None);
    let looks = Looks {
        redactor: &redactor,
        show_sensitive_headers: false,
    };
    let rehearsal = Rehearsal {
        plan,
        looks: &looks,
    };
    let suite_file = plan.settings.dir.join(crate::suite::SUITE_FILE);
    let no_vars = Map::new();
    let suite_scope = static_scope(plan, &no_vars);
    for step in &plan.setup {
        let what = format!("setup step '{}'", step.name);
        rehearsal.step(step, &suite_scope, &suite_file, &what, &mut problems);
    }
    for step in &plan.teardown {
        let what = format!("teardown step '{}'", step.name);
        rehearsal.step(step, &suite_scope, &suite_file, &what, &mut problems);
    }
    let settings = &plan.settings;
    let suite_paths = settings
        .wait
        .as_ref()
        .map(|w| ("[wait] path", &w.path))
        .into_iter()
        .chain(
            settings
                .version
                .as_ref()
                .map(|v| ("[version] path", &v.path)),
        )
        .chain(
            settings
                .integrity
                .iter()
                .filter_map(|e| e.served_at.as_ref().map(|p| ("served_at", p))),
        );
    for (what, path) in suite_paths {
        let step = Step::get(path.clone());
        rehearsal.step(&step, &suite_scope, &suite_file, what, &mut problems);
    }
    problems.extend(in_parallel(&plan.flows, |flows| {
        let mut problems = Vec::new();
        for flow in flows {
            let rehearsed = matches!(
                flow.body,
                FlowBody::Stored {
                    rehearsed: true,
                    ..
                }
            );
            if skip_rehearsed && rehearsed {
                continue;
            }
            match plan.steps_of(flow) {
                Ok(body) => rehearsal.flow(flow, &body, &mut problems),
                Err(why) => problems.push(Problem::file(&settings.dir.join(&flow.file), why)),
            }
        }
        problems
    }));
    problems
}

/// Rehearses flows one at a time, for [`crate::suite::load_rehearsed`]: each flow about to be
/// stored (see `FlowBody::Stored`), against the plan the suite is loaded into so far.
#[derive(Default)]
pub struct EachFlow {
    /// Built at the first flow: building one compiles a pattern per secret.
    redactor: std::sync::OnceLock<Redactor>,
}

impl EachFlow {
    /// The problems of `flow`'s requests (its steps `body`) under `plan`.
    pub fn problems(&self, plan: &Plan, flow: &Flow, body: &FlowSteps) -> Vec<Problem> {
        let redactor = self.redactor.get_or_init(|| plan.redactor(None));
        let looks = Looks {
            redactor,
            show_sensitive_headers: false,
        };
        let rehearsal = Rehearsal {
            plan,
            looks: &looks,
        };
        let mut problems = Vec::new();
        rehearsal.flow(flow, body, &mut problems);
        problems
    }
}

/// Fewer flows than this per thread are rehearsed on the calling thread: starting a thread
/// costs more than rehearsing them.
const FLOWS_PER_THREAD: usize = 32;

/// `rehearse` in contiguous parts of `flows`, one per core (at most 8), the problems in flow
/// order. Each flow is rehearsed on its own; this was a tenth of a large `check`, on one core.
fn in_parallel<F>(flows: &[crate::suite::Flow], rehearse: F) -> Vec<Problem>
where
    F: Fn(&[crate::suite::Flow]) -> Vec<Problem> + Sync,
{
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(8).min(flows.len() / FLOWS_PER_THREAD);
    if threads < 2 {
        return rehearse(flows);
    }
    let rehearse = &rehearse;
    let mut parts = flows.chunks(flows.len().div_ceil(threads));
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let others: Vec<_> = parts
            .map(|part| {
                let thread = std::thread::Builder::new().name("preflight-rehearse".into());
                // A thread that cannot be started leaves its part to this one.
                (
                    part,
                    thread.spawn_scoped(scope, move || rehearse(part)).ok(),
                )
            })
            .collect();
        let mut problems = rehearse(first);
        for (part, thread) in others {
            problems.extend(match thread {
                Some(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => rehearse(part),
            });
        }
        problems
    })
}

/// The scope of the run before any capture: vars, `--var`, the environment, built-ins.
fn static_scope<'a>(plan: &'a Plan, flow_vars: &'a Map<String, Value>) -> FlowScope<'a> {
    static NO_CAPTURES: std::sync::OnceLock<HashMap<String, Value>> = std::sync::OnceLock::new();
    FlowScope {
        plan,
        flow_vars,
        setup: NO_CAPTURES.get_or_init(HashMap::new),
        captures: HashMap::new(),
        run_id: "rehearsal",
    }
}

/// The plan under rehearsal, and how its requests are rendered.
struct Rehearsal<'a> {
    plan: &'a Plan,
    looks: &'a Looks<'a>,
}

impl Rehearsal<'_> {
    fn flow(&self, flow: &Flow, body: &FlowSteps, problems: &mut Vec<Problem>) {
        let scope = static_scope(self.plan, flow.vars());
        let file = self.plan.settings.dir.join(&flow.file);
        for step in body.all() {
            let what = format!("flow '{}', step '{}'", flow.name, step.name);
            self.step(step, &scope, &file, &what, problems);
        }
    }

    fn step(
        &self,
        step: &Step,
        scope: &FlowScope,
        file: &Path,
        what: &str,
        problems: &mut Vec<Problem>,
    ) {
        let plan = self.plan;
        if known(request_templates(plan, step), scope)
            && let Err(e) = build_request(&plan.settings, self.looks, step, scope)
        {
            let e = self.looks.redactor.mask_text(&e);
            problems.push(Problem::file(
                file,
                format!("{what}: the request cannot be built: {e}"),
            ));
        }
        for expectation in &step.expectations {
            let Op::Matches(pattern) = &expectation.op else {
                continue;
            };
            if !known([pattern], scope) {
                continue;
            }
            let Ok(rendered) = pattern.render_shown(scope) else {
                continue;
            };
            if regex::Regex::new(&rendered.value).is_err() {
                let message = format!(
                    "{what}: `{}` matches `{}`, which is not a regex",
                    expectation.subject.label(),
                    rendered.shown
                );
                problems.push(Problem::file(file, message));
            }
        }
    }
}

/// Whether every name of the templates has a value before the run (no capture).
fn known<'t>(templates: impl IntoIterator<Item = &'t Template>, scope: &dyn Scope) -> bool {
    templates
        .into_iter()
        .all(|t| t.names().all(|(name, _)| scope.lookup(name).is_some()))
}

/// Every template a step's request is built from.
fn request_templates<'a>(plan: &'a Plan, step: &'a Step) -> Vec<&'a Template> {
    let mut out = Vec::new();
    match &step.target {
        Target::Path(t) | Target::Url(t) => out.push(t),
    }
    out.extend(step.query.iter().map(|(_, t)| t));
    out.extend(
        plan.settings
            .headers
            .iter()
            .chain(&step.headers)
            .map(|(_, t)| t),
    );
    match &step.body {
        Body::Json(value) => out.extend(value.templates()),
        Body::Text(t) => out.push(t),
        Body::Form(pairs) => out.extend(pairs.iter().map(|(_, t)| t)),
        Body::None | Body::File { .. } => {}
    }
    out
}
