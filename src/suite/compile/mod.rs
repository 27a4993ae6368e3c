//! Raw files -> validated [`Plan`], collecting every problem with its location.
//!
//! Each part of a file is read by one method of [`Compiler`] that records problems in the
//! [`Source`] it was read from and returns what it could build; the caller decides at the end
//! whether the plan may run (no problems at all) or not. `settings.rs` reads preflight.toml,
//! `step.rs` flows and steps, `expect.rs` expectations, `source.rs` locates and parses values.

mod expect;
mod settings;
mod source;
mod step;

pub use expect::OPERATORS;
pub use source::{Source, parse_duration, parse_size, toml_to_json};

use crate::suite::plan::{Flow, Plan, RetryPolicy, Settings, Step};
use crate::suite::problem::did_you_mean;
use crate::template::Template;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the command line adds to or overrides in the files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub base_url: Option<String>,
    /// Where `base_url` came from when not from the file, for messages.
    pub base_url_origin: &'static str,
    pub concurrency: Option<usize>,
    pub timeout: Option<Duration>,
    pub deadline: Option<Duration>,
    pub vars: Vec<(String, String)>,
    /// Nothing will be sent or rendered (`list`, `lock`): a missing base_url, unknown names
    /// and unset env./secret. variables are not problems.
    pub offline: bool,
    /// The lock is about to be rewritten (`lock`): it is not read, so a malformed one is no
    /// problem.
    pub skip_lock: bool,
}

/// Names every template may use without declaring them.
const BUILTINS: [&str; 4] = ["run_id", "uuid", "now", "unix_ms"];

/// The names known at one point of the suite, for static resolution.
#[derive(Clone, Default)]
struct Known {
    vars: BTreeSet<String>,
    captures: BTreeSet<String>,
    /// Captures of later steps of the same list: using one is a distinct, common mistake.
    later: BTreeSet<String>,
}

/// Compiles the suite settings; the flows are compiled one by one with [`Compiler::flow`].
pub struct Compiler<'e> {
    pub dir: PathBuf,
    pub overrides: Overrides,
    pub env: &'e dyn Fn(&str) -> Option<String>,
    env_used: HashMap<String, String>,
    secrets: BTreeSet<String>,
    settings: Option<Settings>,
    setup_captures: BTreeSet<String>,
    base_url_missing: bool,
    default_retry: RetryPolicy,
}

impl<'e> Compiler<'e> {
    pub fn new(dir: &Path, overrides: Overrides, env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Compiler {
            dir: dir.to_path_buf(),
            overrides,
            env,
            env_used: HashMap::new(),
            secrets: BTreeSet::new(),
            settings: None,
            setup_captures: BTreeSet::new(),
            base_url_missing: false,
            default_retry: RetryPolicy::none(),
        }
    }

    /// Checks that every name of `template` resolves at this point; records env values.
    fn resolve(
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
                match (self.env)(var) {
                    // An empty secret is almost always a CI secret that was never defined.
                    Some(value) if value.is_empty() && name.starts_with("secret.") => src.error(
                        at,
                        format!("environment variable `{var}` is empty (used as `{name}`)"),
                    ),
                    Some(value) => {
                        if name.starts_with("secret.") {
                            self.secrets.insert(value.clone());
                        }
                        self.env_used.insert(var.to_string(), value);
                    }
                    None => src.error(
                        at,
                        format!("environment variable `{var}` is not set (used as `{name}`)"),
                    ),
                }
                continue;
            }
            let head = name.split('.').next().unwrap_or(name);
            if BUILTINS.contains(&name)
                || known.captures.contains(name)
                || known.vars.contains(head)
            {
                continue;
            }
            if known.later.contains(name) {
                src.error_hint(
                    at,
                    format!("`{name}` is used before the step that captures it"),
                    Some("a step may only use captures of the steps before it".into()),
                );
                continue;
            }
            let candidates: Vec<&str> = known
                .vars
                .iter()
                .chain(&known.captures)
                .map(String::as_str)
                .chain(BUILTINS)
                .collect();
            let hint = did_you_mean(name, candidates).or_else(|| {
                Some("names come from captures of earlier steps, [[setup]] captures, --var, [vars], env.NAME, secret.NAME, run_id, uuid, now, unix_ms".into())
            });
            src.error_hint(at, format!("unknown name `{name}`"), hint);
        }
    }

    /// Compiles a list of steps in order: each may use the captures of the ones before it.
    pub fn finish(self, setup: Vec<Step>, flows: Vec<Flow>) -> Plan {
        Plan {
            settings: self.settings.expect("suite compiled"),
            setup,
            flows,
            env: self.env_used,
            secrets: self.secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            lock: None,
        }
    }
}
