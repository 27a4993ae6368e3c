//! Pure evaluation of expectations and captures against an observed response.
//!
//! Assertions are an algebra: a [`Subject`] (what is looked at) and an [`Op`] (what must hold).
//! Every expectation evaluates to an [`Assertion`] record first and is judged from it, so all
//! assertions of a step are reported, not only the first failing one. No I/O happens here.

pub mod capture;
pub mod jsonpath;
mod shown;

pub use crate::redact::excerpt;
pub use shown::{json_excerpt, shown_pointer, shown_schema_error, shown_value};

use crate::redact::{MASK, Mask, NoMask, is_sensitive_header};
use crate::template::{Scope, Template, TemplateValue, value_to_text};
pub use capture::{Capture, CaptureSource};
pub use jsonpath::JsonQuery;
use regex::Regex;
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
    /// SHA-256 of the bytes the validator was compiled from: what the reports' digests name,
    /// so they never name a file that changed after the load.
    pub sha256: [u8; 32],
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

/// The evaluated form of one expectation (reports show it as an `AssertionRecord`).
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    pub subject: String,
    pub op: String,
    pub expected: Value,
    pub actual: Value,
    pub passed: bool,
    /// Why it failed, when the values alone do not say (schema errors, bad regex, no JSON).
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

    /// The body as UTF-8 text, whatever charset it names: a byte that is not UTF-8 is U+FFFD.
    /// Reading it in another charset would make text that no mask knows from a secret echoed
    /// in UTF-8 (`Pä` under `charset=windows-1251` reads `PГ¤`).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the body's text may not be what staging sent although it reads as UTF-8: its
    /// `content-type` names a charset other than UTF-8, and either the body holds bytes beyond
    /// ASCII or the charset does not write ASCII as ASCII (UTF-16 `中止` is the bytes `-Nbk`,
    /// ISO-2022-JP, UTF-7 and HZ write Japanese and Chinese in ASCII letters).
    /// Every charset named counts, on every `content-type` line (a browser reads the last
    /// one, a parser may read a quoted `"x;charset=utf-8"`).
    /// So does one that the body's start names (`<meta charset="windows-1252">`, an XML
    /// declaration's `encoding="ISO-8859-1"`), which is what a browser reads without the
    /// header's. `us-ascii` is read as windows-1252 by browsers: it proves nothing of bytes
    /// beyond ASCII either.
    pub fn body_in_unread_charset(&self) -> bool {
        let start = String::from_utf8_lossy(&self.body[..self.body.len().min(BODY_CHARSET_BYTES)]);
        let xml = start.trim_start().starts_with("<?xml");
        let in_body = ["charset", "encoding"]
            .into_iter()
            .filter(|name| *name == "charset" || xml)
            .flat_map(|name| values_named(&start, name));
        self.header_lines("content-type")
            .flat_map(|line| values_named(line, "charset"))
            .chain(in_body)
            .any(|charset| match charset.as_str() {
                "utf-8" | "utf8" | "unicode-1-1-utf-8" => false,
                other => !(writes_ascii_as_ascii(other) && self.body.is_ascii()),
            })
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
        let values: Vec<&str> = self.header_lines(name).collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// Each line of the response header `name` (lower case), as staging sent them.
    pub fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
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
    /// The expected side is a value written in the suite (not a type, a count, a file or a
    /// hash), so it may be the subject's value itself.
    pub fn compares_with_a_value(&self) -> bool {
        matches!(
            self,
            Op::Equals(_)
                | Op::NotEquals(_)
                | Op::Contains(_)
                | Op::NotContains(_)
                | Op::OneOf(_)
                | Op::Matches(_)
                | Op::Lt(_)
                | Op::Le(_)
                | Op::Gt(_)
                | Op::Ge(_)
        )
    }

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
        self.evaluate(observed, scope, &NoMask)
            .iter()
            .all(|a| a.passed)
    }

    /// Evaluates to one assertion per operator (a `length` table gives one per inner operator).
    /// The values the assertions show are masked: expected values are rendered with
    /// sensitive placeholders as `***`, and what staging sent goes through `mask` before it
    /// is cut to an excerpt.
    pub fn evaluate(
        &self,
        observed: &Observed,
        scope: &dyn Scope,
        mask: &dyn Mask,
    ) -> Vec<Assertion> {
        let subject = self.subject.label();
        let actual = match (&self.subject, &self.op) {
            // A schema on `body` applies to the parsed body, not to its text.
            (Subject::Body, Op::JsonSchema(_)) => observed
                .json()
                .map(|v| Some(v.clone()))
                .map_err(str::to_string),
            (subject, _) => observed.value_of(subject),
        };
        let ctx = Context {
            observed,
            scope,
            mask,
            // Headers and bodies are text: `equals = 42` means the text `42`.
            text_subject: matches!(self.subject, Subject::Header(_) | Subject::Body),
            body_subject: matches!(self.subject, Subject::Body),
            sensitive_subject: matches!(&self.subject, Subject::Header(name) if is_sensitive_header(name)),
        };
        match &self.op {
            Op::Length(inner) => inner
                .iter()
                .map(|op| {
                    let op = Op::Length(vec![op.clone()]);
                    evaluate_op(&subject, &op, &actual, &ctx)
                })
                .collect(),
            op => vec![evaluate_op(&subject, op, &actual, &ctx)],
        }
    }
}

