//! Policy tests of the real `preflight` binary: `[wait]` readiness (status and version),
//! `[gate]` limits, `--fail-fast`, and signals (SIGINT/SIGTERM, exit 130, aborted reports).
//!
//! Every server is on 127.0.0.1: wiremock where it is enough, `common::RawServer` where the
//! test must see a request arrive (to signal the binary while a step is in flight).

mod common;
mod hermetic;

use assert_cmd::cargo::cargo_bin_cmd;
use common::{RawServer, Suite, http_ok};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What one `preflight run` produced.
struct Gate {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    report: Value,
    elapsed: Duration,
}

impl Gate {
    fn last_line(&self) -> &str {
        last_line(&self.stdout)
    }

    fn flow(&self, name: &str) -> &Value {
        self.report["flows"]
            .as_array()
            .expect("flows is an array")
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no flow `{name}` in the report: {:#}", self.report))
    }

    fn step<'a>(&'a self, flow: &str, step: &str) -> &'a Value {
        let f = self.flow(flow);
        f["steps"]
            .as_array()
            .expect("steps is an array")
            .iter()
            .find(|s| s["name"] == step)
            .unwrap_or_else(|| panic!("no step `{step}` in flow `{flow}`: {f:#}"))
    }

    fn outcomes(&self) -> Vec<(String, String)> {
        self.report["flows"]
            .as_array()
            .expect("flows is an array")
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap_or("?").to_string(),
                    f["outcome"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect()
    }

    fn reasons(&self) -> Vec<&str> {
        self.report["reasons"]
            .as_array()
            .expect("reasons is an array")
            .iter()
            .map(|r| r.as_str().expect("a reason is a string"))
            .collect()
    }

    /// For assertion messages.
    fn shown(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("report {} not written: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON: {e}\n{text}"))
}

/// `preflight run SUITE --no-progress --json FILE [extra]` on a blocking thread (so that the
/// test's servers keep serving), with the JSON report read back.
async fn run_gate(suite: &Suite, extra: &[&str]) -> Gate {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let json_path = out_dir.path().join("report.json");
    let mut cmd = cargo_bin_cmd!("preflight");
    for var in hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("run")
        .arg(suite.path())
        .arg("--no-progress")
        .arg("--json")
        .arg(&json_path)
        .args(extra)
        .timeout(Duration::from_secs(30));
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .expect("the blocking task ends");
    let elapsed = started.elapsed();
    let gate = Gate {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report: Value::Null,
        elapsed,
    };
    assert!(
        json_path.exists(),
        "no JSON report was written:\n{}",
        gate.shown()
    );
    Gate {
        report: read_json(&json_path),
        ..gate
    }
}

async fn requests_to(server: &MockServer, m: &str, p: &str) -> usize {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .count()
}

fn settings(base: &str, extra: &str) -> String {
    format!("base_url = \"{base}\"\n{extra}\n")
}

fn one_step_flow(step_path: &str) -> String {
    format!("[[step]]\nname = \"get\"\npath = \"{step_path}\"\n")
}

/// Mounts `GET p` answering `first` for the first `n` requests, then `then`.
async fn mount_sequence(
    server: &MockServer,
    p: &str,
    n: u64,
    first: ResponseTemplate,
    then: ResponseTemplate,
) {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(first)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(then)
        .mount(server)
        .await;
}

async fn mount_ok(server: &MockServer, p: &str) {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(server)
        .await;
}

// ---------------------------------------------------------------------------------------------
// 1. [wait]
// ---------------------------------------------------------------------------------------------

const WAIT_5S: &str =
    "[wait]\npath = \"/health\"\nstatus = 200\ntimeout = \"5s\"\ninterval = \"100ms\"";
const WAIT_1S: &str =
    "[wait]\npath = \"/health\"\nstatus = 200\ntimeout = \"1s\"\ninterval = \"100ms\"";
const VERSION: &str = "[version]\npath = \"/version\"\njson = \"$.commit\"\nexpect = \"new-sha\"";

