//! One run at a time: requests and the schedule queue for the gate, requests with the same
//! idempotency key share one run, and every finished run is judged, masked, kept and counted
//! exactly as `preflight run` would judge it.

use super::metrics::Metrics;
use super::store::{Store, StoredRun};
use crate::engine::{self, EventSink, RunOptions, Stop};
use crate::redact::{Mask, Secret};
use crate::report::{FlaggerRecord, Report, ServeRecord, Trigger};
use crate::say::err;
use crate::suite::Plan;
use crate::verdict::judge;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the server was started with, beyond the suite.
#[derive(Debug, Clone)]
pub struct GateOptions {
    pub fail_fast: bool,
    /// How long a request waits for the run in progress before `429`.
    pub queue_timeout: Duration,
    /// How long the last finished run answers a request with its idempotency key.
    pub replay_for: Duration,
    /// `PREFLIGHT_SERVE_TOKEN`: masked in every report too.
    pub token: Option<Secret>,
}

/// What makes two requests one: the `Idempotency-Key` header, or else a Flagger payload's
/// `checksum` (kept apart, so that one can never answer for the other).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub from_header: bool,
    pub value: String,
}

/// A run someone asked for.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub trigger: Trigger,
    /// The plan to run: the suite as loaded, with the request's variables.
    pub plan: Arc<Plan>,
    pub key: Option<IdempotencyKey>,
    pub flagger: Option<FlaggerRecord>,
    pub vars: BTreeMap<String, String>,
    /// The suite's files digest when it was loaded: the report's `suite_files_digest`.
    pub files_digest: Option<String>,
}

/// How a request for a run ended.
#[derive(Debug, Clone)]
pub enum Answer {
    Ran(Arc<StoredRun>),
    /// The idempotency key names a run of other variables: it cannot answer this request.
    KeyReused,
    /// The run ended in an internal error (a panic): it has no report.
    Failed,
    /// Still waiting for the run in progress after `--queue-timeout`.
    Busy {
        retry_after: Duration,
    },
    /// The server is shutting down: no new run starts.
    ShuttingDown,
}

/// Runs waiting or in progress by idempotency key, and the last one finished with a key.
#[derive(Default)]
struct Pending {
    by_key: HashMap<IdempotencyKey, Keyed<watch::Receiver<Option<Answer>>>>,
    last: Option<Keyed<(Instant, Arc<StoredRun>)>>,
    /// Numbers the keyed runs, so that a run removes its own entry and no later one's.
    tickets: u64,
}

/// A run under an idempotency key, with the variables and the suite it runs with: a request
/// with the key and other variables, or after a reload, asks for another run, and must not
/// get this one's verdict.
struct Keyed<T> {
    key: IdempotencyKey,
    vars: BTreeMap<String, String>,
    /// The suite's generation (one more at each reload).
    generation: u64,
    ticket: u64,
    run: T,
}

impl<T> Keyed<T> {
    /// `None`: another key, or a suite since replaced. `Some(Err)`: the key, with other
    /// variables.
    fn matching(&self, request: &RunRequest, generation: u64) -> Option<Result<&T, Answer>> {
        if request.key.as_ref() != Some(&self.key) || self.generation != generation {
            return None;
        }
        Some(if self.vars == request.vars {
            Ok(&self.run)
        } else {
            Err(Answer::KeyReused)
        })
    }
}

pub struct Gate {
    /// The suite, and the digest of its files taken when it was loaded.
    suite: RwLock<(Arc<Plan>, Option<String>)>,
    options: GateOptions,
    /// Held for the whole of a run: runs never overlap, and waiters are served in order.
    running: tokio::sync::Mutex<()>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    /// One more at each reload: runs of an older suite answer no new request.
    generation: AtomicU64,
    /// How long the last run took, for `Retry-After`.
    last_duration_ms: AtomicU64,
    pub store: Store,
    pub metrics: Metrics,
    /// No new run starts once cancelled.
    pub shutdown: CancellationToken,
    /// Interrupts the run in progress (cleanups still run): the shutdown grace is over.
    pub abort: CancellationToken,
}

