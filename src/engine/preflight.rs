//! The checks before any flow: the deployed version and the config staging serves.

use super::Shared;
use super::http::Limits;
use super::jar::Jar;
use super::result::WaitResult;
use super::scope::FlowScope;
use crate::check::{Expectation, Observed, Subject};
use crate::integrity::{IntegrityResult, VersionResult, judge_served};
use crate::redact::{MASK, Mask, is_sensitive_header};
use crate::suite::WaitPolicy;
use crate::suite::{VersionCheck, VersionSource};
use crate::template::{Template, value_to_text};
use serde_json::Map;
use std::collections::HashMap;
use std::time::Instant;

/// Reads the version staging reports and compares it with `expect`.
pub async fn check_version(shared: &Shared, check: &VersionCheck) -> VersionResult {
    let scope = suite_scope(shared);
    let mask = &*shared.redactor;
    // A version read from a sensitive header (`set-cookie`, ...) is compared, never shown, nor
    // is what it is compared with, which a pass would show it as (attack findings: the value
    // was printed in the headline and every report).
    let hidden = matches!(&check.source, VersionSource::Header(name) if is_sensitive_header(name))
        && !shared.show_sensitive_headers;
    // Compared as rendered, shown with sensitive values as `***`.
    let (expected, shown_expected) = match check.expect.render_shown(&scope) {
        Ok(text) if hidden => (text.value.trim().to_string(), MASK.to_string()),
        Ok(text) => (text.value.trim().to_string(), text.shown.trim().to_string()),
        Err(e) => {
            return VersionResult {
                expected: String::new(),
                actual: None,
                passed: false,
                error: Some(e),
            };
        }
    };
    if expected.is_empty() {
        // `expect = "{{ env.GIT_SHA }}"` with the variable set but empty: a check that proves
        // nothing must not pass.
        return VersionResult {
            expected: shown_expected,
            actual: None,
            passed: false,
            error: Some("the expected version is empty (`expect` rendered to nothing)".into()),
        };
    }
    let read = async {
        let exchange = get(shared, &check.path).await?;
        match &check.source {
            // Every line of the header, joined with ", " as a step's header expectation
            // reads it: a staging that also says it runs another release on a second line
            // does not match (only the first line was read once, which passed).
            VersionSource::Header(name) => {
                let lines: Vec<String> = exchange
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                if lines.is_empty() {
                    Err(format!("no `{name}` header"))
                } else {
                    Ok(lines.join(", ").trim().to_string())
                }
            }
            VersionSource::Json(query) => {
                let json: serde_json::Value = serde_json::from_slice(&exchange.body)
                    .map_err(|e| format!("body is not JSON: {e}"))?;
                query
                    .select(&json)
                    .map(|v| value_to_text(&v).trim().to_string())
                    .ok_or_else(|| format!("{} matched nothing", query.as_str()))
            }
        }
    };
    match read.await {
        Ok(actual) => VersionResult {
            passed: actual == expected,
            expected: shown_expected,
            actual: Some(if hidden {
                MASK.to_string()
            } else {
                mask.mask_text(&actual)
            }),
            error: None,
        },
        Err(error) => VersionResult {
            expected: shown_expected,
            actual: None,
            passed: false,
            error: Some(mask.mask_text(&error)),
        },
    }
}

/// GETs each `served_at` and judges its hash against the lock.
pub async fn check_served(shared: &Shared, results: &mut [IntegrityResult]) {
    for (entry, result) in shared
        .plan
        .settings
        .integrity
        .iter()
        .zip(results.iter_mut())
    {
        let Some(path) = &entry.served_at else {
            continue;
        };
        let shown_path = path
            .render_shown(&suite_scope(shared))
            .map_or_else(|e| e, |r| r.shown);
        match get(shared, path).await {
            Ok(exchange) => judge_served(result, &shown_path, Ok(&exchange.body)),
            Err(why) => judge_served(result, &shown_path, Err(why)),
        }
    }
}

/// Polls `[wait]` until staging answers as expected (and reports the expected version, when
/// `[version]` is set), or the wait's timeout ends. Counts against the deadline.
pub async fn wait_until_ready(shared: &Shared, wait: &WaitPolicy) -> WaitResult {
    let started = Instant::now();
    let mut polls = 0;
    let mut last = String::new();
    let status_expectation = Expectation {
        subject: Subject::Status,
        op: wait.status.clone(),
    };
    loop {
        polls += 1;
        let poll = async {
            let exchange = fetch(shared, &wait.path).await?;
            let observed = Observed::status_only(exchange.status.as_u16(), exchange.latency);
            if !status_expectation.holds(&observed, &suite_scope(shared)) {
                return Err(format!("status {}", exchange.status.as_u16()));
            }
            if let Some(check) = &shared.plan.settings.version {
                let version = check_version(shared, check).await;
                if let Some(message) = version.message() {
                    return Err(message);
                }
            }
            Ok(())
        };
        let left = wait.timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, poll).await {
            Ok(Ok(())) => return WaitResult::new(true, polls, started, None),
            Ok(Err(why)) => last = shared.redactor.mask_text(&why),
            Err(_) => last = format!("no answer within the wait timeout ({last})"),
        }
        let left = wait.timeout.saturating_sub(started.elapsed());
        if left.is_zero() || shared.cancel.is_cancelled() {
            return WaitResult::new(false, polls, started, Some(last));
        }
        tokio::select! {
            () = tokio::time::sleep(wait.interval.min(left)) => {}
            () = shared.cancel.cancelled() => return WaitResult::new(false, polls, started, Some(shared.stop_reason())),
        }
    }
}

/// A GET of a suite-level path with the suite's headers, timeout and body limit; a status
/// other than 2xx is an error. Cancelled with the run.
async fn get(shared: &Shared, path: &Template) -> Result<super::http::Exchange, String> {
    let exchange = fetch(shared, path).await?;
    if !exchange.status.is_success() {
        return Err(format!("status {}", exchange.status.as_u16()));
    }
    Ok(exchange)
}

/// A GET of a suite-level path, whatever its status.
async fn fetch(shared: &Shared, path: &Template) -> Result<super::http::Exchange, String> {
    let settings = &shared.plan.settings;
    let scope = suite_scope(shared);
    let step = crate::suite::Step::get(path.clone());
    let request = super::flow::render(shared, &step, &scope)
        .map_err(|e| shared.redactor.mask_text(&e))?
        .request;
    let limits = Limits {
        timeout: settings.timeout,
        max_body: settings.max_body,
        follow_redirects: settings.follow_redirects,
    };
    let jar = Jar::default();
    let exchange = tokio::select! {
        result = shared.http.exchange(request, &jar, limits) => {
            result.map_err(|e| shared.redactor.mask_text(&e.to_string()))?
        }
        () = shared.cancel.cancelled() => return Err(shared.stop_reason()),
    };
    Ok(exchange)
}

/// The scope of suite-level templates (`[wait] path`, `served_at`, `[version]`): vars, `--var`,
/// `env.`, `secret.` and built-ins; no flow vars and no captures, hence the empty statics.
fn suite_scope(shared: &Shared) -> FlowScope<'_> {
    static NO_VARS: std::sync::OnceLock<Map<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    static NO_CAPTURES: std::sync::OnceLock<HashMap<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    FlowScope {
        plan: &shared.plan,
        flow_vars: NO_VARS.get_or_init(Map::new),
        setup: NO_CAPTURES.get_or_init(HashMap::new),
        captures: HashMap::new(),
        run_id: &shared.run_id,
    }
}