/// What an evaluation needs besides the operator and the value.
struct Context<'a> {
    observed: &'a Observed,
    scope: &'a dyn Scope,
    mask: &'a dyn Mask,
    /// The subject is text (a header, the body), not a JSON value.
    text_subject: bool,
    /// The subject is the body, whose charset the `content-type` may name.
    body_subject: bool,
    /// The subject is a sensitive header (`set-cookie`, ...): no message quotes its value (a
    /// schema error is the only one that would), even with `--show-sensitive-headers`.
    sensitive_subject: bool,
}

fn evaluate_op(
    subject: &str,
    op: &Op,
    actual: &Result<Option<Value>, String>,
    ctx: &Context,
) -> Assertion {
    let (scope, mask) = (ctx.scope, ctx.mask);
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
            assertion.expected = shown_value(mask, &expected_for_report(op, scope), EXCERPT_CHARS);
            assertion.actual = Value::String(MISSING.into());
            assertion.message = Some(mask.mask_text(why));
            return assertion;
        }
    };
    match judge(op, actual, ctx) {
        Ok(Judgement {
            expected,
            actual: shown,
            passed,
            message,
        }) => {
            assertion.expected = shown_value(mask, &expected, EXCERPT_CHARS);
            assertion.actual = match shown {
                Some(value) => mask.mask_value(&value),
                None => shown_actual(mask, actual),
            };
            assertion.passed = passed;
            assertion.message = message.map(|m| mask.mask_text(&m));
        }
        Err(why) => {
            assertion.expected = shown_value(mask, &expected_for_report(op, scope), EXCERPT_CHARS);
            assertion.actual = shown_actual(mask, actual);
            assertion.message = Some(mask.mask_text(&why));
        }
    }
    assertion
}

/// A schema error about a sensitive header's value, without the value: jsonschema's masked
/// message, except where that quotes the part of the schema the value was compared with
/// (`const`, `enum`, `not`, a `pattern` and its regex engine's errors), which may be the value
/// itself.
fn masked_schema_error(error: &jsonschema::ValidationError) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    match error.kind() {
        Kind::Constant { .. }
        | Kind::Enum { .. }
        | Kind::Not { .. }
        | Kind::Pattern { .. }
        | Kind::RegexEngineFailure { .. }
        | Kind::BacktrackLimitExceeded { .. } => {
            format!("{MASK} fails the schema's `{}`", error.kind().keyword())
        }
        _ => error.masked_with(MASK).to_string(),
    }
}

