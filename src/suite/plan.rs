//! The validated plan: what the engine runs. Built only by `compile.rs`.

use crate::check::{Capture, Expectation};
use crate::redact::{Redactor, Secret};
use crate::template::{Template, TemplateValue};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::integrity::IntegrityEntry;
pub use crate::tls::TlsSettings;

/// Everything needed to run a suite, checked: no request is sent before this exists.
#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: Settings,
    pub setup: Vec<Step>,
    pub flows: Vec<Flow>,
    /// `[[teardown]]`: run once after every flow; a failure only warns.
    pub teardown: Vec<Step>,
    /// Values of the `env.` names the suite uses, read once at load.
    pub env: HashMap<String, String>,
    /// Values of the `secret.` names: never shown, held so that they cannot be printed.
    pub secrets: BTreeMap<String, Secret>,
    /// Names of the `secret = true` captures of the suite: their values are never shown.
    pub secret_captures: BTreeSet<String>,
    /// `preflight.lock`, when the suite has one.
    pub lock: Option<crate::integrity::Lock>,
    /// Compiles the stored flows ([`FlowBody::Stored`]) again; `None` when there are none.
    pub(crate) replay: Option<super::compile::Replay>,
    /// The suite's files as the load read them, for the digests (see `shard::LoadedFiles`).
    pub(crate) loaded_files: Option<crate::shard::LoadedFiles>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub dir: PathBuf,
    pub base_url: Option<url::Url>,
    pub concurrency: usize,
    pub timeout: Duration,
    pub deadline: Duration,
    pub follow_redirects: bool,
    pub max_body: u64,
    pub headers: Vec<(String, Template)>,
    pub vars: Map<String, Value>,
    /// `--var name=value` from the command line.
    pub cli_vars: Map<String, Value>,
    /// The default retry policy of every step.
    pub retry: RetryPolicy,
    pub wait: Option<WaitPolicy>,
    pub gate: GatePolicy,
    pub tls: TlsSettings,
    /// Config files pinned by SHA-256.
    pub integrity: Vec<IntegrityEntry>,
    pub version: Option<VersionCheck>,
    /// `[openapi]`: the contract every response is checked against.
    pub openapi: Option<OpenApiCheck>,
}

/// `[openapi]`, loaded and compiled.
#[derive(Debug, Clone)]
pub struct OpenApiCheck {
    pub contract: Arc<crate::openapi::Contract>,
    /// `validate = "warn"`: violations are warnings, not failures.
    pub warn_only: bool,
    /// The document's name, as `spec` gives it (relative to the suite folder).
    pub file: String,
    /// SHA-256 of the document the contract was loaded from: the reports' digests name it,
    /// so shards checked against different contracts are never joined.
    pub sha256: [u8; 32],
}

/// When a step is tried again (`[retry]` and a step's own `retry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries; 1 means no retry.
    pub attempts: u32,
    /// The first wait; doubled after each try, capped at [`RetryPolicy::MAX_BACKOFF`].
    pub backoff: Duration,
    pub on: RetryKinds,
    /// The kinds the step's own `retry.on` names: only these retry a POST or PATCH after a
    /// timeout or a 5xx, since the first try may have taken effect.
    pub named_by_step: RetryKinds,
}

/// Failure kinds that may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryKinds {
    /// No connection was made, so nothing was sent.
    pub connect: bool,
    /// No (whole) response in time, or the connection was lost after sending.
    pub timeout: bool,
    /// A 5xx status the step did not expect.
    pub server_error: bool,
}

impl RetryKinds {
    pub const ALL: RetryKinds = RetryKinds {
        connect: true,
        timeout: true,
        server_error: true,
    };
    pub const NAMES: [&'static str; 3] = ["connect", "timeout", "5xx"];
}

impl RetryPolicy {
    pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

    pub fn none() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            backoff: Duration::from_millis(200),
            on: RetryKinds::ALL,
            named_by_step: RetryKinds::default(),
        }
    }

    /// The wait before try `next` (2, 3, ...): backoff, doubled each time, capped.
    pub fn delay_before(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(16);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(Self::MAX_BACKOFF)
    }
}

