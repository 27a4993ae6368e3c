//! Values as outputs show them: masked, and cut to an excerpt when long.
//!
//! Only as much of a value is masked as its excerpt can show. Masking looks at every string
//! for every secret, so masking all of a failed assertion's actual value (a JSON array of two
//! million strings) against a thousand learned secrets took 20 s, far past the deadline,
//! to show its first 300 characters.

use crate::redact::{CUT, MASK, Mask, NoMask, excerpt};
use serde_json::Value;
use std::ops::ControlFlow;

/// `value` masked as an output shows it: a string (or a scalar masked to `***`) as an
/// excerpt of its masked text; any other value whole when its masked JSON text fits in `max`
/// bytes, else an excerpt of that text, as a string.
pub fn shown_value(mask: &dyn Mask, value: &Value, max: usize) -> Value {
    match value {
        Value::String(text) => Value::String(mask.mask_excerpt(text, max)),
        Value::Array(_) | Value::Object(_) => {
            match masked_json_head(mask, value, max + MASKED_AHEAD_CHARS, false) {
                // Small, no secret written across its values (`["abc","def"]` for the secret
                // `abc","def`), and not so deep that a report could not be read back: the
                // value itself, masked.
                Head::Whole(text)
                    if text.len() <= max
                        && depth(value) <= MAX_SHOWN_DEPTH
                        && mask.mask_excerpt(&text, max) == text =>
                {
                    mask.mask_value(value)
                }
                head => Value::String(text_excerpt(mask, head, max)),
            }
        }
        scalar => cut(mask.mask_value(scalar), max),
    }
}

/// How far past an excerpt a value's JSON text is written and masked, as
/// [`Mask::mask_excerpt`] masks text: a secret that starts in the excerpt ends in it.
const MASKED_AHEAD_CHARS: usize = 4096;

/// The deepest array or object shown as itself in a report; a deeper one is shown as its JSON
/// text. A report is read back (a streamed report's flows, `merge`), and a JSON reader stops
/// at 128 levels (attack finding: a body 127 arrays deep failed the JUnit report).
const MAX_SHOWN_DEPTH: usize = 32;

/// How many arrays and objects deep `value` is.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The start of `value`'s JSON text (compact, or `pretty`) as shown: its values masked, then
/// the text masked as a whole too (a secret written across values), cut to `max` characters.
pub fn json_excerpt(mask: &dyn Mask, value: &Value, max: usize, pretty: bool) -> String {
    let head = masked_json_head(mask, value, max + MASKED_AHEAD_CHARS, pretty);
    text_excerpt(mask, head, max)
}

/// A value's JSON text (its values masked), masked as text too and cut to `max` characters.
fn text_excerpt(mask: &dyn Mask, head: Head, max: usize) -> String {
    let text = match head {
        Head::Whole(text) => text,
        Head::Cut(text) => format!("{text}{CUT}"),
    };
    mask.mask_excerpt(&text, max)
}

/// How much of a JSON pointer is shown, about.
const POINTER_CHARS: usize = 200;

/// A JSON pointer into a body (`/items/0/name`) as shown: each key masked as it is, before it
/// is escaped (a secret that staging echoed as a key, `a/b` escaped `a~1b`, is still
/// recognised, and so is a short one, masked as a whole value), and only as many keys as
/// about 200 characters show: a pointer 100 keys of 60,000 characters deep, masked whole
/// against many secrets, took minutes (attack finding).
pub fn shown_pointer(pointer: &str, mask: &dyn Mask) -> String {
    let mut shown = String::new();
    for (i, segment) in pointer.split('/').enumerate() {
        if shown.chars().count() > POINTER_CHARS {
            shown.push(CUT);
            break;
        }
        if i > 0 {
            shown.push('/');
        }
        let key = segment.replace("~1", "/").replace("~0", "~");
        let masked = mask.mask_excerpt(&key, POINTER_CHARS);
        shown.push_str(&masked.replace('~', "~0").replace('/', "~1"));
    }
    shown
}

/// How much of a value a schema error's message quotes as jsonschema writes it, at most.
const QUOTED_CHARS: usize = 600;

/// How much of a value a schema error quotes in its stead, when the message is not shown as
/// jsonschema writes it.
const QUOTED_EXCERPT_CHARS: usize = 100;

