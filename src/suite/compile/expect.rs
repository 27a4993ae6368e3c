//! Expectations: status, latency, headers, body and JSONPath, each a subject and operators.

use super::source::{Source, one_line};
use super::{Compiler, Known};
use crate::check::{Expectation, JsonType, Op, SchemaFile, Subject};
use crate::problem::did_you_mean;
use crate::suite::raw::RawExpect;
use crate::template::TemplateValue;
use regex::Regex;
use serde_json::Value;
use sha2::Digest;
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;

pub const OPERATORS: [&str; 16] = [
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "matches",
    "exists",
    "lt",
    "le",
    "gt",
    "ge",
    "length",
    "one_of",
    "type",
    "json_schema",
    "sha256",
    "sha256_of_file",
];

impl Compiler<'_> {
    pub(super) fn expect(
        &mut self,
        src: &mut Source,
        raw: Option<&RawExpect>,
        known: &Known,
    ) -> Vec<Expectation> {
        let mut out = Vec::new();
        let status = raw.and_then(|e| e.status.as_ref());
        out.push(Expectation {
            subject: Subject::Status,
            op: match status {
                None => Op::StatusClass(2),
                Some(s) => status_op(src, s),
            },
        });
        let Some(raw) = raw else { return out };
        if let Some(latency) = &raw.max_latency
            && let Some(d) = src.duration(latency)
        {
            out.push(Expectation {
                subject: Subject::Latency,
                op: Op::Le(TemplateValue::Number((d.as_millis() as u64).into())),
            });
        }
        for (name, value) in raw.headers.iter().flatten() {
            let subject = Subject::Header(name.to_ascii_lowercase());
            self.ops(src, subject, value, known, false, &mut out);
        }
        if let Some(body) = &raw.body {
            self.ops(src, Subject::Body, body, known, true, &mut out);
        }
        for (path, value) in raw.json.iter().flatten() {
            match self.json_queries.parse(path.get_ref()) {
                Ok(query) => self.ops(src, Subject::Json(query), value, known, false, &mut out),
                Err(e) => src.error(path.span(), format!("{e} in `{}`", path.get_ref())),
            }
        }
        out
    }

    /// A plain value means `equals`; a table is always an operator table.
    pub(super) fn ops(
        &mut self,
        src: &mut Source,
        subject: Subject,
        value: &Spanned<toml::Value>,
        known: &Known,
        on_body: bool,
        out: &mut Vec<Expectation>,
    ) {
        let span = value.span();
        let toml::Value::Table(table) = value.get_ref() else {
            let expected = self.expected_value(src, value.get_ref(), &span, known);
            out.push(Expectation {
                subject,
                op: Op::Equals(expected),
            });
            return;
        };
        if table.is_empty() {
            src.error(
                span.clone(),
                "empty operator table: name at least one operator",
            );
        }
        for (key, arg) in table {
            let operator = Operator {
                key,
                arg,
                at: src.find_in(&span, key),
                table: &span,
                known,
                on_body,
            };
            if let Some(op) = self.op(src, &operator) {
                out.push(Expectation {
                    subject: subject.clone(),
                    op,
                });
            }
        }
    }

    pub(super) fn expected_value(
        &mut self,
        src: &mut Source,
        value: &toml::Value,
        span: &Range<usize>,
        known: &Known,
    ) -> TemplateValue {
        let v = src.template_value(value, span);
        for t in v.templates() {
            self.resolve(src, t, span, known);
        }
        v
    }

    /// One operator of a table; `None` when it is not usable (a problem is recorded).
    fn op(&mut self, src: &mut Source, o: &Operator) -> Option<Op> {
        Some(match o.key {
            "equals" | "not_equals" | "contains" | "not_contains" | "one_of" => {
                self.value_op(src, o)
            }
            "lt" | "le" | "gt" | "ge" => self.number_op(src, o),
            "matches" => self.matches_op(src, o)?,
            "exists" => match o.arg.as_bool() {
                Some(b) => Op::Exists(b),
                None => {
                    src.error(o.at.clone(), "`exists` takes true or false");
                    return None;
                }
            },
            "length" => self.length_op(src, o)?,
            "type" => type_op(src, o)?,
            "json_schema" => self.schema_op(src, o)?,
            "sha256" | "sha256_of_file" if !o.on_body => {
                src.error(o.at.clone(), format!("`{}` applies only to `body`", o.key));
                return None;
            }
            "sha256" => sha256_op(src, o)?,
            "sha256_of_file" => {
                let file = file_arg(src, o)?;
                let hex = src.hash_file(&self.dir, &file)?;
                Op::Sha256OfFile {
                    file: file.into_inner(),
                    hex,
                }
            }
            unknown => {
                let hint = did_you_mean(unknown, OPERATORS)
                    .or_else(|| Some(format!("operators: {}", OPERATORS.join(", "))));
                src.error_hint(o.at.clone(), format!("unknown operator `{unknown}`"), hint);
                return None;
            }
        })
    }

    /// `equals`, `not_equals`, `contains`, `not_contains`, `one_of`: an expected value.
    fn value_op(&mut self, src: &mut Source, o: &Operator) -> Op {
        let v = self.expected_value(src, o.arg, o.table, o.known);
        match o.key {
            "equals" => Op::Equals(v),
            "not_equals" => Op::NotEquals(v),
            "contains" => Op::Contains(v),
            "not_contains" => Op::NotContains(v),
            _ => {
                if !matches!(v, TemplateValue::Array(_)) {
                    src.error(o.at.clone(), "`one_of` takes an array of values");
                }
                Op::OneOf(v)
            }
        }
    }

    /// `lt`, `le`, `gt`, `ge`: a number, or a placeholder that will be one.
    fn number_op(&mut self, src: &mut Source, o: &Operator) -> Op {
        let v = self.expected_value(src, o.arg, o.table, o.known);
        let number_like = matches!(v, TemplateValue::Number(_))
            || matches!(&v, TemplateValue::String(t) if t.as_literal().is_none());
        if !number_like {
            src.error(o.at.clone(), format!("`{}` takes a number", o.key));
        }
        match o.key {
            "lt" => Op::Lt(v),
            "le" => Op::Le(v),
            "gt" => Op::Gt(v),
            _ => Op::Ge(v),
        }
    }

    /// `matches`: a regex, checked now when it has no placeholder.
    fn matches_op(&mut self, src: &mut Source, o: &Operator) -> Option<Op> {
        let Some(text) = o.arg.as_str() else {
            src.error(o.at.clone(), "`matches` takes a regex string");
            return None;
        };
        let t = src.template(text, o.table);
        self.resolve(src, &t, o.table, o.known);
        if let Some(literal) = t.as_literal()
            && let Err(e) = Regex::new(literal)
        {
            let message = format!("invalid regex: {}", one_line(&e.to_string()));
            src.error(o.at.clone(), message);
        }
        Some(Op::Matches(t))
    }

    /// `length`: a count, or a table of numeric operators on it.
    fn length_op(&mut self, src: &mut Source, o: &Operator) -> Option<Op> {
        match o.arg {
            toml::Value::Integer(n) if *n >= 0 => Some(Op::Length(vec![Op::Equals(
                TemplateValue::Number((*n).into()),
            )])),
            toml::Value::Table(inner) if !inner.is_empty() => {
                let mut ops = Vec::new();
                for (key, arg) in inner {
                    if !LENGTH_OPERATORS.contains(&key.as_str()) {
                        let at = src.find_in(o.table, key);
                        src.error(at, format!("`length` takes numeric operators (equals, lt, le, gt, ge, one_of), not `{key}`"));
                        continue;
                    }
                    ops.extend(self.op(
                        src,
                        &Operator {
                            key,
                            arg,
                            ..o.clone()
                        },
                    ));
                }
                Some(Op::Length(ops))
            }
            _ => {
                src.error(
                    o.at.clone(),
                    "`length` takes a non-negative integer or a table like { ge = 1 }",
                );
                None
            }
        }
    }

    /// `json_schema`: a JSON Schema file, compiled now.
    fn schema_op(&mut self, src: &mut Source, o: &Operator) -> Option<Op> {
        let file = file_arg(src, o)?;
        let bytes = src.read_file(&self.dir, &file)?;
        let schema: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                src.error(
                    o.at.clone(),
                    format!("`{}` is not JSON: {e}", file.get_ref()),
                );
                return None;
            }
        };
        match jsonschema::validator_for(&schema) {
            Ok(validator) => Some(Op::JsonSchema(SchemaFile {
                file: file.into_inner(),
                validator: Arc::new(validator),
                sha256: sha2::Sha256::digest(&bytes).into(),
            })),
            Err(e) => {
                let message = format!("`{}` is not a valid JSON Schema: {e}", file.get_ref());
                src.error(o.at.clone(), message);
                None
            }
        }
    }
}

