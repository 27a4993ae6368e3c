//! `{{ name }}` templates: parsing, the names they use, and rendering against a scope.
//!
//! Parsing happens once at load time so that every name can be checked before any request;
//! rendering is pure and takes whatever resolves names (the engine's flow scope, or a map).

use serde_json::Value;
use std::ops::Range;

/// A parsed template string: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Name {
        name: String,
        /// Byte range of the name inside the template source, for error locations.
        span: Range<usize>,
    },
}

/// A malformed template, with the byte range (inside the template) that is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    pub span: Range<usize>,
}

/// Resolves placeholder names to values.
pub trait Scope {
    fn lookup(&self, name: &str) -> Option<Value>;
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = 0;
        while let Some(open) = source[rest..].find("{{").map(|i| rest + i) {
            if open > rest {
                parts.push(Part::Text(source[rest..open].to_string()));
            }
            let inner_start = open + 2;
            let Some(close) = source[inner_start..].find("}}").map(|i| inner_start + i) else {
                return Err(TemplateError {
                    message: "unclosed `{{`: a placeholder ends with `}}`".into(),
                    span: open..source.len(),
                });
            };
            let inner = &source[inner_start..close];
            let name = inner.trim();
            let name_start = inner_start + (inner.len() - inner.trim_start().len());
            let span = name_start..name_start + name.len();
            if name.is_empty() {
                return Err(TemplateError {
                    message: "empty placeholder `{{ }}`".into(),
                    span: open..close + 2,
                });
            }
            if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
                return Err(TemplateError {
                    message: format!(
                        "invalid character {bad:?} in placeholder `{name}`: names use letters, digits, `_`, `-` and `.`"
                    ),
                    span,
                });
            }
            parts.push(Part::Name {
                name: name.to_string(),
                span,
            });
            rest = close + 2;
        }
        if rest < source.len() || parts.is_empty() {
            parts.push(Part::Text(source[rest..].to_string()));
        }
        Ok(Template { parts })
    }

    /// A template with no placeholders.
    pub fn literal(text: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Text(text.into())],
        }
    }

    /// Every placeholder name with its byte range inside the source.
    pub fn names(&self) -> impl Iterator<Item = (&str, Range<usize>)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Name { name, span } => Some((name.as_str(), span.clone())),
            Part::Text(_) => None,
        })
    }

    /// The text itself when the template has no placeholders.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Renders as text; values that are not strings are written as JSON.
    pub fn render(&self, scope: &dyn Scope) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Name { name, .. } => out.push_str(&value_to_text(&resolve(scope, name)?)),
            }
        }
        Ok(out)
    }

    /// Renders keeping the value's own type when the template is exactly one placeholder
    /// (`"{{ qty }}"` with a number gives a number); otherwise a string.
    pub fn render_typed(&self, scope: &dyn Scope) -> Result<Value, String> {
        match self.parts.as_slice() {
            [Part::Name { name, .. }] => resolve(scope, name),
            _ => self.render(scope).map(Value::String),
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn resolve(scope: &dyn Scope, name: &str) -> Result<Value, String> {
    scope
        .lookup(name)
        .ok_or_else(|| format!("`{{{{ {name} }}}}` has no value"))
}

/// How a value is written into text: strings as they are, everything else as JSON.
pub fn value_to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON-like value whose strings are templates: request `json` bodies and expected values.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<TemplateValue>),
    Object(Vec<(String, TemplateValue)>),
}

impl TemplateValue {
    pub fn render(&self, scope: &dyn Scope) -> Result<Value, String> {
        Ok(match self {
            TemplateValue::Null => Value::Null,
            TemplateValue::Bool(b) => Value::Bool(*b),
            TemplateValue::Number(n) => Value::Number(n.clone()),
            TemplateValue::String(t) => t.render_typed(scope)?,
            TemplateValue::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| v.render(scope))
                    .collect::<Result<_, _>>()?,
            ),
            TemplateValue::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(scope)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// Every template string inside, depth first.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        self.collect_templates(&mut out);
        out
    }

    fn collect_templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            TemplateValue::String(t) => out.push(t),
            TemplateValue::Array(items) => items.iter().for_each(|v| v.collect_templates(out)),
            TemplateValue::Object(fields) => {
                fields.iter().for_each(|(_, v)| v.collect_templates(out))
            }
            _ => {}
        }
    }

    /// The value when it holds no placeholder at all.
    pub fn as_literal(&self) -> Option<Value> {
        struct Empty;
        impl Scope for Empty {
            fn lookup(&self, _: &str) -> Option<Value> {
                None
            }
        }
        self.render(&Empty).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    impl Scope for HashMap<&str, Value> {
        fn lookup(&self, name: &str) -> Option<Value> {
            self.get(name).cloned()
        }
    }

    #[test]
    fn parses_text_and_names() {
        let t = Template::parse("/api/carts/{{ cart_id }}/items?x={{secret.TOKEN}}").unwrap();
        let names: Vec<_> = t.names().map(|(n, _)| n).collect();
        assert_eq!(names, ["cart_id", "secret.TOKEN"]);
        let (_, span) = t.names().next().unwrap();
        assert_eq!(&"/api/carts/{{ cart_id }}/items"[span], "cart_id");
    }

    #[test]
    fn rejects_unclosed_and_empty_and_bad_names() {
        assert!(
            Template::parse("a {{ b")
                .unwrap_err()
                .message
                .contains("unclosed")
        );
        assert!(
            Template::parse("{{ }}")
                .unwrap_err()
                .message
                .contains("empty")
        );
        assert!(
            Template::parse("{{ a b }}")
                .unwrap_err()
                .message
                .contains("invalid character")
        );
    }

    #[test]
    fn renders_text_and_keeps_types_for_single_placeholders() {
        let scope: HashMap<&str, Value> = HashMap::from([("qty", json!(2)), ("sku", json!("A-1"))]);
        let t = Template::parse("{{ qty }}").unwrap();
        assert_eq!(t.render_typed(&scope).unwrap(), json!(2));
        let t = Template::parse("n={{ qty }} {{ sku }}").unwrap();
        assert_eq!(t.render_typed(&scope).unwrap(), json!("n=2 A-1"));
        let missing = Template::parse("{{ nope }}").unwrap().render(&scope);
        assert!(missing.unwrap_err().contains("nope"));
    }

    #[test]
    fn literal_text_without_placeholders() {
        assert_eq!(
            Template::parse("plain").unwrap().as_literal(),
            Some("plain")
        );
        assert_eq!(Template::parse("").unwrap().as_literal(), Some(""));
        assert_eq!(Template::parse("{{ a }}").unwrap().as_literal(), None);
    }
}
