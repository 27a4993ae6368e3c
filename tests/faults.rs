//! Fault injection: the real `preflight` binary against a staging that misbehaves in one
//! precise way (see `faultserver`), on 127.0.0.1 only.
//!
//! The rule under test is FAIL CLOSED: every fault must end in exit 1 with verdict `fail`,
//! with the step's error naming the real cause, and within the configured timeout plus a
//! small margin. The one exception is a staging that fails and then recovers within the
//! step's retries: exit 0 with the step marked flaky (and exit 1 under `fail_on_flaky`).
//! The retry tests count the requests the server really received.
//!
//! `docs/fault-matrix.md` lists these tests by name: keep the two in step.

mod faultserver;

mod hermetic;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use faultserver::{Fault, FaultServer, closed_port};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Slack on top of a run's own timeouts for process start, report writing and a busy machine.
const MARGIN: Duration = Duration::from_secs(3);
/// The per-request timeout of most suites here.
const TIMEOUT: Duration = Duration::from_secs(1);

/// A suite in a temp dir: `suite/preflight.toml`, `suite/probe.toml`, and the JSON report
/// next to (not inside) the suite.
struct Suite {
    dir: tempfile::TempDir,
}

impl Suite {
    /// `preflight.toml` is `base_url`, then `timeout = "1s"` and `deadline = "8s"` unless
    /// `settings` sets them, then `settings` (top-level keys first, then tables);
    /// `flow` is `probe.toml`.
    fn new(base_url: &str, settings: &str, flow: &str) -> Suite {
        let dir = tempfile::tempdir().expect("temp dir");
        let suite = dir.path().join("suite");
        std::fs::create_dir_all(&suite).expect("suite dir");
        let mut toml = format!("name = \"faults\"\nbase_url = \"{base_url}\"\n");
        for (key, default) in [("timeout", "\"1s\""), ("deadline", "\"8s\"")] {
            if !settings.lines().any(|l| l.starts_with(&format!("{key} ="))) {
                toml.push_str(&format!("{key} = {default}\n"));
            }
        }
        toml.push_str(settings);
        toml.push('\n');
        std::fs::write(suite.join("preflight.toml"), toml).expect("write preflight.toml");
        std::fs::write(suite.join("probe.toml"), flow).expect("write probe.toml");
        Suite { dir }
    }

    fn suite_dir(&self) -> PathBuf {
        self.dir.path().join("suite")
    }

    fn report_path(&self) -> PathBuf {
        self.dir.path().join("report.json")
    }

    /// Runs the real binary on a blocking thread (so the fault server keeps serving) and
    /// measures the wall time around the process.
    async fn run(&self) -> Run {
        let mut cmd = preflight();
        cmd.arg("run")
            .arg(self.suite_dir())
            .arg("--json")
            .arg(self.report_path())
            .arg("--no-progress");
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
            .await
            .expect("the blocking task ends");
        let elapsed = started.elapsed();
        let report = read_report(&self.report_path());
        Run {
            output,
            elapsed,
            report,
        }
    }
}

/// The binary with the variables preflight reads removed: a proxy set on the machine must
/// not stand between the tests and their loopback server.
fn preflight() -> Command {
    let mut cmd = cargo_bin_cmd!("preflight");
    for var in hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    // A hung binary is a failure of its own, not a hung test run.
    cmd.timeout(Duration::from_secs(20));
    cmd
}

fn read_report(path: &Path) -> Value {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).expect("the JSON report parses"),
        Err(_) => Value::Null,
    }
}

