//! Pure evaluation of expectations and captures against an observed response.
//!
//! Assertions are an algebra: a [`Subject`] (what is looked at) and an [`Op`] (what must hold).
//! Every expectation evaluates to an [`Assertion`] record first and is judged from it, so all
//! assertions of a step are reported, not only the first failing one. No I/O happens here.

pub mod capture;
pub mod jsonpath;

use crate::template::{Scope, Template, TemplateValue, value_to_text};
pub use capture::{Capture, CaptureSource};
pub use jsonpath::JsonQuery;
use regex::Regex;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What an expectation looks at.
#[derive(Debug, Clone)]
pub enum Subject {
    Status,
    Latency,
    Body,
    /// Lower-case header name.
    Header(String),
    Json(JsonQuery),
}

/// What must hold for the subject's value. `expected` values may hold templates.
#[derive(Debug, Clone)]
pub enum Op {
    Equals(TemplateValue),
    NotEquals(TemplateValue),
    Contains(TemplateValue),
    NotContains(TemplateValue),
    Matches(Template),
    Exists(bool),
    Lt(TemplateValue),
    Le(TemplateValue),
    Gt(TemplateValue),
    Ge(TemplateValue),
    /// The length (characters, elements or keys) must satisfy every inner operator.
    Length(Vec<Op>),
    OneOf(TemplateValue),
    Type(JsonType),
    JsonSchema(SchemaFile),
    /// Hex SHA-256 of the raw (decoded) body.
    Sha256(String),
    Sha256OfFile {
        file: String,
        hex: String,
    },
    /// Status class: 2 for "2xx".
    StatusClass(u16),
}

/// A JSON Schema loaded and compiled at suite load time.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    pub file: String,
    pub validator: Arc<jsonschema::Validator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    String,
    Number,
    Boolean,
    Array,
    Object,
    Null,
}

impl JsonType {
    pub const NAMES: [&'static str; 6] = ["string", "number", "boolean", "array", "object", "null"];

    pub fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "string" => JsonType::String,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            "array" => JsonType::Array,
            "object" => JsonType::Object,
            "null" => JsonType::Null,
            _ => return None,
        })
    }

    fn of(value: &Value) -> JsonType {
        match value {
            Value::String(_) => JsonType::String,
            Value::Number(_) => JsonType::Number,
            Value::Bool(_) => JsonType::Boolean,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
            Value::Null => JsonType::Null,
        }
    }

    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// One expectation of a step.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub subject: Subject,
    pub op: Op,
}

/// The evaluated form of one expectation: what the reports show.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Assertion {
    pub subject: String,
    pub op: String,
    pub expected: Value,
    pub actual: Value,
    pub passed: bool,
    /// Why it failed, when the values alone do not say (schema errors, bad regex, no JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What came back from staging, as the checks see it.
#[derive(Debug)]
pub struct Observed {
    pub status: u16,
    pub latency: Duration,
    /// Lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
    /// Cookies set by the responses of this step (name, value).
    pub cookies: Vec<(String, String)>,
    json: OnceLock<Result<Value, String>>,
}

/// Shown in reports instead of a value when the subject has none.
pub const MISSING: &str = "<missing>";
const EXCERPT_CHARS: usize = 300;

impl Observed {
    pub fn new(
        status: u16,
        latency: Duration,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        cookies: Vec<(String, String)>,
    ) -> Observed {
        Observed {
            status,
            latency,
            headers,
            body,
            cookies,
            json: OnceLock::new(),
        }
    }

    /// What a status-only judgement needs (retry decisions, `[wait]` polls).
    pub fn status_only(status: u16, latency: Duration) -> Observed {
        Observed::new(status, latency, Vec::new(), Vec::new(), Vec::new())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, once.
    pub fn json(&self) -> Result<&Value, &str> {
        self.json
            .get_or_init(|| {
                serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON: {e}"))
            })
            .as_ref()
            .map_err(|e| e.as_str())
    }

    /// All values of a header joined with ", " (as HTTP allows), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The subject's value, or an explanation of why there is none to judge.
    fn value_of(&self, subject: &Subject) -> Result<Option<Value>, String> {
        Ok(match subject {
            Subject::Status => Some(json!(self.status)),
            Subject::Latency => Some(json!(self.latency.as_millis() as u64)),
            Subject::Body => Some(Value::String(self.body_text())),
            Subject::Header(name) => self.header(name).map(Value::String),
            Subject::Json(query) => query.select(self.json()?),
        })
    }
}

impl Subject {
    pub fn label(&self) -> String {
        match self {
            Subject::Status => "status".into(),
            Subject::Latency => "latency".into(),
            Subject::Body => "body".into(),
            Subject::Header(name) => format!("header {name}"),
            Subject::Json(query) => query.as_str().into(),
        }
    }
}

impl Op {
    /// The keyword users write, and reports show.
    pub fn name(&self) -> String {
        match self {
            Op::Equals(_) => "equals".into(),
            Op::NotEquals(_) => "not_equals".into(),
            Op::Contains(_) => "contains".into(),
            Op::NotContains(_) => "not_contains".into(),
            Op::Matches(_) => "matches".into(),
            Op::Exists(_) => "exists".into(),
            Op::Lt(_) => "lt".into(),
            Op::Le(_) => "le".into(),
            Op::Gt(_) => "gt".into(),
            Op::Ge(_) => "ge".into(),
            Op::Length(inner) => match inner.as_slice() {
                [one] if !matches!(one, Op::Equals(_)) => format!("length.{}", one.name()),
                _ => "length".into(),
            },
            Op::OneOf(_) => "one_of".into(),
            Op::Type(_) => "type".into(),
            Op::JsonSchema(_) => "json_schema".into(),
            Op::Sha256(_) => "sha256".into(),
            Op::Sha256OfFile { .. } => "sha256_of_file".into(),
            Op::StatusClass(_) => "class".into(),
        }
    }
}

impl Expectation {
    /// Whether every assertion of this expectation passes.
    pub fn holds(&self, observed: &Observed, scope: &dyn Scope) -> bool {
        self.evaluate(observed, scope).iter().all(|a| a.passed)
    }

