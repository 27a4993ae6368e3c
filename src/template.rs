//! `{{ name }}` templates: parsing, the names they use, and rendering against a scope.
//!
//! Parsing happens once at load time so that every name can be checked before any request;
//! rendering is pure and takes whatever resolves names (the engine's flow scope, or a map).

use serde_json::Value;
use std::ops::Range;

/// A parsed template string: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Boxed, not a `Vec`: a plan holds every template of a suite for the whole run.
    parts: Box<[Part]>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(Box<str>),
    Name {
        name: Box<str>,
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

    /// Whether the value of `name` must never be shown (`secret.` names, secret captures):
    /// shown forms write `***` in its place.
    fn is_sensitive(&self, _name: &str) -> bool {
        false
    }

    /// Whether `name` resolves to a value that can only be a string (`env.`, `secret.`,
    /// `--var`): such an expected value may equal a number or boolean written as that text.
    fn is_text_sourced(&self, _name: &str) -> bool {
        false
    }
}

/// A rendered value and the form of it that may be shown: the same text with every
/// sensitive placeholder written as `***`. Both come from one lookup per placeholder, so
/// `{{ uuid }}` shows the value that was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered<T> {
    pub value: T,
    pub shown: T,
}

/// Where in a URL a template is written; placeholder values are encoded for the part of
/// the URL they land in (see [`crate::urlencode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlTemplate {
    /// `path`: appended to the base URL.
    Path,
    /// `url`: a whole URL; a placeholder in its scheme or authority is written as it is.
    Url,
}

/// The part of a URL a placeholder lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Authority,
    /// Before the `@` of the authority: a user name or password.
    Userinfo,
    Path,
    Query,
}

