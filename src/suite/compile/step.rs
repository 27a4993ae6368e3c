//! Flows and their steps, the order captures may be used in, and unique flow names.

use super::names::Known;
use super::request::{self, Uses};
use super::settings::retry_policy;
use super::source::Source;
use super::{Compiler, Lost};
use crate::problem::Problem;
use crate::suite::plan::{Flow, FlowBody, FlowSteps, PollPolicy, Step};
use crate::suite::raw::{RawFlow, RawPoll, RawRow, RawStep};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

impl Compiler<'_> {
    /// Compiles a list of steps in order: each may use the captures of the ones before it.
    pub(super) fn steps(
        &mut self,
        src: &mut Source,
        raw: &[RawStep],
        known: &Known,
        cleanup: bool,
    ) -> Vec<Step> {
        let mut known = known.clone();
        // Exact: a plan holds every flow's steps for the whole run (a `Vec` grown by `push`
        // holds room for 4).
        let mut out = Vec::with_capacity(raw.len());
        for (i, step) in raw.iter().enumerate() {
            known.later = raw[i..]
                .iter()
                .flat_map(|s| s.capture.iter().flat_map(|c| c.keys().cloned()))
                .collect();
            let compiled = self.step(src, step, &known);
            if !cleanup {
                known
                    .captures
                    .extend(compiled.captures.iter().map(|c| c.name.clone()));
            }
            out.push(compiled);
        }
        out
    }

    pub(super) fn step(&mut self, src: &mut Source, raw: &RawStep, known: &Known) -> Step {
        let retry = match &raw.retry {
            Some(r) => retry_policy(src, r, &self.default_retry, true),
            None => self.default_retry.clone(),
        };
        let method = request::method(src, raw);
        let mut uses = Uses {
            known,
            captures: BTreeSet::new(),
        };
        let target = self.target(src, raw, &mut uses);
        let query = self.text_pairs(src, raw.query.as_ref(), &mut uses);
        let form = self.text_pairs(src, raw.form.as_ref(), &mut uses);
        let headers = self.request_headers(src, raw.headers.as_ref(), &mut uses);
        let body = self.body(src, raw, form, &mut uses);
        let timeout = raw.timeout.as_ref().and_then(|t| src.duration(t));
        let expectations = self.expect(src, raw.expect.as_ref(), known).into();
        let captures = self.captures(src, raw.capture.as_ref()).into();
        let poll = raw.poll.as_ref().and_then(|p| poll_policy(src, p, &method));
        Step {
            name: step_name(raw, &method),
            method,
            target,
            query: query.into(),
            headers: headers.into(),
            body,
            timeout,
            expectations,
            captures,
            retry,
            uses_captures: uses.captures.into_iter().collect(),
            poll,
        }
    }

    /// Compiles one flow file (its entries with problems already dropped, see `lost`): one
    /// flow, or one per row of `each`.
    pub fn flow(&mut self, src: &mut Source, file: &str, raw: RawFlow, lost: Lost) -> Vec<Flow> {
        let vars = self.vars(src, raw.vars.as_ref());
        // Values from --vars-file win over the flow's [vars]; a row's win over both.
        let vars = self.over_file_vars(vars);
        let (name, name_at) = match &raw.name {
            Some(name) => (name.get_ref().clone(), Some(name.span())),
            None => {
                let stem = Path::new(file).file_stem();
                let stem = stem.map_or(file.to_string(), |s| s.to_string_lossy().into_owned());
                (stem, None)
            }
        };
        if !lost.name {
            self.unique_name(src, &name, name_at, file);
        }
        let Some(each) = &raw.each else {
            let run = Run {
                name,
                row_of: None,
                vars,
                row: None,
            };
            return vec![self.flow_run(src, file, &raw, lost, run)];
        };
        if each.get_ref().is_empty() {
            src.error(each.span(), "`each` needs at least one row");
        }
        let mut flows: Vec<Flow> = Vec::new();
        for row in each.get_ref() {
            let row_vars = self.vars(src, Some(row.get_ref()));
            let row_name = format!("{name} [{}]", row_label(&row_vars));
            if flows.iter().any(|f| f.name == row_name) {
                let message = format!("two rows of `each` are the same: `{row_name}`");
                src.error(row.span(), message);
                continue;
            }
            if !lost.name {
                self.unique_name(src, &row_name, Some(row.span()), file);
            }
            let mut merged = vars.clone();
            merged.extend(row_vars);
            let run = Run {
                name: row_name,
                row_of: Some(name.clone()),
                vars: merged,
                row: Some(row.get_ref()),
            };
            flows.push(self.flow_run(src, file, &raw, lost, run));
        }
        flows
    }

    /// One run of a flow file with these variables (the flow's `[vars]`, with a row's values
    /// over them), and its name.
    fn flow_run(
        &mut self,
        src: &mut Source,
        file: &str,
        raw: &RawFlow,
        lost: Lost,
        run: Run,
    ) -> Flow {
        let Run {
            name,
            row_of,
            vars,
            row,
        } = run;
        let mut known = self.suite_known.clone();
        known.open |= lost.names;
        // Flow [vars] win over suite [vars]; --var wins over both.
        for (name, value) in &vars {
            if !self.cli_vars.contains_key(name) {
                known.vars.insert(name.clone(), value.clone());
            }
        }
        self.suite_headers_in_flow(src, raw.vars.as_ref(), &known);
        self.suite_headers_in_flow(src, row, &known);
        let steps = self.steps(src, raw.step.as_deref().unwrap_or_default(), &known, false);
        let no_steps = Problem::file(&src.path, "a flow needs at least one [[step]]");
        if steps.is_empty() && !lost.steps && !src.problems.contains(&no_steps) {
            src.problems.push(no_steps);
        }
        // Cleanups may use any capture of the flow; one whose captures never happened is skipped.
        known.captures.extend(
            steps
                .iter()
                .flat_map(|s| s.captures.iter().map(|c| c.name.clone())),
        );
        let cleanup = self.steps(
            src,
            raw.cleanup.as_deref().unwrap_or_default(),
            &known,
            true,
        );
        Flow {
            name,
            file: file.to_string(),
            tags: raw.tags.clone().unwrap_or_default().into(),
            critical: raw.critical.unwrap_or(true),
            own_vars: (!vars.is_empty()).then(|| Box::new(vars)),
            row_of,
            body: FlowBody::Compiled(FlowSteps {
                steps: steps.into(),
                cleanup: cleanup.into(),
            }),
        }
    }

    /// A flow name is used once: `--flow` selects by it and reports name flows by it.
    fn unique_name(&mut self, src: &mut Source, name: &str, at: Option<Range<usize>>, file: &str) {
        let Some(first) = self.flow_names.take(name, file) else {
            return;
        };
        let message = format!("two flows are named `{name}`: {first} and {file}");
        let hint = "give each flow its own `name`".to_string();
        match at {
            Some(at) => src.error_hint(at, message, Some(hint)),
            // The name is the file's stem: the problem is the file's.
            None => src
                .problems
                .push(Problem::file(&src.path, message).with_hint(hint)),
        }
    }
}

