//! One flow: steps in order with one cookie jar, captures passed forward, then cleanups.

use super::Shared;
use super::event::{Event, FlowIndex};
use super::http::{Exchange, Limits, Request, RequestError};
use super::jar::Jar;
use super::record::FlowRecord;
use super::result::{
    Attempt, ContractNote, ExchangeDetail, FlowOutcome, FlowResult, Phase, StepOutcome, StepResult,
};
use super::scope::FlowScope;
use crate::check::{Assertion, CaptureSource, Observed, Subject, json_excerpt};
use crate::openapi::Finding;
use crate::redact::{
    MASK, Mask, basic_auth_forms, is_sensitive_header, learning_cost, shown_header, shown_url,
};
use crate::suite::{Body, Flow, FlowSteps, PollPolicy, Step, Target};
use crate::template::Scope;
use crate::template::{UrlTemplate, value_to_text};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Cleanups get this long in total once the run is cancelled (deadline, signal).
pub const CLEANUP_GRACE: Duration = Duration::from_secs(5);
/// The error of a cleanup cut off (or never started) when the grace time ran out: a warning,
/// since what the flow created may still be on staging.
pub const CLEANUP_UNFINISHED: &str = "cleanup did not finish: test data may be left behind";
const BODY_EXCERPT_CHARS: usize = 500;

/// Runs one flow to the end, cleanups included, recording each step result in `record` as soon
/// as it exists (so that a task aborted after the grace time keeps them). Never panics on bad
/// input: every problem becomes a failed step.
pub async fn run_flow(
    shared: &Shared,
    index: usize,
    flow: &Flow,
    body: &FlowSteps,
    record: &FlowRecord,
) -> FlowResult {
    shared.events.emit(Event::FlowStarted {
        flow: index,
        name: flow.name.clone(),
    });
    let jar = Jar::default();
    let mut scope = FlowScope {
        plan: &shared.plan,
        flow_vars: flow.vars(),
        setup: &shared.setup_captures,
        captures: HashMap::new(),
        run_id: &shared.run_id,
    };
    let (failed, stopped) = run_steps(shared, index, flow, body, &mut scope, &jar, record).await;
    let result = match stopped {
        // Halted before its first step: the flow never started.
        Some(reason) if record.nothing_tried() => super::skipped_flow(&shared.plan, flow, &reason),
        _ => {
            run_cleanups(shared, index, body, &mut scope, &jar, record).await;
            // A flow stopped half-way did not pass: failed (warned if non-critical).
            record.finish(
                flow,
                FlowOutcome::of(failed || stopped.is_some(), flow.critical),
            )
        }
    };
    // For a flow that never started too: it had a progress line.
    shared.flow_finished(index, &result);
    result
}

/// The flow's steps in order: whether one failed, and what stopped the rest (fail-fast,
/// deadline, signal).
async fn run_steps(
    shared: &Shared,
    index: usize,
    flow: &Flow,
    body: &FlowSteps,
    scope: &mut FlowScope<'_>,
    jar: &Jar,
    record: &FlowRecord,
) -> (bool, Option<String>) {
    let mut failed = false;
    let mut stopped: Option<String> = None;
    for step in &body.steps {
        if !failed && stopped.is_none() && shared.halted() {
            stopped = Some(shared.stop_reason());
        }
        let skip = match (&stopped, failed) {
            (_, true) => Some("an earlier step failed".to_string()),
            (Some(reason), false) => Some(reason.clone()),
            (None, false) => None,
        };
        if let Some(because) = skip {
            let method = step.method.as_str();
            record.push(StepResult::skipped(
                &step.name,
                Phase::Step,
                method,
                because,
            ));
            continue;
        }
        record.running(step, Phase::Step);
        let run = StepRun {
            shared,
            flow: Some(index),
            step,
            phase: Phase::Step,
            jar,
        };
        let result = run_timed(run, scope).await;
        failed = result.outcome != StepOutcome::Passed;
        record.push(result);
        if failed && flow.critical {
            // Fail-fast stops the run at the failing step, not after this flow's cleanups.
            shared.critical_flow_failed(&flow.name);
        }
    }
    (failed, stopped)
}

/// The flow's cleanups, in order, each one recorded.
async fn run_cleanups(
    shared: &Shared,
    index: usize,
    body: &FlowSteps,
    scope: &mut FlowScope<'_>,
    jar: &Jar,
    record: &FlowRecord,
) {
    for step in &body.cleanup {
        let result = match unrunnable(body, step, scope, record) {
            Some(result) => result,
            None => run_cleanup(shared, index, step, scope, jar, record).await,
        };
        record.push(result);
    }
}

/// A cleanup that needs a capture (of the flow or of `[[setup]]`) that never happened cannot
/// run. If a step that makes the capture was tried, it may have created what the cleanup
/// deletes: a failed cleanup, so a warning. If none was tried, nothing was created: skipped.
fn unrunnable(
    body: &FlowSteps,
    step: &Step,
    scope: &FlowScope<'_>,
    record: &FlowRecord,
) -> Option<StepResult> {
    let (missing, never) = super::scope::missing_captures(step, scope);
    if missing.is_empty() {
        return None;
    }
    let method = step.method.as_str();
    let tried = missing.iter().any(|c| record.tried_to_capture(body, c));
    Some(if tried {
        let error = format!("{never}: the cleanup could not run, test data may be left behind");
        StepResult::unfinished(&step.name, Phase::Cleanup, method, &error)
    } else {
        let because = format!("{never}: the step that makes it did not run");
        StepResult::skipped(&step.name, Phase::Cleanup, method, because)
    })
}