struct Judgement {
    /// The expected value as it may be shown (sensitive placeholders as `***`).
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

/// The expected value as the report shows it (sensitive placeholders as `***`), even when
/// the judgement could not happen.
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
        | Op::OneOf(v) => v.render_shown(scope).map_or(Value::Null, |r| r.shown),
        Op::Matches(t) => t
            .render_shown(scope)
            .map_or(Value::Null, |r| Value::String(r.shown)),
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

/// The actual value as reports show it: masked, a long one cut to an excerpt.
fn shown_actual(mask: &dyn Mask, actual: Option<&Value>) -> Value {
    match actual {
        None => Value::String(MISSING.into()),
        Some(value) => shown_value(mask, value, EXCERPT_CHARS),
    }
}

/// How much of a body's start is searched for the charset it names: a browser reads a
/// `<meta charset>` anywhere in the head, past its first 1,024 bytes too.
const BODY_CHARSET_BYTES: usize = 64 * 1024;

/// Every value that follows a `name=` (`charset=`) in `text`, lower case and unquoted,
/// wherever it stands: in a parameter of its own, or inside another one's quotes.
fn values_named(text: &str, name: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    lower
        .match_indices(name)
        .filter_map(|(at, name)| {
            let value = lower[at + name.len()..].trim_start().strip_prefix('=')?;
            let value = value.trim_start().trim_start_matches(['"', '\'']);
            // The whole value, spaces and comments too: `utf-8 x` is no label of UTF-8 (a
            // browser reads it as its default, windows-1252), so it must not pass for one.
            let end = value
                .find([';', ',', '"', '\'', '>', '/'])
                .unwrap_or(value.len());
            Some(value[..end].trim().to_string())
        })
        .collect()
}

/// The charsets, besides UTF-8, in which text of ASCII letters is those same bytes: the
/// single-byte ones of ISO, Windows, KOI8 and the Mac, and the Asian multi-byte ones that keep
/// ASCII. Not EBCDIC, UTF-16 or -32, UTF-7, ISO-2022 or HZ; an unknown name is not one either.
fn writes_ascii_as_ascii(charset: &str) -> bool {
    const FAMILIES: [&str; 8] = [
        "iso-8859-",
        "iso8859-",
        "iso_8859-",
        "windows-125",
        "cp125",
        "koi8-",
        "latin",
        "x-mac-",
    ];
    const NAMES: [&str; 14] = [
        "us-ascii",
        "ascii",
        "macintosh",
        "shift_jis",
        "sjis",
        "windows-31j",
        "cp932",
        "euc-jp",
        "euc-kr",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "x-user-defined",
    ];
    FAMILIES.iter().any(|family| charset.starts_with(family)) || NAMES.contains(&charset)
}

/// Why `not_contains` and `not_equals` fail on a body whose `content-type` names a charset
/// that preflight does not read (see `Observed::body_in_unread_charset`). The name is not
/// quoted: it came from staging.
const UNREAD_CHARSET: &str = "the body's content-type, or its start, names a charset other than UTF-8, in which \
     its bytes may not read as what staging sent, so what it does not hold cannot be proven";

/// Why `not_contains` and `not_equals` fail on text that is not all UTF-8 text: `Accès` sent
/// in Latin-1 reads `Acc\u{fffd}s`, and `ERROR` in UTF-16 `E\0R\0R\0O\0R\0`, neither of which
/// holds what staging sent.
/// An escape (0x1B) is how ISO-2022-JP switches to Japanese written in ASCII letters.
const UNREADABLE_TEXT: &str = "the text holds characters that could not be read (U+FFFD, NUL or \
     ESC: bytes that are not UTF-8 text), so what it does not hold cannot be proven";
const UNREADABLE_CHARS: [char; 3] = [char::REPLACEMENT_CHARACTER, '\0', '\u{1b}'];

fn judge(op: &Op, actual: Option<&Value>, ctx: &Context) -> Result<Judgement, String> {
    let Some(actual) = actual else {
        // Only `exists = false` holds for a value that is not there.
        let passed = matches!(op, Op::Exists(false));
        return Ok(Judgement::plain(expected_for_report(op, ctx.scope), passed));
    };
    match op {
        Op::Exists(want) => Ok(Judgement::plain(json!(want), *want)),
        Op::NotEquals(_) | Op::NotContains(_)
            if ctx.text_subject
                && actual
                    .as_str()
                    .is_some_and(|t| t.contains(UNREADABLE_CHARS)) =>
        {
            Err(UNREADABLE_TEXT.into())
        }
        Op::NotEquals(_) | Op::NotContains(_)
            if ctx.body_subject && ctx.observed.body_in_unread_charset() =>
        {
            Err(UNREAD_CHARSET.into())
        }
        Op::Equals(_) | Op::NotEquals(_) | Op::OneOf(_) | Op::Contains(_) | Op::NotContains(_) => {
            judge_equality(op, actual, ctx)
        }
        Op::Matches(pattern) => judge_matches(pattern, actual, ctx),
        Op::Lt(v) | Op::Le(v) | Op::Gt(v) | Op::Ge(v) => {
            let expected = v.render_shown(ctx.scope)?;
            let want = number(&expected.value).ok_or("the expected value is not a number")?;
            let got = number(actual).ok_or("the value is not a number")?;
            // Not comparable (NaN) holds for none of them.
            let passed = got.compare(want).is_some_and(|order| match op {
                Op::Lt(_) => order.is_lt(),
                Op::Le(_) => order.is_le(),
                Op::Gt(_) => order.is_gt(),
                _ => order.is_ge(),
            });
            Ok(Judgement::plain(expected.shown, passed))
        }
        Op::Length(inner) => judge_length(inner, actual, ctx),
        Op::Type(t) => Ok(Judgement {
            expected: json!(t.name()),
            actual: Some(json!(JsonType::of(actual).name())),
            passed: JsonType::of(actual) == *t,
            message: None,
        }),
        Op::JsonSchema(schema) => {
            let errors: Vec<String> = schema
                .validator
                .iter_errors(actual)
                .take(3)
                .map(|e| {
                    let why = if ctx.sensitive_subject {
                        masked_schema_error(&e)
                    } else {
                        shown_schema_error(&e, ctx.mask)
                    };
                    // The error quotes the value, which may be the whole body.
                    let why = ctx.mask.mask_excerpt(&why, EXCERPT_CHARS);
                    let at = shown_pointer(&e.instance_path().to_string(), ctx.mask);
                    format!("{why} at `{at}`")
                })
                .collect();
            Ok(Judgement {
                expected: json!(schema.file),
                actual: None,
                passed: errors.is_empty(),
                message: (!errors.is_empty()).then(|| errors.join("; ")),
            })
        }
        Op::Sha256(hex) | Op::Sha256OfFile { hex, .. } => {
            let found = sha256_hex(&ctx.observed.body);
            Ok(Judgement {
                expected: json!(hex),
                passed: found.eq_ignore_ascii_case(hex),
                actual: Some(json!(found)),
                message: None,
            })
        }
        Op::StatusClass(class) => {
            let passed = actual
                .as_u64()
                .is_some_and(|s| s / 100 == u64::from(*class));
            Ok(Judgement::plain(json!(format!("{class}xx")), passed))
        }
    }
}

/// `equals`, `not_equals`, `one_of`, `contains`, `not_contains`: under the [`Equality`] of
/// the subject and the expected value's source.
fn judge_equality(op: &Op, actual: &Value, ctx: &Context) -> Result<Judgement, String> {
    let (Op::Equals(v) | Op::NotEquals(v) | Op::OneOf(v) | Op::Contains(v) | Op::NotContains(v)) =
        op
    else {
        return Err(format!("`{}` is not an equality", op.name()));
    };
    if matches!(op, Op::Contains(_) | Op::NotContains(_) | Op::NotEquals(_)) {
        weakened_by_an_empty_value(v.templates(), ctx.scope)?;
    }
    let expected = v.render_shown(ctx.scope)?;
    let equality = equality(ctx, v);
    let passed = match op {
        Op::Equals(_) => equality.holds(actual, &expected.value),
        Op::NotEquals(_) => !equality.holds(actual, &expected.value),
        Op::Contains(_) => contains(actual, &expected.value, equality)?,
        Op::NotContains(_) => !contains(actual, &expected.value, equality)?,
        _ => {
            let Value::Array(options) = &expected.value else {
                return Err("`one_of` needs an array".into());
            };
            // Each option has its own source: `["{{ env.A }}", 5]`.
            let templates: Vec<&TemplateValue> = match v {
                TemplateValue::Array(items) => items.iter().collect(),
                _ => Vec::new(),
            };
            options.iter().enumerate().any(|(i, option)| {
                let template = templates.get(i).copied().unwrap_or(v);
                self::equality(ctx, template).holds(actual, option)
            })
        }
    };
    Ok(Judgement::plain(expected.shown, passed))
}

fn judge_matches(pattern: &Template, actual: &Value, ctx: &Context) -> Result<Judgement, String> {
    weakened_by_an_empty_value([pattern], ctx.scope)?;
    let rendered = pattern.render_shown(ctx.scope)?;
    if rendered.value.trim().is_empty() {
        return Err(NOTHING_PROVEN.into());
    }
    let regex = Regex::new(&rendered.value).map_err(|e| {
        // The error quotes the pattern, line by line: not when it is compared with a sensitive
        // header's value, which it may be, nor when it holds a secret.
        if ctx.sensitive_subject {
            format!("invalid regex `{MASK}`")
        } else if rendered.value == rendered.shown {
            format!("invalid regex: {e}")
        } else {
            format!("invalid regex `{}`", rendered.shown)
        }
    })?;
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
    Ok(Judgement::plain(
        json!(rendered.shown),
        regex.is_match(&text),
    ))
}

/// `length`: the inner operator judges the length, a number.
fn judge_length(inner: &[Op], actual: &Value, ctx: &Context) -> Result<Judgement, String> {
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
    let numeric = Context {
        text_subject: false,
        body_subject: false,
        ..*ctx
    };
    let mut judged = judge(inner, Some(&len), &numeric)?;
    judged.actual = Some(len);
    Ok(judged)
}

/// Hex SHA-256 of bytes, as the lock file and `sha256` operators write it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How two values are compared by `equals`, `not_equals`, `one_of` and `contains`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Equality {
    /// JSON values with their types: `5` is not `"5"`, `true` is not `"true"`; numbers
    /// compare by value (`1` is `1.0`).
    Typed,
    /// Typed, except that the expected value came from a string source (`env.`, `secret.`,
    /// `--var`): the environment has only strings, so `"5"` equals the number `5`.
    FromText,
    /// The subject is text (a header, the body): the expected value is compared as text.
    Text,
}

