//! Static name resolution: every `{{ name }}` is looked up at load time exactly as the engine
//! will look it up at run time (`engine::scope::FlowScope::lookup`), so that `check` finds
//! every name `run` could not resolve.

use super::Compiler;
use super::source::Source;
use crate::problem::did_you_mean;
use crate::redact::{MIN_SECRET_CHARS, Secret};
use crate::template::Template;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::ops::Range;
use toml::Spanned;

/// Names every template may use without declaring them.
pub(super) const BUILTINS: [&str; 4] = ["run_id", "uuid", "now", "unix_ms"];

/// The names known at one point of the suite.
#[derive(Debug, Clone, Default)]
pub(super) struct Known {
    /// Each variable with the value that wins here: `--var` over flow `[vars]` over suite
    /// `[vars]`. Values matter: `{{ customer.email }}` reads a key of a table variable.
    pub vars: Map<String, Value>,
    pub captures: BTreeSet<String>,
    /// Captures of later steps of the same list: using one is a distinct, common mistake.
    pub later: BTreeSet<String>,
    /// Part of a file that declares names could not be read: a name that does not resolve
    /// may be one of the lost ones, so it is not a problem (the lost part is one already).
    pub open: bool,
}

/// Why a name has no value.
pub(super) enum Unresolved {
    /// Nothing by that name.
    Unknown,
    /// A variable by that name, without the keys the rest of the name reads: why not.
    NoKey {
        reason: String,
        hint: Option<String>,
    },
}

impl Known {
    /// Resolves a name that is not `env.`/`secret.`, in the engine's order: a capture by its
    /// whole name, then a variable by the part before the first `.` (the rest are keys into
    /// its table), then the built-ins.
    pub fn resolve(&self, name: &str) -> Result<(), Unresolved> {
        if self.captures.contains(name) {
            return Ok(());
        }
        let mut keys = name.split('.');
        let head = keys.next().unwrap_or(name);
        if let Some(value) = self.vars.get(head) {
            return read_keys(head, value, keys);
        }
        if BUILTINS.contains(&name) {
            return Ok(());
        }
        Err(Unresolved::Unknown)
    }
}

/// Follows `keys` into `value` as the engine does (`Value::get` on tables only).
fn read_keys<'a>(
    head: &str,
    mut value: &Value,
    keys: impl Iterator<Item = &'a str>,
) -> Result<(), Unresolved> {
    let mut walked = head.to_string();
    for key in keys {
        let Value::Object(table) = value else {
            return Err(Unresolved::NoKey {
                reason: format!("`{walked}` is {}, not a table", kind(value)),
                hint: None,
            });
        };
        let Some(inner) = table.get(key) else {
            return Err(Unresolved::NoKey {
                reason: format!("`{walked}` has no key `{key}`"),
                hint: did_you_mean(key, table.keys().map(String::as_str)),
            });
        };
        value = inner;
        walked = format!("{walked}.{key}");
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

impl Compiler<'_> {
    /// Checks that every name of `template` resolves at this point; records env values.
    pub(super) fn resolve(
        &mut self,
        src: &mut Source,
        template: &Template,
        span: &Range<usize>,
        known: &Known,
    ) {
        if self.overrides.offline {
            return;
        }
        for (name, _) in template.names() {
            let at = src.find_placeholder(span, name);
            if let Some(var) = name
                .strip_prefix("env.")
                .or_else(|| name.strip_prefix("secret."))
            {
                self.env_value(src, at, name, var);
                continue;
            }
            match known.resolve(name) {
                Ok(()) => {}
                Err(Unresolved::NoKey { reason, hint }) => {
                    src.error_hint(at, format!("`{name}` has no value: {reason}"), hint);
                }
                Err(Unresolved::Unknown) => unknown(src, at, name, known),
            }
        }
    }

    /// Reads `env.NAME` / `secret.NAME` once; an unset one (or an empty secret) is a problem.
    fn env_value(&mut self, src: &mut Source, at: Range<usize>, name: &str, var: &str) {
        src.read_outside = true;
        let secret = name.starts_with("secret.");
        match (self.env)(var) {
            // An empty secret is almost always a CI secret that was never defined.
            Some(value) if value.is_empty() && secret => src.error(
                at,
                format!("environment variable `{var}` is empty (used as `{name}`)"),
            ),
            Some(value) if secret && value.trim().chars().count() < MIN_SECRET_CHARS => src
                .error_hint(
                    at,
                    format!(
                        "environment variable `{var}` is too short to be a secret (used as `{name}`)"
                    ),
                    Some(format!(
                        "a secret needs at least {MIN_SECRET_CHARS} characters: a shorter one cannot be masked in output without hiding ordinary text"
                    )),
                ),
            Some(value) if secret => {
                self.secrets.insert(var.to_string(), Secret::new(value));
            }
            Some(value) => {
                self.env_used.insert(var.to_string(), value);
            }
            None => src.error(
                at,
                format!("environment variable `{var}` is not set (used as `{name}`)"),
            ),
        }
    }
}

fn unknown(src: &mut Source, at: Range<usize>, name: &str, known: &Known) {
    if known.later.contains(name) {
        let hint = "a step may only use captures of the steps before it";
        let message = format!("`{name}` is used before the step that captures it");
        return src.error_hint(at, message, Some(hint.into()));
    }
    if known.open {
        return;
    }
    let head = name.split('.').next().unwrap_or(name);
    let hint = if known.captures.contains(head) {
        Some(format!(
            "`{head}` is a capture, used whole: capture the part you need under its own name"
        ))
    } else {
        let candidates = known
            .vars
            .keys()
            .chain(&known.captures)
            .map(String::as_str)
            .chain(BUILTINS);
        did_you_mean(name, candidates).or_else(|| {
            Some("names come from captures of earlier steps, [[setup]] captures, --var, [vars], env.NAME, secret.NAME, run_id, uuid, now, unix_ms".into())
        })
    };
    src.error_hint(at, format!("unknown name `{name}`"), hint);
}

impl Compiler<'_> {
    /// Suite headers are rendered with each flow's variables: a flow `[vars]` entry that
    /// gives a name the suite headers read another shape leaves them without a value.
    pub(super) fn suite_headers_in_flow(
        &mut self,
        src: &mut Source,
        flow_vars: Option<&IndexMap<String, Spanned<toml::Value>>>,
        known: &Known,
    ) {
        if self.overrides.offline {
            return;
        }
        for (var, value) in flow_vars.into_iter().flatten() {
            if self.cli_vars.contains_key(var) {
                continue;
            }
            let reads = self
                .suite_header_names
                .iter()
                .filter(|(_, name)| name.split('.').next() == Some(var.as_str()));
            for (header, name) in reads {
                if let Err(Unresolved::NoKey { reason, hint }) = known.resolve(name) {
                    let message = format!(
                        "the suite header `{header}` reads `{name}`, which has no value in this flow: {reason}"
                    );
                    src.error_hint(value.span(), message, hint);
                }
            }
        }
    }
}
