//! Flows and their steps: requests, bodies, captures, and the order captures may be used in.

use super::names::{BUILTINS, Known};
use super::settings::retry_policy;
use super::source::{Source, is_identifier, one_line, toml_to_text};
use super::{Compiler, Lost};
use crate::check::{Capture, CaptureSource, JsonQuery};
use crate::suite::plan::{Body, Flow, Step, Target};
use crate::suite::problem::{Problem, did_you_mean};
use crate::suite::raw::{RawFlow, RawStep};
use crate::template::Template;
use indexmap::IndexMap;
use regex::Regex;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

const CAPTURE_KEYS: [&str; 5] = ["json", "header", "body_regex", "cookie", "secret"];

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
        let method = match &raw.method {
            Some(m) => {
                match reqwest::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
                    Ok(method) => method,
                    Err(_) => {
                        src.error(m.span(), format!("invalid method `{}`", m.get_ref()));
                        reqwest::Method::GET
                    }
                }
            }
            None => reqwest::Method::GET,
        };
        let mut uses = BTreeSet::new();
        let mut use_template =
            |this: &mut Self, src: &mut Source, t: &Template, span: &Range<usize>| {
                this.resolve(src, t, span, known);
                uses.extend(
                    t.names()
                        .map(|(n, _)| n.to_string())
                        .filter(|n| known.captures.contains(n)),
                );
            };
        let target = match (&raw.path, &raw.url) {
            (Some(path), Some(url)) => {
                src.error(
                    url.span(),
                    "`path` and `url` are mutually exclusive: use one",
                );
                Target::Path(src.template(path.get_ref(), &path.span()))
            }
            (Some(path), None) => {
                let t = src.template(path.get_ref(), &path.span());
                use_template(self, src, &t, &path.span());
                self.need_base_url(src, path.span());
                Target::Path(t)
            }
            (None, Some(url)) => {
                let t = src.template(url.get_ref(), &url.span());
                use_template(self, src, &t, &url.span());
                if let Some(literal) = t.as_literal()
                    && let Err(e) = url::Url::parse(literal)
                {
                    src.error(url.span(), format!("invalid url `{literal}`: {e}"));
                }
                Target::Url(t)
            }
            (None, None) => {
                let at = raw.name.as_ref().map_or(0..0, Spanned::span);
                src.error(at, "a step needs `path` or `url`");
                Target::Path(Template::literal("/"))
            }
        };
        let name = raw.name.as_ref().map_or_else(
            || {
                let shown = match &raw.path.as_ref().or(raw.url.as_ref()) {
                    Some(p) => p.get_ref().clone(),
                    None => "/".into(),
                };
                format!("{method} {shown}")
            },
            |n| n.get_ref().clone(),
        );
        let mut text_pairs =
            |this: &mut Self,
             src: &mut Source,
             raw: Option<&IndexMap<String, Spanned<toml::Value>>>| {
                let mut out = Vec::new();
                for (key, value) in raw.into_iter().flatten() {
                    let texts: Vec<String> = match value.get_ref() {
                        toml::Value::Array(items) => items.iter().map(toml_to_text).collect(),
                        toml::Value::Table(_) => {
                            src.error(
                                value.span(),
                                format!("`{key}` must be a string, number, boolean or array"),
                            );
                            continue;
                        }
                        other => vec![toml_to_text(other)],
                    };
                    for text in texts {
                        let t = src.template(&text, &value.span());
                        use_template(this, src, &t, &value.span());
                        out.push((key.clone(), t));
                    }
                }
                out
            };
        let query = text_pairs(self, src, raw.query.as_ref());
        let form = text_pairs(self, src, raw.form.as_ref());
        let mut headers = Vec::new();
        for (name, value) in raw.headers.iter().flatten() {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                src.error(value.span(), format!("invalid header name `{name}`"));
            }
            let t = src.template(value.get_ref(), &value.span());
            use_template(self, src, &t, &value.span());
            headers.push((lower, t));
        }
        let bodies: Vec<(&str, Range<usize>)> = [
            ("json", raw.json.as_ref().map(Spanned::span)),
            ("body", raw.body.as_ref().map(Spanned::span)),
            ("body_file", raw.body_file.as_ref().map(Spanned::span)),
            (
                "form",
                raw.form
                    .as_ref()
                    .and_then(|f| f.values().next())
                    .map(Spanned::span),
            ),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        if bodies.len() > 1 {
            let names: Vec<&str> = bodies.iter().map(|(k, _)| *k).collect();
            src.error(
                bodies[1].1.clone(),
                format!(
                    "{} are mutually exclusive: a step sends one body",
                    names.join(" and ")
                ),
            );
        }
        let body = if let Some(json) = &raw.json {
            let value = src.template_value(json.get_ref(), &json.span());
            for t in value.templates() {
                use_template(self, src, t, &json.span());
            }
            Body::Json(value)
        } else if let Some(text) = &raw.body {
            let t = src.template(text.get_ref(), &text.span());
            use_template(self, src, &t, &text.span());
            Body::Text(t)
        } else if let Some(file) = &raw.body_file {
            let bytes = src.read_file(&self.dir, file).unwrap_or_default();
            Body::File {
                name: file.get_ref().clone(),
                bytes: Arc::new(bytes),
            }
        } else if !form.is_empty() {
            Body::Form(form)
        } else {
            Body::None
        };
        let timeout = raw.timeout.as_ref().and_then(|t| src.duration(t));
        let expectations = self.expect(src, raw.expect.as_ref(), known);
        let captures = self.captures(src, raw.capture.as_ref());
        Step {
            name,
            method,
            target,
            query,
            headers,
            body,
            timeout,
            expectations,
            captures,
            retry,
            uses_captures: uses.into_iter().collect(),
        }
    }

    pub(super) fn captures(
        &mut self,
        src: &mut Source,
        raw: Option<&IndexMap<String, Spanned<toml::Value>>>,
    ) -> Vec<Capture> {
        let mut out = Vec::new();
        for (name, value) in raw.into_iter().flatten() {
            let span = value.span();
            if !is_identifier(name)
                || BUILTINS.contains(&name.as_str())
                || name == "env"
                || name == "secret"
            {
                let line_start = src.text.get(..span.start).and_then(|t| t.rfind('\n'));
                let at = src.find_in(&(line_start.unwrap_or(0)..span.start), name);
                src.error(at, format!("`{name}` cannot be a capture name: use letters, digits, `_`, `-`, and not a built-in name"));
                continue;
            }
            let (source, secret) = match value.get_ref() {
                toml::Value::String(path) => (self.json_source(src, path, &span), false),
                toml::Value::Table(table) => {
                    let mut source = None;
                    let mut secret = false;
                    for (key, arg) in table {
                        let at = src.find_in(&span, key);
                        let text = arg.as_str();
                        let kind = match (key.as_str(), text) {
                            ("secret", _) => {
                                match arg.as_bool() {
                                    Some(b) => secret = b,
                                    None => src.error(at, "`secret` takes true or false"),
                                }
                                continue;
                            }
                            ("json", Some(path)) => self.json_source(src, path, &span),
                            ("header", Some(h)) => {
                                Some(CaptureSource::Header(h.to_ascii_lowercase()))
                            }
                            ("cookie", Some(c)) => Some(CaptureSource::Cookie(c.to_string())),
                            ("body_regex", Some(r)) => match Regex::new(r) {
                                Ok(re) => Some(CaptureSource::BodyRegex(re)),
                                Err(e) => {
                                    src.error(
                                        at,
                                        format!("invalid regex: {}", one_line(&e.to_string())),
                                    );
                                    None
                                }
                            },
                            ("json" | "header" | "cookie" | "body_regex", None) => {
                                src.error(at, format!("`{key}` takes a string"));
                                None
                            }
                            (unknown, _) => {
                                src.error_hint(
                                    at,
                                    format!("unknown capture key `{unknown}`"),
                                    did_you_mean(unknown, CAPTURE_KEYS).or_else(|| Some("a capture takes one of json, header, body_regex, cookie, and optionally secret".to_string())),
                                );
                                None
                            }
                        };
                        if kind.is_some() && source.is_some() {
                            let at = src.find_in(&span, key);
                            src.error(
                                at,
                                "a capture reads one source: json, header, body_regex or cookie",
                            );
                        } else if kind.is_some() {
                            source = kind;
                        }
                    }
                    if source.is_none()
                        && !table
                            .keys()
                            .any(|k| CAPTURE_KEYS[..4].contains(&k.as_str()))
                    {
                        src.error(
                            span.clone(),
                            "a capture needs one of json, header, body_regex or cookie",
                        );
                    }
                    (source, secret)
                }
                _ => {
                    src.error(
                        span.clone(),
                        "a capture is a JSONPath string or a table like { header = \"x-id\" }",
                    );
                    (None, false)
                }
            };
            if let Some(source) = source {
                out.push(Capture {
                    name: name.clone(),
                    source,
                    secret,
                });
            }
        }
        out
    }

    pub(super) fn json_source(
        &mut self,
        src: &mut Source,
        path: &str,
        span: &Range<usize>,
    ) -> Option<CaptureSource> {
        match JsonQuery::parse(path) {
            Ok(q) => Some(CaptureSource::Json(q)),
            Err(e) => {
                let at = src.find_in(span, path);
                src.error(at, format!("{e} in `{path}`"));
                None
            }
        }
    }

    /// Compiles one flow file (its entries with problems already dropped, see `lost`).
    pub fn flow(&mut self, src: &mut Source, file: &str, raw: RawFlow, lost: Lost) -> Flow {
        let vars = self.vars(src, raw.vars.as_ref());
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
