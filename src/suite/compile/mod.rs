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
use crate::suite::plan::{Flow, FlowBody, FlowSteps, Plan, RetryPolicy};
use names::Known;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// How many flows stay compiled (`PREFLIGHT_KEEP_COMPILED`); `None`: [`super::KEEP_COMPILED`].
    pub keep_compiled: Option<usize>,
    /// A digest of the suite's files may be asked for (`run`, `serve`): the load hashes each
    /// file it reads (see `shard::LoadedFiles`), so that the digest need not read them again.
    pub digest_files: bool,
}

/// Compiles the suite settings; the flows are compiled one by one with [`Compiler::flow`].
pub struct Compiler<'e> {
    pub dir: PathBuf,
    pub overrides: Overrides,
    pub env: &'e (dyn Fn(&str) -> Option<String> + Sync),
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
    flow_names: FlowNames,
    json_queries: JsonQueries,
    /// Names of the `secret = true` captures compiled so far.
    secret_captures: BTreeSet<String>,
}

/// Flow names taken so far, each with the file that took it. One string holds them all: a
/// set of two boxed strings per flow was about 120 bytes a flow (massif), and a large suite's
/// load holds it to the end.
#[derive(Default)]
pub(super) struct FlowNames {
    text: String,
    /// Where each name and its file end in `text`; each starts where the one before ends.
    ends: Vec<(usize, usize)>,
    /// Indices into `ends`, by name.
    table: hashbrown::HashTable<usize>,
    hasher: std::hash::RandomState,
}

impl FlowNames {
    /// The file that has taken `name` already; `None` once `file` has taken it.
    pub(super) fn take(&mut self, name: &str, file: &str) -> Option<&str> {
        use std::hash::BuildHasher as _;
        let Self {
            text,
            ends,
            table,
            hasher,
        } = self;
        let name_of = |i: usize| {
            let start = i.checked_sub(1).map_or(0, |before| ends[before].1);
            &text[start..ends[i].0]
        };
        let hash = hasher.hash_one(name);
        if let Some(&i) = table.find(hash, |&i| name_of(i) == name) {
            return Some(&text[ends[i].0..ends[i].1]);
        }
        let index = ends.len();
        table.insert_unique(hash, index, |&i| hasher.hash_one(name_of(i)));
        text.push_str(name);
        let name_end = text.len();
        text.push_str(file);
        ends.push((name_end, text.len()));
        None
    }

    /// Forgets every name, keeping the room they took (the replay compiler clears it before
    /// each flow).
    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.table.clear();
    }
}

/// Every JSONPath compiled so far, by its text. Suites repeat the same few (`$.id`, `$.ok`) in
/// every flow, and parsing one costs about ten times copying it: this was 7% of a large
/// `check` (callgrind).
#[derive(Default, Clone)]
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
    pub fn new(
        dir: &Path,
        overrides: Overrides,
        env: &'e (dyn Fn(&str) -> Option<String> + Sync),
    ) -> Self {
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
            flow_names: FlowNames::default(),
            json_queries: JsonQueries::default(),
            secret_captures: BTreeSet::new(),
        }
    }

    /// A compiler for the stored flows: the suite's settings as compiled here, no flow
    /// names taken yet, and no environment (a flow that reads a variable is never stored, so
    /// compiling one again reads none).
    pub fn replay(&self) -> Replay {
        fn no_environment(_: &str) -> Option<String> {
            None
        }
        let compiler = Compiler {
            dir: self.dir.clone(),
            overrides: self.overrides.clone(),
            env: &no_environment,
            env_used: HashMap::new(),
            secrets: BTreeMap::new(),
            cli_vars: self.cli_vars.clone(),
            file_vars: self.file_vars.clone(),
            suite_known: self.suite_known.clone(),
            suite_header_names: self.suite_header_names.clone(),
            base_url_missing: self.base_url_missing,
            default_retry: self.default_retry.clone(),
            flow_names: FlowNames::default(),
            json_queries: self.json_queries.clone(),
            secret_captures: BTreeSet::new(),
        };
        Replay(Arc::new(Mutex::new(compiler)))
    }

    /// What a flow that reads no environment variable of its own is rehearsed against while
    /// the suite loads: the suite's settings, and the variables read so far (the suite's).
    pub fn draft_plan(&self, settings: &crate::suite::Settings) -> Plan {
        let mut env = self.env_used.clone();
        env.retain(|var, _| !self.secrets.contains_key(var));
        Plan {
            settings: settings.clone(),
            setup: Vec::new(),
            flows: Vec::new(),
            teardown: Vec::new(),
            env,
            secrets: self.secrets.clone(),
            secret_captures: BTreeSet::new(),
            lock: None,
            replay: None,
            loaded_files: None,
        }
    }

    /// The plan, once every file is compiled without a problem; `replay` when a flow is
    /// stored.
    pub fn finish(self, suite: SuiteParts, flows: Vec<Flow>, replay: Option<Replay>) -> Plan {
        let SuiteParts {
            settings,
            setup,
            teardown,
        } = suite;
        let mut env = self.env_used;
        // A variable used as `secret.` too is a secret wherever it is used.
        env.retain(|var, _| !self.secrets.contains_key(var));
        Plan {
            settings,
            setup,
            flows,
            teardown,
            env,
            secrets: self.secrets,
            secret_captures: self.secret_captures,
            lock: None,
            replay,
            loaded_files: None,
        }
    }
}

