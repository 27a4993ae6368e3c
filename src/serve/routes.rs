//! The HTTP routes of `preflight serve`, and who may call them.

use super::gate::{Answer, Gate, IdempotencyKey, RunRequest};
use super::store::StoredRun;
use crate::redact::Mask;
use crate::report::{FlaggerRecord, GateVerdict, Trigger};
use crate::suite::Plan;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Request bodies above this are refused (`413`): a webhook payload is a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// What the routes share.
pub struct Server {
    pub gate: Arc<Gate>,
    pub token: Option<String>,
    pub public_metrics: bool,
    /// Variables a request may set.
    pub allowed_vars: BTreeSet<String>,
    /// `--every`, for `/readyz`.
    pub every: Option<Duration>,
    pub started: Instant,
    /// When the last scheduled run finished.
    pub last_scheduled: Mutex<Option<Instant>>,
}

pub fn router(server: Arc<Server>) -> Router {
    let guarded = Router::new()
        .route("/run", post(run))
        .route("/runs", get(list))
        .route("/runs/latest", get(latest))
        .route("/runs/{id}", get(one));
    let metrics = Router::new().route("/metrics", get(metrics));
    let metrics = if server.public_metrics {
        metrics
    } else {
        metrics.route_layer(middleware::from_fn_with_state(
            server.clone(),
            require_token,
        ))
    };
    Router::new()
        .merge(guarded.route_layer(middleware::from_fn_with_state(
            server.clone(),
            require_token_or_flagger,
        )))
        .merge(metrics)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(server)
}

/// `{"error": "..."}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, axum::Json(body)).into_response()
}

fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "a valid `Authorization: Bearer <token>` is needed (the token of PREFLIGHT_SERVE_TOKEN)",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether `given` is the token, compared in constant time (over digests, so that not even
/// the length is told).
fn token_matches(expected: &str, given: &str) -> bool {
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn authorized(server: &Server, headers: &HeaderMap) -> bool {
    match &server.token {
        None => true,
        Some(token) => bearer(headers).is_some_and(|given| token_matches(token, given)),
    }
}

async fn require_token(
    State(server): State<Arc<Server>>,
    request: Request,
    next: Next,
) -> Response {
    if !authorized(&server, request.headers()) {
        return unauthorized();
    }
    next.run(request).await
}

/// The token from the header, or, on `POST /run` only, from a Flagger payload's
/// `metadata.token`: Flagger cannot send headers. The body is read (within the limit) to
/// look, and handed on.
async fn require_token_or_flagger(
    State(server): State<Arc<Server>>,
    request: Request,
    next: Next,
) -> Response {
    if authorized(&server, request.headers()) {
        return next.run(request).await;
    }
    let Some(token) = &server.token else {
        return next.run(request).await;
    };
    if request.uri().path() != "/run" {
        return unauthorized();
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, body_too_large()),
    };
    let given = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("metadata")?.get("token")?.as_str().map(String::from));
    let given = given.as_deref().map(str::trim);
    if !given.is_some_and(|given| token_matches(token, given)) {
        return unauthorized();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn body_too_large() -> String {
    format!("the request body is over {} KiB", MAX_BODY / 1024)
}

/// The body of `POST /run`: a Flagger webhook payload, and variables. All optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    name: Option<String>,
    namespace: Option<String>,
    phase: Option<String>,
    checksum: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    vars: Option<BTreeMap<String, String>>,
}

impl RunBody {
    fn flagger(&self) -> Option<FlaggerRecord> {
        let mut metadata = self.metadata.clone().unwrap_or_default();
        // The token is a credential, never a record.
        metadata.remove("token");
        let any = self.name.is_some()
            || self.namespace.is_some()
            || self.phase.is_some()
            || self.checksum.is_some()
            || self.metadata.is_some();
        any.then(|| FlaggerRecord {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            phase: self.phase.clone(),
            checksum: self.checksum.clone(),
            metadata,
        })
    }
}

async fn run(
    State(server): State<Arc<Server>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (base, generation, files_digest) = server.gate.current();
    // Only an answer that quotes the request needs one: compiling it costs a pattern per
    // secret, too much for every call.
    let mask = || base.redactor(server.gate.options().token.as_ref());
    let always_200 = match query_status(&query) {
        Ok(always) => always,
        Err(message) => return error(StatusCode::BAD_REQUEST, mask().mask_text(&message)),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, body_too_large());
        }
        Err(e) => return error(e.status(), e.body_text()),
    };
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(why) => {
            let why = mask().mask_text(&why);
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a run request: {why}"),
            );
        }
    };
    let key = match idempotency_key(&headers, &body) {
        Ok(key) => key,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let vars = body.vars.clone().unwrap_or_default();
    let plan = match with_vars(&base, &vars, &server.allowed_vars) {
        Ok(plan) => plan,
        Err(message) => return error(StatusCode::BAD_REQUEST, mask().mask_text(&message)),
    };
    let request = RunRequest {
        trigger: Trigger::Request,
        plan,
        key,
        flagger: body.flagger(),
        vars,
        files_digest,
    };
    match server.gate.request(request, generation).await {
        Answer::Ran(run) => report(&run, always_200),
        Answer::Busy { retry_after } => {
            let seconds = retry_after.as_secs_f64().ceil() as u64;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("a run is in progress; try again in {seconds}s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Answer::Failed => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the run ended in an internal error of preflight (see its log): no verdict",
        ),
        Answer::KeyReused => error(
            StatusCode::CONFLICT,
            "this idempotency key belongs to a run with other vars: use a new key",
        ),
        Answer::ShuttingDown => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "preflight serve is shutting down: no run was started",
        ),
    }
}