/// The equality for an expected value written as `template`.
fn equality(ctx: &Context, template: &TemplateValue) -> Equality {
    let from_text = matches!(template, TemplateValue::String(t)
        if t.single_name().is_some_and(|name| ctx.scope.is_text_sourced(name)));
    match (ctx.text_subject, from_text) {
        (true, _) => Equality::Text,
        (false, true) => Equality::FromText,
        (false, false) => Equality::Typed,
    }
}

impl Equality {
    pub fn holds(self, actual: &Value, expected: &Value) -> bool {
        match (self, actual, expected) {
            (_, Value::Number(_), Value::Number(_)) => number(actual)
                .zip(number(expected))
                .and_then(|(a, e)| a.compare(e))
                .is_some_and(std::cmp::Ordering::is_eq),
            (Equality::Text, Value::String(a), _) => *a == value_to_text(expected),
            (Equality::FromText, Value::Number(_) | Value::Bool(_), Value::String(e)) => {
                e.as_str() == actual.to_string().as_str()
            }
            (_, Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Equality::Typed.holds(x, y))
            }
            (_, Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k).is_some_and(|w| Equality::Typed.holds(v, w)))
            }
            _ => actual == expected,
        }
    }
}

/// `contains`, `not_contains`, `not_equals` and `matches` hold for more values when a
/// placeholder of what they compare with is empty (`contains = "v{{ env.BUILD }}"` with
/// `BUILD=` holds for any `v`), a check weaker than the one written: they fail instead.
fn weakened_by_an_empty_value<'a>(
    templates: impl IntoIterator<Item = &'a Template>,
    scope: &dyn Scope,
) -> Result<(), String> {
    match templates
        .into_iter()
        .find_map(|t| t.empty_placeholder(scope))
    {
        Some(name) => Err(format!(
            "`{{{{ {name} }}}}` is empty (or blank, or null): the check would hold for more than it says"
        )),
        None => Ok(()),
    }
}

