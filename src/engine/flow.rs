//! One flow: steps in order with one cookie jar, captures passed forward, then cleanups.

use super::Shared;
use super::event::{Event, FlowIndex};
use super::http::{Exchange, Limits, Request, RequestError};
use super::record::FlowRecord;
use super::result::{Attempt, FlowOutcome, FlowResult, Phase, StepOutcome, StepResult};
use super::scope::FlowScope;
use crate::check::{Assertion, Observed, excerpt};
use crate::redact::{MASK, SENSITIVE_HEADERS, shown_header};
use crate::suite::template::Scope;
use crate::suite::{Body, Flow, Step, Target};
use reqwest::cookie::Jar;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
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
    record: &FlowRecord,
) -> FlowResult {
    shared.events.emit(Event::FlowStarted {
        flow: index,
        name: flow.name.clone(),
    });
    let jar = Jar::default();
    let mut scope = FlowScope {
        plan: &shared.plan,
        flow_vars: &flow.vars,
        setup: &shared.setup_captures,
        captures: HashMap::new(),
        run_id: &shared.run_id,
    };
    let (failed, stopped) = run_steps(shared, index, flow, &mut scope, &jar, record).await;
    let result = match stopped {
        // Halted before its first step: the flow never started.
        Some(reason) if record.nothing_tried() => super::skipped_flow(flow, &reason),
        _ => {
            run_cleanups(shared, index, flow, &mut scope, &jar, record).await;
            // A flow stopped half-way did not pass: failed (warned if non-critical).
            let outcome = match (failed || stopped.is_some(), flow.critical) {
                (false, _) => FlowOutcome::Passed,
                (true, true) => FlowOutcome::Failed,
                (true, false) => FlowOutcome::Warned,
            };
            record.finish(flow, outcome)
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
    scope: &mut FlowScope<'_>,
    jar: &Jar,
    record: &FlowRecord,
) -> (bool, Option<String>) {
    let mut failed = false;
    let mut stopped: Option<String> = None;
    for step in &flow.steps {
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
        let result = run_timed(shared, Some(index), step, Phase::Step, scope, jar).await;
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
    flow: &Flow,
    scope: &mut FlowScope<'_>,
    jar: &Jar,
    record: &FlowRecord,
) {
    for step in &flow.cleanup {
        let result = match unrunnable(flow, step, scope, record) {
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
    flow: &Flow,
    step: &Step,
    scope: &FlowScope<'_>,
    record: &FlowRecord,
) -> Option<StepResult> {
    let missing: Vec<&str> = step
        .uses_captures
        .iter()
        .map(String::as_str)
        .filter(|c| !scope.captures.contains_key(*c) && !scope.setup.contains_key(*c))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<String> = missing.iter().map(|c| format!("`{c}`")).collect();
    let never = format!("capture {} never happened", names.join(", "));
    let method = step.method.as_str();
    let tried = missing.iter().any(|c| record.tried_to_capture(flow, c));
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
        result = run_timed(shared, Some(index), step, Phase::Cleanup, scope, jar) => result,
        () = grace_over(shared) => unfinished(),
    }
}

/// Resolves when the cleanup grace time after a stop (deadline, signal) has run out; never
/// while the run goes on.
async fn grace_over(shared: &Shared) {
    shared.cancel.cancelled().await;
    let at = shared.stop.get().map_or_else(Instant::now, |(_, at)| *at);
    tokio::time::sleep_until((at + CLEANUP_GRACE).into()).await;
}

/// [`run_step`], with the time a failed request waited counted as its latency: a request that
/// never answered (timeout, reset, refused) has no latency of its own, and leaving it out
/// would let timeouts lower the p95. The waits between retries are preflight's, not staging's,
/// so they do not count.
pub async fn run_timed(
    shared: &Shared,
    flow: FlowIndex,
    step: &Step,
    phase: Phase,
    scope: &mut FlowScope<'_>,
    jar: &Jar,
) -> StepResult {
    let started = Instant::now();
    let mut result = run_step(shared, flow, step, phase, scope, jar).await;
    if result.latency_ms.is_none() && result.url.is_some() && result.attempts > 0 {
        let waits: Duration = (2..=result.attempts)
            .map(|n| step.retry.delay_before(n))
            .sum();
        result.latency_ms = Some(started.elapsed().saturating_sub(waits).as_millis() as u64);
    }
    result
}

/// Runs one step: render, send (racing cancellation), judge, capture.
pub async fn run_step(
    shared: &Shared,
    flow: FlowIndex,
    step: &Step,
    phase: Phase,
    scope: &mut FlowScope<'_>,
    jar: &Jar,
) -> StepResult {
    shared.events.emit(Event::StepStarted {
        flow,
        step: step.name.clone(),
    });
    let result = execute(shared, step, phase, scope, jar).await;
    shared.events.emit(Event::StepFinished {
        flow,
        step: step.name.clone(),
        outcome: result.outcome,
        latency: result.latency_ms.map(Duration::from_millis),
    });
    result
}

async fn execute(
    shared: &Shared,
    step: &Step,
    phase: Phase,
    scope: &mut FlowScope<'_>,
    jar: &Jar,
) -> StepResult {
    let request = match render(shared, step, scope) {
        Ok(request) => request,
        Err(e) => return failed_without_response(step, phase, None, format!("template: {e}")),
    };
    let settings = &shared.plan.settings;
    let limits = Limits {
        timeout: step.timeout.unwrap_or(settings.timeout),
        max_body: settings.max_body,
        follow_redirects: settings.follow_redirects,
    };
    // Kept to show on failure only: formatting them for every step would cost the hot path.
    let sent_headers = request.headers.clone();
    let shown_headers = || -> BTreeMap<String, String> {
        sent_headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes());
                let shown = shown_header(n.as_str(), &value, shared.show_sensitive_headers);
                (n.to_string(), shown)
            })
            .collect()
    };
    let url = request.url.to_string();
    let (exchange, earlier) =
        send_with_retries(shared, step, phase, request, jar, limits, scope).await;
    let attempts = earlier.len() as u32 + 1;
    let exchange = match exchange {
        Ok(exchange) => exchange,
        Err(e) => {
            let mut result = failed_without_response(step, phase, Some(url), e.to_string());
            result.request_headers = shown_headers();
            result.attempts = attempts;
            result.earlier_attempts = earlier;
            return result;
        }
    };
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
    let observed = Observed::new(
        exchange.status.as_u16(),
        exchange.latency,
        headers,
        exchange.body,
        exchange.cookies,
    );
    let mut assertions: Vec<Assertion> = step
        .expectations
        .iter()
        .flat_map(|e| e.evaluate(&observed, scope))
        .collect();
    // Captures are taken even when an assertion failed, so that cleanups can still delete
    // what the step created.
    for capture in &step.captures {
        match capture.take(&observed) {
            Ok(value) => {
                if capture.secret {
                    shared
                        .redactor
                        .add(&crate::suite::template::value_to_text(&value));
                }
                scope.captures.insert(capture.name.clone(), value);
            }
            Err(why) => assertions.push(Assertion {
                subject: format!("capture {}", capture.name),
                op: "captures".into(),
                expected: json!(capture.source.label()),
                actual: json!(crate::check::MISSING),
                passed: false,
                message: Some(why),
            }),
        }
    }
    let passed = assertions.iter().all(|a| a.passed);
    if !shared.show_sensitive_headers {
        for a in &mut assertions {
            let sensitive = a
                .subject
                .strip_prefix("header ")
                .is_some_and(|name| SENSITIVE_HEADERS.contains(&name));
            if sensitive && a.actual != json!(crate::check::MISSING) {
                a.actual = json!(MASK);
            }
        }
    }
    StepResult {
        name: step.name.clone(),
        phase,
        method: step.method.to_string(),
        url: Some(exchange.url.to_string()),
        status: Some(observed.status),
        latency_ms: Some(observed.latency.as_millis() as u64),
        attempts,
        flaky: passed && attempts > 1,
        earlier_attempts: earlier,
        outcome: if passed {
            StepOutcome::Passed
        } else {
            StepOutcome::Failed
        },
        error: None,
        assertions,
        skipped_because: None,
        body_excerpt: (!passed).then(|| excerpt(&observed.body_text(), BODY_EXCERPT_CHARS)),
        request_headers: if passed {
            BTreeMap::new()
        } else {
            shown_headers()
        },
    }
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
/// (SPEC 8): connect failures; timeouts and lost connections; 5xx statuses the step did not
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
) -> (Result<Exchange, RequestError>, Vec<Attempt>) {
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
        let result = if phase == Phase::Cleanup {
            // Cleanups run after a stop too; their own time is bounded by the caller.
            shared.http.exchange(request.clone(), jar, limits).await
        } else {
            tokio::select! {
                result = shared.http.exchange(request.clone(), jar, limits) => result,
                () = shared.cancel.cancelled() => return (Err(RequestError::Stopped(shared.stop_reason())), earlier),
            }
        };
        let elapsed = started.elapsed();
        let kind = match &result {
            Err(RequestError::Connect(_) | RequestError::Tls(_)) => Some((policy.on.connect, true)),
            Err(RequestError::Timeout(_) | RequestError::Other(_)) => Some((
                policy.on.timeout,
                idempotent(&step.method) || policy.named_by_step.timeout,
            )),
            Ok(exchange)
                if exchange.status.is_server_error() && !status_expected(step, exchange, scope) =>
            {
                Some((
                    policy.on.server_error,
                    idempotent(&step.method) || policy.named_by_step.server_error,
                ))
            }
            _ => None,
        };
        let tries = earlier.len() as u32 + 1;
        let retry =
            matches!(kind, Some((true, true))) && tries < policy.attempts && !shared.halted();
        if !retry {
            return (counted(result, waited), earlier);
        }
        tokio::select! {
            () = tokio::time::sleep(policy.delay_before(tries + 1)) => {}
            () = shared.cancel.cancelled() => return (counted(result, waited), earlier),
        }
        earlier.push(Attempt::of(&result, elapsed));
        waited += elapsed;
    }
}