struct Run {
    output: Output,
    elapsed: Duration,
    report: Value,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Everything the process printed, for assertion messages.
    fn printed(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code(),
            self.elapsed,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    /// The only step of the only flow.
    fn step(&self) -> &Value {
        let step = &self.report["flows"][0]["steps"][0];
        assert!(
            step.is_object(),
            "no step in the report\n{}",
            self.printed()
        );
        step
    }

    fn error(&self) -> String {
        self.step()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn attempts(&self) -> u64 {
        self.step()["attempts"]
            .as_u64()
            .expect("attempts is a number")
    }

    fn earlier_attempts(&self) -> Vec<Value> {
        self.step()["earlier_attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The failed assertions of the step.
    fn failed_assertions(&self) -> Vec<Value> {
        self.step()["assertions"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|a| a["passed"] == Value::Bool(false))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fail closed: exit 1, verdict `fail`, a `GATE FAILED` line and no `GATE PASSED`.
    fn assert_gate_failed(&self) {
        assert_eq!(
            self.code(),
            Some(1),
            "a fault must exit 1, never 0\n{}",
            self.printed()
        );
        assert_eq!(self.report["verdict"], "fail", "{}", self.printed());
        let stdout = String::from_utf8_lossy(&self.output.stdout);
        assert!(
            !stdout.contains("GATE PASSED"),
            "a fault printed PASS\n{}",
            self.printed()
        );
        assert!(
            stdout.contains("GATE FAILED"),
            "no GATE FAILED line\n{}",
            self.printed()
        );
    }

    /// [`Run::assert_gate_failed`], because the only flow failed at its only step.
    fn assert_fails_closed(&self) {
        self.assert_gate_failed();
        assert_eq!(self.report["summary"]["failed"], 1, "{}", self.printed());
        assert_eq!(self.report["flows"][0]["outcome"], "failed");
        assert_eq!(self.step()["outcome"], "failed", "{}", self.printed());
    }

    /// [`Run::assert_gate_failed`] before any flow ran, with a reason containing `reason`.
    fn assert_fails_before_flows(&self, reason: &str) {
        self.assert_gate_failed();
        assert_eq!(
            self.report["flows"][0]["outcome"],
            "skipped",
            "{}",
            self.printed()
        );
        let reasons = self.report["reasons"].to_string();
        assert!(
            reasons.contains(reason),
            "reasons {reasons} lack {reason:?}\n{}",
            self.printed()
        );
    }

    fn assert_passes(&self) {
        assert_eq!(self.code(), Some(0), "{}", self.printed());
        assert_eq!(self.report["verdict"], "pass", "{}", self.printed());
        assert_eq!(self.step()["outcome"], "passed", "{}", self.printed());
    }

    /// The step failed because of a request error containing every one of `parts`
    /// (case-insensitive), with no response status.
    fn assert_error_contains(&self, parts: &[&str]) {
        let error = self.error();
        for part in parts {
            assert!(
                error.to_lowercase().contains(&part.to_lowercase()),
                "step error {error:?} lacks {part:?}\n{}",
                self.printed()
            );
        }
        assert!(
            self.step()["status"].is_null(),
            "a request error has no status\n{}",
            self.printed()
        );
    }

    /// The run ended within `budget` (the run's own timeouts) plus [`MARGIN`].
    fn assert_within(&self, budget: Duration) {
        assert!(
            self.elapsed <= budget + MARGIN,
            "the run took {:?}, over {budget:?} + {MARGIN:?}\n{}",
            self.elapsed,
            self.printed()
        );
    }
}

/// A one-step flow: `GET /probe` plus `extra` lines inside the `[[step]]` table.
fn get_probe(extra: &str) -> String {
    format!("[[step]]\nname = \"probe\"\nmethod = \"GET\"\npath = \"/probe\"\n{extra}\n")
}

/// A one-step flow: `POST /orders` with a JSON body plus `extra` lines inside the step.
fn post_order(extra: &str) -> String {
    format!(
        "[[step]]\nname = \"order\"\nmethod = \"POST\"\npath = \"/orders\"\njson = {{ sku = \"SKU-1\", qty = 1 }}\n{extra}\n"
    )
}

/// `[retry]` of the suite, fast.
const SUITE_RETRY_3: &str = "[retry]\nattempts = 3\nbackoff = \"50ms\"\n";

// ---------------------------------------------------------------------------------------
// One test per fault: the verdict, the error, the time.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn refused_connection_fails_closed_with_connect_error() {
    let addr = closed_port();
    let suite = Suite::new(&format!("http://{addr}"), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["connect failed", "refused"]);
    assert_eq!(run.attempts(), 1);
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_on_accept_fails_closed_naming_the_reset() {
    let server = FaultServer::start(Fault::ResetOnAccept).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // The real reason, not only a generic "request failed".
    run.assert_error_contains(&["reset"]);
    assert_eq!(server.connections(), 1, "no retry without [retry]");
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_after_request_fails_closed_naming_the_reset() {
    let server = FaultServer::start(Fault::ResetAfterRequest).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // The real reason, not only a generic "request failed".
    run.assert_error_contains(&["reset"]);
    assert_eq!(server.requests(), 1, "no retry without [retry]");
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_server_fails_closed_with_timeout() {
    let server = FaultServer::start(Fault::Silent).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["timed out after 1s"]);
    assert_eq!(server.requests(), 1);
    assert!(
        run.elapsed >= TIMEOUT,
        "gave up before the timeout: {:?}",
        run.elapsed
    );
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_body_fails_closed_with_timeout() {
    let server = FaultServer::start(Fault::StalledBody).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // The timeout covers the body too ("per request, body included").
    run.assert_error_contains(&["timed out after 1s"]);
    assert!(
        run.elapsed >= TIMEOUT,
        "gave up before the timeout: {:?}",
        run.elapsed
    );
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn close_without_answer_fails_closed() {
    let server = FaultServer::start(Fault::CloseWithoutAnswer).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // hyper: "connection closed before message completed".
    run.assert_error_contains(&["closed"]);
    assert_eq!(server.requests(), 1);
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_body_fails_closed() {
    let server = FaultServer::start(Fault::TruncatedBody).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // 10 of 100 announced bytes, then EOF: never a 200 with a short body.
    run.assert_error_contains(&["end of file before message length reached"]);
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn dripping_body_fails_closed_with_timeout() {
    let server = FaultServer::start(Fault::DripBody).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // A byte every 50 ms never lets an idle timer fire: the 1 s is for the whole request.
    run.assert_error_contains(&["timed out after 1s"]);
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_chunked_body_fails_closed_at_max_body() {
    let server = FaultServer::start(Fault::EndlessChunkedBody).await;
    let suite = Suite::new(
        &server.base_url(),
        "max_body = \"1MiB\"\ntimeout = \"5s\"",
        &get_probe(""),
    );
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["body over", "1048576", "max_body"]);
    // Cut off at the limit, long before the 5 s timeout.
    run.assert_within(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_50mib_body_fails_closed_at_default_max_body() {
    let server = FaultServer::start(Fault::HugeDeclaredBody).await;
    let suite = Suite::new(&server.base_url(), "timeout = \"5s\"", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // The default max_body is 10 MiB.
    run.assert_error_contains(&["body over", "10485760"]);
    run.assert_within(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_bomb_fails_closed_at_max_body_of_the_decoded_body() {
    let server = FaultServer::start(Fault::GzipBomb(16 * 1024 * 1024)).await;
    let suite = Suite::new(
        &server.base_url(),
        "max_body = \"1MiB\"\ntimeout = \"5s\"",
        &get_probe(""),
    );
    let run = suite.run().await;
    run.assert_fails_closed();
    // About 100 KiB on the wire, 16 MiB once inflated: the limit is on what is buffered.
    run.assert_error_contains(&["body over", "1048576"]);
    run.assert_within(Duration::from_secs(1));
}

/// The control for the bomb above: the hand-made gzip is valid, so the bomb fails because of
/// its size and not because of a broken encoding.
#[tokio::test(flavor = "multi_thread")]
async fn small_gzip_body_within_max_body_is_decoded_and_passes() {
    use sha2::{Digest, Sha256};
    let size = 1 + 258 * 40 + 7;
    let server = FaultServer::start(Fault::GzipBomb(size)).await;
    let digest = hex::encode(Sha256::digest(vec![0u8; size]));
    let flow = get_probe(&format!(
        "[step.expect]\nbody = {{ sha256 = \"{digest}\" }}"
    ));
    let suite = Suite::new(&server.base_url(), "max_body = \"1MiB\"", &flow);
    let run = suite.run().await;
    run.assert_passes();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_status_line_fails_closed_with_parse_error() {
    let server = FaultServer::start(Fault::MalformedStatusLine).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    // hyper's own words for it: "invalid HTTP version parsed".
    run.assert_error_contains(&["invalid http"]);
    assert_eq!(server.requests(), 1);
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_loop_fails_closed_with_too_many_redirects() {
    let server = FaultServer::start(Fault::RedirectLoop).await;
    let suite = Suite::new(
        &server.base_url(),
        "follow_redirects = true",
        &get_probe(""),
    );
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["too many redirects"]);
    // The first request and 10 hops; the 11th redirect fails the step.
    assert_eq!(server.requests(), 11, "{}", run.printed());
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn unfollowed_redirect_fails_closed_on_default_2xx() {
    let server = FaultServer::start(Fault::RedirectLoop).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(run.step()["status"], 302, "{}", run.printed());
    let failed = run.failed_assertions();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["subject"], "status");
    assert_eq!(failed[0]["op"], "class");
    assert_eq!(failed[0]["expected"], "2xx");
    assert_eq!(server.requests(), 1);
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_fails_closed_on_json_assertion() {
    let server = FaultServer::start(Fault::InvalidJson).await;
    let flow = get_probe("[step.expect.json]\n\"$.a\" = 1");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(run.step()["status"], 200);
    let failed = run.failed_assertions();
    assert_eq!(failed.len(), 1, "{failed:?}\n{}", run.printed());
    assert_eq!(failed[0]["subject"], "$.a");
    let message = failed[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not JSON"), "{failed:?}");
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_fails_closed_on_capture() {
    let server = FaultServer::start(Fault::InvalidJson).await;
    let flow = get_probe("[step.capture]\nid = \"$.a\"");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    let failed = run.failed_assertions();
    assert_eq!(failed.len(), 1, "{failed:?}\n{}", run.printed());
    assert_eq!(failed[0]["subject"], "capture id");
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_500_fails_closed_on_status_expectation() {
    let server = FaultServer::start(Fault::Status(500)).await;
    let suite = Suite::new(&server.base_url(), "", &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(run.step()["status"], 500);
    assert!(
        run.step()["error"].is_null(),
        "a 500 is an answer, not an error"
    );
    let failed = run.failed_assertions();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["subject"], "status");
    assert_eq!(failed[0]["actual"], 500);
    assert_eq!(server.requests(), 1, "no retry without [retry]");
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_twice_then_recovers_passes_as_flaky() {
    let server = FaultServer::start(Fault::FailThenSucceed(2)).await;
    let flow = get_probe("retry = { attempts = 3, backoff = \"50ms\" }");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_passes();
    assert_eq!(run.step()["flaky"], true);
    assert_eq!(run.attempts(), 3);
    assert_eq!(run.step()["status"], 200);
    assert_eq!(run.report["summary"]["flaky"], 1);
    assert_eq!(server.requests(), 3);
    // Every attempt is recorded: the two failed ones before the last.
    let earlier = run.earlier_attempts();
    assert_eq!(earlier.len(), 2, "{earlier:?}");
    for attempt in &earlier {
        assert_eq!(attempt["status"], 503, "{earlier:?}");
    }
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn flaky_pass_fails_closed_with_fail_on_flaky() {
    let server = FaultServer::start(Fault::FailThenSucceed(2)).await;
    let flow = get_probe("retry = { attempts = 3, backoff = \"50ms\" }");
    let suite = Suite::new(&server.base_url(), "[gate]\nfail_on_flaky = true", &flow);
    let run = suite.run().await;
    assert_eq!(run.code(), Some(1), "{}", run.printed());
    assert_eq!(run.report["verdict"], "fail", "{}", run.printed());
    assert_eq!(run.step()["flaky"], true);
    assert_eq!(run.attempts(), 3);
    assert_eq!(run.report["summary"]["flaky"], 1);
    assert_eq!(server.requests(), 3);
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn flaky_setup_step_fails_closed_with_fail_on_flaky() {
    // A setup step is as critical as any: one that passed only after a retry counts for
    // `fail_on_flaky` too.
    let server = FaultServer::start(Fault::FailThenSucceed(1)).await;
    let settings = "[gate]\nfail_on_flaky = true\n\n[[setup]]\nname = \"log in\"\npath = \"/login\"\nretry = { attempts = 2, backoff = \"50ms\" }";
    let suite = Suite::new(&server.base_url(), settings, &get_probe(""));
    let run = suite.run().await;
    assert_eq!(run.code(), Some(1), "{}", run.printed());
    assert_eq!(run.report["setup"][0]["flaky"], true, "{}", run.printed());
    assert_eq!(run.step()["outcome"], "passed", "{}", run.printed());
    assert_eq!(
        run.report["reasons"],
        serde_json::json!(["flaky step 'log in' of setup"]),
        "{}",
        run.printed()
    );
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("GATE FAILED: 1 critical step passed only after a retry"),
        "{}",
        run.printed()
    );
    assert_eq!(server.requests(), 3, "two setup tries and the probe");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_more_often_than_attempts_fails_closed() {
    let server = FaultServer::start(Fault::FailThenSucceed(5)).await;
    let flow = get_probe("retry = { attempts = 3, backoff = \"50ms\" }");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(run.step()["status"], 503);
    assert_eq!(run.step()["flaky"], false);
    assert_eq!(run.attempts(), 3);
    assert_eq!(run.earlier_attempts().len(), 2);
    assert_eq!(server.requests(), 3);
    run.assert_within(TIMEOUT);
}

// ---------------------------------------------------------------------------------------
// Retries, counted at the server.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn suite_retry_recovers_a_get_from_two_failures() {
    let server = FaultServer::start(Fault::FailThenSucceed(2)).await;
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &get_probe(""));
    let run = suite.run().await;
    run.assert_passes();
    assert_eq!(server.requests(), 3);
    assert_eq!(run.attempts(), 3);
    assert_eq!(run.step()["flaky"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_error_is_never_retried() {
    let server = FaultServer::start(Fault::Status(404)).await;
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(run.step()["status"], 404);
    assert_eq!(server.requests(), 1, "a 4xx was retried");
    assert_eq!(run.attempts(), 1);
    assert!(run.earlier_attempts().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn expected_503_is_not_retried() {
    let server = FaultServer::start(Fault::Status(503)).await;
    let flow = get_probe("[step.expect]\nstatus = 503");
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &flow);
    let run = suite.run().await;
    run.assert_passes();
    assert_eq!(server.requests(), 1, "an expected 503 was retried");
    assert_eq!(run.attempts(), 1);
    assert_eq!(run.step()["flaky"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_is_not_retried_after_5xx_with_suite_retry_only() {
    let server = FaultServer::start(Fault::Status(500)).await;
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &post_order(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(run.step()["status"], 500);
    assert_eq!(server.requests(), 1, "a POST was retried after a 5xx");
    assert_eq!(run.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_is_not_retried_after_timeout_with_suite_retry_only() {
    let server = FaultServer::start(Fault::Silent).await;
    let settings = format!("timeout = \"500ms\"\n{SUITE_RETRY_3}");
    let suite = Suite::new(&server.base_url(), &settings, &post_order(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["timed out after 500ms"]);
    assert_eq!(server.requests(), 1, "a POST was retried after a timeout");
    assert_eq!(run.attempts(), 1);
    run.assert_within(Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread")]
async fn post_is_not_retried_after_reset_with_suite_retry_only() {
    // A connection lost after the request was sent counts as `timeout`: the order
    // may have been taken, so a POST is not sent again.
    let server = FaultServer::start(Fault::ResetAfterRequest).await;
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &post_order(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["reset"]);
    assert_eq!(server.requests(), 1, "a POST was retried after a reset");
    assert_eq!(run.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_is_retried_after_reset() {
    let server = FaultServer::start(Fault::ResetAfterRequest).await;
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["reset"]);
    assert_eq!(server.requests(), 3);
    assert_eq!(run.attempts(), 3);
    assert_eq!(run.earlier_attempts().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_is_not_resent_when_its_redirect_target_refuses() {
    // POST /orders is taken (303 See Other, the POST-redirect-GET pattern), then the page it
    // redirects to is down. A connection was made and the order was sent: this is not a
    // `connect` failure ("no connection was made, so nothing was sent"), and with the
    // suite-level [retry] only the POST must not be sent again (a second order).
    let server = FaultServer::start(Fault::RedirectTo(303, closed_port())).await;
    let settings = format!("follow_redirects = true\n{SUITE_RETRY_3}");
    let suite = Suite::new(&server.base_url(), &settings, &post_order(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["refused"]);
    assert_eq!(
        server.requests(),
        1,
        "the POST was sent {} times: a refused redirect hop was retried as a connect failure\n{}",
        server.requests(),
        run.printed()
    );
    assert_eq!(run.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_is_not_resent_when_its_redirect_target_fails_the_tls_handshake() {
    // The same, with the redirect target reached but its TLS handshake failing: the POST was
    // sent on the first hop, so this is no `connect` failure (nothing-was-sent) either, and a
    // step that retries on `connect` only must not send the POST again.
    let target = FaultServer::start(Fault::NotTls).await;
    let server = FaultServer::start(Fault::RedirectToHttps(307, target.addr())).await;
    let flow = post_order("retry = { attempts = 3, backoff = \"50ms\", on = [\"connect\"] }");
    let suite = Suite::new(&server.base_url(), "follow_redirects = true", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["redirect target: tls handshake failed"]);
    assert_eq!(
        server.requests(),
        1,
        "the POST was sent {} times: a failed TLS handshake on a redirect hop was retried as a \
         connect failure\n{}",
        server.requests(),
        run.printed()
    );
    assert_eq!(target.connections(), 1, "{}", run.printed());
    assert_eq!(run.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_after_reset_on_accept_is_resent_only_when_nothing_was_sent() {
    // An RST right after accept races the client: when it lands while the client is still
    // connecting, the error is a `connect` one ("tcp connect error: ... reset"), nothing was
    // sent, and a POST may be tried again; when it lands after the request was
    // written, it counts as `timeout` and a POST with the suite-level [retry] only must not be
    // sent again; when it lands after connecting but before the request could be written,
    // hyper gives the request back unsent ("connection was not ready") and that is a `connect`
    // failure too. Either way: a POST is re-sent only after a try that sent nothing.
    let server = FaultServer::start(Fault::ResetOnAccept).await;
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &post_order(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["reset"]);
    let earlier = run.earlier_attempts();
    for attempt in &earlier {
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("connect failed"),
            "a POST was sent again after a try that may have reached the server: {earlier:?}"
        );
    }
    assert_eq!(run.attempts() as usize, earlier.len() + 1);
    assert_eq!(server.connections(), earlier.len() + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_is_retried_after_5xx_when_its_own_retry_names_5xx() {
    let server = FaultServer::start(Fault::FailThenSucceed(2)).await;
    let flow = post_order("retry = { attempts = 3, backoff = \"50ms\", on = [\"5xx\"] }");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_passes();
    assert_eq!(server.requests(), 3);
    assert_eq!(run.attempts(), 3);
    assert_eq!(run.step()["flaky"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_is_retried_on_connect_failure() {
    let addr = closed_port();
    let suite = Suite::new(&format!("http://{addr}"), SUITE_RETRY_3, &post_order(""));
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["connect failed", "refused"]);
    assert_eq!(run.attempts(), 3);
    let earlier = run.earlier_attempts();
    assert_eq!(earlier.len(), 2, "{earlier:?}");
    for attempt in &earlier {
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(error.contains("connect failed"), "{earlier:?}");
    }
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn assertion_failure_is_never_retried() {
    let server = FaultServer::start(Fault::FailThenSucceed(0)).await;
    let flow = get_probe("[step.expect.json]\n\"$.ok\" = false");
    let suite = Suite::new(&server.base_url(), SUITE_RETRY_3, &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(run.step()["status"], 200);
    assert_eq!(server.requests(), 1, "an assertion failure was retried");
    assert_eq!(run.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_on_connect_only_does_not_retry_a_500() {
    let server = FaultServer::start(Fault::Status(500)).await;
    let flow = get_probe("retry = { attempts = 3, backoff = \"50ms\", on = [\"connect\"] }");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(
        server.requests(),
        1,
        "a 500 was retried with on = [\"connect\"]"
    );
    assert_eq!(run.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_is_retried_after_timeout_and_every_attempt_is_recorded() {
    let server = FaultServer::start(Fault::Silent).await;
    let flow = get_probe("timeout = \"300ms\"\nretry = { attempts = 2, backoff = \"50ms\" }");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    run.assert_error_contains(&["timed out after 300ms"]);
    assert_eq!(server.requests(), 2);
    assert_eq!(run.attempts(), 2);
    let earlier = run.earlier_attempts();
    assert_eq!(earlier.len(), 1, "{earlier:?}");
    assert!(
        earlier[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out after 300ms")),
        "{earlier:?}"
    );
    run.assert_within(Duration::from_millis(650));
}

#[tokio::test(flavor = "multi_thread")]
async fn backoff_doubles_between_attempts() {
    let server = FaultServer::start(Fault::Status(500)).await;
    let flow = get_probe("retry = { attempts = 3, backoff = \"200ms\" }");
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(server.requests(), 3);
    assert_eq!(run.attempts(), 3);
    let earlier = run.earlier_attempts();
    assert_eq!(earlier.len(), 2, "{earlier:?}");
    for attempt in &earlier {
        assert_eq!(attempt["status"], 500, "{earlier:?}");
    }
    // 200 ms before the 2nd try, 400 ms before the 3rd: at least 600 ms (lower bound only).
    assert!(
        run.elapsed >= Duration::from_millis(600),
        "3 tries with backoff 200ms took only {:?}",
        run.elapsed
    );
    let step_ms = run.report["flows"][0]["duration_ms"].as_u64().unwrap_or(0);
    assert!(step_ms >= 600, "the flow took only {step_ms} ms");
}

// ---------------------------------------------------------------------------------------
// Before the flows: [wait], [version] and [[setup]] against a faulty staging.
// ---------------------------------------------------------------------------------------

const WAIT_1S: &str = "[wait]\npath = \"/health\"\ntimeout = \"1s\"\ninterval = \"100ms\"";

#[tokio::test(flavor = "multi_thread")]
async fn wait_on_a_silent_staging_fails_closed_as_not_ready_in_time() {
    let server = FaultServer::start(Fault::Silent).await;
    // The request timeout (10 s) is longer than the wait's: the wait's own timeout wins.
    let settings = format!("timeout = \"10s\"\n{WAIT_1S}");
    let suite = Suite::new(&server.base_url(), &settings, &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_before_flows("staging not ready");
    assert_eq!(run.report["wait"]["ready"], false, "{}", run.printed());
    run.assert_within(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_on_a_staging_answering_500_fails_closed_as_not_ready() {
    let server = FaultServer::start(Fault::Status(500)).await;
    let suite = Suite::new(&server.base_url(), WAIT_1S, &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_before_flows("staging not ready");
    assert!(server.requests() > 1, "the wait did not poll again");
    assert_eq!(run.report["flows"][0]["steps"][0]["outcome"], "skipped");
    run.assert_within(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn version_check_on_invalid_json_fails_closed() {
    let server = FaultServer::start(Fault::InvalidJson).await;
    let settings = "[version]\npath = \"/version\"\njson = \"$.commit\"\nexpect = \"4f2a9c1\"";
    let suite = Suite::new(&server.base_url(), settings, &get_probe(""));
    let run = suite.run().await;
    run.assert_fails_before_flows("body is not JSON");
    assert_eq!(run.report["deployed_version"]["passed"], false);
    assert_eq!(server.requests(), 1, "only the version was fetched");
    run.assert_within(TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_against_a_500_fails_closed_and_runs_no_flow() {
    let server = FaultServer::start(Fault::Status(500)).await;
    let settings = "[[setup]]\nname = \"log in\"\nmethod = \"POST\"\npath = \"/login\"";
    let suite = Suite::new(&server.base_url(), settings, &get_probe(""));
    let run = suite.run().await;
    run.assert_gate_failed();
    assert_eq!(
        run.report["setup"][0]["outcome"],
        "failed",
        "{}",
        run.printed()
    );
    assert_eq!(run.report["setup"][0]["status"], 500);
    assert_eq!(
        run.report["flows"][0]["outcome"],
        "skipped",
        "{}",
        run.printed()
    );
    assert_eq!(server.requests(), 1, "a flow ran after a failed setup");
    run.assert_within(TIMEOUT);
}

// ---------------------------------------------------------------------------------------
// Latency counts what was waited for: every attempt, a timeout at its elapsed time.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn six_timeouts_before_an_answer_count_in_the_p95() {
    // Six of seven requests time out after 500 ms; the seventh answers at once. The step
    // waited over 3 s for staging: its latency, and the p95, must say so.
    let server = FaultServer::start(Fault::SilentThenSucceed(6)).await;
    let flow = get_probe("timeout = \"500ms\"\nretry = { attempts = 7, backoff = \"10ms\" }");
    let suite = Suite::new(
        &server.base_url(),
        "[gate]\nmax_p95_latency = \"1s\"",
        &flow,
    );
    let run = suite.run().await;
    assert_eq!(server.requests(), 7, "{}", run.printed());
    assert_eq!(run.step()["outcome"], "passed", "{}", run.printed());
    assert_eq!(run.attempts(), 7);
    let latency = run.step()["latency_ms"].as_u64().expect("a latency");
    assert!(latency >= 3000, "latency {latency} ms\n{}", run.printed());
    for attempt in run.earlier_attempts() {
        assert!(
            attempt["latency_ms"].as_u64().is_some_and(|ms| ms >= 500),
            "a timed-out attempt counts at its elapsed time: {attempt}"
        );
    }
    let p95 = run.report["summary"]["latency_ms"]["p95"].as_u64();
    assert!(
        p95.is_some_and(|p| p >= 3000),
        "p95 {p95:?}\n{}",
        run.printed()
    );
    run.assert_gate_failed();
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("GATE FAILED: p95 latency ") && last.ends_with(" over 1s"),
        "{}",
        run.printed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_step_counts_at_its_elapsed_time_in_the_p95() {
    // A non-critical probe that times out only warns, but its second of waiting is a latency:
    // the p95 cannot come out of the fast critical probe alone.
    let silent = FaultServer::start(Fault::Silent).await;
    let fast = FaultServer::start(Fault::Status(200)).await;
    let suite = Suite::new(
        &fast.base_url(),
        "[gate]\nmax_p95_latency = \"500ms\"",
        &get_probe(""),
    );
    std::fs::write(
        suite.suite_dir().join("slow.toml"),
        format!(
            "critical = false\n[[step]]\nname = \"slow\"\nurl = \"{}/slow\"\n",
            silent.base_url()
        ),
    )
    .expect("write slow.toml");
    let run = suite.run().await;
    let slow = &run.report["flows"][1];
    assert_eq!(slow["outcome"], "warned", "{}", run.printed());
    assert!(
        slow["steps"][0]["latency_ms"]
            .as_u64()
            .is_some_and(|ms| ms >= 1000),
        "{}",
        run.printed()
    );
    run.assert_gate_failed();
    assert!(
        run.report["reasons"].to_string().contains(" over 500ms"),
        "{}",
        run.printed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_latency_counts_every_attempt() {
    // Two tries time out after 300 ms, the third answers at once: the step waited over 600 ms,
    // more than its `max_latency`.
    let server = FaultServer::start(Fault::SilentThenSucceed(2)).await;
    let flow = get_probe(
        "timeout = \"300ms\"\nretry = { attempts = 3, backoff = \"10ms\" }\n[step.expect]\nmax_latency = \"500ms\"",
    );
    let suite = Suite::new(&server.base_url(), "", &flow);
    let run = suite.run().await;
    run.assert_fails_closed();
    assert_eq!(server.requests(), 3, "{}", run.printed());
    let failed = run.failed_assertions();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["subject"], "latency");
    assert!(
        failed[0]["actual"].as_u64().is_some_and(|ms| ms >= 600),
        "{failed:?}"
    );
}