/// One cleanup, cut off when the grace time after a stop runs out, wherever it started.
async fn run_cleanup(
    shared: &Shared,
    index: usize,
    step: &Step,
    scope: &mut FlowScope<'_>,
    jar: &Jar,
    record: &FlowRecord,
) -> StepResult {
    let unfinished = || {
        let method = step.method.as_str();
        StepResult::unfinished(&step.name, Phase::Cleanup, method, CLEANUP_UNFINISHED)
    };
    if shared
        .cleanup_time_left()
        .is_some_and(|left| left.is_zero())
    {
        return unfinished();
    }
    record.running(step, Phase::Cleanup);
    tokio::select! {
        result = run_timed(StepRun { shared, flow: Some(index), step, phase: Phase::Cleanup, jar }, scope) => result,
        () = grace_over(shared) => unfinished(),
    }
}

/// Resolves when the cleanup grace time after a stop (deadline, signal) has run out; never
/// while the run goes on.
pub(super) async fn grace_over(shared: &Shared) {
    shared.cancel.cancelled().await;
    let at = shared.stop.get().map_or_else(Instant::now, |(_, at)| *at);
    tokio::time::sleep_until((at + CLEANUP_GRACE).into()).await;
}

/// One step to run: the run it belongs to, its flow (`None`: the suite's setup or teardown),
/// the step, its phase and the cookie jar it uses.
#[derive(Clone, Copy)]
pub struct StepRun<'a> {
    pub shared: &'a Shared,
    pub flow: FlowIndex,
    pub step: &'a Step,
    pub phase: Phase,
    pub jar: &'a Jar,
}

/// [`run_step`], with the time a failed request waited counted as its latency: a request that
/// never answered (timeout, reset, refused) has no latency of its own, and leaving it out
/// would let timeouts lower the p95. The waits between retries are preflight's, not staging's,
/// so they do not count.
pub async fn run_timed(run: StepRun<'_>, scope: &mut FlowScope<'_>) -> StepResult {
    // Its `cookie` captures take what any attempt, poll or redirect hop of it set.
    run.jar.begin_step();
    match run.step.poll {
        Some(poll) => run_polled(run, scope, poll).await,
        None => run_timed_once(run, scope).await,
    }
}

/// One send of the step (with its retries), timed as [`run_timed`] says.
async fn run_timed_once(run: StepRun<'_>, scope: &mut FlowScope<'_>) -> StepResult {
    let started = Instant::now();
    let offset = run.shared.offset_ms();
    let mut result = run_step(run, scope).await;
    if result.outcome != StepOutcome::Skipped {
        // A step that failed before sending (a template) began all the same.
        result.started_ms.get_or_insert(offset);
        result.last_attempt_started_ms.get_or_insert(offset);
    }
    let step = run.step;
    if result.latency_ms.is_none() && result.url.is_some() && result.attempts > 0 {
        let waits: Duration = (2..=result.attempts)
            .map(|n| step.retry.delay_before(n))
            .sum();
        result.latency_ms = Some(started.elapsed().saturating_sub(waits).as_millis() as u64);
    }
    result
}

/// `poll`: sends the step again while it got a response that does not meet its expectations
/// (a request error is left to `retry`). The first attempt that meets them passes, and is not
/// flaky for it: several tries are what polling expects. After the last attempt, or when the
/// run is stopped (deadline, signal, fail-fast), the last attempt's result stands, failed.
/// Cleanups keep polling after a stop: their caller bounds them by the grace time.
async fn run_polled(run: StepRun<'_>, scope: &mut FlowScope<'_>, poll: PollPolicy) -> StepResult {
    let StepRun { shared, phase, .. } = run;
    let mut polled = Polled::default();
    let mut sent = 0;
    loop {
        let result = run_timed_once(run, scope).await;
        sent += 1;
        let stoppable = phase != Phase::Cleanup;
        let again = result.outcome == StepOutcome::Failed
            && result.error.is_none()
            && result.status.is_some()
            && sent < poll.attempts
            && !(stoppable && shared.halted());
        if !again {
            return polled.finish(result);
        }
        let stopped = if stoppable {
            tokio::select! {
                () = tokio::time::sleep(poll.interval) => false,
                () = shared.halt.cancelled() => true,
            }
        } else {
            tokio::time::sleep(poll.interval).await;
            false
        };
        if stopped {
            let mut result = polled.finish(result);
            result.error = Some(format!("polling stopped: {}", shared.stop_reason()));
            return result;
        }
        polled.push(result);
    }
}

/// The attempts of a polled step before the current one.
#[derive(Default)]
struct Polled {
    earlier: Vec<Attempt>,
    sends: u32,
    latency_ms: u64,
    /// When the first poll began.
    started_ms: Option<u64>,
}

impl Polled {
    /// An attempt whose expectations did not hold yet.
    fn push(&mut self, result: StepResult) {
        let unmet: Vec<&str> = result
            .failed_assertions()
            .map(|a| a.subject.as_str())
            .collect();
        let error = Some(format!("polled: not met yet: {}", unmet.join(", ")));
        self.started_ms = self.started_ms.or(result.started_ms);
        // The poll's own time: its latency counts the retries before it too.
        let retried: u64 = result
            .earlier_attempts
            .iter()
            .filter_map(|a| a.latency_ms)
            .sum();
        self.earlier.extend(result.earlier_attempts);
        self.earlier.push(Attempt {
            status: result.status,
            error,
            latency_ms: result.latency_ms.map(|ms| ms.saturating_sub(retried)),
            started_ms: result.last_attempt_started_ms,
        });
        self.sends += result.attempts;
        self.latency_ms += result.latency_ms.unwrap_or(0);
    }

    /// The final result: every send counted in `attempts`, every latency in `latency_ms`.
    fn finish(mut self, mut result: StepResult) -> StepResult {
        self.earlier.append(&mut result.earlier_attempts);
        result.earlier_attempts = self.earlier;
        result.attempts += self.sends;
        result.latency_ms = result.latency_ms.map(|ms| ms + self.latency_ms);
        result.started_ms = self.started_ms.or(result.started_ms);
        result.polled = true;
        result
    }
}

