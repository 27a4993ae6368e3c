//! The one place values are made safe to show: secrets become `***`.
//!
//! Every report (terminal, JSON, JUnit, Markdown) is rendered from one document that passes
//! through [`Redactor::redact_json`] first, so no output path can forget a field.

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// What the URL standard percent-encodes in a path (and, but for `?`/`{`/`}`, a query).
const URL_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');
use std::sync::RwLock;

pub const MASK: &str = "***";
/// How excerpts mark a cut (see `check::excerpt`).
const ELLIPSIS: &str = "…";

/// Header names whose values are shown as `***` unless `--show-sensitive-headers`.
pub const SENSITIVE_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// Knows every secret value of the run: `secret.` variables and secret captures.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Each secret in the forms it can take in output (raw, URL-encoded, JSON-escaped),
    /// longest first so that a secret containing another is replaced whole.
    forms: RwLock<Vec<String>>,
}

impl Redactor {
    pub fn new(secrets: &[String]) -> Redactor {
        let redactor = Redactor::default();
        secrets.iter().for_each(|s| redactor.add(s));
        redactor
    }

    /// Adds a secret learned during the run (a `secret = true` capture).
    pub fn add(&self, secret: &str) {
        // One-character secrets would mask every occurrence of that character; still hide them.
        if secret.is_empty() {
            return;
        }
        let json = serde_json::to_string(secret).unwrap_or_default();
        let candidates = [
            secret.to_string(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            utf8_percent_encode(secret, URL_PATH).to_string(),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            json.get(1..json.len().saturating_sub(1))
                .unwrap_or_default()
                .to_string(),
            secret.replace(' ', "%20"),
        ];
        let mut forms = self.forms.write().unwrap_or_else(|e| e.into_inner());
        for form in candidates {
            if !form.is_empty() && !forms.contains(&form) {
                forms.push(form);
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// No secret known: nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.forms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub fn redact(&self, text: &str) -> String {
        let forms = self.forms.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for form in forms.iter() {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), MASK);
            }
        }
        // An excerpt (`…` at the end) may have cut a secret in two: hide the part it kept.
        if let Some(kept) = out.strip_suffix(ELLIPSIS) {
            let cut = forms
                .iter()
                .flat_map(|form| form.char_indices().skip(1).map(move |(i, _)| &form[..i]))
                .filter(|prefix| kept.ends_with(prefix))
                .map(str::len)
                .max();
            if let Some(len) = cut {
                out = format!("{}{MASK}{ELLIPSIS}", &kept[..kept.len() - len]);
            }
        }
        out
    }

    /// Redacts every string (and object key) of a JSON document in place.
    pub fn redact_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                map.values_mut().for_each(|v| self.redact_json(v));
                // Keys rarely hold secrets (header names); rebuild the map only when one does.
                if map.keys().any(|k| self.redact(k) != *k) {
                    for (k, v) in std::mem::take(map) {
                        map.insert(self.redact(&k), v);
                    }
                }
            }
            _ => {}
        }
    }

    /// Redacts a serialized document of a fixed shape (a report): its field names are kept,
    /// fields named in `closed` (enumerations such as an outcome) are left alone, and fields
    /// named in `free` hold arbitrary JSON (values from responses), redacted whole with
    /// [`Redactor::redact_json`]. A secret that is also a word of the document's vocabulary
    /// ("passed") cannot change its shape or meaning, and is still hidden wherever it is data.
    pub fn redact_document(&self, value: &mut Value, closed: &[&str], free: &[&str]) {
        match value {
            Value::String(s) => *s = self.redact(s),
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| self.redact_document(v, closed, free)),
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if free.contains(&key.as_str()) {
                        self.redact_json(child);
                    } else if !closed.contains(&key.as_str()) {
                        self.redact_document(child, closed, free);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A header value as it may be shown.
pub fn shown_header(name: &str, value: &str, show_sensitive: bool) -> String {
    if !show_sensitive && SENSITIVE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_raw_encoded_and_escaped_forms() {
        let r = Redactor::new(&["s3cr3t pass/\"x\"".to_string()]);
        assert_eq!(r.redact("token=s3cr3t pass/\"x\"!"), "token=***!");
        assert_eq!(r.redact("q=s3cr3t+pass%2F%22x%22"), "q=***");
        assert_eq!(r.redact(r#"{"p":"s3cr3t pass/\"x\""}"#), r#"{"p":"***"}"#);
        let mut doc =
            json!({"url": "http://h/?t=s3cr3t+pass%2F%22x%22", "list": ["s3cr3t pass/\"x\""]});
        r.redact_json(&mut doc);
        assert_eq!(doc, json!({"url": "http://h/?t=***", "list": ["***"]}));
    }

    #[test]
    fn documents_keep_their_shape_and_vocabulary() {
        let r = Redactor::new(&["passed".to_string()]);
        let mut doc = json!({
            "passed": 1, "outcome": "passed",
            "steps": [{"outcome": "passed", "error": "passed it", "actual": {"passed": "passed"}}],
            "headers": {"x": "passed"}
        });
        r.redact_document(&mut doc, &["outcome"], &["actual"]);
        assert_eq!(
            doc,
            json!({
                "passed": 1, "outcome": "passed",
                "steps": [{"outcome": "passed", "error": "*** it", "actual": {"***": "***"}}],
                "headers": {"x": "***"}
            })
        );
    }

    #[test]
    fn a_secret_cut_by_an_excerpt_is_hidden() {
        let r = Redactor::new(&["hunter2-secret".to_string()]);
        assert_eq!(r.redact("token: hunter2-se…"), "token: ***…");
        assert_eq!(r.redact("token: h…"), "token: ***…");
        assert_eq!(r.redact("plain text…"), "plain text…");
    }

    #[test]
    fn learns_captured_secrets_and_masks_sensitive_headers() {
        let r = Redactor::new(&[]);
        assert_eq!(r.redact("Bearer tok-123"), "Bearer tok-123");
        r.add("tok-123");
        assert_eq!(r.redact("Bearer tok-123"), "Bearer ***");
        assert_eq!(shown_header("Authorization", "Bearer x", false), "***");
        assert_eq!(shown_header("authorization", "Bearer x", true), "Bearer x");
        assert_eq!(shown_header("accept", "x", false), "x");
    }
}