impl Gate {
    pub fn new(plan: Plan, options: GateOptions, store: Store, metrics: Metrics) -> Gate {
        metrics.suite_loaded(plan.flows.len());
        Gate {
            next_id: AtomicU64::new(store.last_id() + 1),
            generation: AtomicU64::new(0),
            suite: RwLock::new(loaded(plan)),
            options,
            running: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Pending::default()),
            last_duration_ms: AtomicU64::new(0),
            store,
            metrics,
            shutdown: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    /// The suite, its generation, and the digest of its files.
    pub fn current(&self) -> (Arc<Plan>, u64, Option<String>) {
        let suite = self.suite.read().unwrap_or_else(|e| e.into_inner());
        let generation = self.generation.load(Ordering::SeqCst);
        (suite.0.clone(), generation, suite.1.clone())
    }

    /// Replaces the suite (SIGHUP); runs already asked for keep the plan they were given.
    pub fn replace_suite(&self, plan: Plan) {
        self.metrics.suite_loaded(plan.flows.len());
        // The digest reads the suite's files: not while requests wait for the lock.
        let next = loaded(plan);
        let mut suite = self.suite.write().unwrap_or_else(|e| e.into_inner());
        *suite = next;
        // Under the same lock: a request sees the new suite and the new generation together.
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits for the run in progress, if any, to end; holding the guard, none starts.
    pub async fn running(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.running.lock().await
    }

    pub fn options(&self) -> &GateOptions {
        &self.options
    }

    /// Runs what `request` asks for, or joins the run with its idempotency key, and answers
    /// when that run ends. The run goes on when the caller goes away: a retry with the same
    /// key gets its result.
    pub async fn request(self: &Arc<Self>, request: RunRequest, generation: u64) -> Answer {
        let mut receiver = {
            let mut pending = self.lock_pending();
            let waiting = request
                .key
                .as_ref()
                .and_then(|key| pending.by_key.get(key))
                .and_then(|keyed| keyed.matching(&request, generation));
            let finished = pending
                .last
                .as_ref()
                .and_then(|keyed| keyed.matching(&request, generation));
            match (waiting, finished) {
                (Some(Ok(receiver)), _) => receiver.clone(),
                (Some(Err(reused)), _) => return reused,
                (None, Some(Ok((at, run)))) if at.elapsed() < self.options.replay_for => {
                    return Answer::Ran(run.clone());
                }
                (None, Some(Err(reused))) => return reused,
                _ => self.start(request, generation, &mut pending),
            }
        };
        match receiver.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone().unwrap_or(Answer::ShuttingDown),
            // The run's task ended without an answer: it panicked.
            Err(_) => Answer::Failed,
        }
    }

    /// Starts the run `request` asks for in a task of its own, under its key.
    fn start(
        self: &Arc<Self>,
        request: RunRequest,
        generation: u64,
        pending: &mut Pending,
    ) -> watch::Receiver<Option<Answer>> {
        let (sender, receiver) = watch::channel(None);
        pending.tickets += 1;
        let ticket = pending.tickets;
        if let Some(key) = &request.key {
            let entry = Keyed {
                key: key.clone(),
                vars: request.vars.clone(),
                generation,
                ticket,
                run: receiver.clone(),
            };
            pending.by_key.insert(key.clone(), entry);
        }
        let finished = request.key.clone().map(|key| (key, request.vars.clone()));
        let gate = self.clone();
        let sender = Arc::new(sender);
        tokio::spawn(async move {
            // In a task of its own, so that a panic in it still answers every waiter and frees
            // the key (a failed run, never a pass).
            let run = tokio::spawn({
                let (gate, sender) = (gate.clone(), sender.clone());
                async move { gate.queue_and_run(request, &sender).await }
            });
            let answer = match run.await {
                Ok(answer) => answer,
                Err(e) => {
                    err!("error: a run ended in an internal error: {e}");
                    gate.metrics.run_failed();
                    Answer::Failed
                }
            };
            let mut pending = gate.lock_pending();
            if let Some((key, vars)) = finished {
                if pending.by_key.get(&key).is_some_and(|k| k.ticket == ticket) {
                    pending.by_key.remove(&key);
                }
                if let Answer::Ran(run) = &answer {
                    let run = (Instant::now(), run.clone());
                    let last = Keyed {
                        key,
                        vars,
                        generation,
                        ticket,
                        run,
                    };
                    pending.last = Some(last);
                }
            }
            let _ = sender.send(Some(answer));
        });
        receiver
    }

    /// Waits for the gate (up to `--queue-timeout` for a request; a scheduled run waits as
    /// long as it takes), then runs.
    async fn queue_and_run(
        &self,
        request: RunRequest,
        answer: &watch::Sender<Option<Answer>>,
    ) -> Answer {
        let patience = match request.trigger {
            Trigger::Request => self.options.queue_timeout,
            Trigger::Schedule => Duration::MAX,
        };
        let guard = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return Answer::ShuttingDown,
            guard = tokio::time::timeout(patience, self.running.lock()) => guard,
        };
        let Ok(_guard) = guard else {
            self.metrics.queue_rejected();
            let last = Duration::from_millis(self.last_duration_ms.load(Ordering::Relaxed));
            return Answer::Busy {
                retry_after: last.max(Duration::from_secs(1)),
            };
        };
        if self.shutdown.is_cancelled() {
            return Answer::ShuttingDown;
        }
        if answer.is_closed() {
            // Nobody waits for this run any more (a caller without a key went away while it
            // was queued): no retry can ask for it, so it is not run.
            return Answer::ShuttingDown;
        }
        Answer::Ran(self.run(request).await)
    }