/// Runs one step: render, send (racing cancellation), judge, capture.
pub async fn run_step(run: StepRun<'_>, scope: &mut FlowScope<'_>) -> StepResult {
    let StepRun {
        shared, flow, step, ..
    } = run;
    shared.events.emit(Event::StepStarted {
        flow,
        step: step.name.clone(),
    });
    let result = execute(run, scope).await;
    shared.events.emit(Event::StepFinished {
        flow,
        step: step.name.clone(),
        outcome: result.outcome,
        latency: result.latency_ms.map(Duration::from_millis),
    });
    result
}

async fn execute(run: StepRun<'_>, scope: &mut FlowScope<'_>) -> StepResult {
    let StepRun {
        shared,
        step,
        phase,
        jar,
        ..
    } = run;
    let mask = &*shared.redactor;
    let prepared = match render(shared, step, scope) {
        Ok(prepared) => prepared,
        Err(e) => {
            let error = format!("template: {}", mask.mask_text(&e));
            return failed_without_response(step, phase, None, error);
        }
    };
    let sent = match send(shared, step, phase, prepared, jar, scope).await {
        Ok(sent) => sent,
        Err(failed) => return failed,
    };
    let observed = observe(sent.exchange, jar);
    // Captures first, so that a secret capture is masked in this step's own assertions and
    // `-vv` detail (before either is cut to an excerpt); they are taken even when an assertion
    // failed, so that cleanups can still delete what the step created.
    let Taken { missed, withheld } = take_captures(shared, step, &observed, scope);
    // A refused secret capture's values are not masked: the step fails with that alone, and
    // nothing of its response (assertions, body, `-vv` headers) is shown.
    let shown = (!withheld).then_some(&observed);
    let detail = shared.capture_exchanges.then(|| {
        Box::new(exchange_detail(
            shared,
            &sent.shown_headers,
            sent.shown_body.as_deref(),
            shown,
        ))
    });
    let mut assertions = match shown {
        Some(observed) => judge(shared, step, observed, scope),
        None => Vec::new(),
    };
    assertions.extend(missed);
    let contract_notes = match shown {
        Some(observed) => contract(shared, step, &sent.sent_url, observed, &mut assertions),
        None => Vec::new(),
    };
    let passed = assertions.iter().all(|a| a.passed);
    StepResult {
        name: step.name.clone(),
        phase,
        method: step.method.to_string(),
        // A redirect's location came with the response: when that may not be shown, the URL
        // asked for is.
        url: Some(match sent.asked_url {
            Some(asked) if withheld => asked,
            _ => sent.shown_url,
        }),
        status: Some(observed.status),
        latency_ms: Some(observed.latency.as_millis() as u64),
        attempts: sent.attempts,
        flaky: passed && sent.attempts > 1,
        earlier_attempts: sent.earlier,
        outcome: if passed {
            StepOutcome::Passed
        } else {
            StepOutcome::Failed
        },
        error: None,
        assertions,
        skipped_because: None,
        body_excerpt: shown
            .filter(|_| !passed)
            .map(|observed| body_excerpt(observed, mask)),
        request_headers: if passed {
            BTreeMap::new()
        } else {
            sent.shown_headers
        },
        polled: false,
        exchange: detail,
        started_ms: Some(sent.started_ms),
        last_attempt_started_ms: Some(sent.last_started_ms),
        contract_notes,
    }
}

/// The `[openapi]` checks of one response: assertions with subject `openapi` (under
/// `validate = "warn"` only the passing ones; the failing ones become notes), and a note for
/// an operation the document does not have.
fn contract(
    shared: &Shared,
    step: &Step,
    sent_url: &url::Url,
    observed: &Observed,
    assertions: &mut Vec<Assertion>,
) -> Vec<ContractNote> {
    let Some(openapi) = &shared.plan.settings.openapi else {
        return Vec::new();
    };
    let base_path = shared
        .plan
        .settings
        .base_url
        .as_ref()
        .map_or("", |u| u.path());
    let mask = &*shared.redactor;
    let method = step.method.as_str();
    match openapi
        .contract
        .check(method, sent_url.path(), base_path, observed, mask)
    {
        Finding::Undocumented { method, path } => {
            vec![ContractNote::Undocumented(format!("{method} {path}"))]
        }
        Finding::Checked {
            assertions: found, ..
        } if openapi.warn_only => {
            let (passed, failed): (Vec<_>, Vec<_>) = found.into_iter().partition(|a| a.passed);
            assertions.extend(passed);
            failed
                .iter()
                .map(|a| {
                    let why = a.message.as_deref().unwrap_or("");
                    ContractNote::Violation(format!(
                        "{} {}: {why} (expected {}, actual {})",
                        a.subject, a.op, a.expected, a.actual
                    ))
                })
                .collect()
        }
        Finding::Checked {
            assertions: found, ..
        } => {
            assertions.extend(found);
            Vec::new()
        }
    }
}

/// `-vv` excerpts are cut at this many characters: enough to learn a response's shape.
const DETAIL_EXCERPT_CHARS: usize = 2000;
/// A header value longer than this is cut too; so is a list of more headers than
/// [`DETAIL_MAX_HEADERS`], so a hostile staging cannot make `-vv` hold much.
const DETAIL_HEADER_CHARS: usize = 500;
const DETAIL_MAX_HEADERS: usize = 100;