/// Compiles the flows a plan keeps by the hash of their file ([`FlowBody::Stored`]) again when
/// they are needed.
#[derive(Clone)]
pub struct Replay(Arc<Mutex<Compiler<'static>>>);

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replay")
    }
}

impl Replay {
    /// The steps of `flow` (of the suite in `dir`), compiled from its file, which must still
    /// hash to `sha256`: exactly those it had at load, or an error if anything differs.
    pub(crate) fn steps(
        &self,
        dir: &Path,
        flow: &Flow,
        sha256: &[u8; 32],
    ) -> Result<FlowSteps, String> {
        use sha2::Digest as _;
        let path = dir.join(&flow.file);
        // Read as at load: a regular file only (a FIFO put in its place is refused).
        let text = crate::fs::read::read_regular_text(&path)
            .map_err(|e| format!("cannot read {} again: {e}", flow.file))?;
        if sha2::Sha256::digest(&text).as_slice() != sha256 {
            return Err(format!(
                "{} changed after the suite was checked: run again to check the new version",
                flow.file
            ));
        }
        let mut problems = Vec::new();
        let mut src = Source {
            path,
            text,
            problems: &mut problems,
            read_outside: false,
        };
        // Parsed outside the lock: only compiling needs the compiler.
        let parsed = crate::suite::parse::parse::<crate::suite::raw::RawFlow>(&mut src);
        let lost = Lost::of(&parsed);
        let compiled = match parsed.raw {
            Some(raw) => {
                let mut compiler = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                // Its name was taken by the last compile of this flow (or of another one).
                compiler.flow_names.clear();
                compiler.flow(&mut src, &flow.file, raw, lost)
            }
            None => Vec::new(),
        };
        let read_outside = src.read_outside;
        let mut compiled = compiled.into_iter();
        match (compiled.next(), compiled.next()) {
            (Some(again), None)
                if problems.is_empty() && !read_outside && again.name == flow.name =>
            {
                match again.body {
                    FlowBody::Compiled(steps) => Ok(steps),
                    FlowBody::Stored { .. } => Err(CANNOT_REPLAY.into()),
                }
            }
            _ => Err(match problems.first() {
                Some(problem) => format!("{CANNOT_REPLAY}: {}", problem.message),
                None => CANNOT_REPLAY.into(),
            }),
        }
    }
}

const CANNOT_REPLAY: &str = "preflight could not compile this flow again as it was checked at load";

#[cfg(test)]
mod tests {
    use super::FlowNames;

    #[test]
    fn a_flow_name_is_taken_once_and_tells_who_took_it() {
        let mut names = FlowNames::default();
        for i in 0..5000 {
            assert_eq!(
                names.take(&format!("flow {i}"), &format!("f{i}.toml")),
                None
            );
        }
        for i in (0..5000).step_by(7) {
            let first = format!("f{i}.toml");
            assert_eq!(
                names.take(&format!("flow {i}"), "other.toml"),
                Some(&*first)
            );
        }
        // Names and files run together in one string: no name is a prefix of another's entry.
        assert_eq!(names.take("flow 1f1.toml", "x.toml"), None);
        assert_eq!(names.take("", "empty.toml"), None);
        assert_eq!(names.take("", "again.toml"), Some("empty.toml"));
        names.clear();
        assert_eq!(names.take("flow 1", "g.toml"), None);
    }
}