/// `[wait]`: poll staging until it is ready before anything else runs.
#[derive(Debug, Clone)]
pub struct WaitPolicy {
    pub path: Template,
    pub status: crate::check::Op,
    pub timeout: Duration,
    pub interval: Duration,
}

/// `[gate]`: the verdict policy beyond "any critical failure fails".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatePolicy {
    /// `None` (-1): non-critical failures never fail the gate.
    pub max_noncritical_failures: Option<usize>,
    pub max_p95_latency: Option<Duration>,
    pub fail_on_flaky: bool,
    /// How a step compares with the same step of a `--baseline` run.
    pub latency_regression: RegressionPolicy,
}

/// When a step is slower than in the baseline run by enough to say so: by more than
/// `max_relative_pct` percent *and* by more than `min_absolute` (2 ms to 4 ms is +100% and
/// nothing to wake anyone for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegressionPolicy {
    pub max_relative_pct: u32,
    pub min_absolute: Duration,
    /// Regressions fail the gate instead of warning.
    pub fail: bool,
}

impl Default for RegressionPolicy {
    fn default() -> Self {
        RegressionPolicy {
            max_relative_pct: 50,
            min_absolute: Duration::from_millis(50),
            fail: false,
        }
    }
}

/// `[version]`: what staging must report it runs.
#[derive(Debug, Clone)]
pub struct VersionCheck {
    pub path: Template,
    pub source: VersionSource,
    pub expect: Template,
}

#[derive(Debug, Clone)]
pub enum VersionSource {
    Json(crate::check::JsonQuery),
    /// Lower-case header name.
    Header(String),
}

/// One flow of the plan: what selecting, sharding and reporting need, and its steps, compiled
/// or stored by the hash of its file (see [`Plan::steps_of`]). Lists are boxed slices
/// and the variables boxed when there are any: a plan holds every flow for the whole run.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    /// Path relative to the suite directory, `/`-separated.
    pub file: String,
    pub tags: Box<[String]>,
    pub critical: bool,
    /// `[vars]` (with a row's values), see [`Flow::vars`]; `None` when empty.
    pub(crate) own_vars: Option<Box<Map<String, Value>>>,
    /// For one row of `each`: the flow's own name (`name` is `flow [key=value]`), by which
    /// `--flow` selects all its rows.
    pub row_of: Option<String>,
    pub body: FlowBody,
}

/// A flow's steps, or how to compile them again from its file when the flow is needed.
#[derive(Debug, Clone)]
pub enum FlowBody {
    Compiled(FlowSteps),
    /// The SHA-256 of the flow file's text, which compiled without a problem at load: the file
    /// is read again when the flow is needed, and used only if it still has that hash. Only a
    /// flow whose compiling read nothing else (no other file, no environment variable) and
    /// whose digest needs nothing but that text is kept so: compiling the same text again
    /// gives the same steps.
    Stored {
        sha256: [u8; 32],
        /// Its requests were rehearsed at load (see `suite::load_rehearsed`), before its steps
        /// were dropped: a rehearsal of the plan need not compile it again.
        rehearsed: bool,
    },
}

/// The steps of a flow, then its cleanups.
#[derive(Debug, Clone)]
pub struct FlowSteps {
    pub steps: Box<[Step]>,
    pub cleanup: Box<[Step]>,
}

impl FlowSteps {
    /// Steps first, then cleanups.
    pub fn all(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(&self.cleanup)
    }
}

impl Flow {
    /// The flow's `[vars]`, with a row's values over them.
    pub fn vars(&self) -> &Map<String, Value> {
        static NONE: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        self.own_vars.as_deref().unwrap_or(&NONE)
    }
}

/// Lists are boxed slices, not `Vec`s: a plan holds every step of a suite for the whole run,
/// and a `Vec` is a word larger (massif: 312 B per step with five of them).
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub method: reqwest::Method,
    pub target: Target,
    pub query: Box<[(String, Template)]>,
    pub headers: Box<[(String, Template)]>,
    pub body: Body,
    pub timeout: Option<Duration>,
    /// Status first, then latency, headers, body and JSON, in file order.
    pub expectations: Box<[Expectation]>,
    pub captures: Box<[Capture]>,
    pub retry: RetryPolicy,
    /// Capture names its request uses: a cleanup whose captures never happened is skipped.
    pub uses_captures: Box<[String]>,
    /// `poll`: sent again while its expectations fail.
    pub poll: Option<PollPolicy>,
}