/// What `-vv` shows of an exchange: the request from its shown forms (rendered with every
/// sensitive value as `***`), the response (header names too) masked by value before it is cut, and the values
/// of sensitive headers as `***` unless `--show-sensitive-headers`. Without `observed` (a
/// response that may not be shown), the request alone.
fn exchange_detail(
    shared: &Shared,
    shown_headers: &BTreeMap<String, String>,
    shown_request_body: Option<&str>,
    observed: Option<&Observed>,
) -> ExchangeDetail {
    let mask = &*shared.redactor;
    let cut = |text: &str, max: usize| mask.mask_excerpt(text, max);
    let request_headers = shown_headers
        .iter()
        .take(DETAIL_MAX_HEADERS)
        .map(|(n, v)| (n.clone(), cut(v, DETAIL_HEADER_CHARS)))
        .collect();
    let response_headers = observed
        .iter()
        .flat_map(|observed| &observed.headers)
        .take(DETAIL_MAX_HEADERS)
        .map(|(name, value)| {
            let shown = shown_header(name, value, shared.show_sensitive_headers);
            (
                mask.mask_header_name(name),
                cut(&shown, DETAIL_HEADER_CHARS),
            )
        })
        .collect();
    let response_body = observed
        .filter(|observed| !observed.body.is_empty())
        .map(|observed| shown_body(mask, observed));
    ExchangeDetail {
        request_headers,
        request_body: shown_request_body.map(|b| cut(b, DETAIL_EXCERPT_CHARS)),
        response_headers,
        response_body,
    }
}

/// The largest request header or body searched for a secret; a larger one is taken to hold
/// one whenever the run knows any.
const SEARCHED_BYTES: usize = 64 * 1024;

/// Whether a request header or body may hold a secret, and so is never sent to another
/// origin on a redirect. Searching 20 MiB against a thousand secrets took 81 s, past the
/// deadline (attack finding), so a text over [`SEARCHED_BYTES`] is taken to hold a secret
/// unsearched whenever the run knows any: fail closed.
fn may_hold_secret(redactor: &crate::redact::Redactor, text: &str) -> bool {
    !redactor.is_empty() && (text.len() > SEARCHED_BYTES || redactor.holds_secret(text))
}

/// A response body as `-vv` shows it: JSON masked value by value, then pretty-printed;
/// anything else masked as text; then cut. Masking comes before cutting, so no part of a
/// secret survives at the cut, and goes only as far as the excerpt may show. A JSON body of
/// any size is shown from its values: as text, a secret shorter than text is searched for,
/// or a number in another notation, would show.
fn shown_body(mask: &dyn Mask, observed: &Observed) -> String {
    match observed.json() {
        Ok(json) => json_excerpt(mask, json, DETAIL_EXCERPT_CHARS, true),
        Err(_) => mask.mask_excerpt(&observed.body_text(), DETAIL_EXCERPT_CHARS),
    }
}

/// A request that got a response, and how to show it.
struct Sent {
    exchange: Exchange,
    /// The URL the request was sent to (before any redirect): what the contract matches.
    sent_url: url::Url,
    /// The URL the response came from, as it may be shown.
    shown_url: String,
    /// The URL asked for, as it may be shown, when a redirect made it another.
    asked_url: Option<String>,
    shown_headers: BTreeMap<String, String>,
    /// The request body as it may be shown (sensitive values as `***`).
    shown_body: Option<String>,
    attempts: u32,
    earlier: Vec<Attempt>,
    /// When the first and the last attempt began, in ms from the start of the run.
    started_ms: u64,
    last_started_ms: u64,
}

/// Sends the prepared request under the step's retry policy; a request that got no response
/// is the step's failed result.
async fn send(
    shared: &Shared,
    step: &Step,
    phase: Phase,
    prepared: Prepared,
    jar: &Jar,
    scope: &FlowScope<'_>,
) -> Result<Sent, StepResult> {
    let mask = &*shared.redactor;
    let settings = &shared.plan.settings;
    let limits = Limits {
        timeout: step.timeout.unwrap_or(settings.timeout),
        max_body: settings.max_body,
        follow_redirects: settings.follow_redirects,
    };
    let Prepared {
        request,
        shown_url,
        shown_headers,
        shown_body,
    } = prepared;
    let sent_url = request.url.clone();
    let (exchange, mut earlier, last_started_ms) =
        send_with_retries(shared, step, phase, request, jar, limits, scope).await;
    let started_ms = earlier
        .first()
        .and_then(|a| a.started_ms)
        .unwrap_or(last_started_ms);
    for attempt in &mut earlier {
        attempt.error = attempt.error.as_deref().map(|e| mask.mask_text(e));
    }
    let attempts = earlier.len() as u32 + 1;
    let exchange = match exchange {
        Ok(exchange) => exchange,
        Err(e) => {
            let error = mask.mask_text(&e.to_string());
            let mut result = failed_without_response(step, phase, Some(shown_url), error);
            result.request_headers = shown_headers;
            result.attempts = attempts;
            result.earlier_attempts = earlier;
            result.started_ms = Some(started_ms);
            result.last_attempt_started_ms = Some(last_started_ms);
            return Err(result);
        }
    };
    let (shown_url, asked_url) = if exchange.url == sent_url {
        (shown_url, None)
    } else {
        let secret_target = match &step.target {
            Target::Url(t) | Target::Path(t) => t.is_sensitive(scope),
        };
        let last = redirected_url(&sent_url, &shown_url, &exchange.url, secret_target, mask);
        (last, Some(shown_url))
    };
    Ok(Sent {
        exchange,
        sent_url,
        shown_url,
        asked_url,
        shown_headers,
        shown_body,
        attempts,
        earlier,
        started_ms,
        last_started_ms,
    })
}

/// The URL a redirect ended at, as it may be shown. It came from staging, so it is masked by
/// value; and when a secret went into the first URL and the redirect stayed on its origin,
/// the origin is shown as it was shown for the first URL, since the parser may have changed
/// its case or encoding (`LOCALHOST` to `localhost`, Unicode to punycode).
fn redirected_url(
    sent: &url::Url,
    shown_sent: &str,
    last: &url::Url,
    secret_target: bool,
    mask: &dyn Mask,
) -> String {
    let shown_last = mask.mask_text(&shown_url(last));
    if !secret_target || last.origin() != sent.origin() {
        return shown_last;
    }
    let origin = url::Url::parse(shown_sent)
        .ok()
        .map(|u| u.origin())
        .filter(|o| o.is_tuple())
        .map_or_else(|| MASK.to_string(), |o| o.ascii_serialization());
    let rest = &last[url::Position::BeforePath..];
    format!("{origin}{}", mask.mask_text(rest))
}