/// The operators `length` takes.
const LENGTH_OPERATORS: [&str; 7] = ["equals", "not_equals", "lt", "le", "gt", "ge", "one_of"];

/// One operator of an operator table and where it is written.
#[derive(Clone)]
struct Operator<'a> {
    key: &'a str,
    arg: &'a toml::Value,
    /// The operator's key: where its own problems point.
    at: Range<usize>,
    /// The whole table: its placeholders are looked for in it.
    table: &'a Range<usize>,
    known: &'a Known,
    /// `sha256` and `sha256_of_file` apply to the body only.
    on_body: bool,
}

fn type_op(src: &mut Source, o: &Operator) -> Option<Op> {
    match o.arg.as_str().and_then(JsonType::parse) {
        Some(t) => Some(Op::Type(t)),
        None => {
            let hint = o
                .arg
                .as_str()
                .and_then(|s| did_you_mean(s, JsonType::NAMES));
            let message = format!("`type` must be one of {}", JsonType::NAMES.join(", "));
            src.error_hint(o.at.clone(), message, hint);
            None
        }
    }
}

fn sha256_op(src: &mut Source, o: &Operator) -> Option<Op> {
    match o.arg.as_str() {
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(Op::Sha256(hex.to_ascii_lowercase()))
        }
        _ => {
            src.error(o.at.clone(), "`sha256` takes 64 hex digits");
            None
        }
    }
}