/// A JSON Schema error's message as shown. jsonschema's message quotes the value it is about,
/// items or keys of it from anywhere in it (`unevaluatedItems`, `additionalProperties`), and
/// numbers as parsed (`1.5` for `1.50`): masking the message as text misses a secret shorter
/// than text is searched for, and a number in another notation. So the message is as written
/// only when the value is small and masking it as a value changes nothing; otherwise it
/// quotes an excerpt of the masked value, and the names it lists masked one by one.
pub fn shown_schema_error(error: &jsonschema::ValidationError, mask: &dyn Mask) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let instance = error.instance();
    let small = matches!(
        masked_json_head(&NoMask, instance, QUOTED_CHARS, false),
        Head::Whole(_)
    );
    if small && mask.mask_value(instance) == **instance {
        return error.to_string();
    }
    match error.kind() {
        Kind::AdditionalProperties { unexpected } => {
            format!(
                "Additional properties are not allowed ({})",
                names(mask, unexpected)
            )
        }
        Kind::UnevaluatedProperties { unexpected } => {
            format!(
                "Unevaluated properties are not allowed ({})",
                names(mask, unexpected)
            )
        }
        Kind::PropertyNames { error } => shown_schema_error(error, mask),
        _ => {
            let quoted = match &**instance {
                Value::Array(_) | Value::Object(_) => {
                    json_excerpt(mask, instance, QUOTED_EXCERPT_CHARS, false)
                }
                // A secret is quoted as `***`, not as the JSON string `"***"`.
                scalar => match shown_value(mask, scalar, QUOTED_EXCERPT_CHARS) {
                    Value::String(masked) if masked == MASK => masked,
                    shown => shown.to_string(),
                },
            };
            error.masked_with(quoted).to_string()
        }
    }
}

/// The property names a schema error lists, each masked as a value (`'a', '***' were
/// unexpected`), the first ten of them.
fn names(mask: &dyn Mask, names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(10)
        .map(|name| format!("'{}'", mask.mask_excerpt(name, QUOTED_EXCERPT_CHARS)))
        .collect();
    let more = match names.len().saturating_sub(shown.len()) {
        0 => String::new(),
        more => format!(" and {more} more"),
    };
    let verb = if names.len() == 1 { "was" } else { "were" };
    format!("{}{more} {verb} unexpected", shown.join(", "))
}

/// A masked value as shown: cut to an excerpt of its text when long.
fn cut(masked: Value, max: usize) -> Value {
    match masked {
        Value::String(text) => Value::String(excerpt(&text, max)),
        value => {
            let text = value.to_string();
            match text.len() > max {
                true => Value::String(excerpt(&text, max)),
                false => value,
            }
        }
    }
}

/// The JSON text of a value, or its start.
#[derive(Debug, PartialEq)]
enum Head {
    Whole(String),
    /// More than the characters asked for, ending with the piece (a bracket, a key, a
    /// value) that passed them.
    Cut(String),
}

/// The JSON text of `value` (compact, or `pretty` as `serde_json::to_string_pretty` writes
/// it) with every string, key and scalar masked as [`Mask::mask_value`] masks them, up to
/// the first piece that takes it past `max` characters (a string longer than that cut too).
fn masked_json_head(mask: &dyn Mask, value: &Value, max: usize, pretty: bool) -> Head {
    let mut head = MaskedHead {
        mask,
        text: String::new(),
        chars: 0,
        max,
        pretty,
    };
    match head.write(value, 0) {
        ControlFlow::Break(()) => Head::Cut(head.text),
        ControlFlow::Continue(()) => Head::Whole(head.text),
    }
}

struct MaskedHead<'m> {
    mask: &'m dyn Mask,
    text: String,
    chars: usize,
    max: usize,
    pretty: bool,
}