/// The start of a response body as it may be shown. A JSON body (of any size: see
/// `shown_body`) is shown from its parsed values, masked by value (a secret number in any
/// notation, a string escaped any number of times), then written compactly; any other body
/// is masked as text. Both before the cut.
fn body_excerpt(observed: &Observed, mask: &dyn Mask) -> String {
    match observed.json() {
        Ok(value) => json_excerpt(mask, value, BODY_EXCERPT_CHARS, false),
        Err(_) => mask.mask_excerpt(&observed.body_text(), BODY_EXCERPT_CHARS),
    }
}

fn observe(exchange: Exchange, jar: &Jar) -> Observed {
    let headers: Vec<(String, String)> = exchange
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Observed::new(
        exchange.status.as_u16(),
        exchange.latency,
        headers,
        exchange.body,
        jar.held_from_step(),
    )
}

/// The step's captures, taken into the scope.
struct Taken {
    /// An assertion for each capture that found nothing, or that was refused.
    missed: Vec<Assertion>,
    /// A secret capture was refused (over [`MAX_SECRET_CAPTURE_VALUES`], ...): its values are
    /// not known to the redactor, so nothing of the response that holds them may be shown.
    withheld: bool,
}

/// Takes the step's captures into the scope; secret ones are masked from now on. A secret
/// capture over the limits of [`secret_texts`] is refused: it fails the step and is not in the
/// scope, since masking only some of its values would show the rest.
fn take_captures(
    shared: &Shared,
    step: &Step,
    observed: &Observed,
    scope: &mut FlowScope<'_>,
) -> Taken {
    let mut taken = Taken {
        missed: Vec::new(),
        withheld: false,
    };
    // What the step's secret captures taken so far make the run learn: the bounds are the
    // step's, not each capture's, or forty captures of one long value each would cost forty
    // times what one may.
    let mut learned = Learned::default();
    for capture in &step.captures {
        let failed = |actual: &str, why: String| Assertion {
            subject: format!("capture {}", capture.name),
            op: "captures".into(),
            expected: json!(capture.source.label()),
            actual: json!(actual),
            passed: false,
            message: Some(why),
        };
        match capture.take(observed) {
            Ok(value) => {
                if capture.secret {
                    // A header sent on several lines is captured joined with ", ", but `-vv`
                    // shows it a line at a time: each line is a secret of its own.
                    let lines = match &capture.source {
                        CaptureSource::Header(name) => observed.header_lines(name).collect(),
                        _ => Vec::new(),
                    };
                    match secret_texts(&shared.redactor, &value, &lines, &learned) {
                        Ok(texts) => {
                            // Only what this capture adds: the rest was learned before.
                            let new = &texts.texts[learned.texts.len()..];
                            new.iter().for_each(|t| shared.redactor.learn(t));
                            learned = texts;
                        }
                        Err(why) => {
                            let why = format!("secret capture `{}` {why}", capture.name);
                            taken.missed.push(failed(MASK, why));
                            taken.withheld = true;
                            continue;
                        }
                    }
                }
                scope.captures.insert(capture.name.clone(), value);
            }
            Err(why) => taken.missed.push(failed(
                crate::check::MISSING,
                shared.redactor.mask_text(&why),
            )),
        }
    }
    taken
}

/// What the secret captures of one step make the run learn, and what that costs.
#[derive(Default, Clone)]
struct Learned {
    texts: Vec<String>,
    cost: usize,
}

impl Learned {
    fn push(&mut self, text: String) -> Result<(), String> {
        // A value met again (a header sent on one line is its own line) is learned once.
        if self.texts.contains(&text) {
            return Ok(());
        }
        self.cost += learning_cost(&text);
        self.texts.push(text);
        if self.texts.len() > MAX_SECRET_CAPTURE_VALUES {
            return Err(format!(
                "holds more than {MAX_SECRET_CAPTURE_VALUES} values (each string, number, \
                 boolean, array and object in it counts), the most the secret captures of \
                 one step may hold: capture a narrower path"
            ));
        }
        if self.cost > MAX_SECRET_CAPTURE_COST {
            return Err(format!(
                "holds more text than the secret captures of one step may hold \
                 ({MAX_SECRET_CAPTURE_COST} characters, a letter beyond ASCII counting as \
                 up to 15): capture a narrower path"
            ));
        }
        Ok(())
    }
    fn walk(&mut self, value: &Value) -> Result<(), String> {
        match value {
            Value::Null => return Ok(()),
            Value::Array(items) => items.iter().try_for_each(|v| self.walk(v))?,
            Value::Object(map) => map.values().try_for_each(|v| self.walk(v))?,
            _ => {}
        }
        self.push(match value {
            Value::Array(_) | Value::Object(_) => value.to_string(),
            scalar => value_to_text(scalar),
        })
    }
}

/// At most this many values the `secret = true` captures of one step make the run learn: each string,
/// number and boolean in the array or object it took, each array and object in it (itself
/// too), and each line of a header it took. The redactor compiles each into a pattern that
/// finds it in any encoding (about 85 KB and 3 ms in a debug build for a 12-letter value), on
/// the run's worker, where the deadline cannot interrupt it: a capture of 10,000 tokens took
/// 44 s and 855 MB and ran far past a 10 s deadline. A token, a key and its id, a small
/// credentials object fit; more fails the step rather than learning only some of them, which
/// would show the rest.
const MAX_SECRET_CAPTURE_VALUES: usize = 64;

