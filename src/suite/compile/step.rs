//! Flows and their steps, the order captures may be used in, and unique flow names.

use super::names::Known;
use super::request::{self, Uses};
use super::settings::retry_policy;
use super::source::Source;
use super::{Compiler, Lost};
use crate::problem::Problem;
use crate::suite::plan::{Flow, Step};
use crate::suite::raw::{RawFlow, RawStep};
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

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
        let mut out = Vec::new();
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
        let expectations = self.expect(src, raw.expect.as_ref(), known);
        let captures = self.captures(src, raw.capture.as_ref());
        Step {
            name: step_name(raw, &method),
            method,
            target,
            query,
            headers,
            body,
            timeout,
            expectations,
            captures,
            retry,
            uses_captures: uses.captures.into_iter().collect(),
        }
    }

    /// Compiles one flow file (its entries with problems already dropped, see `lost`).
    pub fn flow(&mut self, src: &mut Source, file: &str, raw: RawFlow, lost: Lost) -> Flow {
        let vars = self.vars(src, raw.vars.as_ref());
        let vars = self.over_file_vars(vars);
        let mut known = self.suite_known.clone();
        known.open |= lost.names;
        // Flow [vars] win over suite [vars]; --var wins over both.
        for (name, value) in &vars {
            if !self.cli_vars.contains_key(name) {
                known.vars.insert(name.clone(), value.clone());
            }
        }
        self.suite_headers_in_flow(src, raw.vars.as_ref(), &known);
        let steps = self.steps(src, raw.step.as_deref().unwrap_or_default(), &known, false);
        if steps.is_empty() && !lost.steps {
            src.problems.push(Problem::file(
                &src.path,
                "a flow needs at least one [[step]]",
            ));
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
        let (name, name_at) = match raw.name {
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
        Flow {
            name,
            file: file.to_string(),
            tags: raw.tags.unwrap_or_default(),
            critical: raw.critical.unwrap_or(true),
            vars,
            steps,
            cleanup,
        }
    }

    /// A flow name is used once: `--flow` selects by it and reports name flows by it.
    fn unique_name(&mut self, src: &mut Source, name: &str, at: Option<Range<usize>>, file: &str) {
        let Some(first) = self.flow_names.get(name) else {
            self.flow_names.insert(name.to_string(), file.to_string());
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

/// The step's `name`, by default "METHOD path".
fn step_name(raw: &RawStep, method: &reqwest::Method) -> String {
    match (&raw.name, raw.path.as_ref().or(raw.url.as_ref())) {
        (Some(name), _) => name.get_ref().clone(),
        (None, Some(target)) => format!("{method} {}", target.get_ref()),
        (None, None) => format!("{method} /"),
    }
}