/// Where `text` first holds `byte` twice in a row (`{{` or `}}`), as `str::find` would say.
/// `find` with a two-letter pattern builds a substring searcher each time: about a tenth of
/// the compile's instructions for templates that are mostly short paths and values.
pub(crate) fn find_doubled(text: &str, byte: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = bytes[from..]
        .iter()
        .position(|&b| b == byte)
        .map(|i| from + i)
    {
        if bytes.get(at + 1) == Some(&byte) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = 0;
        while let Some(open) = find_doubled(&source[rest..], b'{').map(|i| rest + i) {
            if open > rest {
                parts.push(Part::Text(source[rest..open].into()));
            }
            let inner_start = open + 2;
            let Some(close) = find_doubled(&source[inner_start..], b'}').map(|i| inner_start + i)
            else {
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
                name: name.into(),
                span,
            });
            rest = close + 2;
        }
        if rest < source.len() || parts.is_empty() {
            parts.push(Part::Text(source[rest..].into()));
        }
        Ok(Template {
            parts: parts.into_boxed_slice(),
        })
    }

    /// A template with no placeholders.
    pub fn literal(text: impl Into<String>) -> Template {
        Template {
            parts: Box::new([Part::Text(text.into().into_boxed_str())]),
        }
    }

    /// Every placeholder name with its byte range inside the source.
    pub fn names(&self) -> impl Iterator<Item = (&str, Range<usize>)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Name { name, span } => Some((&**name, span.clone())),
            Part::Text(_) => None,
        })
    }

    /// The name, when the template is exactly one placeholder.
    pub fn single_name(&self) -> Option<&str> {
        match &*self.parts {
            [Part::Name { name, .. }] => Some(name),
            _ => None,
        }
    }

    /// The text itself when the template has no placeholders.
    pub fn as_literal(&self) -> Option<&str> {
        match &*self.parts {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Renders as text; values that are not strings are written as JSON.
    pub fn render(&self, scope: &dyn Scope) -> Result<String, String> {
        self.render_parts(scope, None).map(|r| r.value)
    }

    /// Renders as text, with the form that may be shown.
    pub fn render_shown(&self, scope: &dyn Scope) -> Result<Rendered<String>, String> {
        self.render_parts(scope, None)
    }

    /// Renders a URL or path: a value in the path is one percent-encoded segment (`/`, `?`,
    /// `#`, `%` cannot change the target, `.` and `..` are refused), a value in the query one
    /// form value; a value in the scheme or authority of a `url`, or a placeholder that is
    /// the whole `url`, is written as it is.
    pub fn render_url(
        &self,
        scope: &dyn Scope,
        kind: UrlTemplate,
    ) -> Result<Rendered<String>, String> {
        self.render_parts(scope, Some(kind))
    }

    /// The first placeholder that has no value to speak of in `scope` (see [`is_no_value`]).
    pub fn empty_placeholder(&self, scope: &dyn Scope) -> Option<&str> {
        self.names()
            .map(|(name, _)| name)
            .find(|name| scope.lookup(name).is_some_and(|v| is_no_value(&v)))
    }

    /// Whether any placeholder of the template is sensitive in `scope`.
    pub fn is_sensitive(&self, scope: &dyn Scope) -> bool {
        self.names().any(|(name, _)| scope.is_sensitive(name))
    }

    fn render_parts(
        &self,
        scope: &dyn Scope,
        url: Option<UrlTemplate>,
    ) -> Result<Rendered<String>, String> {
        let parts = url.map(|kind| self.url_parts(kind));
        let mut value = String::new();
        let mut shown = String::new();
        let mut placeholder = 0;
        for part in &self.parts {
            match part {
                Part::Text(t) => {
                    value.push_str(t);
                    shown.push_str(t);
                }
                Part::Name { name, .. } => {
                    let resolved = resolve(scope, name)?;
                    let text = value_to_text(&resolved);
                    let encoded = match parts.as_ref().map(|p| p[placeholder]) {
                        Some(UrlPart::Path) => {
                            if let Some(what) = not_a_segment(&resolved, &text) {
                                return Err(format!(
                                    "`{{{{ {name} }}}}` is {what}, which would change the request path"
                                ));
                            }
                            crate::urlencode::encode_segment(&text)
                        }
                        Some(UrlPart::Query) => crate::urlencode::encode_query_value(&text),
                        Some(UrlPart::Userinfo) => crate::urlencode::encode_userinfo(&text),
                        Some(UrlPart::Authority) | None => text,
                    };
                    placeholder += 1;
                    if scope.is_sensitive(name) {
                        shown.push_str(crate::redact::MASK);
                    } else {
                        shown.push_str(&encoded);
                    }
                    value.push_str(&encoded);
                }
            }
        }
        Ok(Rendered { value, shown })
    }

    /// The part of the URL each placeholder lands in, judged from the literal text around
    /// it (values cannot move a placeholder to another part).
    fn url_parts(&self, kind: UrlTemplate) -> Vec<UrlPart> {
        let whole_url = kind == UrlTemplate::Url && matches!(&*self.parts, [Part::Name { .. }]);
        let mut part = match kind {
            UrlTemplate::Path => UrlPart::Path,
            UrlTemplate::Url => UrlPart::Authority,
        };
        // In a `url`, the authority ends at the first `/` after `scheme://`, or at the first
        // `/` when the scheme comes from a placeholder (`{{ base }}/items`).
        let mut slashes_to_skip = 0;
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Name { .. } => out.push(if whole_url { UrlPart::Authority } else { part }),
                Part::Text(text) => {
                    let mut rest = &**text;
                    while let Some(c) = rest.chars().next() {
                        if part == UrlPart::Authority && rest.starts_with("://") {
                            rest = &rest[1..];
                            slashes_to_skip = 2;
                            continue;
                        }
                        match (part, c) {
                            (UrlPart::Authority, '/') if slashes_to_skip > 0 => {
                                slashes_to_skip -= 1
                            }
                            (UrlPart::Authority, '/') => part = UrlPart::Path,
                            (UrlPart::Authority | UrlPart::Path, '?') => part = UrlPart::Query,
                            // A fragment is never sent; treat it like a path.
                            (_, '#') => part = UrlPart::Path,
                            _ => {}
                        }
                        rest = &rest[c.len_utf8()..];
                    }
                }
            }
        }
        // A placeholder in the authority followed by `@` there is part of the userinfo.
        let names: Vec<usize> = (0..self.parts.len())
            .filter(|&i| matches!(self.parts[i], Part::Name { .. }))
            .collect();
        for (n, &at) in names.iter().enumerate() {
            if out[n] == UrlPart::Authority && !whole_url && self.userinfo_follows(at) {
                out[n] = UrlPart::Userinfo;
            }
        }
        out
    }

    /// Whether the literal text after part `at` reaches an `@` before the authority ends.
    fn userinfo_follows(&self, at: usize) -> bool {
        for part in &self.parts[at + 1..] {
            if let Part::Text(text) = part {
                for c in text.chars() {
                    match c {
                        '@' => return true,
                        '/' | '?' | '#' => return false,
                        _ => {}
                    }
                }
            }
        }
        false
    }

    /// Renders keeping the value's own type when the template is exactly one placeholder
    /// (`"{{ qty }}"` with a number gives a number); otherwise a string.
    pub fn render_typed(&self, scope: &dyn Scope) -> Result<Value, String> {
        self.render_typed_shown(scope).map(|r| r.value)
    }

    /// [`Template::render_typed`], with the form that may be shown.
    pub fn render_typed_shown(&self, scope: &dyn Scope) -> Result<Rendered<Value>, String> {
        match &*self.parts {
            [Part::Name { name, .. }] => {
                let value = resolve(scope, name)?;
                let shown = if scope.is_sensitive(name) {
                    Value::String(crate::redact::MASK.into())
                } else {
                    value.clone()
                };
                Ok(Rendered { value, shown })
            }
            _ => self.render_shown(scope).map(|r| Rendered {
                value: Value::String(r.value),
                shown: Value::String(r.shown),
            }),
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

/// Why a value cannot be a path segment, if it cannot: `.` and `..` name another resource, and
/// no value (empty, blank, a JSON null) none: `/carts/{{ id }}` would become `/carts/`, the
/// collection, where a cleanup's DELETE would go, or `/carts/null`.
fn not_a_segment(value: &Value, text: &str) -> Option<&'static str> {
    match text {
        _ if value.is_null() => Some("null"),
        "" => Some("empty"),
        "." => Some("`.`"),
        ".." => Some("`..`"),
        _ if is_no_value(value) => Some("blank"),
        _ => None,
    }
}

/// A value that stands for none: empty or blank text, or a JSON `null` (written `null`).
pub fn is_no_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
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
        self.render_shown(scope).map(|r| r.value)
    }

    /// Renders, with the form that may be shown (sensitive values as `"***"`).
    pub fn render_shown(&self, scope: &dyn Scope) -> Result<Rendered<Value>, String> {
        let same = |v: Value| Rendered {
            shown: v.clone(),
            value: v,
        };
        Ok(match self {
            TemplateValue::Null => same(Value::Null),
            TemplateValue::Bool(b) => same(Value::Bool(*b)),
            TemplateValue::Number(n) => same(Value::Number(n.clone())),
            TemplateValue::String(t) => t.render_typed_shown(scope)?,
            TemplateValue::Array(items) => {
                let (value, shown) = items
                    .iter()
                    .map(|v| v.render_shown(scope).map(|r| (r.value, r.shown)))
                    .collect::<Result<(Vec<_>, Vec<_>), _>>()?;
                Rendered {
                    value: Value::Array(value),
                    shown: Value::Array(shown),
                }
            }
            TemplateValue::Object(fields) => {
                let mut value = serde_json::Map::new();
                let mut shown = serde_json::Map::new();
                for (k, v) in fields {
                    let r = v.render_shown(scope)?;
                    value.insert(k.clone(), r.value);
                    shown.insert(k.clone(), r.shown);
                }
                Rendered {
                    value: Value::Object(value),
                    shown: Value::Object(shown),
                }
            }
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

    #[test]
    fn find_doubled_finds_what_str_find_finds() {
        let texts = [
            "",
            "{",
            "}",
            "{{",
            "}}",
            "a{b}c",
            "{ {",
            "{{{",
            "}}}",
            "x{{y}}z",
            "é{{ n }}ü",
            "{a{{b",
            "a}b}}c}}",
            "/api/{{ cart }}/items/{{ id }}",
            "{{}",
            "{}{}{{",
        ];
        for text in texts {
            assert_eq!(find_doubled(text, b'{'), text.find("{{"), "{{ in {text:?}");
            assert_eq!(find_doubled(text, b'}'), text.find("}}"), "}} in {text:?}");
        }
    }

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
    fn url_values_are_encoded_for_the_part_they_land_in() {
        let scope: HashMap<&str, Value> = HashMap::from([
            ("id", json!("a#frag/../b?c")),
            ("q", json!("x&y=1 2")),
            ("pw", json!("p@ss/w:rd")),
            ("base", json!("http://127.0.0.1:9/api")),
            ("dots", json!("..")),
        ]);
        let path = Template::parse("/items/{{ id }}?q={{ q }}").unwrap();
        let r = path.render_url(&scope, UrlTemplate::Path).unwrap();
        assert_eq!(r.value, "/items/a%23frag%2F..%2Fb%3Fc?q=x%26y%3D1+2");
        let url = Template::parse("http://u:{{ pw }}@127.0.0.1/{{ id }}").unwrap();
        let r = url.render_url(&scope, UrlTemplate::Url).unwrap();
        assert_eq!(
            r.value,
            "http://u:p%40ss%2Fw%3Ard@127.0.0.1/a%23frag%2F..%2Fb%3Fc"
        );
        let based = Template::parse("{{ base }}/x/{{ id }}").unwrap();
        let r = based.render_url(&scope, UrlTemplate::Url).unwrap();
        assert_eq!(r.value, "http://127.0.0.1:9/api/x/a%23frag%2F..%2Fb%3Fc");
        let whole = Template::parse("{{ base }}").unwrap();
        let r = whole.render_url(&scope, UrlTemplate::Url).unwrap();
        assert_eq!(r.value, "http://127.0.0.1:9/api");
        let dots = Template::parse("/a/{{ dots }}/b").unwrap();
        assert!(
            dots.render_url(&scope, UrlTemplate::Path)
                .unwrap_err()
                .contains("`..`")
        );
    }

    #[test]
    fn shown_forms_write_sensitive_values_as_a_mask() {
        struct Secretive;
        impl Scope for Secretive {
            fn lookup(&self, name: &str) -> Option<Value> {
                Some(json!(format!("value-of-{name}")))
            }
            fn is_sensitive(&self, name: &str) -> bool {
                name.starts_with("secret.")
            }
        }
        let t = Template::parse("/x/{{ secret.K }}/{{ id }}").unwrap();
        let r = t.render_url(&Secretive, UrlTemplate::Path).unwrap();
        assert_eq!(r.value, "/x/value-of-secret.K/value-of-id");
        assert_eq!(r.shown, "/x/***/value-of-id");
        let typed = Template::parse("{{ secret.K }}").unwrap();
        assert_eq!(
            typed.render_typed_shown(&Secretive).unwrap().shown,
            json!("***")
        );
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
