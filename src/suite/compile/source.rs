//! One file's text and the value parsers that record located problems in it.

use crate::fs::read;
use crate::problem::Problem;
use crate::template::{Template, TemplateValue};
use serde_json::{Value, json};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// One file's text, where its problems are recorded.
pub struct Source<'a> {
    pub path: PathBuf,
    pub text: String,
    pub problems: &'a mut Vec<Problem>,
    /// Whether compiling from this source read anything else (a file it names, an environment
    /// variable): compiled again later, it could give another result.
    pub read_outside: bool,
}

impl Source<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let problem = Problem::at(&self.path, &self.text, span, message);
        // One mistake said once, however many parts of a value it touches.
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    pub(super) fn error_hint(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut problem = Problem::at(&self.path, &self.text, span, message);
        problem.hint = hint;
        // A flow with rows is compiled once per row: its problems are said once.
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    /// The range of `needle` inside `span` (a key inside an inline table), else `span`.
    pub(super) fn find_in(&self, span: &Range<usize>, needle: &str) -> Range<usize> {
        let end = span.end.min(self.text.len());
        self.text
            .get(span.start..end)
            .and_then(|s| s.find(needle))
            .map_or(span.clone(), |i| {
                span.start + i..span.start + i + needle.len()
            })
    }

    /// The range of the name inside its `{{ name }}` within `span` (which covers a quoted
    /// string or a whole inline table), else `span`.
    pub(super) fn find_placeholder(&self, span: &Range<usize>, name: &str) -> Range<usize> {
        let end = span.end.min(self.text.len());
        let Some(text) = self.text.get(span.start..end) else {
            return span.clone();
        };
        let mut from = 0;
        while let Some(open) = crate::template::find_doubled(&text[from..], b'{').map(|i| from + i)
        {
            let inner = &text[open + 2..];
            let skipped = inner.len() - inner.trim_start().len();
            if inner.trim_start().starts_with(name) {
                let start = span.start + open + 2 + skipped;
                return start..start + name.len();
            }
            from = open + 2;
        }
        span.clone()
    }

    /// Parses a template written at `span`; problems point inside the string when it is
    /// written as is (no escapes), else at the whole value.
    pub(super) fn template(&mut self, text: &str, span: &Range<usize>) -> Template {
        match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                let at = self.find_in(span, text);
                let at = if at.len() == text.len() {
                    at.start + e.span.start..at.start + e.span.end
                } else {
                    span.clone()
                };
                self.error(at, e.message);
                Template::literal(text)
            }
        }
    }

    pub(super) fn template_value(
        &mut self,
        value: &toml::Value,
        span: &Range<usize>,
    ) -> TemplateValue {
        match value {
            toml::Value::String(s) => TemplateValue::String(self.template(s, span)),
            toml::Value::Integer(i) => TemplateValue::Number((*i).into()),
            toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => TemplateValue::Number(n),
                None => {
                    self.error(span.clone(), "NaN and infinity are not JSON values: preflight can neither send nor compare them");
                    TemplateValue::Null
                }
            },
            toml::Value::Boolean(b) => TemplateValue::Bool(*b),
            toml::Value::Datetime(d) => TemplateValue::String(Template::literal(d.to_string())),
            toml::Value::Array(items) => {
                TemplateValue::Array(items.iter().map(|v| self.template_value(v, span)).collect())
            }
            toml::Value::Table(table) => TemplateValue::Object(
                table
                    .iter()
                    .map(|(k, v)| (k.clone(), self.template_value(v, span)))
                    .collect(),
            ),
        }
    }

    pub(super) fn duration(&mut self, value: &Spanned<String>) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(value.span(), e);
                None
            }
        }
    }

    /// Reads a file the suite names, relative to the suite directory.
    pub(super) fn read_file(&mut self, dir: &Path, value: &Spanned<String>) -> Option<Vec<u8>> {
        self.with_file(dir, value, read::read_regular)
    }

    /// The SHA-256 (hex) of a file the suite names, read in chunks.
    pub(super) fn hash_file(&mut self, dir: &Path, value: &Spanned<String>) -> Option<String> {
        self.with_file(dir, value, read::sha256_suite_file)
    }

    /// Reads a file the suite names with `read`; a FIFO or device is refused (never read).
    fn with_file<T>(
        &mut self,
        dir: &Path,
        value: &Spanned<String>,
        read: fn(&Path) -> Result<T, read::ReadError>,
    ) -> Option<T> {
        self.read_outside = true;
        let path = dir.join(value.get_ref());
        match read(&path) {
            Ok(content) => Some(content),
            Err(e) => {
                self.error(
                    value.span(),
                    format!("cannot read `{}`: {e}", path.display()),
                );
                None
            }
        }
    }
}

/// The shortest and longest duration a suite or the command line may give: shorter is no
/// time at all for a request, longer is no gate (and would not fit every clock and counter).
pub const MIN_DURATION: Duration = Duration::from_millis(1);
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// `"250ms"`, `"10s"`, `"2m"`: from 1ms to 24h.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration `{text}`: {e} (write e.g. \"250ms\", \"10s\", \"2m\")")
    })?;
    if (MIN_DURATION..=MAX_DURATION).contains(&duration) {
        Ok(duration)
    } else {
        Err(format!(
            "duration `{text}` is out of range: from 1ms to 24h"
        ))
    }
}

/// `"512KiB"`, `"10MiB"`, `"1GB"`, `"2048"` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size `{text}` (write e.g. \"512KiB\", \"10MiB\")"
            ));
        }
    };
    let size = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("invalid size `{text}` (write e.g. \"512KiB\", \"10MiB\")"))?;
    if size == 0 {
        return Err(format!("size `{text}` is out of range: at least 1 byte"));
    }
    Ok(size)
}

pub(super) fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn toml_to_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => toml_to_json(other).to_string(),
    }
}

/// Whether a TOML value holds NaN or an infinity anywhere: JSON has no such numbers.
pub(super) fn has_non_finite(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(f) => !f.is_finite(),
        toml::Value::Array(items) => items.iter().any(has_non_finite),
        toml::Value::Table(t) => t.values().any(has_non_finite),
        _ => false,
    }
}

/// TOML values as JSON (datetimes as RFC 3339 strings).
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
