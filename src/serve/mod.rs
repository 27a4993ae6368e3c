//! `preflight serve`: the gate as an HTTP service, for delivery controllers (Flagger
//! webhooks, Argo Rollouts web analysis) and scheduled staging checks with Prometheus
//! metrics.
//!
//! The suite is loaded once at start-up (and again only on SIGHUP); every run is judged,
//! masked and reported exactly as `preflight run` would, one at a time.

mod gate;
mod metrics;
mod routes;
mod store;

pub use gate::GateOptions;

use crate::redact::Secret;
use crate::report::Trigger;
use crate::say::err;
use crate::suite::{Plan, Target};
use crate::verdict::EXIT_INVALID;
use gate::{Answer, Gate, RunRequest};
use routes::Server;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The token's environment variable.
pub const TOKEN_ENV: &str = "PREFLIGHT_SERVE_TOKEN";
/// A shorter token is refused: it could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;
/// After shutdown and the last run, how long open connections get to finish.
const DRAIN: Duration = Duration::from_secs(2);

/// How to serve, beyond the suite.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub every: Option<Duration>,
    pub allow_vars: Vec<String>,
    pub keep: usize,
    pub state_dir: Option<PathBuf>,
    pub public_metrics: bool,
    pub shutdown_grace: Duration,
    pub gate: GateOptions,
}

/// Loads the suite (printing its problems); `None` when it is invalid.
pub type Loader = Arc<dyn Fn() -> Option<Plan> + Send + Sync>;

/// Serves until SIGTERM or SIGINT; the exit code is 2 when it cannot start.
pub async fn serve(options: ServeOptions, token: Option<String>, load: Loader) -> ExitCode {
    let invalid = |message: String| {
        err!("error: {message}");
        ExitCode::from(EXIT_INVALID)
    };
    if let Err(message) = check_token(&options.listen, token.as_deref()) {
        return invalid(message);
    }
    let Some(plan) = load() else {
        return ExitCode::from(EXIT_INVALID);
    };
    if let Err(message) = check_allowed_vars(&plan, &options.allow_vars) {
        return invalid(message);
    }
    let store = match store::Store::open(options.keep, options.state_dir.as_deref()) {
        Ok(store) => store,
        Err(e) => return invalid(format!("cannot use --state-dir: {e}")),
    };
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(e) => return invalid(format!("cannot listen on {}: {e}", options.listen)),
    };
    let address = listener
        .local_addr()
        .map_or(options.listen.to_string(), |a| a.to_string());
    let gate_options = GateOptions {
        token: token.clone().map(Secret::new),
        ..options.gate.clone()
    };
    let suite = crate::report::terminal::clean(&plan.settings.name).into_owned();
    let flows = plan.flows.len();
    let gate = Arc::new(Gate::new(
        plan,
        gate_options,
        store,
        metrics::Metrics::new(),
    ));
    if token.is_none() {
        err!(
            "warning: {TOKEN_ENV} is not set: every route is open to anyone who can reach {address}"
        );
    }
    let server = Arc::new(Server {
        gate: gate.clone(),
        token,
        public_metrics: options.public_metrics,
        allowed_vars: options.allow_vars.iter().cloned().collect(),
        every: options.every,
        started: Instant::now(),
        last_scheduled: Mutex::new(None),
    });
    // Listening for signals before saying we listen: a SIGHUP that comes right after must
    // reload, not end the process.
    let signals = match Signals::new() {
        Ok(signals) => signals,
        Err(e) => return invalid(format!("cannot listen for signals: {e}")),
    };
    tokio::spawn(watch_signals(
        signals,
        gate.clone(),
        load,
        options.allow_vars.clone(),
        options.shutdown_grace,
    ));
    err!(
        "preflight serve: listening on http://{address} (suite {suite}, {})",
        crate::verdict::counted(flows, "flow")
    );
    if let Some(every) = options.every {
        tokio::spawn(schedule(server.clone(), every));
    }
    let app = routes::router(server);
    let shutdown = gate.shutdown.clone().cancelled_owned();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    // Once shut down and the last run over, its caller has the answer in moments; a client
    // that never finishes its request must not keep the process alive past the grace time.
    let drained = async {
        gate.shutdown.cancelled().await;
        let _last = gate.running().await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        served = std::future::IntoFuture::into_future(served) => {
            if let Err(e) = served {
                err!("error: the server stopped: {e}");
                return ExitCode::from(1);
            }
        }
        _ = drained => err!("preflight serve: closing the connections still open"),
    }
    // A scheduled run nobody waits for over HTTP may still be going: it ends (or is aborted
    // after the grace time) before the process does, so its cleanups run.
    let _last = gate.running().await;
    err!("preflight serve: stopped");
    ExitCode::SUCCESS
}

/// Off loopback a token is required; a token must be long enough not to be guessed.
fn check_token(listen: &SocketAddr, token: Option<&str>) -> Result<(), String> {
    match token {
        None if !listen.ip().is_loopback() => Err(format!(
            "{listen} is not a loopback address: set {TOKEN_ENV} (at least {MIN_TOKEN_LEN} characters) so that only callers with the token can run the gate"
        )),
        Some(token) if token.trim().chars().count() < MIN_TOKEN_LEN => Err(format!(
            "{TOKEN_ENV} is shorter than {MIN_TOKEN_LEN} characters: use a random one, e.g. `openssl rand -hex 32`"
        )),
        _ => Ok(()),
    }
}

