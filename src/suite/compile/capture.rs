//! Captures: a JSONPath string, or a table naming one source (`json`, `header`, `body_regex`,
//! `cookie`) and optionally `secret`.

use super::names::BUILTINS;
use super::source::{Source, is_identifier, one_line};
use super::{Compiler, JsonQueries};
use crate::check::{Capture, CaptureSource};
use crate::problem::did_you_mean;
use indexmap::IndexMap;
use regex::Regex;
use std::ops::Range;
use toml::Spanned;

const CAPTURE_KEYS: [&str; 5] = ["json", "header", "body_regex", "cookie", "secret"];
const SOURCES: [&str; 4] = ["json", "header", "body_regex", "cookie"];

impl Compiler<'_> {
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
                toml::Value::String(path) => {
                    (json_source(&mut self.json_queries, src, path, &span), false)
                }
                toml::Value::Table(table) => {
                    capture_table(&mut self.json_queries, src, table, &span)
                }
                _ => {
                    src.error(
                        span,
                        "a capture is a JSONPath string or a table like { header = \"x-id\" }",
                    );
                    (None, false)
                }
            };
            if secret {
                self.secret_captures.insert(name.clone());
            }
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
}

/// `{ json | header | body_regex | cookie = "...", secret = true }`: one source, and whether
/// the value is secret.
fn capture_table(
    queries: &mut JsonQueries,
    src: &mut Source,
    table: &toml::Table,
    span: &Range<usize>,
) -> (Option<CaptureSource>, bool) {
    let mut source = None;
    let mut secret = false;
    for (key, arg) in table {
        let at = src.find_in(span, key);
        if key == "secret" {
            match arg.as_bool() {
                Some(b) => secret = b,
                None => src.error(at, "`secret` takes true or false"),
            }
            continue;
        }
        let found = capture_source(queries, src, key, arg, at.clone(), span);
        if found.is_some() && source.is_some() {
            src.error(
                at,
                "a capture reads one source: json, header, body_regex or cookie",
            );
        } else if found.is_some() {
            source = found;
        }
    }
    if source.is_none() && !table.keys().any(|k| SOURCES.contains(&k.as_str())) {
        src.error(
            span.clone(),
            "a capture needs one of json, header, body_regex or cookie",
        );
    }
    (source, secret)
}

/// One source key of a capture table.
fn capture_source(
    queries: &mut JsonQueries,
    src: &mut Source,
    key: &str,
    arg: &toml::Value,
    at: Range<usize>,
    span: &Range<usize>,
) -> Option<CaptureSource> {
    match (key, arg.as_str()) {
        ("json", Some(path)) => json_source(queries, src, path, span),
        ("header", Some(h)) => Some(CaptureSource::Header(h.to_ascii_lowercase())),
        ("cookie", Some(c)) => Some(CaptureSource::Cookie(c.to_string())),
        ("body_regex", Some(r)) => match Regex::new(r) {
            Ok(re) => Some(CaptureSource::BodyRegex(re)),
            Err(e) => {
                let message = format!("invalid regex: {}", one_line(&e.to_string()));
                src.error(at, message);
                None
            }
        },
        ("json" | "header" | "cookie" | "body_regex", None) => {
            src.error(at, format!("`{key}` takes a string"));
            None
        }
        (unknown, _) => {
            let hint = did_you_mean(unknown, CAPTURE_KEYS).or_else(|| {
                Some("a capture takes one of json, header, body_regex, cookie, and optionally secret".to_string())
            });
            src.error_hint(at, format!("unknown capture key `{unknown}`"), hint);
            None
        }
    }
}

fn json_source(
    queries: &mut JsonQueries,
    src: &mut Source,
    path: &str,
    span: &Range<usize>,
) -> Option<CaptureSource> {
    match queries.parse(path) {
        Ok(q) => Some(CaptureSource::Json(q)),
        Err(e) => {
            let at = src.find_in(span, path);
            src.error(at, format!("{e} in `{path}`"));
            None
        }
    }
}
