//! Sharding: which part of the selected flows one machine runs (`--shard K/N`, `--shard auto`),
//! and the suite digest that lets `merge` refuse to join shards of different suites.
//!
//! The split depends on the flow names alone, so every machine computes the same parts
//! without talking to the others.

use crate::suite::Plan;
use sha2::{Digest, Sha256};
use std::path::Path;

/// One part of N: `index` is 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// What `--shard` was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Fixed(Shard),
    /// Read from the CI's own variables.
    Auto,
}

/// Why no shard could be decided: a usage error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard expects K/N with 1 <= K <= N, or `auto`; got `{0}`")]
    Syntax(String),
    #[error(
        "--shard auto found no parallel job: set CI_NODE_INDEX and CI_NODE_TOTAL (GitLab parallel:), \
         BUILDKITE_PARALLEL_JOB and BUILDKITE_PARALLEL_JOB_COUNT (Buildkite), CIRCLE_NODE_INDEX and \
         CIRCLE_NODE_TOTAL (CircleCI), or JOB_COMPLETION_INDEX with --shard-count N (Kubernetes \
         Indexed Job); or give --shard K/N"
    )]
    NoneFound,
    #[error("--shard auto: {set} is set but {missing} is not")]
    Partial {
        set: &'static str,
        missing: &'static str,
    },
    #[error("--shard auto: {name}=`{value}` is not a shard index of {count} ({base}-based)")]
    BadIndex {
        name: &'static str,
        value: String,
        count: usize,
        base: usize,
    },
    #[error("--shard auto: {name}=`{value}` is not a positive number of shards")]
    BadCount { name: &'static str, value: String },
    #[error("--shard auto: {first} and {second} name different shards; give --shard K/N")]
    Disagree {
        first: &'static str,
        second: &'static str,
    },
    #[error("--shard-count {given} disagrees with {name}={found}")]
    CountConflict {
        given: usize,
        name: &'static str,
        found: usize,
    },
    #[error(
        "--shard {index}/{count}: the selection has only {flows} flows, so some shards would run none; use at most {flows} shards"
    )]
    TooManyShards {
        index: usize,
        count: usize,
        flows: usize,
    },
}

/// Parses `K/N` or `auto`.
pub fn parse(text: &str) -> Result<ShardArg, ShardError> {
    if text == "auto" {
        return Ok(ShardArg::Auto);
    }
    let bad = || ShardError::Syntax(text.to_string());
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (index, count) = (
        k.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if index == 0 || index > count {
        return Err(bad());
    }
    Ok(ShardArg::Fixed(Shard { index, count }))
}

/// The CI variables `--shard auto` reads, in the order it looks: (index, total, index base).
const CI_PAIRS: [(&str, &str, usize); 3] = [
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
];

/// The Kubernetes Indexed Job's 0-based index; its count comes from `--shard-count`.
const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";

/// Decides the shard of `--shard auto` from the environment: GitLab, Buildkite, CircleCI,
/// then Kubernetes. A half-set pair is an error rather than a fallback, so a misconfigured
/// job never silently runs another part (or the whole).
pub fn detect(
    env: &dyn Fn(&str) -> Option<String>,
    shard_count: Option<usize>,
) -> Result<Shard, ShardError> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    // Every source that is set is read: two CIs' variables that disagree (a runner inside
    // another) would otherwise pick a shard silently, and two jobs could run the same part.
    let mut found: Vec<(&'static str, Shard)> = Vec::new();
    for (index_name, total_name, base) in CI_PAIRS {
        let (index, total) = match (get(index_name), get(total_name)) {
            (None, None) => continue,
            (Some(_), None) => {
                return Err(ShardError::Partial {
                    set: index_name,
                    missing: total_name,
                });
            }
            (None, Some(_)) => {
                return Err(ShardError::Partial {
                    set: total_name,
                    missing: index_name,
                });
            }
            (Some(index), Some(total)) => (index, total),
        };
        let count = positive(total_name, &total)?;
        if let Some(given) = shard_count.filter(|g| *g != count) {
            return Err(ShardError::CountConflict {
                given,
                name: total_name,
                found: count,
            });
        }
        found.push((index_name, indexed(index_name, &index, base, count)?));
    }
    match (get(K8S_INDEX), shard_count) {
        (Some(index), Some(count)) => {
            found.push((K8S_INDEX, indexed(K8S_INDEX, &index, 0, count)?))
        }
        (Some(_), None) if found.is_empty() => {
            return Err(ShardError::Partial {
                set: K8S_INDEX,
                missing: "--shard-count",
            });
        }
        (None, Some(_)) if found.is_empty() => {
            return Err(ShardError::Partial {
                set: "--shard-count",
                missing: K8S_INDEX,
            });
        }
        _ => {}
    }
    let &(first, shard) = found.first().ok_or(ShardError::NoneFound)?;
    match found.iter().find(|(_, other)| *other != shard) {
        Some(&(second, _)) => Err(ShardError::Disagree { first, second }),
        None => Ok(shard),
    }
}

fn positive(name: &'static str, value: &str) -> Result<usize, ShardError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ShardError::BadCount {
            name,
            value: value.to_string(),
        })
}

