//! Values as outputs show them: masked, and cut to an excerpt when long.
//!
//! Only as much of a value is masked as its excerpt can show. Masking looks at every string
//! for every secret, so masking all of a failed assertion's actual value (a JSON array of two
//! million strings) against a thousand learned secrets took 20 s, far past the deadline,
//! to show its first 300 characters.

use crate::redact::{CUT, Mask, excerpt};
use serde_json::Value;
use std::ops::ControlFlow;

/// `value` masked as an output shows it: a string (or a scalar masked to `***`) as an
/// excerpt of its masked text; any other value whole when its masked JSON text fits in `max`
/// bytes, else an excerpt of that text, as a string.
pub fn shown_value(mask: &dyn Mask, value: &Value, max: usize) -> Value {
    match value {
        Value::String(text) => Value::String(mask.mask_excerpt(text, max)),
        Value::Array(_) | Value::Object(_) => match masked_json_head(mask, value, max, false) {
            Head::Cut(text) => Value::String(excerpt(&text, max)),
            // All of it fits, so the value is small: masked whole, as other outputs mask it.
            Head::Whole(_) => cut(mask.mask_value(value), max),
        },
        scalar => cut(mask.mask_value(scalar), max),
    }
}

/// The start of `value`'s JSON text (compact, or `pretty`) as shown: its values masked, then
/// the text masked as a whole too (a secret written across values), cut to `max` characters.
pub fn json_excerpt(mask: &dyn Mask, value: &Value, max: usize, pretty: bool) -> String {
    // As far past the excerpt as `Mask::mask_excerpt` masks text, so that a secret that
    // starts in the excerpt ends in what is masked.
    let text = match masked_json_head(mask, value, max + 4096, pretty) {
        Head::Whole(text) => text,
        Head::Cut(text) => format!("{text}{CUT}"),
    };
    mask.mask_excerpt(&text, max)
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
        assert!(mask.0.get() < 100, "masked {} strings", mask.0.get());
    }
}