/// One run of a flow file: the flow itself, or one row of its `each`.
struct Run<'a> {
    name: String,
    /// For a row: the flow's own name.
    row_of: Option<String>,
    /// The flow's `[vars]`, with the row's values over them.
    vars: Map<String, Value>,
    row: Option<&'a RawRow>,
}

/// `key=value, ...` of a row, strings without quotes: `currency=USD`.
fn row_label(row: &Map<String, Value>) -> String {
    let pairs: Vec<String> = row
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect();
    pairs.join(", ")
}

/// `poll = { attempts, interval }`. A POST or PATCH may take effect at every send (a second
/// order, a second payment), so it is polled only when the step says `non_idempotent = true`.
fn poll_policy(
    src: &mut Source,
    raw: &Spanned<RawPoll>,
    method: &reqwest::Method,
) -> Option<PollPolicy> {
    let p = raw.get_ref();
    let attempts = match u32::try_from(*p.attempts.get_ref()) {
        Ok(n @ 1..=1000) => Some(n),
        _ => {
            let message = "`poll.attempts` is the total number of sends, 1 to 1000";
            src.error(p.attempts.span(), message);
            None
        }
    };
    let interval = src.duration(&p.interval);
    let unsafe_method = !crate::suite::plan::is_idempotent(method);
    if unsafe_method && p.non_idempotent != Some(true) {
        src.error_hint(
            raw.span(),
            format!("a {method} is not polled by default: each send may take effect again"),
            Some("add `non_idempotent = true` to `poll` if sending it again is safe".into()),
        );
        return None;
    }
    Some(PollPolicy {
        attempts: attempts?,
        interval: interval?,
    })
}

/// The step's `name`, by default "METHOD path".
fn step_name(raw: &RawStep, method: &reqwest::Method) -> String {
    match (&raw.name, raw.path.as_ref().or(raw.url.as_ref())) {
        (Some(name), _) => name.get_ref().clone(),
        (None, Some(target)) => format!("{method} {}", target.get_ref()),
        (None, None) => format!("{method} /"),
    }
}