fn indexed(
    name: &'static str,
    value: &str,
    base: usize,
    count: usize,
) -> Result<Shard, ShardError> {
    let bad = || ShardError::BadIndex {
        name,
        value: value.to_string(),
        count,
        base,
    };
    let raw = value.trim().parse::<usize>().map_err(|_| bad())?;
    let index = raw
        .checked_add(1)
        .and_then(|i| i.checked_sub(base))
        .ok_or_else(bad)?;
    if index == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// The shard (1-based) that owns the flow at `position` of the selection sorted by name:
/// round robin, so the parts differ in size by at most one flow.
pub fn owner(position: usize, count: usize) -> usize {
    position % count + 1
}

/// The selected flow names sorted the way the split sorts them.
pub fn sorted_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names
}

/// Keeps the flows of `shard`, in their path order. More shards than flows is refused: an empty
/// shard would have nothing to prove.
pub fn keep(plan: &mut Plan, shard: Shard) -> Result<(), ShardError> {
    let flows = plan.flows.len();
    if shard.count > flows {
        return Err(ShardError::TooManyShards {
            index: shard.index,
            count: shard.count,
            flows,
        });
    }
    let sorted = sorted_names(plan.flows.iter().map(|f| f.name.as_str()));
    let mine: std::collections::HashSet<String> = sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| owner(*i, shard.count) == shard.index)
        .map(|(_, name)| name.to_string())
        .collect();
    plan.flows.retain(|f| mine.contains(&f.name));
    Ok(())
}

/// The environment variables that name one pipeline run on each CI (and `PREFLIGHT_RUN_ID`
/// elsewhere): shards of one run share them, a stale report of an earlier run does not.
pub const RUN_ID_VARS: [&str; 5] = [
    "PREFLIGHT_RUN_ID",
    "GITHUB_RUN_ID",
    "CI_PIPELINE_ID",
    "BUILDKITE_BUILD_ID",
    "CIRCLE_WORKFLOW_ID",
];

/// `sha256:<hex>` over everything that decides what a shard checks: the selected flows' files,
/// `preflight.toml`, the lock, the files the flows read (`json_schema`, `body_file`, hashes)
/// and the `[openapi]` contract,
/// the effective base URL, every variable (`[vars]`, `--var`, `--vars-file`, rows), the
/// `env.` values, the limits, the selected names, and the run id of the CI pipeline. It is the
/// same for every shard of one run and differs as soon as any of these does, so shards of
/// different suites, settings, deployments or runs are never joined. Secrets are left out (a
/// report holds nothing derived from them). Each part is length-prefixed so no two inputs
/// collide.
pub fn suite_digest(plan: &Plan, env: &dyn Fn(&str) -> Option<String>) -> std::io::Result<String> {
    let mut parts = suite_files(plan)?;
    run_inputs(plan, env, &mut parts);
    Ok(parts.finish())
}

/// `sha256:<hex>` over the suite's files and the selection only: what a run checks, not where
/// or when (no base URL, variables or CI run ids). Runs of one suite on different deploys
/// share it, so a report can be the `--baseline` of a later run.
pub fn files_digest(plan: &Plan) -> std::io::Result<String> {
    Ok(suite_files(plan)?.finish())
}

/// Labelled byte strings hashed in order, each length-prefixed so that no two different
/// sequences of them hash alike.
#[derive(Clone)]
struct Parts(Sha256);