/// `poll = { attempts, interval }`: how often a step is sent until its expectations hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// Total sends, the first included.
    pub attempts: u32,
    /// The wait between two sends.
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub enum Target {
    /// Appended to the base URL.
    Path(Template),
    Url(Template),
}

#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(TemplateValue),
    Text(Template),
    /// `body_file`, read at load time and sent as is.
    File {
        name: String,
        bytes: Arc<Vec<u8>>,
    },
    Form(Vec<(String, Template)>),
}

/// Whether sending `method` twice has the effect of sending it once (RFC 9110): only these
/// are retried after a timeout or a 5xx, or polled, without the step saying so. POST, PATCH
/// and any extension method may have taken effect on the first try (a second order, a second
/// payment).
pub fn is_idempotent(method: &reqwest::Method) -> bool {
    use reqwest::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

impl Step {
    /// Whether the suite's digest takes more of this step than its flow file's text: a body
    /// file, a JSON Schema, a SHA-256 (see `shard::suite_digest`). A flow with such a step is
    /// never stored.
    pub fn digests_more_than_its_text(&self) -> bool {
        use crate::check::Op;
        matches!(self.body, Body::File { .. })
            || self.expectations.iter().any(|e| {
                matches!(
                    e.op,
                    Op::JsonSchema(_) | Op::Sha256(_) | Op::Sha256OfFile { .. }
                )
            })
    }

    /// The GET a suite-level path (`[wait]`, `[version]`, `served_at`) is fetched with.
    pub fn get(path: Template) -> Step {
        Step {
            name: "preflight check".into(),
            method: reqwest::Method::GET,
            target: Target::Path(path),
            query: Box::default(),
            headers: Box::default(),
            body: Body::None,
            timeout: None,
            expectations: Box::default(),
            captures: Box::default(),
            retry: RetryPolicy::none(),
            uses_captures: Box::default(),
            poll: None,
        }
    }
}

impl Plan {
    /// The redactor of a run of this plan: its secrets and `more` (the token of `serve`), told
    /// what the suite shows openly, so that a part of a secret is masked only where it is not
    /// also a part of that (see `Redactor::with_open_texts`).
    pub fn redactor<'a>(&'a self, more: impl IntoIterator<Item = &'a Secret>) -> Redactor {
        Redactor::new(self.secrets.values().chain(more)).with_open_texts(self.open_texts())
    }

    /// What the suite shows openly: its base URL, the `env.` values it uses, the strings of its
    /// variables.
    fn open_texts(&self) -> impl Iterator<Item = &str> {
        fn strings(vars: &Map<String, Value>) -> impl Iterator<Item = &str> {
            vars.values().filter_map(Value::as_str)
        }
        let settings = &self.settings;
        settings
            .base_url
            .iter()
            .map(url::Url::as_str)
            .chain(self.env.values().map(String::as_str))
            .chain(strings(&settings.vars))
            .chain(strings(&settings.cli_vars))
    }

    /// The files the load read for the steps and the contract (`body_file`, `json_schema`,
    /// `sha256_of_file`, `[openapi] spec`), by the name the suite gives them, with the
    /// `sha256:<hex>` of the bytes it read: a pinned file is checked against these as well as
    /// against what is on disk when the run starts, since it may have changed in between.
    /// Stored flows read no such file.
    pub fn loaded_inputs(&self) -> Vec<(&str, String)> {
        use crate::check::Op;
        let mut inputs = Vec::new();
        let compiled = self.flows.iter().filter_map(|flow| match &flow.body {
            FlowBody::Compiled(body) => Some(body),
            FlowBody::Stored { .. } => None,
        });
        let steps = compiled
            .flat_map(|body| body.all())
            .chain(&self.setup)
            .chain(&self.teardown);
        for step in steps {
            if let Body::File { name, bytes } = &step.body {
                inputs.push((
                    name.as_str(),
                    format!("sha256:{}", crate::check::sha256_hex(bytes)),
                ));
            }
            for expectation in &step.expectations {
                match &expectation.op {
                    Op::JsonSchema(schema) => inputs.push((
                        schema.file.as_str(),
                        format!("sha256:{}", hex::encode(schema.sha256)),
                    )),
                    Op::Sha256OfFile { file, hex } => inputs.push((
                        file.as_str(),
                        format!("sha256:{}", hex.to_ascii_lowercase()),
                    )),
                    _ => {}
                }
            }
        }
        if let Some(openapi) = &self.settings.openapi {
            inputs.push((
                openapi.file.as_str(),
                format!("sha256:{}", hex::encode(openapi.sha256)),
            ));
        }
        inputs
    }

    /// The steps of `flow`: its own when compiled, else compiled again from its file. That
    /// cannot fail for a file unchanged since the load; if it did, the error says why, and the
    /// flow must count as failed.
    pub fn steps_of<'a>(&'a self, flow: &'a Flow) -> Result<Cow<'a, FlowSteps>, String> {
        match &flow.body {
            FlowBody::Compiled(steps) => Ok(Cow::Borrowed(steps)),
            FlowBody::Stored { sha256, .. } => match &self.replay {
                Some(replay) => replay
                    .steps(&self.settings.dir, flow, sha256)
                    .map(Cow::Owned),
                None => Err("this flow's steps were not kept".into()),
            },
        }
    }

    /// Keeps the flows selected by the filters (tags: any of them; names: any of them), and
    /// returns one message per filter value that matches no flow of the suite, naming it and
    /// what exists: a misspelt `--flow` must be an error, never a smaller run that passes.
    pub fn select(
        &mut self,
        tags: &[String],
        skip_tags: &[String],
        names: &[String],
    ) -> Vec<String> {
        let mut known_tags: Vec<&str> = self
            .flows
            .iter()
            .flat_map(|f| f.tags.iter().map(String::as_str))
            .collect();
        known_tags.sort_unstable();
        known_tags.dedup();
        // A flow with rows is selected by its own name (every row) or by a row's name.
        let mut known_names: Vec<&str> = Vec::new();
        for flow in &self.flows {
            if let Some(of) = flow
                .row_of
                .as_deref()
                .filter(|of| !known_names.contains(of))
            {
                known_names.push(of);
            }
            known_names.push(&flow.name);
        }
        // At most this many existing names or tags are listed in one message.
        const SHOWN: usize = 20;
        let mut unmatched = Vec::new();
        for (flag, values, known, what) in [
            ("--flow", names, &known_names, "flows"),
            ("--tag", tags, &known_tags, "tags"),
            ("--skip-tag", skip_tags, &known_tags, "tags"),
        ] {
            for value in values.iter().filter(|v| !known.contains(&v.as_str())) {
                let hint = crate::problem::did_you_mean(value, known.iter().copied())
                    .map_or(String::new(), |h| format!(" ({h})"));
                let mut listed = known
                    .iter()
                    .take(SHOWN)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                if known.len() > SHOWN {
                    listed.push_str(&format!(" and {} more", known.len() - SHOWN));
                }
                if known.is_empty() {
                    listed = "none".into();
                }
                unmatched.push(format!(
                    "{flag} '{value}' matches no flow{hint}; {what} of the suite: {listed}"
                ));
            }
        }
        let by_tags = |flow: &Flow| {
            let tagged = tags.is_empty() || flow.tags.iter().any(|t| tags.contains(t));
            let skipped = flow.tags.iter().any(|t| skip_tags.contains(t));
            tagged && !skipped
        };
        let named =
            |flow: &Flow, name: &String| flow.name == *name || flow.row_of.as_ref() == Some(name);
        // A flow named with --flow and then filtered out by --tag or --skip-tag would silently
        // not run: a named flow must run, or the selection is a usage error.
        for name in names.iter().filter(|n| known_names.contains(&n.as_str())) {
            if !self.flows.iter().any(|f| named(f, name) && by_tags(f)) {
                unmatched.push(format!(
                    "--flow '{name}' is left out by the --tag/--skip-tag filters: name it without them, or drop it"
                ));
            }
        }
        self.flows.retain(|flow| {
            by_tags(flow) && (names.is_empty() || names.iter().any(|n| named(flow, n)))
        });
        unmatched
    }
}