impl MaskedHead<'_> {
    /// Breaks once more than `max` characters are written: the rest cannot be shown.
    fn write(&mut self, value: &Value, depth: usize) -> ControlFlow<()> {
        match value {
            Value::Array(items) => {
                self.push("[")?;
                for (i, item) in items.iter().enumerate() {
                    self.next_item(i, depth + 1)?;
                    self.write(item, depth + 1)?;
                }
                self.close("]", !items.is_empty(), depth)
            }
            Value::Object(map) => {
                self.push("{")?;
                for (i, (key, item)) in map.iter().enumerate() {
                    self.next_item(i, depth + 1)?;
                    let key = self.mask.mask_excerpt(key, self.max + 1);
                    self.push(&Value::String(key).to_string())?;
                    self.push(if self.pretty { ": " } else { ":" })?;
                    self.write(item, depth + 1)?;
                }
                self.close("}", !map.is_empty(), depth)
            }
            // A long string is cut too: more of it than the excerpt cannot be shown.
            Value::String(text) => {
                let masked = self.mask.mask_excerpt(text, self.max + 1);
                self.push(&Value::String(masked).to_string())
            }
            scalar => self.push(&self.mask.mask_value(scalar).to_string()),
        }
    }

    /// What comes before the `i`-th item of an array or object at `depth`.
    fn next_item(&mut self, i: usize, depth: usize) -> ControlFlow<()> {
        if i > 0 {
            self.push(",")?;
        }
        self.indent(depth)
    }

    fn close(&mut self, bracket: &str, had_items: bool, depth: usize) -> ControlFlow<()> {
        if had_items {
            self.indent(depth)?;
        }
        self.push(bracket)
    }

    fn indent(&mut self, depth: usize) -> ControlFlow<()> {
        match self.pretty {
            true => self.push(&format!("\n{}", "  ".repeat(depth))),
            false => ControlFlow::Continue(()),
        }
    }

    fn push(&mut self, piece: &str) -> ControlFlow<()> {
        self.text.push_str(piece);
        self.chars += piece.chars().count();
        match self.chars > self.max {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::{NoMask, Redactor};
    use serde_json::json;

    #[test]
    fn shows_what_masking_the_whole_value_then_cutting_shows() {
        let mask = Redactor::default();
        mask.learn("hunter2-secret");
        mask.learn("765432101");
        let long: Vec<Value> = (0..500).map(|i| json!(format!("item {i}"))).collect();
        let values = [
            json!(null),
            json!(765432101),
            json!(7),
            json!(true),
            json!("a hunter2-secret here"),
            json!(["hunter2-secret", 765432101, {"hunter2-secret": "x"}]),
            json!({"k": "é".repeat(290)}),
            json!({"k": "é".repeat(400)}),
            json!(long),
            json!([[["x", "hunter2-secret"], long], {"a": long}]),
            json!(format!(
                "{}hunter2-secret{}",
                "a".repeat(295),
                "b".repeat(10_000)
            )),
            json!([format!(
                "{}hunter2-secret{}",
                "a".repeat(290),
                "b".repeat(70_000)
            )]),
            json!({ "hunter2-secret ".repeat(3_000): "hunter2-secret ".repeat(5_000) }),
        ];
        for max in [0, 1, 5, 50, 300, 1000] {
            for value in &values {
                assert_eq!(
                    shown_value(&mask, value, max),
                    cut(mask.mask_value(value), max),
                    "{value} at {max}"
                );
                assert_eq!(shown_value(&NoMask, value, max), cut(value.clone(), max));
            }
        }
    }

    #[test]
    fn writes_json_as_serde_json_does() {
        let mask = Redactor::default();
        mask.learn("hunter2-secret");
        let values = [
            json!([]),
            json!({}),
            json!([[], {}, [[]], {"a": {}}]),
            json!({"a": [1, 2.5, -3e40, null, true], "b": {"c": "d\"\n\u{1}é"}}),
            json!(["hunter2-secret", {"k hunter2-secret": [1, {"x": []}]}]),
        ];
        for value in &values {
            for pretty in [false, true] {
                let write = |v: &Value| match pretty {
                    true => serde_json::to_string_pretty(v).unwrap(),
                    false => v.to_string(),
                };
                let expected = Head::Whole(write(&mask.mask_value(value)));
                assert_eq!(masked_json_head(&mask, value, 10_000, pretty), expected);
            }
        }
        let head = masked_json_head(&NoMask, &json!([["abc"], "def"]), 4, true);
        assert_eq!(head, Head::Cut("[\n  [".into()));
    }

    #[test]
    fn masks_only_the_head_of_a_long_value() {
        /// Counts the strings it is asked to mask.
        struct Counting(std::cell::Cell<usize>);
        impl Mask for Counting {
            fn mask_text(&self, text: &str) -> String {
                self.0.set(self.0.get() + 1);
                text.to_string()
            }
            fn mask_value(&self, value: &Value) -> Value {
                if value.is_string() {
                    self.0.set(self.0.get() + 1);
                }
                value.clone()
            }
        }
        let mask = Counting(0.into());
        let value = json!((0..100_000).map(|i| format!("s{i}")).collect::<Vec<_>>());
        let shown = shown_value(&mask, &value, 300);
        assert!(
            shown
                .as_str()
                .is_some_and(|s| s.starts_with("[\"s0\",\"s1\""))
        );
        assert!(mask.0.get() < 1_000, "masked {} strings", mask.0.get());
    }
}