impl Parts {
    fn new() -> Self {
        Parts(Sha256::new())
    }

    fn add(&mut self, label: &str, bytes: &[u8]) {
        for piece in [label.as_bytes(), bytes] {
            self.0.update((piece.len() as u64).to_le_bytes());
            self.0.update(piece);
        }
    }

    fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

/// The suite's files as the load read them, hashed the way the digests begin: `preflight.toml`,
/// the lock, then each flow file in order. A digest of a plan with all of these flow files
/// (every flow, or a selection that keeps at least one flow of each file) starts from it
/// instead of opening and reading every file again: a second read of each file was about a
/// tenth of the CPU of a run of 100,000 one-step probes (strace: 6 system calls a file).
#[derive(Clone)]
pub struct LoadedFiles {
    parts: Parts,
    count: usize,
    /// The flow files' names in order, hashed: which files `parts` holds.
    names: std::hash::DefaultHasher,
}

impl std::fmt::Debug for LoadedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoadedFiles({} flow files)", self.count)
    }
}

impl LoadedFiles {
    /// Begins with the text of `preflight.toml` and of the lock, as the load read them (`None`:
    /// the suite has no such file).
    pub fn start(suite: Option<&[u8]>, lock: Option<&[u8]>) -> Self {
        let mut parts = Parts::new();
        parts.add(crate::suite::SUITE_FILE, suite.unwrap_or(ABSENT));
        parts.add(crate::integrity::LOCK_FILE, lock.unwrap_or(ABSENT));
        LoadedFiles {
            parts,
            count: 0,
            names: std::hash::DefaultHasher::new(),
        }
    }

    /// The next flow file of the plan, `file` as its flows name it, with the text they were
    /// compiled from.
    pub fn add(&mut self, file: &str, text: &[u8]) {
        use std::hash::Hash;
        self.parts.add(file, text);
        self.count += 1;
        file.hash(&mut self.names);
    }

    /// Whether these are the files `files` (in this order).
    fn are(&self, files: &[&str]) -> bool {
        use std::hash::{Hash, Hasher};
        let mut names = std::hash::DefaultHasher::new();
        files.iter().for_each(|file| file.hash(&mut names));
        files.len() == self.count && names.finish() == self.names.finish()
    }
}

/// The files of the selected flows, `preflight.toml`, the lock, and the selection.
fn suite_files(plan: &Plan) -> std::io::Result<Parts> {
    let dir = &plan.settings.dir;
    let mut files: Vec<&str> = plan.flows.iter().map(|f| f.file.as_str()).collect();
    files.dedup();
    let loaded = plan.loaded_files.as_ref().filter(|l| l.are(&files));
    let mut parts = match loaded {
        Some(loaded) => loaded.parts.clone(),
        None => {
            let mut parts = Parts::new();
            for name in [crate::suite::SUITE_FILE, crate::integrity::LOCK_FILE] {
                parts.add(name, &read_optional(&dir.join(name))?);
            }
            for file in files {
                // Read like every suite file: a flow file that became a FIFO must not hang
                // the digest.
                let path = dir.join(file);
                let bytes = crate::fs::read::read_regular(&path)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
                parts.add(file, &bytes);
            }
            parts
        }
    };
    for flow in &plan.flows {
        parts.add("selected", flow.name.as_bytes());
        parts.add(
            "vars",
            serde_json::to_string(&flow.vars())
                .unwrap_or_default()
                .as_bytes(),
        );
        // A flow kept as text has no step that needs more than that text (`store`).
        if let crate::suite::FlowBody::Compiled(body) = &flow.body {
            for step in body.all() {
                step_inputs(step, &mut parts);
            }
        }
    }
    for step in plan.setup.iter().chain(&plan.teardown) {
        step_inputs(step, &mut parts);
    }
    // Left out when there is none, so the digests of suites without a contract stay as they were.
    if let Some(openapi) = &plan.settings.openapi {
        parts.add("openapi", &openapi.sha256);
        parts.add("openapi validate", &[u8::from(openapi.warn_only)]);
    }
    Ok(parts)
}