/// At most this much [`learning_cost`] (about characters) in all the values one secret
/// capture makes the run learn: the patterns grow with the value (a 12,000-letter one is about
/// 120 MB and over a second in a debug build; a 5 MB one, found by its whole forms, took 48 s
/// and 1.4 GB), so a few long values are as heavy as thousands of short ones. One value masked
/// in every encoding (up to 12,000 ASCII characters, 1,300 like `ä`) fits, and so does one
/// masked in its whole forms of up to 512 KiB; the most it allows took about 2.6 s and 140 MB
/// in a debug build.
const MAX_SECRET_CAPTURE_COST: usize = 16_384;

/// At most this many secret values the redactor knows when a secret capture adds to them:
/// each costs time and memory, and masking every text shown tries each of them, so a run
/// whose captures keep bringing new ones (a polled step, thousands of `each` rows) fails
/// rather than growing without end. Flows running at once may each pass it by one capture.
const MAX_LEARNED_SECRETS: usize = 1024;

/// At most this much [`learning_cost`] in all the secrets a run learns from captures: sixteen
/// steps' worth of [`MAX_SECRET_CAPTURE_COST`]. Forty steps of one 12,000-letter capture each
/// took a minute past a 2 s deadline, which cannot interrupt learning.
const MAX_LEARNED_COST: usize = 16 * MAX_SECRET_CAPTURE_COST;

/// What a secret capture's `value` makes the run learn, or why it may not: each string,
/// number and boolean in it, each array and object whole (so that its JSON text is masked as
/// well), and `lines`, those of the header it took. Within [`MAX_SECRET_CAPTURE_VALUES`],
/// [`MAX_SECRET_CAPTURE_COST`] and [`MAX_LEARNED_SECRETS`]; the walk stops at the first value
/// past them, and the reason never quotes the value.
fn secret_texts(
    redactor: &crate::redact::Redactor,
    value: &Value,
    lines: &[&str],
    step_learned: &Learned,
) -> Result<Learned, String> {
    let mut texts = step_learned.clone();
    texts.walk(value)?;
    for line in lines {
        texts.push(line.to_string())?;
    }
    let known = redactor.known();
    if known + redactor.unknown(texts.texts.iter().map(String::as_str)) > MAX_LEARNED_SECRETS {
        return Err(format!(
            "would make the run know more than {MAX_LEARNED_SECRETS} secret values, the most \
             a run may learn (it knows {known})"
        ));
    }
    let new_cost = texts.cost - step_learned.cost;
    if redactor.learned_cost() + new_cost > MAX_LEARNED_COST {
        return Err(format!(
            "would make the run learn more secret text than it may ({MAX_LEARNED_COST} \
             characters from captures in all, a letter beyond ASCII counting as up to 15)"
        ));
    }
    Ok(texts)
}

/// Every expectation of the step, evaluated to masked assertions. The values of sensitive
/// response headers (`set-cookie`, ...) are `***` unless `--show-sensitive-headers`.
fn judge(shared: &Shared, step: &Step, observed: &Observed, scope: &dyn Scope) -> Vec<Assertion> {
    let mut assertions = Vec::with_capacity(step.expectations.len());
    for expectation in &step.expectations {
        let found = expectation.evaluate(observed, scope, &*shared.redactor);
        // Its message never quotes the value (`check` masks it at the source); the value, and
        // what it was compared with (which may be the value itself), are shown as `***`.
        let hidden_header = match &expectation.subject {
            Subject::Header(name)
                if is_sensitive_header(name) && !shared.show_sensitive_headers =>
            {
                Some(name.as_str())
            }
            _ => None,
        };
        let mask_actual =
            hidden_header.is_some_and(|name| observed.header_lines(name).next().is_some());
        let mask_expected = hidden_header.is_some() && expectation.op.compares_with_a_value();
        assertions.extend(found.into_iter().map(|mut a| {
            if mask_actual {
                a.actual = json!(MASK);
            }
            if mask_expected {
                a.expected = json!(MASK);
            }
            a
        }));
    }
    assertions
}

fn failed_without_response(
    step: &Step,
    phase: Phase,
    url: Option<String>,
    error: String,
) -> StepResult {
    StepResult {
        url,
        attempts: 1,
        outcome: StepOutcome::Failed,
        error: Some(error),
        skipped_because: None,
        ..StepResult::skipped(&step.name, phase, step.method.as_str(), "")
    }
}

/// Sends the request, and again while the failure is of a kind the step's retry policy allows
/// (the retry rules): connect failures; timeouts and lost connections; 5xx statuses the step did not
/// expect. A POST or PATCH is retried after a timeout or a 5xx only when the step's own
/// `retry.on` names it, since the first try may have taken effect. Never 4xx or assertions.
async fn send_with_retries(
    shared: &Shared,
    step: &Step,
    phase: Phase,
    request: Request,
    jar: &Jar,
    limits: Limits,
    scope: &FlowScope<'_>,
) -> (Result<Exchange, RequestError>, Vec<Attempt>, u64) {
    let policy = &step.retry;
    let mut earlier = Vec::new();
    // The time of the earlier attempts: the step's latency counts every attempt.
    let mut waited = Duration::ZERO;
    let counted = |result: Result<Exchange, RequestError>, waited: Duration| {
        result.map(|mut exchange| {
            exchange.latency += waited;
            exchange
        })
    };
    loop {
        let started = Instant::now();
        let offset = shared.offset_ms();
        let result = if phase == Phase::Cleanup {
            // Cleanups run after a stop too; their own time is bounded by the caller.
            shared.http.exchange(request.clone(), jar, limits).await
        } else {
            tokio::select! {
                result = shared.http.exchange(request.clone(), jar, limits) => result,
                () = shared.cancel.cancelled() => return (Err(RequestError::Stopped(shared.stop_reason())), earlier, offset),
            }
        };
        let elapsed = started.elapsed();
        let kind = match &result {
            Err(RequestError::Connect(_) | RequestError::Tls(_)) => Some((policy.on.connect, true)),
            Err(RequestError::Timeout(_) | RequestError::Other(_)) => Some((
                policy.on.timeout,
                crate::suite::plan::is_idempotent(&step.method) || policy.named_by_step.timeout,
            )),
            Ok(exchange)
                if exchange.status.is_server_error() && !status_expected(step, exchange, scope) =>
            {
                Some((
                    policy.on.server_error,
                    crate::suite::plan::is_idempotent(&step.method)
                        || policy.named_by_step.server_error,
                ))
            }
            _ => None,
        };
        let tries = earlier.len() as u32 + 1;
        let retry =
            matches!(kind, Some((true, true))) && tries < policy.attempts && !shared.halted();
        if !retry {
            return (counted(result, waited), earlier, offset);
        }
        tokio::select! {
            () = tokio::time::sleep(policy.delay_before(tries + 1)) => {}
            () = shared.cancel.cancelled() => return (counted(result, waited), earlier, offset),
        }
        earlier.push(Attempt::of(&result, elapsed, offset));
        waited += elapsed;
    }
}

