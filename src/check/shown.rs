//! Values as outputs show them: masked, and cut to an excerpt when long.
//!
//! Only as much of a value is masked as its excerpt can show. Masking looks at every string
//! for every secret, so masking all of a failed assertion's actual value (a JSON array of two
//! million strings) against a thousand learned secrets took 20 s, far past the deadline,
//! to show its first 300 characters.

use crate::redact::Mask;
use serde_json::Value;
use std::ops::ControlFlow;

/// The first `max` characters of `text`, marked when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// `value` masked as an output shows it: a string (or a scalar masked to `***`) as an
/// excerpt of its masked text; any other value whole when its masked JSON text fits in `max`
/// bytes, else an excerpt of that text, as a string.
pub fn shown_value(mask: &dyn Mask, value: &Value, max: usize) -> Value {
    if value.is_array() || value.is_object() {
        let mut head = MaskedHead {
            mask,
            text: String::new(),
            chars: 0,
            max,
        };
        if head.write(value).is_break() {
            return Value::String(excerpt(&head.text, max));
        }
    }
    // All of it fits, so the value is small: masked whole, as the other outputs mask it.
    cut(mask.mask_value(value), max)
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

/// The compact JSON text of a value with every string, key and scalar masked (as
/// [`Mask::mask_value`] masks them), written until it is longer than `max` characters.
struct MaskedHead<'m> {
    mask: &'m dyn Mask,
    text: String,
    chars: usize,
    max: usize,
}

impl MaskedHead<'_> {
    /// Breaks once more than `max` characters are written: the rest cannot be shown.
    fn write(&mut self, value: &Value) -> ControlFlow<()> {
        match value {
            Value::Array(items) => {
                self.push("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(",")?;
                    }
                    self.write(item)?;
                }
                self.push("]")
            }
            Value::Object(map) => {
                self.push("{")?;
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        self.push(",")?;
                    }
                    self.push(&Value::String(self.mask.mask_text(key)).to_string())?;
                    self.push(":")?;
                    self.write(item)?;
                }
                self.push("}")
            }
            scalar => self.push(&self.mask.mask_value(scalar).to_string()),
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
