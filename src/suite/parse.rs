//! One TOML file -> its raw struct, with every shape problem (unknown key, wrong type, missing
//! key) collected rather than the first. serde stops at the first error, so after each one the
//! entry it points at is dropped from the parsed document and the rest is read again: one
//! mistake hides no other, and what remains is still compiled, so its value problems show too.

use crate::problem::{Problem, did_you_mean};
use crate::suite::compile::Source;
use crate::suite::plain_toml;
use serde::de::DeserializeOwned;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// Enough for any real file; past it the file is mostly mistakes and the rest can wait.
const MAX_SHAPE_PROBLEMS: usize = 100;

/// One step of the path to an entry: a key of a table or an index into an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A file read into `T`, less the entries that had problems.
pub struct Parsed<T> {
    /// `None` when the file is not TOML at all (or could not be read).
    pub raw: Option<T>,
    /// The entries dropped for their problems.
    pub dropped: Vec<Vec<Seg>>,
}

impl<T> Parsed<T> {
    /// A file that could not be read: nothing is known about it.
    pub fn unreadable() -> Self {
        Parsed {
            raw: None,
            dropped: Vec::new(),
        }
    }

    /// Whether the file may declare template names that were lost: it was unreadable, or a
    /// dropped entry was `vars`, a step list, a step or its `capture` table. Names that do not
    /// resolve are then not problems, since they may be the lost ones.
    pub fn lost_names(&self) -> bool {
        self.raw.is_none()
            || self.dropped.iter().any(|path| {
                // The last key: what follows it, if anything, are indices into its array.
                let last_key = path.iter().rev().find_map(|s| match s {
                    Seg::Key(k) => Some(k.as_str()),
                    Seg::Index(_) => None,
                });
                matches!(
                    last_key,
                    Some("vars" | "step" | "setup" | "capture" | "cleanup" | "teardown" | "each")
                )
            })
    }

    /// Whether the top-level `key` was dropped, or the whole file is unknown.
    pub fn lost(&self, key: &str) -> bool {
        self.raw.is_none()
            || self
                .dropped
                .iter()
                .any(|p| p.first() == Some(&Seg::Key(key.to_string())))
    }
}

/// Deserializes `src`, recording a located problem for each shape error.
pub fn parse<T: DeserializeOwned + std::fmt::Debug>(src: &mut Source) -> Parsed<T> {
    // Most files are plain TOML, read in one pass; the others, and every file with a problem,
    // are read by the full parser below, whose messages and places the user sees.
    if let Some(raw) = plain_toml::from_str::<T>(&src.text) {
        #[cfg(debug_assertions)]
        same_as_full_parser(&src.text, &raw);
        return Parsed {
            raw: Some(raw),
            dropped: Vec::new(),
        };
    }
    let mut parsed = Parsed::unreadable();
    let document = match DeTable::parse(&src.text) {
        Ok(document) => document,
        Err(e) => {
            src.problems.push(located(&src.path, &src.text, &e));
            return parsed;
        }
    };
    // Most files have no problem: the first reading consumes the document, so that it need
    // not be copied. Only a file with a problem is parsed again, to be read once per problem.
    let span = document.span();
    if let Ok(raw) = T::deserialize(toml::de::Deserializer::from(document)) {
        parsed.raw = Some(raw);
        return parsed;
    }
    let mut table = match DeTable::parse(&src.text) {
        Ok(document) => document.into_inner(),
        Err(e) => {
            src.problems.push(located(&src.path, &src.text, &e));
            return parsed;
        }
    };
    while parsed.dropped.len() < MAX_SHAPE_PROBLEMS {
        let document = Spanned::new(span.clone(), table.clone());
        let error = match T::deserialize(toml::de::Deserializer::from(document)) {
            Ok(raw) => {
                parsed.raw = Some(raw);
                return parsed;
            }
            Err(e) => e,
        };
        src.problems.push(located(&src.path, &src.text, &error));
        let Some(at) = error.span() else {
            return parsed;
        };
        match innermost(&table, &at) {
            Some(path) if remove(&mut table, &path) => parsed.dropped.push(path),
            // Nothing to drop: the error is about the file as a whole.
            _ => return parsed,
        }
    }
    src.problems.push(Problem::file(
        &src.path,
        format!("more than {MAX_SHAPE_PROBLEMS} problems: fix these first"),
    ));
    parsed
}

/// `text` read by the full parser alone, as `parse` reads a file with a problem.
#[cfg(any(test, debug_assertions))]
pub(crate) fn read_fully<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let document = DeTable::parse(text).map_err(|e| e.to_string())?;
    T::deserialize(toml::de::Deserializer::from(document)).map_err(|e| e.to_string())
}

/// Debug builds (every test) check that a file read as plain TOML is read by the full parser
/// to the same value, spans included (`Spanned`'s `Debug` shows them).
#[cfg(any(test, debug_assertions))]
pub(crate) fn same_as_full_parser<T: DeserializeOwned + std::fmt::Debug>(text: &str, plain: &T) {
    match read_fully::<T>(text) {
        Ok(full) => assert_eq!(
            format!("{plain:?}"),
            format!("{full:?}"),
            "plain TOML read differently from the full parser:\n{text}"
        ),
        Err(e) => panic!("plain TOML read a file the full parser rejects ({e}):\n{text}"),
    }
}

