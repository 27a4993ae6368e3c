//! Captures: values taken from a response for later steps.

use super::{JsonQuery, Observed};
use regex::Regex;
use serde_json::Value;

/// Where a capture reads its value.
#[derive(Debug, Clone)]
pub enum CaptureSource {
    Json(JsonQuery),
    /// Lower-case header name.
    Header(String),
    /// The first capture group (or the whole match when the regex has no group).
    BodyRegex(Regex),
    /// A cookie set by this step's responses.
    Cookie(String),
}

#[derive(Debug, Clone)]
pub struct Capture {
    pub name: String,
    pub source: CaptureSource,
    /// A secret capture's value is redacted in every output.
    pub secret: bool,
}

impl CaptureSource {
    /// How the source is written in reports: `$.id`, `header x-csrf`, ...
    pub fn label(&self) -> String {
        match self {
            CaptureSource::Json(q) => q.as_str().to_string(),
            CaptureSource::Header(h) => format!("header {h}"),
            CaptureSource::BodyRegex(r) => format!("body_regex {}", r.as_str()),
            CaptureSource::Cookie(c) => format!("cookie {c}"),
        }
    }
}

impl Capture {
    /// The captured value, or why nothing was found.
    pub fn take(&self, observed: &Observed) -> Result<Value, String> {
        let found = match &self.source {
            CaptureSource::Json(query) => query.select(observed.json().map_err(str::to_string)?),
            CaptureSource::Header(name) => observed.header(name).map(Value::String),
            CaptureSource::BodyRegex(regex) => {
                let text = observed.body_text();
                regex.captures(&text).map(|c| {
                    let m = c.get(1).or_else(|| c.get(0)).map_or("", |m| m.as_str());
                    Value::String(m.to_string())
                })
            }
            CaptureSource::Cookie(name) => observed
                .cookies
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Value::String(v.clone())),
        };
        found.ok_or_else(|| {
            format!(
                "capture `{}` found nothing ({})",
                self.name,
                self.source.label()
            )
        })
    }
}