/// POST and PATCH may have taken effect on the first try (a second order, a second payment).
fn idempotent(method: &reqwest::Method) -> bool {
    !matches!(*method, reqwest::Method::POST | reqwest::Method::PATCH)
}

/// Whether the step's status expectation holds: an expected 503 is not a failure to retry.
fn status_expected(step: &Step, exchange: &Exchange, scope: &dyn Scope) -> bool {
    let observed = Observed::status_only(exchange.status.as_u16(), exchange.latency);
    step.expectations
        .iter()
        .filter(|e| matches!(e.subject, crate::check::Subject::Status))
        .all(|e| e.holds(&observed, scope))
}

/// Builds the request: URL, query, headers (suite ones, then the step's), body.
pub(super) fn render(shared: &Shared, step: &Step, scope: &dyn Scope) -> Result<Request, String> {
    let settings = &shared.plan.settings;
    let mut url = match &step.target {
        Target::Url(t) => {
            let text = t.render(scope)?;
            url::Url::parse(&text).map_err(|e| format!("invalid url `{text}`: {e}"))?
        }
        Target::Path(t) => {
            let path = t.render(scope)?;
            let base = settings.base_url.as_ref().ok_or("no base_url")?;
            join(base, &path)?
        }
    };
    if !step.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in &step.query {
            pairs.append_pair(key, &value.render(scope)?);
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in settings.headers.iter().chain(&step.headers) {
        let text = value.render(scope)?;
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header `{name}`: {e}"))?;
        let value = HeaderValue::from_str(&text)
            .map_err(|_| format!("header `{name}` has a value that is not valid in HTTP"))?;
        headers.insert(name, value);
    }
    let (body, content_type) = match &step.body {
        Body::None => (None, None),
        Body::Json(value) => {
            let json = value.render(scope)?;
            (
                Some(serde_json::to_vec(&json).map_err(|e| e.to_string())?),
                Some("application/json"),
            )
        }
        Body::Text(t) => (Some(t.render(scope)?.into_bytes()), None),
        Body::File { name, bytes } => {
            let json = name.ends_with(".json").then_some("application/json");
            (Some(bytes.as_ref().clone()), json)
        }
        Body::Form(pairs) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in pairs {
                form.append_pair(key, &value.render(scope)?);
            }
            (
                Some(form.finish().into_bytes()),
                Some("application/x-www-form-urlencoded"),
            )
        }
    };
    if let Some(content_type) = content_type
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    Ok(Request {
        method: step.method.clone(),
        url,
        headers,
        body,
    })
}

/// `path` appended to the base URL (which may have a path prefix of its own).
fn join(base: &url::Url, path: &str) -> Result<url::Url, String> {
    let text = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url::Url::parse(&text).map_err(|e| format!("invalid URL `{text}`: {e}"))
}