#[tokio::test(flavor = "multi_thread")]
async fn wait_polls_until_staging_is_ready_and_reports_the_polls() {
    let server = MockServer::start().await;
    mount_sequence(
        &server,
        "/health",
        3,
        ResponseTemplate::new(503),
        ResponseTemplate::new(200),
    )
    .await;
    mount_ok(&server, "/ping").await;
    let suite = Suite::new(&settings(&server.uri(), WAIT_5S));
    suite.write("ping.toml", one_step_flow("/ping"));

    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(0), "{}", gate.shown());
    assert!(
        gate.last_line()
            .starts_with("GATE PASSED: 1 flow, 0 failed"),
        "{}",
        gate.shown()
    );
    assert_eq!(gate.report["verdict"], "pass");
    let wait = &gate.report["wait"];
    assert!(
        wait.is_object(),
        "[wait]: the report must carry the wait result (ready, polls), got {wait} in {:#}",
        gate.report
    );
    assert_eq!(wait["ready"], json!(true), "{wait}");
    let polls = wait["polls"].as_u64().expect("polls is a number");
    assert!(polls >= 4, "3 answers of 503, then 200: {polls} polls");
    assert_eq!(
        polls as usize,
        requests_to(&server, "GET", "/health").await,
        "one request per poll"
    );
    assert_eq!(requests_to(&server, "GET", "/ping").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_timeout_fails_the_gate_and_skips_every_flow() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    mount_ok(&server, "/a").await;
    mount_ok(&server, "/b").await;
    let suite = Suite::new(&settings(&server.uri(), WAIT_1S));
    suite.write("a.toml", one_step_flow("/a"));
    suite.write("b.toml", one_step_flow("/b"));

    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(1), "{}", gate.shown());
    assert!(
        gate.elapsed >= Duration::from_millis(900),
        "the wait lasts its timeout: {}",
        gate.shown()
    );
    let last = gate.last_line();
    assert!(
        last.starts_with("GATE FAILED: ") && last.contains("staging not ready"),
        "{}",
        gate.shown()
    );
    assert!(
        last.contains("status 503"),
        "the last status seen is named: {last}"
    );
    assert_eq!(gate.report["verdict"], "fail");
    assert!(
        gate.reasons()
            .iter()
            .any(|r| r.contains("staging not ready")),
        "{:?}",
        gate.reasons()
    );
    assert_eq!(
        gate.outcomes(),
        [
            ("a".to_string(), "skipped".to_string()),
            ("b".to_string(), "skipped".to_string())
        ]
    );
    assert_eq!(
        gate.step("a", "get")["skipped_because"],
        json!("staging not ready")
    );
    assert_eq!(gate.report["summary"]["skipped"], json!(2));
    let wait = &gate.report["wait"];
    assert!(wait.is_object(), "no `wait` in {:#}", gate.report);
    assert_eq!(wait["ready"], json!(false));
    assert!(
        wait["last"].as_str().is_some_and(|l| l.contains("503")),
        "{wait}"
    );
    let polls = wait["polls"].as_u64().expect("polls is a number");
    assert!(
        (3..=12).contains(&polls),
        "1s at a 100ms interval: {polls} polls"
    );
    assert_eq!(requests_to(&server, "GET", "/a").await, 0);
    assert_eq!(requests_to(&server, "GET", "/b").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_lasts_until_the_expected_version_is_deployed() {
    let server = MockServer::start().await;
    mount_ok(&server, "/health").await;
    mount_sequence(
        &server,
        "/version",
        3,
        ResponseTemplate::new(200).set_body_json(json!({ "commit": "old-sha" })),
        ResponseTemplate::new(200).set_body_json(json!({ "commit": "new-sha" })),
    )
    .await;
    mount_ok(&server, "/ping").await;
    let suite = Suite::new(&settings(&server.uri(), &format!("{WAIT_5S}\n\n{VERSION}")));
    suite.write("ping.toml", one_step_flow("/ping"));

    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(0), "{}", gate.shown());
    assert!(
        gate.last_line().starts_with("GATE PASSED: "),
        "{}",
        gate.shown()
    );
    let wait = &gate.report["wait"];
    assert!(wait.is_object(), "no `wait` in {:#}", gate.report);
    assert_eq!(wait["ready"], json!(true));
    assert!(
        wait["polls"].as_u64().is_some_and(|p| p >= 4),
        "3 old versions, then the new one: {wait}"
    );
    assert_eq!(
        gate.report["deployed_version"]["actual"],
        json!("new-sha"),
        "{:#}",
        gate.report["deployed_version"]
    );
    assert_eq!(gate.report["deployed_version"]["passed"], json!(true));
    assert_eq!(requests_to(&server, "GET", "/ping").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_fails_when_the_version_never_matches() {
    let server = MockServer::start().await;
    mount_ok(&server, "/health").await;
    Mock::given(method("GET"))
        .and(path("/version"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "commit": "old-sha" })))
        .mount(&server)
        .await;
    mount_ok(&server, "/ping").await;
    let suite = Suite::new(&settings(&server.uri(), &format!("{WAIT_1S}\n\n{VERSION}")));
    suite.write("ping.toml", one_step_flow("/ping"));

    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(1), "{}", gate.shown());
    let last = gate.last_line();
    assert!(
        last.starts_with("GATE FAILED: ") && last.contains("staging not ready"),
        "{}",
        gate.shown()
    );
    assert!(
        last.contains("staging runs old-sha, expected new-sha"),
        "the reason names the versions: {last}"
    );
    assert_eq!(gate.report["verdict"], "fail");
    assert_eq!(gate.report["wait"]["ready"], json!(false));
    assert_eq!(
        gate.outcomes(),
        [("ping".to_string(), "skipped".to_string())]
    );
    assert_eq!(requests_to(&server, "GET", "/ping").await, 0);
}