/// Whether the step's status expectation holds: an expected 503 is not a failure to retry.
fn status_expected(step: &Step, exchange: &Exchange, scope: &dyn Scope) -> bool {
    let observed = Observed::status_only(exchange.status.as_u16(), exchange.latency);
    step.expectations
        .iter()
        .filter(|e| matches!(e.subject, crate::check::Subject::Status))
        .all(|e| e.holds(&observed, scope))
}

/// A request ready to send, and how it may be shown: rendered from the same templates with
/// every sensitive value as `***`, so no encoding of a secret can reach a display string.
pub(super) struct Prepared {
    pub request: Request,
    /// The URL as sent, with sensitive values and any password as `***`.
    pub shown_url: String,
    /// The request headers as they may be shown (sensitive names masked too, unless
    /// `--show-sensitive-headers`).
    pub shown_headers: BTreeMap<String, String>,
    /// The body as it may be shown, rendered in the same lookup as the body sent.
    pub shown_body: Option<String>,
}

/// Builds the request: URL, query, headers (suite ones, then the step's), body.
pub(super) fn render(shared: &Shared, step: &Step, scope: &dyn Scope) -> Result<Prepared, String> {
    let looks = Looks {
        redactor: &shared.redactor,
        show_sensitive_headers: shared.show_sensitive_headers,
    };
    build_request(&shared.plan.settings, &looks, step, scope)
}

/// What rendering a request needs to know besides the suite: how to show it.
pub(super) struct Looks<'a> {
    pub redactor: &'a crate::redact::Redactor,
    pub show_sensitive_headers: bool,
}

/// Builds the request of `step` in `scope`, the one way both a run and a rehearsal do it.
pub(super) fn build_request(
    settings: &crate::suite::Settings,
    looks: &Looks,
    step: &Step,
    scope: &dyn Scope,
) -> Result<Prepared, String> {
    // `shown_is_sent`: the URL shown is the one sent (no secret in it), so the URL parsed to
    // be sent is the one to show: parsing it again cost about 6 K instructions per request.
    let (mut url, mut shown, shown_is_sent) = match &step.target {
        Target::Url(t) => {
            let text = t.render_url(scope, UrlTemplate::Url)?;
            let url = url::Url::parse(&text.value)
                .map_err(|e| format!("invalid url `{}`: {e}", text.shown))?;
            let same = text.shown == text.value;
            (url, text.shown, same)
        }
        Target::Path(t) => {
            let path = t.render_url(scope, UrlTemplate::Path)?;
            let base = settings.base_url.as_ref().ok_or("no base_url")?;
            let url = join(base, &path.value)
                .map_err(|e| format!("invalid URL: base_url followed by `{}`: {e}", path.shown))?;
            let same = path.shown == path.value;
            (url, join_text(base, &path.shown), same)
        }
    };
    let shown_is_sent = shown_is_sent && step.query.is_empty();
    if !step.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        let mut shown_pairs = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &step.query {
            let value = value.render_shown(scope)?;
            pairs.append_pair(key, &value.value);
            shown_pairs.append_pair(key, &value.shown);
        }
        drop(pairs);
        shown.push(if shown.contains('?') { '&' } else { '?' });
        shown.push_str(&shown_pairs.finish());
    }
    // The client sends a URL's userinfo as a Basic-auth header: mask that form too.
    for form in basic_auth_forms(&url) {
        looks.redactor.learn(&form);
    }
    let shown_url = if shown_is_sent {
        shown_url(&url)
    } else {
        match url::Url::parse(&shown) {
            Ok(parsed) => shown_url(&parsed),
            Err(_) => looks.redactor.mask_text(&shown),
        }
    };
    let mut headers = HeaderMap::new();
    let mut shown_headers = BTreeMap::new();
    let mut secret_headers = Vec::new();
    for (name, value) in settings.headers.iter().chain(&step.headers) {
        let text = value.render_shown(scope)?;
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header `{name}`: {e}"))?;
        let header = HeaderValue::from_str(&text.value)
            .map_err(|_| format!("header `{name}` has a value that is not valid in HTTP"))?;
        // A value that holds a secret under another name (a plain capture of a token) is
        // just as secret.
        let holds_secret = may_hold_secret(looks.redactor, &text.value);
        if value.is_sensitive(scope) || holds_secret {
            secret_headers.push(name.clone());
        }
        let shown = shown_header(name.as_str(), &text.shown, looks.show_sensitive_headers);
        shown_headers.insert(name.to_string(), shown);
        headers.insert(name, header);
    }
    let (body, content_type, shown_body, templated_secret) = render_body(&step.body, scope)?;
    // A body with a secret in it (from a sensitive placeholder, or a value that is a secret
    // under another name, as with headers) is not resent to another origin on a redirect.
    let secret_body = templated_secret
        || body
            .as_deref()
            .is_some_and(|bytes| may_hold_secret(looks.redactor, &String::from_utf8_lossy(bytes)));
    if let Some(content_type) = content_type
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        shown_headers.insert(CONTENT_TYPE.to_string(), content_type.to_string());
    }
    Ok(Prepared {
        request: Request {
            method: step.method.clone(),
            url,
            headers,
            body,
            secret_headers,
            secret_body,
        },
        shown_url,
        shown_headers,
        shown_body,
    })
}