/// What a run is given beyond the files: where, with which values, in which CI run.
fn run_inputs(plan: &Plan, env: &dyn Fn(&str) -> Option<String>, parts: &mut Parts) {
    let settings = &plan.settings;
    let base_url = settings.base_url.as_ref().map_or("", |u| u.as_str());
    parts.add("base_url", base_url.as_bytes());
    parts.add(
        "suite vars",
        serde_json::to_string(&settings.vars)
            .unwrap_or_default()
            .as_bytes(),
    );
    let cli: std::collections::BTreeMap<_, _> = settings.cli_vars.iter().collect();
    parts.add(
        "--var",
        serde_json::to_string(&cli).unwrap_or_default().as_bytes(),
    );
    let env_values: std::collections::BTreeMap<_, _> = plan.env.iter().collect();
    parts.add(
        "env",
        serde_json::to_string(&env_values)
            .unwrap_or_default()
            .as_bytes(),
    );
    let limits = format!(
        "{:?} {:?} {} {}",
        settings.timeout, settings.deadline, settings.max_body, settings.follow_redirects
    );
    parts.add("limits", limits.as_bytes());
    for var in RUN_ID_VARS {
        parts.add(var, env(var).unwrap_or_default().as_bytes());
    }
}

/// The files a step reads (its body file, the schemas its expectations validate against), as
/// the load read them, and the hashes it expects.
fn step_inputs(step: &crate::suite::Step, parts: &mut Parts) {
    use crate::check::Op;
    let mut any = false;
    if let crate::suite::Body::File { bytes, .. } = &step.body {
        parts.add("body_file", bytes);
        any = true;
    }
    for expectation in &step.expectations {
        match &expectation.op {
            Op::JsonSchema(schema) => {
                parts.add("json_schema", &schema.sha256);
                any = true;
            }
            Op::Sha256(hex) | Op::Sha256OfFile { hex, .. } => {
                parts.add("sha256", hex.as_bytes());
                any = true;
            }
            _ => {}
        }
    }
    // A stored flow's steps are left out of the digest (`suite_files`): only those of which
    // nothing is taken here may be stored.
    debug_assert_eq!(any, step.digests_more_than_its_text());
}

/// What an absent file reads as in a digest: distinct from an empty one.
const ABSENT: &[u8] = b"\0absent";