// ---------------------------------------------------------------------------------------------
// 2. [gate]
// ---------------------------------------------------------------------------------------------

/// A critical flow that passes and `failing` non-critical flows that fail (500).
async fn noncritical_suite(failing: usize) -> (MockServer, Suite) {
    let server = MockServer::start().await;
    mount_ok(&server, "/ok").await;
    Mock::given(method("GET"))
        .and(path("/broken"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(
        &server.uri(),
        "[gate]\nmax_noncritical_failures = 1",
    ));
    suite.write("ok.toml", one_step_flow("/ok"));
    for i in 1..=failing {
        suite.write(
            &format!("nc-{i}.toml"),
            format!("critical = false\n{}", one_step_flow("/broken")),
        );
    }
    (server, suite)
}

#[tokio::test(flavor = "multi_thread")]
async fn noncritical_failures_over_the_limit_fail_the_gate() {
    let (_server, suite) = noncritical_suite(2).await;
    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(1), "{}", gate.shown());
    let reason = "2 non-critical flows failed, over the limit of 1";
    assert!(
        gate.last_line().starts_with("GATE FAILED: ") && gate.last_line().contains(reason),
        "{}",
        gate.shown()
    );
    assert!(gate.reasons().contains(&reason), "{:?}", gate.reasons());
    assert_eq!(gate.flow("nc-1")["outcome"], "warned");
    assert_eq!(gate.flow("nc-2")["outcome"], "warned");
    assert_eq!(gate.flow("ok")["outcome"], "passed");
}

#[tokio::test(flavor = "multi_thread")]
async fn noncritical_failures_within_the_limit_pass() {
    let (_server, suite) = noncritical_suite(1).await;
    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(0), "{}", gate.shown());
    assert!(
        gate.last_line()
            .starts_with("GATE PASSED: 2 flows, 0 failed, 1 warning, "),
        "{}",
        gate.shown()
    );
    assert_eq!(gate.report["verdict"], "pass");
    assert_eq!(gate.flow("nc-1")["outcome"], "warned");
}

