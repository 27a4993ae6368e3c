//! Raw files -> validated [`Plan`], collecting every problem with its location.
//!
//! Each part of a file is read by one method of [`Compiler`] that records problems in the
//! [`Source`] it was read from and returns what it could build; the caller decides at the end
//! whether the plan may run (no problems at all) or not. `settings.rs` reads preflight.toml,
//! `step.rs` flows and steps, `request.rs` a step's request, `capture.rs` its captures,
//! `expect.rs` expectations, `names.rs` resolves template names, `source.rs` locates and
//! parses values.

mod capture;
mod expect;
mod names;
mod request;
mod settings;
mod source;
mod step;

pub use expect::OPERATORS;
pub use settings::SuiteParts;
pub use source::{Source, parse_duration, parse_size, toml_to_json};

use crate::check::JsonQuery;
use crate::redact::Secret;
use crate::suite::parse::Parsed;
use crate::suite::plan::{Flow, Plan, RetryPolicy};
use names::Known;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
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
    /// Only this flow file (relative to the suite directory) is compiled: `run dir/flow.toml`.
    pub flow_file: Option<PathBuf>,
    /// `--vars-file`: TOML tables of variables, later files winning; they win over every
    /// `[vars]`, and `--var` wins over them.
    pub vars_files: Vec<PathBuf>,
}

/// Compiles the suite settings; the flows are compiled one by one with [`Compiler::flow`].
pub struct Compiler<'e> {
    pub dir: PathBuf,
    pub overrides: Overrides,
    pub env: &'e dyn Fn(&str) -> Option<String>,
    env_used: HashMap<String, String>,
    secrets: BTreeMap<String, Secret>,
    /// `--var name=value`: strings, winning over every `[vars]`.
    cli_vars: Map<String, Value>,
    /// `--vars-file` values, merged: folded into every `[vars]` table (suite and flow), so
    /// that they win over both.
    file_vars: Map<String, Value>,
    /// What every flow starts from: suite `[vars]`, `--var`, `[[setup]]` captures.
    suite_known: Known,
    /// Suite headers are rendered in each flow's scope: their dotted names, to check them
    /// against a flow's own `[vars]` too (header name, placeholder name).
    suite_header_names: Vec<(String, String)>,
    base_url_missing: bool,
    default_retry: RetryPolicy,
    /// The flows compiled so far by name, with their files: a name may be used once.
    flow_names: HashMap<Box<str>, Box<str>>,
    json_queries: JsonQueries,
}

/// Every JSONPath compiled so far, by its text. Suites repeat the same few (`$.id`, `$.ok`) in
/// every flow, and parsing one costs about ten times copying it: this was 7% of a large
/// `check` (callgrind).
#[derive(Default)]
pub(super) struct JsonQueries(HashMap<String, Result<JsonQuery, String>>);

impl JsonQueries {
    pub(super) fn parse(&mut self, path: &str) -> Result<JsonQuery, String> {
        if let Some(known) = self.0.get(path) {
            return known.clone();
        }
        let parsed = JsonQuery::parse(path);
        self.0.insert(path.to_string(), parsed.clone());
        parsed
    }
}

/// What could not be read of a file, so that its absence is not blamed on what is left: a
/// name that may have been declared there, a `base_url`, a flow `name`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lost {
    pub names: bool,
    pub base_url: bool,
    pub name: bool,
    pub steps: bool,
}

impl Lost {
    pub fn of<T>(parsed: &Parsed<T>) -> Lost {
        Lost {
            names: parsed.lost_names(),
            base_url: parsed.lost("base_url"),
            name: parsed.lost("name"),
            steps: parsed.lost("step"),
        }
    }
}

impl<'e> Compiler<'e> {
    pub fn new(dir: &Path, overrides: Overrides, env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        let cli_vars = overrides
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Compiler {
            dir: dir.to_path_buf(),
            overrides,
            env,
            env_used: HashMap::new(),
            secrets: BTreeMap::new(),
            cli_vars,
            file_vars: Map::new(),
            suite_known: Known::default(),
            suite_header_names: Vec::new(),
            base_url_missing: false,
            default_retry: RetryPolicy::none(),
            flow_names: HashMap::new(),
            json_queries: JsonQueries::default(),
        }
    }

    /// The plan, once every file is compiled without a problem.
    pub fn finish(self, suite: SuiteParts, flows: Vec<Flow>) -> Plan {
        let SuiteParts {
            settings,
            setup,
            teardown,
        } = suite;
        let mut env = self.env_used;
        // A variable used as `secret.` too is a secret wherever it is used.
        env.retain(|var, _| !self.secrets.contains_key(var));
        let secret_captures = setup
            .iter()
            .chain(&teardown)
            .chain(flows.iter().flat_map(|f| f.steps.iter().chain(&f.cleanup)))
            .flat_map(|step| &step.captures)
            .filter(|c| c.secret)
            .map(|c| c.name.clone())
            .collect();
        Plan {
            settings,
            setup,
            flows,
            teardown,
            env,
            secrets: self.secrets,
            secret_captures,
            lock: None,
        }
    }
}