/// An allowed variable must be one the suite declares, and a request must not be able to
/// point preflight at another host with it: no `url = ...` may read anything but `env.` and
/// `secret.` names (a variable directly, or through a capture of what staging echoed), and no
/// `Host` header may read the variable.
fn check_allowed_vars(plan: &Plan, allowed: &[String]) -> Result<(), String> {
    let settings = &plan.settings;
    for name in allowed {
        let declared = settings.vars.contains_key(name)
            || settings.cli_vars.contains_key(name)
            || plan.flows.iter().any(|f| f.vars().contains_key(name));
        if !declared {
            return Err(format!(
                "--allow-var {name}: the suite declares no variable `{name}`; give it a default in [vars] (or with --var)"
            ));
        }
    }
    if allowed.is_empty() {
        return Ok(());
    }
    let reads = |template: &crate::template::Template, name: &str| {
        template
            .names()
            .any(|(n, _)| n.split('.').next() == Some(name))
    };
    let host_header = |headers: &[(String, crate::template::Template)]| {
        let mut host = headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case("host"));
        let read = host.find_map(|(_, value)| allowed.iter().find(|name| reads(value, name)));
        match read {
            Some(name) => Err(format!(
                "--allow-var {name}: a `Host` header reads it, so a request could send preflight to another virtual host"
            )),
            None => Ok(()),
        }
    };
    let step = |step: &crate::suite::Step| {
        host_header(&step.headers)?;
        let Target::Url(url) = &step.target else {
            return Ok(());
        };
        let other = url
            .names()
            .map(|(n, _)| n)
            .find(|n| !n.starts_with("env.") && !n.starts_with("secret."));
        match other {
            Some(other) => Err(format!(
                "--allow-var: step '{}' reads `{other}` in its `url`; with variables a request may set, a `url` may read only env. and secret. names, since a request's value could reach it (directly, or echoed by staging into a capture) and point preflight at another host. Use `path` (under base_url) instead",
                step.name
            )),
            None => Ok(()),
        }
    };
    host_header(&settings.headers)?;
    plan.setup.iter().chain(&plan.teardown).try_for_each(step)?;
    // One flow's steps at a time: stored ones are read and compiled again for this check only.
    for flow in &plan.flows {
        plan.steps_of(flow)?.all().try_for_each(step)?;
    }
    Ok(())
}

/// `--every`: a run, then the interval plus up to a tenth of it at random (so that several
/// servers do not hit staging in step), until shutdown. Runs never overlap: a scheduled run
/// waits for the one in progress.
async fn schedule(server: Arc<Server>, every: Duration) {
    let gate = &server.gate;
    loop {
        let (plan, generation, files_digest) = gate.current();
        let request = RunRequest {
            trigger: Trigger::Schedule,
            plan,
            key: None,
            flagger: None,
            vars: BTreeMap::new(),
            files_digest,
        };
        match gate.request(request, generation).await {
            Answer::Ran(_) => {
                *server
                    .last_scheduled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            }
            Answer::ShuttingDown => return,
            // A scheduled run has no key and waits as long as it takes; a failed one (logged)
            // is tried again at the next interval.
            Answer::Busy { .. } | Answer::KeyReused | Answer::Failed => {}
        }
        let jitter = every.mul_f64(random_fraction() / 10.0);
        tokio::select! {
            _ = tokio::time::sleep(every + jitter) => {}
            _ = gate.shutdown.cancelled() => return,
        }
    }
}

/// A number in [0, 1).
fn random_fraction() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// SIGHUP reloads the suite; SIGTERM or SIGINT shuts down: no new run, the run in progress
/// gets `grace` to finish, then is aborted (its cleanups still run). A second SIGTERM or
/// SIGINT aborts it at once.
async fn watch_signals(
    signals: Signals,
    gate: Arc<Gate>,
    load: Loader,
    allowed: Vec<String>,
    grace: Duration,
) {
    let Signals {
        mut hup,
        mut int,
        mut term,
    } = signals;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&gate, &load, &allowed).await,
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
    }
    err!(
        "preflight serve: shutting down; a run in progress gets {} to finish",
        humantime::format_duration(grace)
    );
    gate.shutdown.cancel();
    tokio::select! {
        _ = tokio::time::sleep(grace) => {
            err!("preflight serve: shutdown grace is over: aborting the run in progress");
        }
        _ = int.recv() => err!("preflight serve: interrupted again: aborting the run"),
        _ = term.recv() => err!("preflight serve: interrupted again: aborting the run"),
    }
    gate.abort.cancel();
}

/// The signals serve answers, listened for from the moment this exists.
struct Signals {
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }
}

async fn reload(gate: &Gate, load: &Loader, allowed: &[String]) {
    err!("preflight serve: SIGHUP: reloading the suite");
    let load = load.clone();
    let loaded = tokio::task::spawn_blocking(move || load())
        .await
        .ok()
        .flatten();
    let plan = match loaded {
        Some(plan) => match check_allowed_vars(&plan, allowed) {
            Ok(()) => Some(plan),
            Err(message) => {
                err!("error: {message}");
                None
            }
        },
        None => None,
    };
    match plan {
        Some(plan) => {
            let flows = plan.flows.len();
            gate.replace_suite(plan);
            gate.metrics.reloaded(true);
            err!(
                "preflight serve: suite reloaded ({})",
                crate::verdict::counted(flows, "flow")
            );
        }
        None => {
            gate.metrics.reloaded(false);
            err!("preflight serve: reload failed: still serving the suite loaded before");
        }
    }
}