/// A TOML or serde error at its location, with a "did you mean" for a misspelt key.
fn located(path: &std::path::Path, text: &str, e: &toml::de::Error) -> Problem {
    let message = e.message().trim().to_string();
    let hint = unknown_field_hint(&message);
    let problem = match e.span() {
        Some(span) => Problem::at(path, text, span, message),
        None => Problem::file(path, message),
    };
    Problem { hint, ..problem }
}

/// serde says "unknown field `steps`, expected one of `name`, `step`, ..."; suggest the closest.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    did_you_mean(field, candidates.iter().copied())
        .or_else(|| Some(format!("valid keys here: {}", candidates.join(", "))))
}

fn covers(outer: &Range<usize>, at: &Range<usize>) -> bool {
    outer.start <= at.start && at.end <= outer.end
}

/// The path of the innermost entry (or array item) whose key or value covers `at`.
fn innermost(table: &DeTable, at: &Range<usize>) -> Option<Vec<Seg>> {
    table.iter().find_map(|(key, value)| {
        let here = Seg::Key(key.get_ref().to_string());
        if covers(&key.span(), at) {
            return Some(vec![here]);
        }
        match within(value, at) {
            Some(mut inner) => {
                inner.insert(0, here);
                Some(inner)
            }
            None => covers(&value.span(), at).then(|| vec![here]),
        }
    })
}

/// The path below `value` to the innermost entry covering `at`, if one is below it.
fn within(value: &Spanned<DeValue>, at: &Range<usize>) -> Option<Vec<Seg>> {
    match value.get_ref() {
        DeValue::Table(table) => innermost(table, at),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let mut inner = match within(item, at) {
                Some(inner) => inner,
                None if covers(&item.span(), at) => Vec::new(),
                None => return None,
            };
            inner.insert(0, Seg::Index(i));
            Some(inner)
        }),
        _ => None,
    }
}

/// Removes the entry at `path`; false when there is none.
fn remove(table: &mut DeTable, path: &[Seg]) -> bool {
    let Some((Seg::Key(key), rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(key.as_str()).is_some();
    }
    match table.get_mut(key.as_str()) {
        Some(value) => remove_below(value.get_mut(), rest),
        None => false,
    }
}

fn remove_below(value: &mut DeValue, path: &[Seg]) -> bool {
    match (value, path.split_first()) {
        (DeValue::Table(table), Some(_)) => remove(table, path),
        (DeValue::Array(items), Some((Seg::Index(i), rest))) => {
            if !rest.is_empty() {
                return items
                    .get_mut(*i)
                    .is_some_and(|item| remove_below(item.get_mut(), rest));
            }
            if *i >= items.len() {
                return false;
            }
            let mut kept = DeArray::new();
            for (j, item) in items.iter().enumerate() {
                if j != *i {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::raw::{RawFlow, RawSuite};
    use std::path::PathBuf;

    fn parse_text<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> (Parsed<T>, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut src = Source {
            path: PathBuf::from("f.toml"),
            text: text.to_string(),
            problems: &mut problems,
            read_outside: false,
        };
        let parsed = parse(&mut src);
        (parsed, problems)
    }

    fn at(problems: &[Problem]) -> Vec<(usize, usize, &str)> {
        problems
            .iter()
            .map(|p| (p.line, p.col, p.message.as_str()))
            .collect()
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_found_and_the_rest_is_read() {
        let text = "nme = \"x\"\ncritical = \"yes\"\n[[step]]\nmethd = \"GET\"\npath = \"/a\"\n\
                    [[step]]\npath = 5\nexpect = { status = 200, bdy = 1 }\n";
        let (parsed, problems) = parse_text::<RawFlow>(text);
        let found: Vec<(usize, usize)> = at(&problems).iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(
            found,
            [(1, 1), (2, 12), (4, 1), (7, 8), (8, 26)],
            "{problems:#?}"
        );
        assert!(problems[0].message.starts_with("unknown field `nme`"));
        assert_eq!(problems[0].hint.as_deref(), Some("did you mean `name`?"));
        assert!(!parsed.lost_names(), "{:?}", parsed.dropped);
        let raw = parsed.raw.expect("the rest is read");
        let steps = raw.step.expect("both steps kept");
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].path.as_ref().map(|p| p.get_ref().as_str()),
            Some("/a")
        );
        assert!(steps[1].path.is_none(), "the wrong `path` is dropped");
    }

    #[test]
    fn missing_keys_drop_their_table_and_lost_names_are_told() {
        let (parsed, problems) =
            parse_text::<RawSuite>("vars = 1\nbase_url = 2\n[wait]\ninterval = \"1s\"\n");
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[2].message.contains("missing field `path`"),
            "{problems:#?}"
        );
        assert!(parsed.raw.is_some());
        assert!(parsed.lost_names() && parsed.lost("base_url") && !parsed.lost("name"));
        let (parsed, _) = parse_text::<RawFlow>("[[step]]\ncapture = 5\n");
        assert!(parsed.lost_names(), "{:?}", parsed.dropped);
        let (parsed, _) = parse_text::<RawFlow>("step = [1, { path = \"/\" }]\n");
        assert_eq!(
            parsed.dropped,
            [vec![Seg::Key("step".into()), Seg::Index(0)]]
        );
        assert_eq!(parsed.raw.unwrap().step.unwrap().len(), 1);
    }

    #[test]
    fn a_syntax_error_is_one_problem_and_nothing_is_read() {
        let (parsed, problems) = parse_text::<RawFlow>("[[step]]\npath = \"/a\nmethod = 1\n");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(parsed.raw.is_none() && parsed.lost_names());
    }
}
