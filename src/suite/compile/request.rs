//! The request half of a step: method, target, query, headers and body, each template checked
//! against the names known at that step.

use super::Compiler;
use super::names::Known;
use super::source::{Source, has_non_finite, toml_to_text};
use crate::suite::plan::{Body, Target};
use crate::suite::raw::RawStep;
use crate::template::Template;
use indexmap::IndexMap;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;

/// The names known at a step, and the captures its request uses so far (a cleanup whose
/// captures never happened is skipped).
pub(super) struct Uses<'k> {
    pub known: &'k Known,
    pub captures: BTreeSet<String>,
}

impl Compiler<'_> {
    /// Resolves the names of a template of the request and notes the captures it uses.
    fn use_template(
        &mut self,
        src: &mut Source,
        template: &Template,
        span: &Range<usize>,
        uses: &mut Uses,
    ) {
        self.resolve(src, template, span, uses.known);
        let captures = template
            .names()
            .map(|(n, _)| n)
            .filter(|n| uses.known.captures.contains(*n));
        uses.captures.extend(captures.map(str::to_string));
    }

    /// `path` (appended to the base URL) or `url` (absolute), exactly one of them.
    pub(super) fn target(&mut self, src: &mut Source, raw: &RawStep, uses: &mut Uses) -> Target {
        match (&raw.path, &raw.url) {
            (Some(path), Some(url)) => {
                src.error(
                    url.span(),
                    "`path` and `url` are mutually exclusive: use one",
                );
                Target::Path(src.template(path.get_ref(), &path.span()))
            }
            (Some(path), None) => {
                let t = src.template(path.get_ref(), &path.span());
                self.use_template(src, &t, &path.span(), uses);
                self.need_base_url(src, path.span());
                Target::Path(t)
            }
            (None, Some(url)) => {
                let t = src.template(url.get_ref(), &url.span());
                self.use_template(src, &t, &url.span(), uses);
                if let Some(literal) = t.as_literal()
                    && let Err(e) = url::Url::parse(literal)
                {
                    src.error(url.span(), format!("invalid url `{literal}`: {e}"));
                }
                Target::Url(t)
            }
            (None, None) => {
                src.error(first_span(raw), "a step needs `path` or `url`");
                Target::Path(Template::literal("/"))
            }
        }
    }

    /// `query` or `form`: each value a text template; an array repeats the key.
    pub(super) fn text_pairs(
        &mut self,
        src: &mut Source,
        raw: Option<&IndexMap<String, Spanned<toml::Value>>>,
        uses: &mut Uses,
    ) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (key, value) in raw.into_iter().flatten() {
            if has_non_finite(value.get_ref()) {
                src.error(
                    value.span(),
                    "NaN and infinity are not values preflight can send",
                );
                continue;
            }
            let texts: Vec<String> = match value.get_ref() {
                toml::Value::Array(items) => items.iter().map(toml_to_text).collect(),
                toml::Value::Table(_) => {
                    let message = format!("`{key}` must be a string, number, boolean or array");
                    src.error(value.span(), message);
                    continue;
                }
                other => vec![toml_to_text(other)],
            };
            for text in texts {
                let t = src.template(&text, &value.span());
                self.use_template(src, &t, &value.span(), uses);
                out.push((key.clone(), t));
            }
        }
        out
    }

    /// The step's own headers, names lower-cased.
    pub(super) fn request_headers(
        &mut self,
        src: &mut Source,
        raw: Option<&IndexMap<String, Spanned<String>>>,
        uses: &mut Uses,
    ) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (name, value) in raw.into_iter().flatten() {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                src.error(value.span(), format!("invalid header name `{name}`"));
            }
            let t = src.template(value.get_ref(), &value.span());
            self.use_template(src, &t, &value.span(), uses);
            out.push((lower, t));
        }
        out
    }

    /// The one body a step sends: `json`, `body`, `body_file` or `form` (already compiled).
    pub(super) fn body(
        &mut self,
        src: &mut Source,
        raw: &RawStep,
        form: Vec<(String, Template)>,
        uses: &mut Uses,
    ) -> Body {
        one_body(src, raw);
        if let Some(json) = &raw.json {
            let value = src.template_value(json.get_ref(), &json.span());
            for t in value.templates() {
                self.use_template(src, t, &json.span(), uses);
            }
            Body::Json(value)
        } else if let Some(text) = &raw.body {
            let t = src.template(text.get_ref(), &text.span());
            self.use_template(src, &t, &text.span(), uses);
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
        }
    }
}

/// `method`, GET by default.
pub(super) fn method(src: &mut Source, raw: &RawStep) -> reqwest::Method {
    let Some(m) = &raw.method else {
        return reqwest::Method::GET;
    };
    match reqwest::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
        Ok(method) => method,
        Err(_) => {
            src.error(m.span(), format!("invalid method `{}`", m.get_ref()));
            reqwest::Method::GET
        }
    }
}

/// A step sends one body: a second one is a problem at the second.
fn one_body(src: &mut Source, raw: &RawStep) {
    let form = raw.form.as_ref().and_then(|f| f.values().next());
    let bodies: Vec<(&str, Range<usize>)> = [
        ("json", raw.json.as_ref().map(Spanned::span)),
        ("body", raw.body.as_ref().map(Spanned::span)),
        ("body_file", raw.body_file.as_ref().map(Spanned::span)),
        ("form", form.map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.map(|s| (k, s)))
    .collect();
    if let [_, (_, second), ..] = bodies.as_slice() {
        let names: Vec<&str> = bodies.iter().map(|(k, _)| *k).collect();
        let message = format!(
            "{} are mutually exclusive: a step sends one body",
            names.join(" and ")
        );
        src.error(second.clone(), message);
    }
}

/// Where a step starts, as near as its values tell (the table itself has no span): for
/// problems about what the step lacks.
fn first_span(raw: &RawStep) -> Range<usize> {
    let strings = [
        &raw.name,
        &raw.method,
        &raw.body,
        &raw.body_file,
        &raw.timeout,
    ];
    let values = [&raw.json];
    let tables = [&raw.query, &raw.form, &raw.capture];
    strings
        .iter()
        .filter_map(|s| s.as_ref().map(Spanned::span))
        .chain(values.iter().filter_map(|v| v.as_ref().map(Spanned::span)))
        .chain(raw.retry.as_ref().map(Spanned::span))
        .chain(
            tables
                .iter()
                .filter_map(|t| t.as_ref().and_then(|t| t.values().next()))
                .map(Spanned::span),
        )
        .chain(
            raw.headers
                .as_ref()
                .and_then(|h| h.values().next())
                .map(Spanned::span),
        )
        .min_by_key(|span| span.start)
        .unwrap_or(0..0)
}