async fn latency_suite(delay: Duration) -> (MockServer, Suite) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(
        &server.uri(),
        "[gate]\nmax_p95_latency = \"100ms\"",
    ));
    suite.write("page.toml", one_step_flow("/page"));
    suite.write(
        "page-again.toml",
        "[[step]]\nname = \"one\"\npath = \"/page\"\n\n[[step]]\nname = \"two\"\npath = \"/page\"\n",
    );
    (server, suite)
}

#[tokio::test(flavor = "multi_thread")]
async fn p95_latency_over_the_limit_fails_the_gate() {
    let (_server, suite) = latency_suite(Duration::from_millis(300)).await;
    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(1), "{}", gate.shown());
    let last = gate.last_line().to_string();
    assert!(last.starts_with("GATE FAILED: "), "{}", gate.shown());
    let p95 = last
        .split("p95 latency ")
        .nth(1)
        .and_then(|rest| {
            rest.split(" over 100ms")
                .next()
                .filter(|_| rest.contains(" over 100ms"))
        })
        .unwrap_or_else(|| panic!("no `p95 latency <d> over 100ms` in {last}"));
    let p95 =
        humantime::parse_duration(p95).unwrap_or_else(|e| panic!("`{p95}` is not a duration: {e}"));
    assert!(p95 >= Duration::from_millis(300), "p95 {p95:?}");
    assert!(
        gate.reasons()
            .iter()
            .any(|r| r.starts_with("p95 latency ") && r.ends_with(" over 100ms")),
        "{:?}",
        gate.reasons()
    );
    assert!(
        gate.report["summary"]["latency_ms"]["p95"]
            .as_u64()
            .is_some_and(|p| p >= 300),
        "{:#}",
        gate.report["summary"]
    );
    // Every flow passed on its own: only the policy failed the gate.
    assert_eq!(gate.report["summary"]["passed"], json!(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn p95_latency_within_the_limit_passes() {
    let (_server, suite) = latency_suite(Duration::ZERO).await;
    let gate = run_gate(&suite, &[]).await;

    assert_eq!(gate.code, Some(0), "{}", gate.shown());
    assert!(
        gate.last_line()
            .starts_with("GATE PASSED: 2 flows, 0 failed"),
        "{}",
        gate.shown()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. --fail-fast
// ---------------------------------------------------------------------------------------------

/// A raw HTTP/1.1 response that closes the connection.
fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Request lines (`METHOD /path`) a server received, in arrival order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn record(&self, head: &str) -> String {
        let line: String = head
            .lines()
            .next()
            .unwrap_or("")
            .rsplit_once(' ')
            .map_or("", |(line, _version)| line)
            .to_string();
        self.0.lock().expect("not poisoned").push(line.clone());
        line
    }

    fn count(&self, line: &str) -> usize {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|l| *l == line)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_fast_stops_new_flows_and_next_steps_but_runs_cleanups() {
    let slow = Duration::from_millis(500);
    let seen = Seen::default();
    let recorder = seen.clone();
    // Flow `a-fail` fails as soon as flow `b-cart` has its first request in flight, so that
    // `b-cart` is deterministically mid-step when fail-fast triggers.
    let server = RawServer::start(move |head: String| {
        let seen = recorder.clone();
        async move {
            match seen.record(&head).as_str() {
                "GET /a" => {
                    let started = Instant::now();
                    while seen.count("POST /carts") == 0
                        && started.elapsed() < Duration::from_secs(5)
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    response("500 Internal Server Error", "\"broken\"")
                }
                "POST /carts" => {
                    tokio::time::sleep(slow).await;
                    response("201 Created", r#"{"id":"c-7"}"#)
                }
                "POST /carts/c-7/items" => response("201 Created", "{}"),
                "DELETE /carts/c-7" => response("204 No Content", ""),
                "GET /c" | "GET /d" | "GET /e" | "GET /f" => {
                    tokio::time::sleep(slow).await;
                    response("200 OK", "{}")
                }
                _ => response("404 Not Found", "{}"),
            }
        }
    })
    .await;
    let suite = Suite::new(&settings(&server.url, "concurrency = 2"));
    suite.write("a-fail.toml", one_step_flow("/a"));
    suite.write(
        "b-cart.toml",
        r#"[[step]]
name = "create cart"
method = "POST"
path = "/carts"
json = {}
capture = { cart_id = "$.id" }

[[step]]
name = "add item"
method = "POST"
path = "/carts/{{ cart_id }}/items"
json = { sku = "A" }

[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/carts/{{ cart_id }}"
"#,
    );
    for name in ["c", "d", "e", "f"] {
        suite.write(&format!("{name}.toml"), one_step_flow(&format!("/{name}")));
    }

    let gate = run_gate(&suite, &["--fail-fast"]).await;

    assert_eq!(gate.code, Some(1), "{}", gate.shown());
    assert!(
        gate.last_line().starts_with("GATE FAILED: "),
        "{}",
        gate.shown()
    );
    assert_eq!(gate.report["verdict"], "fail");
    assert_eq!(gate.flow("a-fail")["outcome"], "failed");
    // Later flows never started.
    for name in ["c", "d", "e", "f"] {
        assert_eq!(
            gate.flow(name)["outcome"],
            "skipped",
            "flow {name}: {:#}",
            gate.flow(name)
        );
        assert!(
            gate.step(name, "get")["skipped_because"]
                .as_str()
                .is_some_and(|w| w.contains("fail-fast")),
            "{:#}",
            gate.flow(name)
        );
        assert_eq!(
            seen.count(&format!("GET /{name}")),
            0,
            "flow {name} sent a request after the fail-fast stop"
        );
    }
    assert_eq!(gate.report["summary"]["skipped"], json!(4));
    // The flow running alongside finished its in-flight step...
    let create = gate.step("b-cart", "create cart");
    assert_eq!(create["outcome"], "passed", "{create:#}");
    assert_eq!(create["status"], json!(201), "{create:#}");
    assert!(
        create["latency_ms"].as_u64().is_some_and(|l| l >= 450),
        "the in-flight request was not cut short: {create:#}"
    );
    assert_eq!(seen.count("POST /carts"), 1);
    // ...did not start its next one...
    let add = gate.step("b-cart", "add item");
    assert_eq!(add["outcome"], "skipped", "{add:#}");
    assert!(
        add["skipped_because"]
            .as_str()
            .is_some_and(|w| w.contains("fail-fast: flow 'a-fail' failed")),
        "{add:#}"
    );
    assert_eq!(seen.count("POST /carts/c-7/items"), 0);
    assert_ne!(gate.flow("b-cart")["outcome"], "passed", "fail closed");
    // ...and ran its cleanup.
    let delete = gate.step("b-cart", "delete cart");
    assert_eq!(
        (&delete["phase"], &delete["outcome"], &delete["status"]),
        (&json!("cleanup"), &json!("passed"), &json!(204)),
        "{delete:#}"
    );
    assert_eq!(seen.count("DELETE /carts/c-7"), 1);
    assert!(gate.elapsed < Duration::from_secs(10), "{}", gate.shown());
}

/// the *first critical failure* stops new flows and steps. The failing flow's own
/// cleanup must not delay the stop: while it runs (slowly here), the flow alongside must not
/// start its next step and no new flow may start.
#[tokio::test(flavor = "multi_thread")]
async fn fail_fast_stops_at_the_failing_step_not_after_its_cleanup() {
    let seen = Seen::default();
    let recorder = seen.clone();
    let server = RawServer::start(move |head: String| {
        let seen = recorder.clone();
        async move {
            match seen.record(&head).as_str() {
                "GET /a" => {
                    let started = Instant::now();
                    while seen.count("POST /carts") == 0
                        && started.elapsed() < Duration::from_secs(5)
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    response("500 Internal Server Error", "\"broken\"")
                }
                "DELETE /a-data" => {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    response("204 No Content", "")
                }
                "POST /carts" => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    response("201 Created", r#"{"id":"c-8"}"#)
                }
                "POST /carts/c-8/items" => response("201 Created", "{}"),
                "DELETE /carts/c-8" => response("204 No Content", ""),
                "GET /c" => response("200 OK", "{}"),
                _ => response("404 Not Found", "{}"),
            }
        }
    })
    .await;
    let suite = Suite::new(&settings(&server.url, "concurrency = 2"));
    suite.write(
        "a-fail.toml",
        format!(
            "{}\n[[cleanup]]\nname = \"tidy\"\nmethod = \"DELETE\"\npath = \"/a-data\"\n",
            one_step_flow("/a")
        ),
    );
    suite.write(
        "b-cart.toml",
        r#"[[step]]
name = "create cart"
method = "POST"
path = "/carts"
json = {}
capture = { cart_id = "$.id" }

[[step]]
name = "add item"
method = "POST"
path = "/carts/{{ cart_id }}/items"
json = { sku = "A" }

[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/carts/{{ cart_id }}"
"#,
    );
    suite.write("c.toml", one_step_flow("/c"));

    let gate = run_gate(&suite, &["--fail-fast"]).await;

    assert_eq!(gate.code, Some(1), "{}", gate.shown());
    let tidy = gate.step("a-fail", "tidy");
    assert_eq!(tidy["outcome"], "passed", "{tidy:#}");
    assert_eq!(
        seen.count("POST /carts/c-8/items"),
        0,
        "flow b-cart started its next step after a-fail had failed (fail-fast waited for \
         a-fail's cleanup): {:#}",
        gate.flow("b-cart")
    );
    assert_eq!(gate.step("b-cart", "add item")["outcome"], "skipped");
    assert_eq!(seen.count("DELETE /carts/c-8"), 1, "b-cart's cleanup ran");
    assert_eq!(
        seen.count("GET /c"),
        0,
        "flow c started after a-fail had failed: {:#}",
        gate.flow("c")
    );
    assert_eq!(gate.flow("c")["outcome"], "skipped");
}

// ---------------------------------------------------------------------------------------------
// 4. Signals
// ---------------------------------------------------------------------------------------------

/// The binary started as a plain child process, killed if the test ends early.
struct Running {
    child: Option<Child>,
    out_dir: tempfile::TempDir,
    stdout: PathBuf,
    stderr: PathBuf,
    json: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Running {
    fn start(suite: &Suite) -> Running {
        Running::start_with(suite, tempfile::tempdir().expect("temp dir"), |_| {})
    }

    /// [`Running::start`] with its output files in `out_dir`, and `more` arguments or
    /// variables.
    fn start_with(
        suite: &Suite,
        out_dir: tempfile::TempDir,
        more: impl FnOnce(&mut std::process::Command),
    ) -> Running {
        let stdout = out_dir.path().join("stdout.txt");
        let stderr = out_dir.path().join("stderr.txt");
        let json = out_dir.path().join("report.json");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_preflight"));
        for var in hermetic::CLEARED_ENV {
            cmd.env_remove(var);
        }
        cmd.arg("run")
            .arg(suite.path())
            .arg("--no-progress")
            .arg("--json")
            .arg(&json)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        more(&mut cmd);
        let child = cmd.spawn().expect("the binary starts");
        Running {
            child: Some(child),
            out_dir,
            stdout,
            stderr,
            json,
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Waits up to `limit` for the exit; the exit code and how long it took.
    async fn exit_within(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return (status.code(), started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "still running {limit:?} after the signal\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

/// Waits until `counter` reaches `n` (10 s at most), polling every 10 ms.
async fn until_count(counter: &AtomicUsize, n: usize, what: &str, running: &Running) {
    let started = Instant::now();
    while counter.load(Ordering::SeqCst) < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never received {what}\n{}",
            running.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A staging whose `GET /slow` takes 10 s and whose `DELETE` (the cleanup) takes
/// `cleanup_delay`; counts both on arrival.
struct SignalStaging {
    server: RawServer,
    slow: Arc<AtomicUsize>,
    deletes: Arc<AtomicUsize>,
}

async fn signal_staging(cleanup_delay: Duration) -> SignalStaging {
    let slow = Arc::new(AtomicUsize::new(0));
    let deletes = Arc::new(AtomicUsize::new(0));
    let (s, d) = (slow.clone(), deletes.clone());
    let server = RawServer::start(move |head: String| {
        let (slow, deletes) = (s.clone(), d.clone());
        async move {
            if head.starts_with("DELETE /carts/c-9 ") {
                deletes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(cleanup_delay).await;
                b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec()
            } else if head.starts_with("GET /slow ") {
                slow.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(10)).await;
                http_ok("too late")
            } else {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
            }
        }
    })
    .await;
    SignalStaging {
        server,
        slow,
        deletes,
    }
}

fn signal_suite(staging: &SignalStaging) -> Suite {
    let suite = Suite::new(&settings(
        &staging.server.url,
        "timeout = \"30s\"\n\n[vars]\ncart = \"c-9\"",
    ));
    suite.write(
        "slow.toml",
        r#"[[step]]
name = "slow step"
path = "/slow"

[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/carts/{{ cart }}"
"#,
    );
    suite
}

async fn a_signal_aborts_the_run(signal: &str) {
    let staging = signal_staging(Duration::ZERO).await;
    let suite = signal_suite(&staging);
    let mut running = Running::start(&suite);
    until_count(&staging.slow, 1, "the slow step", &running).await;

    running.signal(signal);
    let (code, took) = running.exit_within(Duration::from_secs(8)).await;

    assert_eq!(code, Some(130), "after SIG{signal}\n{}", running.output());
    assert!(
        took < Duration::from_secs(6),
        "exit {took:?} after SIG{signal}"
    );
    assert_eq!(
        last_line(&running.stdout()),
        "GATE ABORTED: interrupted",
        "{}",
        running.output()
    );
    let report = read_json(&running.json);
    assert_eq!(report["verdict"], "aborted", "{report:#}");
    let folder = running.json.parent().expect("the report's folder");
    let left: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let flow = &report["flows"][0];
    assert_ne!(flow["outcome"], "passed", "{flow:#}");
    let steps = flow["steps"].as_array().expect("steps");
    let cut = steps
        .iter()
        .find(|s| s["name"] == "slow step")
        .expect("the slow step");
    assert_eq!(cut["outcome"], "failed", "{cut:#}");
    assert_eq!(cut["error"], "interrupted", "{cut:#}");
    let cleanup = steps
        .iter()
        .find(|s| s["name"] == "delete cart")
        .expect("the cleanup");
    assert_eq!(
        (&cleanup["outcome"], &cleanup["status"]),
        (&json!("passed"), &json!(204)),
        "{cleanup:#}"
    );
    assert_eq!(
        staging.deletes.load(Ordering::SeqCst),
        1,
        "the interrupted flow's cleanup ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_aborts_with_130_runs_cleanups_and_writes_an_aborted_report() {
    a_signal_aborts_the_run("INT").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_aborts_with_130_runs_cleanups_and_writes_an_aborted_report() {
    a_signal_aborts_the_run("TERM").await;
}

/// Every other signal that would end the process (a closed terminal's SIGHUP, a job
/// runner's SIGQUIT, SIGUSR1/2, SIGALRM) stops the run the same way: no report left half
/// written, no temporary file left behind.
#[tokio::test(flavor = "multi_thread")]
async fn the_other_terminating_signals_abort_like_sigterm() {
    for signal in ["HUP", "QUIT", "USR1", "USR2", "ALRM"] {
        a_signal_aborts_the_run(signal).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigint_during_cleanups_exits_at_once() {
    let staging = signal_staging(Duration::from_secs(10)).await;
    let suite = signal_suite(&staging);
    let mut running = Running::start(&suite);
    until_count(&staging.slow, 1, "the slow step", &running).await;

    running.signal("INT");
    until_count(&staging.deletes, 1, "the cleanup", &running).await;
    running.signal("INT");
    let (code, took) = running.exit_within(Duration::from_secs(8)).await;

    assert_eq!(code, Some(130), "{}", running.output());
    assert!(
        took < Duration::from_secs(2),
        "the second signal must exit at once, not after the cleanup grace: {took:?}"
    );
    assert!(
        !last_line(&running.stdout()).starts_with("GATE PASSED"),
        "{}",
        running.output()
    );
}

/// After the verdict `aborted`: every report and the step summary say so, and a report that
/// cannot be written is reported (stderr, the last line, the reasons) while the exit code
/// stays 130.
#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_run_writes_every_report_as_aborted_and_names_the_one_it_could_not_write() {
    let staging = signal_staging(Duration::ZERO).await;
    let suite = signal_suite(&staging);
    let out_dir = tempfile::tempdir().expect("temp dir");
    let dir = out_dir.path().to_path_buf();
    let junit = dir.join("no-such-dir/report.xml");
    let junit_arg = junit.clone();
    let mut running = Running::start_with(&suite, out_dir, |cmd| {
        cmd.arg("--junit")
            .arg(&junit_arg)
            .arg("--markdown")
            .arg(dir.join("report.md"))
            .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"));
    });
    until_count(&staging.slow, 1, "the slow step", &running).await;

    running.signal("INT");
    let (code, _) = running.exit_within(Duration::from_secs(20)).await;

    assert_eq!(code, Some(130), "{}", running.output());
    let reason = format!(
        "cannot write JUnit report {}: No such file or directory (os error 2)",
        junit.display()
    );
    assert_eq!(
        last_line(&running.stdout()),
        format!("GATE ABORTED: interrupted; {reason}"),
        "{}",
        running.output()
    );
    assert!(
        running.stderr().contains(&format!("error: {reason}")),
        "{}",
        running.output()
    );
    let report = read_json(&running.json);
    assert_eq!(report["verdict"], "aborted");
    assert_eq!(report["reasons"], json!(["interrupted", reason]));
    for name in ["report.md", "summary.md"] {
        let markdown = std::fs::read_to_string(running.out_dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name} not written: {e}"));
        assert!(
            markdown.starts_with("## ⛔ preflight: GATE ABORTED"),
            "{name}: {markdown}"
        );
        assert!(markdown.contains(&reason), "{name}: {markdown}");
    }
}

/// A cleanup that started before the signal and outlives the grace time is cut off: the
/// flow keeps the result of its step, and the cleanup is a warning.
#[tokio::test(flavor = "multi_thread")]
async fn a_signal_during_a_slow_cleanup_keeps_the_flows_results() {
    let deletes = Arc::new(AtomicUsize::new(0));
    let counted = deletes.clone();
    let server = RawServer::start(move |head: String| {
        let deletes = counted.clone();
        async move {
            if head.starts_with("DELETE ") {
                deletes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            response("200 OK", "{}")
        }
    })
    .await;
    let suite = Suite::new(&settings(&server.url, "timeout = \"60s\""));
    suite.write(
        "shop.toml",
        "[[step]]\nname = \"get\"\npath = \"/a\"\n\n[[cleanup]]\nname = \"tidy\"\nmethod = \"DELETE\"\npath = \"/data\"\n",
    );
    let mut running = Running::start(&suite);
    until_count(&deletes, 1, "the cleanup", &running).await;

    running.signal("TERM");
    let (code, _) = running.exit_within(Duration::from_secs(20)).await;

    assert_eq!(code, Some(130), "{}", running.output());
    let report = read_json(&running.json);
    assert_eq!(report["verdict"], "aborted");
    let steps = &report["flows"][0]["steps"];
    assert_eq!(
        (&steps[0]["outcome"], &steps[0]["status"]),
        (&json!("passed"), &json!(200)),
        "{report:#}"
    );
    let unfinished = "cleanup did not finish: test data may be left behind";
    assert_eq!(steps[1]["error"], unfinished, "{report:#}");
    assert_eq!(
        warning_messages(&report),
        json!([format!("{unfinished} (flow 'shop', step 'tidy')")])
    );
}

/// The messages of the report's warnings, in order.
fn warning_messages(report: &serde_json::Value) -> serde_json::Value {
    let warnings = report["warnings"].as_array().expect("warnings is an array");
    warnings.iter().map(|w| w["message"].clone()).collect()
}