/// Why a `contains` or `matches` with an empty (or blank) text fails: every text holds it
/// (every one with a space).
const NOTHING_PROVEN: &str =
    "the expected text is empty (or blank): every value holds it, so the check would prove nothing";

/// Substring on strings, membership on arrays, key presence on objects.
fn contains(actual: &Value, expected: &Value, equality: Equality) -> Result<bool, String> {
    match actual {
        Value::String(s) => {
            let part = value_to_text(expected);
            if part.trim().is_empty() {
                return Err(NOTHING_PROVEN.into());
            }
            Ok(s.contains(&part))
        }
        Value::Array(items) => Ok(items.iter().any(|i| equality.holds(i, expected))),
        Value::Object(map) => Ok(expected.as_str().is_some_and(|k| map.contains_key(k))),
        other => Err(format!(
            "`contains` needs a string, array or object, found {}",
            JsonType::of(other).name()
        )),
    }
}

/// A number as written or sent: integers are kept exact, since above 2^53 two different
/// ones can be the same `f64` (`9007199254740993` is not `9007199254740992`).
#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(i128),
    Float(f64),
}

impl Number {
    /// Exact, also between an integer and a float; `None` when a float is NaN.
    fn compare(self, other: Number) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Number::Integer(a), Number::Integer(b)) => Some(a.cmp(&b)),
            (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b),
            (Number::Integer(i), Number::Float(f)) => compare_exact(i, f),
            (Number::Float(f), Number::Integer(i)) => compare_exact(i, f).map(|o| o.reverse()),
        }
    }
}

/// `i` against `f`, exactly: every float from 2^127 up is above every i128 (and from -2^127
/// down, except -2^127 itself, below); in between, a float with no fraction is an integer
/// (every float from 2^53 up is), and one with a fraction is below 2^53, where `i as f64`
/// orders it right.
fn compare_exact(i: i128, f: f64) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    // 2^127.
    const LIMIT: f64 = 1.7014118346046923e38;
    if f.is_nan() {
        None
    } else if f >= LIMIT {
        Some(Ordering::Less)
    } else if f < -LIMIT {
        Some(Ordering::Greater)
    } else if f.fract() == 0.0 {
        Some(i.cmp(&(f as i128)))
    } else {
        (i as f64).partial_cmp(&f)
    }
}

/// A number, or a string that is one (headers such as content-length).
fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Some(Number::Integer(i.into())),
            (_, Some(u)) => Some(Number::Integer(u.into())),
            _ => n.as_f64().map(Number::Float),
        },
        Value::String(s) => {
            let s = s.trim();
            // Text that only reads as a number to Rust (`inf`, `-Infinity`, `NaN`) is not one.
            s.parse::<i128>().map(Number::Integer).ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Number::Float)
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