pub(super) fn status_op(src: &mut Source, status: &Spanned<toml::Value>) -> Op {
    let valid = |n: i64| (100..=599).contains(&n);
    match status.get_ref() {
        toml::Value::Integer(n) if valid(*n) => Op::Equals(TemplateValue::Number((*n).into())),
        toml::Value::Array(items)
            if !items.is_empty() && items.iter().all(|i| i.as_integer().is_some_and(valid)) =>
        {
            Op::OneOf(TemplateValue::Array(
                items
                    .iter()
                    .map(|i| TemplateValue::Number(i.as_integer().unwrap_or(0).into()))
                    .collect(),
            ))
        }
        toml::Value::String(s)
            // "2XX" too: OpenAPI writes status classes in upper case.
            // Bytes, not a slice of the string: its first character may be several bytes.
            if s.len() == 3
                && s.as_bytes()[1..].eq_ignore_ascii_case(b"xx")
                && matches!(s.as_bytes()[0], b'1'..=b'5') =>
        {
            Op::StatusClass(u16::from(s.as_bytes()[0] - b'0'))
        }
        _ => {
            src.error(
                status.span(),
                "`status` is an integer (201), a list ([200, 201]) or a class (\"2xx\")",
            );
            Op::StatusClass(2)
        }
    }
}

/// A file path operand, located at the operator.
fn file_arg(src: &mut Source, o: &Operator) -> Option<Spanned<String>> {
    match o.arg.as_str() {
        Some(path) => Some(Spanned::new(o.at.clone(), path.to_string())),
        None => {
            src.error(o.at.clone(), format!("`{}` takes a file path", o.key));
            None
        }
    }
}