    /// One run, judged and reported as `preflight run` would, then kept and counted.
    async fn run(&self, request: RunRequest) -> Arc<StoredRun> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.metrics.run_started();
        let plan = request.plan.clone();
        // A redactor per run: what one run learns (secret captures) is masked in its report,
        // and a long-lived server does not pile up every session token it ever saw.
        let redactor = Arc::new(plan.redactor(self.options.token.as_ref()));
        let interrupt = self.abort.child_token();
        let options = RunOptions {
            show_sensitive_headers: false,
            events: EventSink::default(),
            interrupt: interrupt.clone(),
            fail_fast: self.options.fail_fast,
            capture_exchanges: false,
            // A served run's report is kept in the store whole: every flow is kept.
            sink: None,
        };
        // Its own task: a panic in the engine still ends in a failed run, never in PASS.
        let engine = tokio::spawn(engine::run(plan.clone(), redactor.clone(), options));
        let mut result = match engine.await {
            Ok(result) => result,
            Err(e) => engine::failed_run(&plan, format!("the run did not complete ({e})"), None),
        };
        if interrupt.is_cancelled() && result.stopped.is_none() {
            result.stopped = Some(Stop::Interrupted);
        }
        let verdict = judge(&result, &plan.settings.gate);
        let mut report = Report::new(&plan, &result, &verdict, &redactor);
        report.serve = Some(record(id, &request, &*redactor));
        report.suite_files_digest = request.files_digest.clone();
        self.last_duration_ms
            .store(report.duration_ms, Ordering::Relaxed);
        self.metrics.run_finished(&report, request.trigger);
        let stored = Arc::new(StoredRun::of(id, &report));
        if let Err(e) = self.store.keep(stored.clone()) {
            err!("warning: cannot keep the report of run {id} on disk: {e}");
        }
        err!(
            "run {id} ({}): {}",
            request.trigger.as_str(),
            crate::report::terminal::clean(&report.headline)
        );
        // Taken apart on a blocking thread: the caller waits for the answer, not for a large
        // run's results to be freed (0.4-0.5 ms of a 1,000-flow run's answer).
        tokio::task::spawn_blocking(move || drop((result, report)));
        stored
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A suite just loaded, with the digest of its files (read moments ago), so that its reports
/// can be the `--baseline` of a `run` of the same suite.
fn loaded(plan: Plan) -> (Arc<Plan>, Option<String>) {
    // Without it the reports only cannot be a baseline; the runs are unaffected. Said, not
    // dropped silently.
    let digest = crate::shard::files_digest(&plan)
        .inspect_err(|e| {
            err!("warning: cannot read the suite to digest it ({e}): its reports carry no suite_files_digest")
        })
        .ok();
    (Arc::new(plan), digest)
}

/// The report's `serve` section, masked like the rest of it.
fn record(id: u64, request: &RunRequest, mask: &dyn Mask) -> ServeRecord {
    let masked = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| (mask.mask_text(k), mask.mask_text(v)))
            .collect()
    };
    let text = |t: &Option<String>| t.as_deref().map(|t| mask.mask_text(t));
    ServeRecord {
        run_id: id.to_string(),
        trigger: request.trigger,
        idempotency_key: request.key.as_ref().map(|k| mask.mask_text(&k.value)),
        flagger: request.flagger.as_ref().map(|f| FlaggerRecord {
            name: text(&f.name),
            namespace: text(&f.namespace),
            phase: text(&f.phase),
            checksum: text(&f.checksum),
            metadata: masked(&f.metadata),
        }),
        vars: masked(&request.vars),
    }
}