/// Empty, or a JSON object of the keys of [`RunBody`] (an array, which serde would read field
/// by field, is no run request).
fn parse_body(body: &[u8]) -> Result<RunBody, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RunBody::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("expected a JSON object".into());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// `?status=report`: always `200`, for callers that treat any other status as an error of
/// their own (Argo Rollouts' web provider). No other parameter is known, and it is given once.
fn query_status(query: &[(String, String)]) -> Result<bool, String> {
    match query {
        [] => Ok(false),
        [(key, value)] if key == "status" && value == "report" => Ok(true),
        [(key, value)] if key == "status" => Err(format!(
            "`status={value}`: the only value is `status=report` (always answer 200)"
        )),
        _ => Err(
            "the only query parameter is `status=report`, given once (always answer 200)".into(),
        ),
    }
}

/// The `Idempotency-Key` header, else the Flagger payload's `checksum`.
fn idempotency_key(headers: &HeaderMap, body: &RunBody) -> Result<Option<IdempotencyKey>, String> {
    let Some(value) = headers.get("idempotency-key") else {
        let checksum = body.checksum.clone().filter(|c| !c.is_empty());
        return Ok(checksum.map(|value| IdempotencyKey {
            from_header: false,
            value,
        }));
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or("the Idempotency-Key header must be 1 to 255 visible ASCII characters")?;
    Ok(Some(IdempotencyKey {
        from_header: true,
        value: key.to_string(),
    }))
}

/// The suite with the request's variables, as if given with `--var`: only names allowed at
/// start-up, and requests that still build.
fn with_vars(
    base: &Arc<Plan>,
    vars: &BTreeMap<String, String>,
    allowed: &BTreeSet<String>,
) -> Result<Arc<Plan>, String> {
    if vars.is_empty() {
        return Ok(base.clone());
    }
    if let Some(name) = vars.keys().find(|n| !allowed.contains(*n)) {
        let allowed = if allowed.is_empty() {
            "none: start serve with --allow-var NAME".to_string()
        } else {
            allowed.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        return Err(format!(
            "`{name}` is not a variable requests may set (allowed: {allowed})"
        ));
    }
    let mut plan = Plan::clone(base);
    for (name, value) in vars {
        plan.settings
            .cli_vars
            .insert(name.clone(), serde_json::Value::String(value.clone()));
    }
    let problems = crate::engine::rehearse(&plan);
    if let Some(problem) = problems.first() {
        return Err(format!(
            "with these vars the suite cannot run: {}",
            problem.message
        ));
    }
    Ok(Arc::new(plan))
}

/// A report with the status of its verdict, or `200` when asked.
fn report(run: &StoredRun, always_200: bool) -> Response {
    let status = match (always_200, run.verdict) {
        (true, _) | (false, GateVerdict::Pass) => StatusCode::OK,
        (false, GateVerdict::Fail) => StatusCode::UNPROCESSABLE_ENTITY,
        (false, GateVerdict::Aborted) => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_report(status, run)
}

fn json_report(status: StatusCode, run: &StoredRun) -> Response {
    let mut response = (status, run.json.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("preflight-run-id", HeaderValue::from(run.id));
    response
}

async fn list(State(server): State<Arc<Server>>) -> Response {
    axum::Json(server.gate.store.list()).into_response()
}

async fn latest(State(server): State<Arc<Server>>) -> Response {
    match server.gate.store.latest() {
        Some(run) => json_report(StatusCode::OK, &run),
        None => error(StatusCode::NOT_FOUND, "no run has finished yet"),
    }
}

async fn one(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Response {
    let run = id.parse().ok().and_then(|id| server.gate.store.get(id));
    match run {
        Some(run) => json_report(StatusCode::OK, &run),
        None => error(
            StatusCode::NOT_FOUND,
            "no such run (only the last --keep runs are kept)",
        ),
    }
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let mut response = server.gate.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn ready(State(server): State<Arc<Server>>) -> Response {
    match not_ready(&server) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// Why the server is not ready: shutting down, or scheduled runs have stopped coming.
fn not_ready(server: &Server) -> Option<String> {
    if server.gate.shutdown.is_cancelled() {
        return Some("shutting down".into());
    }
    let every = server.every?;
    let last = server
        .last_scheduled
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(server.started);
    let age = last.elapsed();
    (age > every * 2).then(|| {
        format!(
            "no scheduled run has finished for {} (--every {})",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(every)
        )
    })
}