/// The body to send, its content type when the body kind implies one, the form it may be
/// shown in (both rendered from one lookup, so a `{{ uuid }}` shows the value sent), and
/// whether a sensitive placeholder went into it (the shown form differs from the value).
type RenderedBody = (Option<Vec<u8>>, Option<&'static str>, Option<String>, bool);

fn render_body(body: &Body, scope: &dyn Scope) -> Result<RenderedBody, String> {
    Ok(match body {
        Body::None => (None, None, None, false),
        Body::Json(value) => {
            let json = value.render_shown(scope)?;
            let shown = serde_json::to_string_pretty(&json.shown).map_err(|e| e.to_string())?;
            (
                Some(serde_json::to_vec(&json.value).map_err(|e| e.to_string())?),
                Some("application/json"),
                Some(shown),
                json.shown != json.value,
            )
        }
        Body::Text(t) => {
            let text = t.render_shown(scope)?;
            let secret = text.shown != text.value;
            (
                Some(text.value.into_bytes()),
                None,
                Some(text.shown),
                secret,
            )
        }
        Body::File { name, bytes } => {
            let json = name.ends_with(".json").then_some("application/json");
            // The suite's own file: no placeholder in it, masked by value where it is shown.
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 16)]).into_owned();
            (Some(bytes.as_ref().clone()), json, Some(shown), false)
        }
        Body::Form(pairs) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            let mut shown = url::form_urlencoded::Serializer::new(String::new());
            let mut secret = false;
            for (key, value) in pairs {
                let value = value.render_shown(scope)?;
                form.append_pair(key, &value.value);
                shown.append_pair(key, &value.shown);
                secret |= value.shown != value.value;
            }
            (
                Some(form.finish().into_bytes()),
                Some("application/x-www-form-urlencoded"),
                Some(shown.finish()),
                secret,
            )
        }
    })
}

/// `path` appended to the base URL (which may have a path prefix of its own).
fn join(base: &url::Url, path: &str) -> Result<url::Url, url::ParseError> {
    let Some(joined) = join_plain(base, path) else {
        return url::Url::parse(&join_text(base, path));
    };
    debug_assert_eq!(
        Ok(&joined),
        url::Url::parse(&join_text(base, path)).as_ref(),
        "join_plain must give what parsing the joined text gives"
    );
    Ok(joined)
}

/// [`join`] without parsing the whole URL again (its host above all: 6 K instructions a
/// request), for the usual path: letters, digits and `-._~/` only, no `.` or `..` segment, and
/// a base URL without query or fragment. Parsing such a path changes nothing in it, so the
/// base URL with that path is what parsing the joined text would give; `None` for any other
/// path, which is parsed as text.
fn join_plain(base: &url::Url, path: &str) -> Option<url::Url> {
    let rest = path.trim_start_matches('/');
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~/".contains(&b);
    if base.query().is_some()
        || base.fragment().is_some()
        || base.cannot_be_a_base()
        || !rest.bytes().all(plain)
        || rest
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return None;
    }
    let mut url = base.clone();
    url.set_path(&format!("{}/{rest}", base.path().trim_end_matches('/')));
    Some(url)
}

fn join_text(base: &url::Url, path: &str) -> String {
    format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_joins_as_parsing_the_joined_text_would() {
        let bases = [
            "http://h",
            "http://h/",
            "http://127.0.0.1:8080/api",
            "http://h/api//",
            "https://u:p@h/a%20b/",
            "http://[::1]:9/x",
        ];
        let paths = [
            "",
            "/",
            "probe/1",
            "/probe/1",
            "//x",
            "a//b/",
            "...",
            "a.b/c~d_e-f",
        ];
        for base in bases {
            let base = url::Url::parse(base).unwrap();
            for path in paths {
                let plain = join_plain(&base, path).expect("a plain path");
                assert_eq!(plain, url::Url::parse(&join_text(&base, path)).unwrap());
            }
        }
        // Anything else is parsed as text.
        let base = url::Url::parse("http://h/api").unwrap();
        for path in [
            "a/./b", "a/../b", "..", "a b", "%2e%2e", "\\evil", "a?b", "a#b", "é",
        ] {
            assert_eq!(join_plain(&base, path), None, "{path}");
        }
        let with_query = url::Url::parse("http://h/api?x=1").unwrap();
        assert_eq!(join_plain(&with_query, "probe"), None);
    }

    /// Every path of up to 8 characters drawn from the ones it takes (dots and slashes above
    /// all), against the parse, on bases with and without a path.
    #[test]
    fn every_short_plain_path_joins_as_parsing_would() {
        let alphabet = ['a', 'Z', '0', '-', '.', '_', '~', '/'];
        let bases = ["http://h", "http://h/api/", "https://h:8443/a.b/.c"];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            // xorshift: deterministic, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 9) as usize;
            let path: String = (0..len)
                .map(|i| alphabet[((state >> (8 + 3 * i)) % 8) as usize])
                .collect();
            for base in bases {
                let base = url::Url::parse(base).unwrap();
                if let Some(plain) = join_plain(&base, &path) {
                    let parsed = url::Url::parse(&join_text(&base, &path)).unwrap();
                    assert_eq!(plain, parsed, "{base} + {path}");
                }
            }
        }
    }
}