/// A file's bytes; an absent file reads as a marker distinct from an empty one.
/// Read like every suite file (regular files only, so a FIFO cannot hang the digest).
fn read_optional(path: &Path) -> std::io::Result<Vec<u8>> {
    match crate::fs::read::read_regular(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.is_missing() => Ok(ABSENT.to_vec()),
        Err(e) => Err(std::io::Error::other(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!(
            parse("2/4"),
            Ok(ShardArg::Fixed(Shard { index: 2, count: 4 }))
        );
        assert_eq!(parse("auto"), Ok(ShardArg::Auto));
        for bad in ["0/4", "5/4", "4", "a/b", "1/0", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_refuses_half_set_and_conflicting_variables() {
        fn detected(vars: &[(&str, &str)], count: Option<usize>) -> Result<Shard, ShardError> {
            detect(&env_of(vars), count)
        }
        assert_eq!(
            detected(&[("CI_NODE_INDEX", "1")], None),
            Err(ShardError::Partial {
                set: "CI_NODE_INDEX",
                missing: "CI_NODE_TOTAL"
            })
        );
        assert!(matches!(
            detected(&[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "2")], Some(3)),
            Err(ShardError::CountConflict { .. })
        ));
        assert!(matches!(
            detected(
                &[("CIRCLE_NODE_INDEX", "2"), ("CIRCLE_NODE_TOTAL", "2")],
                None
            ),
            Err(ShardError::BadIndex { .. })
        ));
        assert!(matches!(
            detected(&[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "2")], None),
            Err(ShardError::BadIndex { .. })
        ));
        assert_eq!(
            detected(&[("JOB_COMPLETION_INDEX", "3")], Some(4)),
            Ok(Shard { index: 4, count: 4 })
        );
        assert_eq!(detected(&[], None), Err(ShardError::NoneFound));
        // Two sources that agree are one answer; two that disagree are refused.
        let gitlab = [("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "2")];
        let circle = [("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "2")];
        assert_eq!(
            detected(&[gitlab, circle].concat(), None),
            Ok(Shard { index: 2, count: 2 })
        );
        assert_eq!(
            detected(
                &[&gitlab[..], &circle, &[("JOB_COMPLETION_INDEX", "0")]].concat(),
                Some(2)
            ),
            Err(ShardError::Disagree {
                first: "CI_NODE_INDEX",
                second: "JOB_COMPLETION_INDEX"
            })
        );
    }

    #[test]
    fn round_robin_is_balanced() {
        let counts: Vec<usize> = (1..=4)
            .map(|k| (0..62).filter(|i| owner(*i, 4) == k).count())
            .collect();
        assert_eq!(counts, [16, 16, 15, 15]);
    }

    /// The digests of a plan taken from the files as the load read them are those of the
    /// files read again, for every flow, a selection that drops a file, and shards.
    #[test]
    fn digests_from_the_loaded_files_are_those_of_the_files_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "preflight.toml",
            "base_url = \"http://127.0.0.1:9\"\n[vars]\nx = 1\n",
        );
        write(
            "a.toml",
            "[[step]]\npath = \"/a\"\n[step.expect.body]\njson_schema = \"s.json\"\n",
        );
        write("s.json", "{\"type\": \"object\"}");
        write("preflight.lock", "[files]\n");
        write(
            "b.toml",
            "each = [{ n = 1 }, { n = 2 }]\n[[step]]\npath = \"/b/{{ n }}\"\n",
        );
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write("sub/c.toml", "[[step]]\npath = \"/c\"\n");
        let env = |_: &str| None;
        let overrides = crate::suite::Overrides {
            digest_files: true,
            ..Default::default()
        };
        let plan = crate::suite::load(dir.path(), overrides, &env).unwrap();
        assert!(plan.loaded_files.as_ref().is_some_and(|l| l.count == 3));
        let read_again = |plan: &Plan| {
            let mut plan = plan.clone();
            plan.loaded_files = None;
            (
                files_digest(&plan).unwrap(),
                suite_digest(&plan, &env).unwrap(),
            )
        };
        let digests = |plan: &Plan| {
            (
                files_digest(plan).unwrap(),
                suite_digest(plan, &env).unwrap(),
            )
        };
        assert_eq!(digests(&plan), read_again(&plan));
        // One row of b kept: every file still has a flow.
        let mut one_row = plan.clone();
        one_row.flows.retain(|f| f.name != "b [n=1]");
        assert_eq!(one_row.flows.len(), 3);
        assert_eq!(digests(&one_row), read_again(&one_row));
        assert_ne!(digests(&one_row), digests(&plan));
        // a.toml dropped: the loaded files are not the plan's.
        let mut without_a = plan.clone();
        without_a.flows.retain(|f| f.file != "a.toml");
        assert!(
            !without_a
                .loaded_files
                .as_ref()
                .unwrap()
                .are(&["b.toml", "sub/c.toml"])
        );
        assert_eq!(digests(&without_a), read_again(&without_a));
        for index in 1..=2 {
            let mut shard = plan.clone();
            keep(&mut shard, Shard { index, count: 2 }).unwrap();
            assert_eq!(digests(&shard), read_again(&shard));
        }
        // The digest covers the text that was loaded (and run), not what a file holds later:
        // a flow file, preflight.toml, the lock.
        let before = digests(&plan);
        let changes = [
            ("a.toml", "[[step]]\npath = \"/changed\"\n"),
            ("preflight.toml", "base_url = \"http://127.0.0.1:9\"\n"),
            ("preflight.lock", "[files]\n# changed\n"),
        ];
        for (file, text) in changes {
            let was = std::fs::read_to_string(dir.path().join(file)).unwrap();
            write(file, text);
            assert_eq!(digests(&plan), before, "{file}");
            assert_ne!(read_again(&plan), before, "{file}");
            write(file, &was);
        }
        assert_eq!(read_again(&plan), before);
        // A schema is named by the bytes it was compiled from: changed or removed after the
        // load, the digests stay those of what runs (and taking them is no error).
        write("s.json", "{\"type\": \"object\", \"required\": [\"id\"]}");
        assert_eq!(digests(&plan), before);
        assert_eq!(read_again(&plan), before);
        let other = crate::suite::load(dir.path(), Default::default(), &env).unwrap();
        assert_ne!(digests(&other), before, "another schema, another suite");
        std::fs::remove_file(dir.path().join("s.json")).unwrap();
        assert_eq!(digests(&plan), before);
    }
}