    /// Evaluates to one assertion per operator (a `length` table gives one per inner operator).
    pub fn evaluate(&self, observed: &Observed, scope: &dyn Scope) -> Vec<Assertion> {
        let subject = self.subject.label();
        let actual = match (&self.subject, &self.op) {
            // A schema on `body` applies to the parsed body, not to its text.
            (Subject::Body, Op::JsonSchema(_)) => observed
                .json()
                .map(|v| Some(v.clone()))
                .map_err(str::to_string),
            (subject, _) => observed.value_of(subject),
        };
        match &self.op {
            Op::Length(inner) => inner
                .iter()
                .map(|op| {
                    let op = Op::Length(vec![op.clone()]);
                    evaluate_op(&subject, &op, &actual, observed, scope)
                })
                .collect(),
            op => vec![evaluate_op(&subject, op, &actual, observed, scope)],
        }
    }
}

fn evaluate_op(
    subject: &str,
    op: &Op,
    actual: &Result<Option<Value>, String>,
    observed: &Observed,
    scope: &dyn Scope,
) -> Assertion {
    let mut assertion = Assertion {
        subject: subject.to_string(),
        op: op.name(),
        expected: Value::Null,
        actual: Value::Null,
        passed: false,
        message: None,
    };
    let actual = match actual {
        Ok(value) => value.as_ref(),
        Err(why) => {
            assertion.expected = expected_for_report(op, scope);
            assertion.actual = Value::String(MISSING.into());
            assertion.message = Some(why.clone());
            return assertion;
        }
    };
    match judge(op, actual, observed, scope) {
        Ok(Judgement {
            expected,
            actual: shown,
            passed,
            message,
        }) => {
            assertion.expected = expected;
            assertion.actual = shown.unwrap_or_else(|| shown_actual(actual));
            assertion.passed = passed;
            assertion.message = message;
        }
        Err(why) => {
            assertion.expected = expected_for_report(op, scope);
            assertion.actual = shown_actual(actual);
            assertion.message = Some(why);
        }
    }
    assertion
}

struct Judgement {
    expected: Value,
    /// Replaces the subject's value in the report (a length, a hash).
    actual: Option<Value>,
    passed: bool,
    message: Option<String>,
}

impl Judgement {
    fn plain(expected: Value, passed: bool) -> Judgement {
        Judgement {
            expected,
            actual: None,
            passed,
            message: None,
        }
    }
}

/// The expected value as the report shows it, even when the judgement could not happen.
fn expected_for_report(op: &Op, scope: &dyn Scope) -> Value {
    match op {
        Op::Equals(v)
        | Op::NotEquals(v)
        | Op::Contains(v)
        | Op::NotContains(v)
        | Op::Lt(v)
        | Op::Le(v)
        | Op::Gt(v)
        | Op::Ge(v)
        | Op::OneOf(v) => v.render(scope).unwrap_or(Value::Null),
        Op::Matches(t) => t.render(scope).map(Value::String).unwrap_or(Value::Null),
        Op::Exists(b) => json!(b),
        Op::Length(inner) => inner
            .first()
            .map_or(Value::Null, |op| expected_for_report(op, scope)),
        Op::Type(t) => json!(t.name()),
        Op::JsonSchema(s) => json!(s.file),
        Op::Sha256(hex) => json!(hex),
        Op::Sha256OfFile { hex, .. } => json!(hex),
        Op::StatusClass(c) => json!(format!("{c}xx")),
    }
}

/// The actual value as reports show it: long values are cut to an excerpt.
fn shown_actual(actual: Option<&Value>) -> Value {
    match actual {
        None => Value::String(MISSING.into()),
        Some(Value::String(s)) => Value::String(excerpt(s, EXCERPT_CHARS)),
        Some(v) => {
            let text = v.to_string();
            if text.len() > EXCERPT_CHARS {
                Value::String(excerpt(&text, EXCERPT_CHARS))
            } else {
                v.clone()
            }
        }
    }
}

/// The first `max` characters of `text`, marked when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn judge(
    op: &Op,
    actual: Option<&Value>,
    observed: &Observed,
    scope: &dyn Scope,
) -> Result<Judgement, String> {
    let render = |v: &TemplateValue| v.render(scope);
    // Every operator but `exists` needs a value to judge.
    if let Op::Exists(want) = op {
        return Ok(Judgement::plain(json!(want), actual.is_some() == *want));
    }
    let Some(actual) = actual else {
        return Ok(Judgement::plain(expected_for_report(op, scope), false));
    };
    Ok(match op {
        Op::Exists(_) => unreachable!("handled above"),
        Op::Equals(v) => {
            let expected = render(v)?;
            Judgement::plain(expected.clone(), loose_eq(actual, &expected))
        }
        Op::NotEquals(v) => {
            let expected = render(v)?;
            Judgement::plain(expected.clone(), !loose_eq(actual, &expected))
        }
        Op::Contains(v) => {
            let expected = render(v)?;
            let passed = contains(actual, &expected)?;
            Judgement::plain(expected, passed)
        }
        Op::NotContains(v) => {
            let expected = render(v)?;
            let passed = !contains(actual, &expected)?;
            Judgement::plain(expected, passed)
        }
        Op::Matches(pattern) => {
            let pattern = pattern.render(scope)?;
            let regex = Regex::new(&pattern).map_err(|e| format!("invalid regex: {e}"))?;
            let text = match actual {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => actual.to_string(),
                other => {
                    return Err(format!(
                        "`matches` needs a string, found {}",
                        JsonType::of(other).name()
                    ));
                }
            };
            Judgement::plain(json!(pattern), regex.is_match(&text))
        }
        Op::Lt(v) | Op::Le(v) | Op::Gt(v) | Op::Ge(v) => {
            let expected = render(v)?;
            let want = number(&expected).ok_or("the expected value is not a number")?;
            let got = number(actual).ok_or("the value is not a number")?;
            let passed = match op {
                Op::Lt(_) => got < want,
                Op::Le(_) => got <= want,
                Op::Gt(_) => got > want,
                _ => got >= want,
            };
            Judgement::plain(expected, passed)
        }
        Op::Length(inner) => {
            let len = match actual {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                other => {
                    return Err(format!(
                        "`length` needs a string, array or object, found {}",
                        JsonType::of(other).name()
                    ));
                }
            };
            let len = json!(len);
            let inner = inner.first().ok_or("empty `length` table")?;
            let mut judged = judge(inner, Some(&len), observed, scope)?;
            judged.actual = Some(len);
            judged
        }
        Op::OneOf(v) => {
            let expected = render(v)?;
            let Value::Array(options) = &expected else {
                return Err("`one_of` needs an array".into());
            };
            let passed = options.iter().any(|o| loose_eq(actual, o));
            Judgement::plain(expected, passed)
        }
        Op::Type(t) => Judgement {
            expected: json!(t.name()),
            actual: Some(json!(JsonType::of(actual).name())),
            passed: JsonType::of(actual) == *t,
            message: None,
        },
        Op::JsonSchema(schema) => {
            let errors: Vec<String> = schema
                .validator
                .iter_errors(actual)
                .take(3)
                .map(|e| format!("{} at `{}`", e, e.instance_path()))
                .collect();
            Judgement {
                expected: json!(schema.file),
                actual: Some(shown_actual(Some(actual))),
                passed: errors.is_empty(),
                message: (!errors.is_empty()).then(|| errors.join("; ")),
            }
        }
        Op::Sha256(hex) | Op::Sha256OfFile { hex, .. } => {
            let found = sha256_hex(&observed.body);
            Judgement {
                expected: json!(hex),
                passed: found.eq_ignore_ascii_case(hex),
                actual: Some(json!(found)),
                message: None,
            }
        }
        Op::StatusClass(class) => {
            let passed = actual
                .as_u64()
                .is_some_and(|s| s / 100 == u64::from(*class));
            Judgement::plain(json!(format!("{class}xx")), passed)
        }
    })
}

/// Hex SHA-256 of bytes, as the lock file and `sha256` operators write it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Equality where numbers compare by value (1 == 1.0) and a text subject (header, body)
/// compares with the expected value written as text.
pub fn loose_eq(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(_), Value::Number(_)) => number(actual) == number(expected),
        (Value::String(a), Value::Number(_) | Value::Bool(_)) => *a == value_to_text(expected),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| loose_eq(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        _ => actual == expected,
    }
}

/// Substring on strings, membership on arrays, key presence on objects.
fn contains(actual: &Value, expected: &Value) -> Result<bool, String> {
    match actual {
        Value::String(s) => Ok(s.contains(&value_to_text(expected))),
        Value::Array(items) => Ok(items.iter().any(|i| loose_eq(i, expected))),
        Value::Object(map) => Ok(expected.as_str().is_some_and(|k| map.contains_key(k))),
        other => Err(format!(
            "`contains` needs a string, array or object, found {}",
            JsonType::of(other).name()
        )),
    }
}

/// A number, or a string that is one (headers such as content-length).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
