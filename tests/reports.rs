//! Reports from real runs: a small suite on disk, run by the real binary against a wiremock
//! server on 127.0.0.1, with every report asked for (terminal, JSON, JUnit, Markdown and the
//! GitHub step summary). Snapshots live in `tests/snapshots/`; what changes from run to run
//! (ports, durations, latencies, timestamps, temp paths, uuids) is filtered out.

mod hermetic;

use preflight::report::{FlowOutcome, Report};
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use std::collections::HashMap;
use std::path::Path;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The values behind `secret.` variables and the secret capture: never in any report.
const SMOKE_KEY: &str = "k3y-s3cr3t-value";
const SMOKE_PASSWORD: &str = "pa55-s3cr3t-word";
const TOKEN: &str = "tok-s3cr3t-123";

/// The pinned config as reviewed (and locked), and as a pipeline later overwrote it.
const REVIEWED_CONFIG: &str = "{\"tax\": {\"DE\": 0.19}}\n";
const OVERWRITTEN_CONFIG: &str = "{\"tax\": {\"DE\": 0.0}}\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    /// Setup, two flows, integrity and version all pass.
    Passing,
    /// A failed assertion, a connection error, a skipped step, a warned non-critical flow, a
    /// failing cleanup and an integrity mismatch.
    Failing,
}

/// One run, judged and reported; the suite directory lives as long as it.
/// One run of the real binary with every report, read back.
struct Run {
    report: Report,
    code: i32,
    /// The terminal summary (stdout; no colours, no progress).
    stdout: String,
    json: String,
    junit: String,
    markdown: String,
    /// What was appended to `$GITHUB_STEP_SUMMARY`.
    step_summary: String,
    dir: tempfile::TempDir,
}

fn write(dir: &Path, relative: &str, content: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

async fn staging(scenario: Scenario) -> MockServer {
    let failing = scenario == Scenario::Failing;
    let server = MockServer::start().await;
    let json = |status: u16, body: serde_json::Value| {
        ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/json")
    };
    let mocks = [
        Mock::given(method("POST"))
            .and(path("/api/login"))
            .respond_with(json(200, serde_json::json!({ "token": TOKEN }))),
        Mock::given(method("GET"))
            .and(path("/health"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok")),
        Mock::given(method("GET"))
            .and(path("/version"))
            .respond_with(ResponseTemplate::new(200).insert_header("x-release", "4f2a9c1")),
        Mock::given(method("GET"))
            .and(path("/config/checkout"))
            .respond_with(ResponseTemplate::new(200).set_body_string(if failing {
                OVERWRITTEN_CONFIG
            } else {
                REVIEWED_CONFIG
            })),
        Mock::given(method("POST"))
            .and(path("/api/carts"))
            .respond_with(json(
                201,
                serde_json::json!({ "id": "c-1", "currency": if failing { "USD" } else { "EUR" } }),
            )),
        Mock::given(method("POST"))
            .and(path("/api/carts/c-1/pay"))
            .respond_with(json(200, serde_json::json!({ "state": "paid" }))),
        Mock::given(method("DELETE"))
            .and(path("/api/carts/c-1"))
            .respond_with(if failing {
                ResponseTemplate::new(500).set_body_string("cart is locked | try `later`")
            } else {
                ResponseTemplate::new(204)
            }),
        Mock::given(method("GET"))
            .and(path("/api/recs"))
            .respond_with(json(200, serde_json::json!({ "items": [] }))),
    ];
    for mock in mocks {
        mock.mount(&server).await;
    }
    server
}

const CHECKOUT: &str = r#"
name = "guest checkout"
tags = ["checkout", "payments"]

[[step]]
name = "create cart"
method = "POST"
path = "/api/carts"
headers = { authorization = "Bearer {{ token }}" }
json = { currency = "EUR", items = [] }

[step.expect]
status = 201

[step.expect.json]
"$.currency" = "EUR"
"$.id" = { type = "string" }

[step.capture]
cart_id = "$.id"

[[step]]
name = "pay"
method = "POST"
path = "/api/carts/{{ cart_id }}/pay"

[step.expect.json]
"$.state" = "paid"

[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/api/carts/{{ cart_id }}"

[cleanup.expect]
status = [204, 404]
"#;

const HEALTH: &str = r#"
[[step]]
name = "health"
path = "/health"

[step.expect]
body = { contains = "ok" }
"#;

const RECOMMENDATIONS: &str = r#"
name = "recommendations"
critical = false
tags = ["catalogue"]

[[step]]
name = "list recommendations"
path = "/api/recs"

[step.expect.json]
"$.items" = { length = 3 }
"#;

/// Writes the suite for `scenario` against `server`.
fn write_suite(dir: &Path, server: &MockServer, scenario: Scenario) {
    write(
        dir,
        "preflight.toml",
        &format!(
            r#"name = "shop staging gate"
base_url = "{}"
concurrency = 4
timeout = "5s"

[headers]
x-smoke-test = "preflight"
x-api-key = "{{{{ secret.SMOKE_KEY }}}}"

[wait]
path = "/health"
timeout = "5s"
interval = "100ms"

[[integrity]]
file = "config/checkout.json"
served_at = "/config/checkout"

[version]
path = "/version"
header = "x-release"
expect = "4f2a9c1"

[[setup]]
name = "log in"
method = "POST"
path = "/api/login"
json = {{ user = "smoke", password = "{{{{ secret.SMOKE_PASSWORD }}}}" }}
capture = {{ token = {{ json = "$.token", secret = true }} }}
"#,
            server.uri()
        ),
    );
    let hash = preflight::check::sha256_hex(REVIEWED_CONFIG.as_bytes());
    write(
        dir,
        "preflight.lock",
        &format!("[files]\n\"config/checkout.json\" = \"sha256:{hash}\"\n"),
    );
    write(dir, "checkout.toml", CHECKOUT);
    write(dir, "health.toml", HEALTH);
    match scenario {
        Scenario::Passing => write(dir, "config/checkout.json", REVIEWED_CONFIG),
        Scenario::Failing => {
            write(dir, "config/checkout.json", OVERWRITTEN_CONFIG);
            write(dir, "recommendations.toml", RECOMMENDATIONS);
            write(
                dir,
                "payments/provider.toml",
                &format!(
                    "name = \"payment provider\"\n\n[[step]]\nname = \"provider status\"\nurl = \"http://127.0.0.1:{}/status\"\n",
                    closed_port()
                ),
            );
        }
    }
}

/// Runs the scenario with `preflight run --json --junit --markdown`, as a pipeline would.
async fn run(scenario: Scenario) -> Run {
    let server = staging(scenario).await;
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path(), &server, scenario);
    let out = tempfile::tempdir().unwrap();
    let file = |name: &str| out.path().join(name);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_preflight"));
    for var in hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("run")
        .arg(dir.path())
        .arg("--json")
        .arg(file("r.json"))
        .arg("--junit")
        .arg(file("r.xml"))
        .arg("--markdown")
        .arg(file("r.md"))
        .env("GITHUB_STEP_SUMMARY", file("summary.md"))
        .env("NO_COLOR", "1")
        .env("SMOKE_KEY", SMOKE_KEY)
        .env("SMOKE_PASSWORD", SMOKE_PASSWORD);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(file(name)).unwrap();
    let json = read("r.json");
    Run {
        report: serde_json::from_str(&json).expect("the report reads back"),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        json,
        junit: read("r.xml"),
        markdown: read("r.md"),
        step_summary: read("summary.md"),
        dir,
    }
}

impl Run {
    /// Snapshots `text` with everything that varies between runs filtered out.
    fn snapshot(&self, name: &str, text: &str) {
        let mut settings = insta::Settings::clone_current();
        for (pattern, replacement) in self.filters() {
            settings.add_filter(&pattern, replacement);
        }
        settings.bind(|| insta::assert_snapshot!(name, text));
    }

    fn filters(&self) -> Vec<(String, &'static str)> {
        let dir = self.dir.path().display().to_string();
        vec![
            (regex::escape(&dir), "[SUITE]"),
            (r"127\.0\.0\.1:\d+".into(), "127.0.0.1:[PORT]"),
            (
                r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})".into(),
                "[TIMESTAMP]",
            ),
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".into(),
                "[UUID]",
            ),
            // JSON: durations and latencies (also the p50/p95/max of the summary).
            (
                r#""([a-z_]+_ms|p50|p95|max)": \d+"#.into(),
                r#""$1": "[N]""#,
            ),
            // The suite files digest: the suite holds the server's port.
            (
                r#""suite_files_digest": "sha256:[0-9a-f]{64}""#.into(),
                r#""suite_files_digest": "[DIGEST]""#,
            ),
            // JUnit: times in seconds.
            (r#"time="\d+\.\d+""#.into(), r#"time="[T]""#),
            // Terminal and Markdown: `12ms`, `3.4s` (one token: a slow run may cross a second).
            (r"\b\d+(\.\d+)?m?s\b".into(), "[DURATION]"),
        ]
    }

    fn terminal(&self) -> String {
        self.stdout.clone()
    }

    fn all_outputs(&self) -> [(&'static str, String); 5] {
        [
            ("terminal", self.terminal()),
            ("json", self.json.clone()),
            ("junit", self.junit.clone()),
            ("markdown", self.markdown.clone()),
            ("step summary", self.step_summary.clone()),
        ]
    }
}

/// The runs behave as each scenario says, before any snapshot is trusted.
#[tokio::test(flavor = "multi_thread")]
async fn scenarios_produce_the_intended_results() {
    let passing = run(Scenario::Passing).await;
    assert_eq!(passing.code, 0, "{}", passing.terminal());
    assert_eq!(passing.step_summary, passing.markdown);
    assert_eq!(passing.report.summary.passed, 2);
    assert!(passing.report.integrity.iter().all(|r| r.passed));
    assert_eq!(passing.report.setup.len(), 1);
    assert!(passing.report.wait.as_ref().is_some_and(|w| w.ready));

    let failing = run(Scenario::Failing).await;
    assert_eq!(failing.code, 1, "{}", failing.terminal());
    let outcomes: Vec<(&str, FlowOutcome)> = failing
        .report
        .flows
        .iter()
        .map(|f| (f.name.as_str(), f.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("guest checkout", FlowOutcome::Failed),
            ("health", FlowOutcome::Passed),
            ("payment provider", FlowOutcome::Failed),
            ("recommendations", FlowOutcome::Warned),
        ]
    );
    let checkout = &failing.report.flows[0];
    assert_eq!(checkout.failed_step().unwrap().name, "create cart");
    assert_eq!(checkout.failed_cleanups().count(), 1);
    assert!(
        checkout.steps[1].skipped_because.is_some(),
        "pay is skipped"
    );
    let provider = failing.report.flows[2].failed_step().unwrap();
    assert!(provider.error.is_some(), "{provider:#?}");
    assert!(!failing.report.integrity[0].passed);
}

/// No secret value reaches any output, and each reporter masks them the same way.
#[tokio::test(flavor = "multi_thread")]
async fn no_report_shows_a_secret() {
    for scenario in [Scenario::Passing, Scenario::Failing] {
        let run = run(scenario).await;
        for (kind, text) in run.all_outputs() {
            for secret in [SMOKE_KEY, SMOKE_PASSWORD, TOKEN] {
                assert!(
                    !text.contains(secret),
                    "{scenario:?} {kind} shows a secret:\n{text}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_passing_terminal() {
    let run = run(Scenario::Passing).await;
    run.snapshot("passing_terminal", &run.terminal());
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_passing_json() {
    let run = run(Scenario::Passing).await;
    run.snapshot("passing_json", &run.json);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_passing_junit() {
    let run = run(Scenario::Passing).await;
    run.snapshot("passing_junit", &run.junit);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_passing_markdown() {
    let run = run(Scenario::Passing).await;
    run.snapshot("passing_markdown", &run.markdown);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_failing_terminal() {
    let run = run(Scenario::Failing).await;
    run.snapshot("failing_terminal", &run.terminal());
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_failing_json() {
    let run = run(Scenario::Failing).await;
    run.snapshot("failing_json", &run.json);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_failing_junit() {
    let run = run(Scenario::Failing).await;
    run.snapshot("failing_junit", &run.junit);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_failing_markdown() {
    let run = run(Scenario::Failing).await;
    run.snapshot("failing_markdown", &run.markdown);
}

// ---------------------------------------------------------------------------------------------
// JUnit, parsed back
// ---------------------------------------------------------------------------------------------

/// One element of the JUnit document: its name, attributes, text, and its ancestors' names.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: HashMap<String, String>,
    text: String,
    /// Index of the enclosing `<testsuite>`, if any.
    suite: Option<usize>,
    /// Index of the enclosing `<testcase>`, if any.
    case: Option<usize>,
}

fn element(start: &BytesStart, open: &[usize], all: &[Element]) -> Element {
    let attrs = start
        .attributes()
        .map(|a| {
            let a = a.expect("a well-formed attribute");
            (
                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                a.normalized_value(XmlVersion::Explicit1_0)
                    .expect("an attribute value")
                    .into_owned(),
            )
        })
        .collect();
    let enclosing = |name: &str| open.iter().rev().copied().find(|&i| all[i].name == name);
    Element {
        name: String::from_utf8(start.name().as_ref().to_vec()).unwrap(),
        attrs,
        text: String::new(),
        suite: enclosing("testsuite"),
        case: enclosing("testcase"),
    }
}

/// Parses the JUnit XML with quick-xml (it must be well-formed) into a flat element list.
fn parse_junit(xml: &str) -> Vec<Element> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut all: Vec<Element> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => {
                let e = element(&start, &open, &all);
                all.push(e);
                open.push(all.len() - 1);
            }
            Event::Empty(start) => {
                let e = element(&start, &open, &all);
                all.push(e);
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Text(text) => {
                if let Some(&i) = open.last() {
                    all[i]
                        .text
                        .push_str(&text.xml10_content().expect("utf-8 text"));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(&i) = open.last() {
                    let name = r.decode().expect("utf-8 entity");
                    let c = match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unexpected entity &{other};"),
                    };
                    all[i].text.push_str(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(open.is_empty(), "every element is closed");
    all
}

fn count(all: &[Element], name: &str) -> usize {
    all.iter().filter(|e| e.name == name).count()
}

fn attr<'a>(e: &'a Element, name: &str) -> &'a str {
    e.attrs
        .get(name)
        .unwrap_or_else(|| panic!("<{}> has no `{name}`: {e:#?}", e.name))
}

/// The `<testcase>` of suite `suite` named `case`, and its status child, if any.
fn case<'a>(all: &'a [Element], suite: &str, case: &str) -> (&'a Element, Option<&'a Element>) {
    let index = all
        .iter()
        .position(|e| {
            e.name == "testcase"
                && attr(e, "name") == case
                && e.suite.is_some_and(|s| attr(&all[s], "name") == suite)
        })
        .unwrap_or_else(|| panic!("no testcase `{case}` in suite `{suite}`"));
    let status = all.iter().find(|e| {
        e.case == Some(index) && ["failure", "error", "skipped"].contains(&e.name.as_str())
    });
    (&all[index], status)
}

#[tokio::test(flavor = "multi_thread")]
async fn junit_of_a_passing_run_parses_with_no_failure() {
    let run = run(Scenario::Passing).await;
    let all = parse_junit(&run.junit);
    let root = &all[0];
    assert_eq!(root.name, "testsuites");
    assert_eq!(attr(root, "name"), "shop staging gate");
    let suites: Vec<&str> = all
        .iter()
        .filter(|e| e.name == "testsuite")
        .map(|e| attr(e, "name"))
        .collect();
    assert_eq!(
        suites,
        [
            "wait",
            "integrity",
            "setup",
            "guest checkout",
            "health",
            "gate"
        ]
    );
    // wait: 1; integrity: file + version; setup: 1; checkout: 2 steps + 1 cleanup; health: 1;
    // gate: 1.
    assert_eq!(count(&all, "testcase"), 1 + 2 + 1 + 3 + 1 + 1);
    for name in [
        "failure",
        "error",
        "skipped",
        "flakyFailure",
        "rerunFailure",
    ] {
        assert_eq!(count(&all, name), 0, "no <{name}> in a passing run");
    }
    assert_eq!(attr(root, "tests"), "9");
    assert!(case(&all, "wait", "staging ready").1.is_none());
    assert_eq!(attr(root, "failures"), "0");
    let (cleanup, status) = case(&all, "guest checkout", "cleanup: delete cart");
    assert!(status.is_none());
    assert_eq!(attr(cleanup, "classname"), "guest checkout");
    let checkout = all
        .iter()
        .find(|e| e.name == "testsuite" && attr(e, "name") == "guest checkout")
        .unwrap();
    assert!(checkout.attrs.contains_key("timestamp"));
    assert!(all.iter().any(|e| e.name == "property"
        && attr(e, "name") == "file"
        && attr(e, "value") == "checkout.toml"));
    let (config, status) = case(&all, "integrity", "config/checkout.json");
    assert!(status.is_none(), "{config:#?}");
    assert!(case(&all, "integrity", "deployed version").1.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn junit_of_a_failing_run_carries_every_kind_of_failure() {
    let run = run(Scenario::Failing).await;
    let all = parse_junit(&run.junit);
    let suites: Vec<&str> = all
        .iter()
        .filter(|e| e.name == "testsuite")
        .map(|e| attr(e, "name"))
        .collect();
    assert_eq!(
        suites,
        [
            "wait",
            "integrity",
            "setup",
            "guest checkout",
            "health",
            "payment provider",
            "recommendations (non-critical)",
            "gate"
        ]
    );
    assert_eq!(count(&all, "testcase"), 1 + 2 + 1 + 3 + 1 + 1 + 1 + 1);
    // Failures: integrity file and create cart. The failed cleanup and the warned flow only
    // warn, and the gate counts no failure that a testcase already shows.
    assert_eq!(count(&all, "failure"), 2);
    assert_eq!(count(&all, "error"), 1, "the connection error");
    assert_eq!(count(&all, "skipped"), 1, "pay");
    assert_eq!(attr(&all[0], "failures"), "2");
    assert_eq!(attr(&all[0], "errors"), "1");
    assert_eq!(attr(&all[0], "skipped"), "1");

    let (_, failure) = case(&all, "guest checkout", "create cart");
    let failure = failure.unwrap();
    assert_eq!(failure.name, "failure");
    assert_eq!(attr(failure, "type"), "assertion");
    assert_eq!(
        attr(failure, "message"),
        r#"$.currency equals: expected "EUR", actual "USD""#
    );
    assert!(failure.text.contains("status: 201"), "{}", failure.text);
    assert!(
        failure
            .text
            .contains(r#"body: {"currency":"USD","id":"c-1"}"#)
            || failure
                .text
                .contains(r#"body: {"id":"c-1","currency":"USD"}"#),
        "{}",
        failure.text
    );
    assert!(failure.text.contains("request: POST http://127.0.0.1:"));

    let (_, skipped) = case(&all, "guest checkout", "pay");
    assert_eq!(skipped.unwrap().name, "skipped");
    assert!(!attr(skipped.unwrap(), "message").is_empty());

    let (cleanup, status) = case(&all, "guest checkout", "cleanup: delete cart");
    assert!(status.is_none(), "a failed cleanup warns: {status:#?}");
    let out = system_out(&all, cleanup);
    assert!(out.starts_with("warning: cleanup failed"), "{out}");
    assert!(
        out.contains("status one_of: expected [204,404], actual 500"),
        "{out}"
    );
    assert!(out.contains("cart is locked | try `later`"), "{out}");

    let (_, error) = case(&all, "payment provider", "provider status");
    let error = error.unwrap();
    assert_eq!(error.name, "error");
    assert!(
        attr(error, "message").to_lowercase().contains("connect"),
        "{error:#?}"
    );

    let (warned, status) = case(
        &all,
        "recommendations (non-critical)",
        "list recommendations",
    );
    assert!(status.is_none(), "a warned flow is no failure: {status:#?}");
    assert_eq!(attr(warned, "classname"), "recommendations");
    assert!(system_out(&all, warned).contains("$.items length: expected 3, actual 0"));

    let (_, mismatch) = case(&all, "integrity", "config/checkout.json");
    let mismatch = mismatch.unwrap();
    assert_eq!(attr(mismatch, "type"), "integrity");
    assert!(
        attr(mismatch, "message")
            .starts_with("config mismatch: config/checkout.json: expected sha256:"),
        "{mismatch:#?}"
    );

    let (_, verdict) = case(&all, "gate", "verdict");
    assert!(
        verdict.is_none(),
        "every reason is shown by a testcase already: {verdict:#?}"
    );
}

/// The text of a testcase's `<system-out>`.
fn system_out<'a>(all: &'a [Element], testcase: &Element) -> &'a str {
    let index = all.iter().position(|e| std::ptr::eq(e, testcase)).unwrap();
    all.iter()
        .find(|e| e.case == Some(index) && e.name == "system-out")
        .map_or("", |e| e.text.as_str())
}

// ---------------------------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn markdown_has_the_verdict_table_and_failure_details() {
    let passing = run(Scenario::Passing).await.markdown;
    assert!(
        passing.starts_with("## ✅ preflight: GATE PASSED\n"),
        "{passing}"
    );
    assert!(passing.contains("| Outcome | Flow | File | Duration | Failing step |"));
    assert!(passing.contains("| ✅ passed | guest checkout | `checkout.toml` |"));
    assert!(!passing.contains("### Failures"));
    assert!(passing.contains("Deployed version: ✅ staging runs `4f2a9c1`"));
    assert!(passing.contains("Staging was ready after 1 poll"));

    let failing = run(Scenario::Failing).await.markdown;
    assert!(
        failing.starts_with("## ❌ preflight: GATE FAILED\n"),
        "{failing}"
    );
    assert!(failing.contains("| Outcome | Flow | File | Duration | Failing step |"));
    assert!(failing.contains("| ❌ failed | guest checkout | `checkout.toml` |"));
    assert!(failing.contains("| ⚠️ warned | recommendations (non-critical) |"));
    assert!(failing.contains("#### ❌ guest checkout: step `create cart`"));
    assert!(failing.contains("- request: `POST http://127.0.0.1:"));
    assert!(
        failing.contains(r#"  - `$.currency` equals: expected `"EUR"`, actual `"USD"`"#),
        "{failing}"
    );
    assert!(failing.contains("- status: `201`"));
    assert!(failing.contains("  ```text\n"));
    assert!(
        failing.contains("#### ⚠️ recommendations (non-critical): step `list recommendations`")
    );
    assert!(failing.contains(
        "### Warnings\n\n- ⚠️ cleanup failed: flow `guest checkout`, step `delete cart` (test data may be left behind)\n  - request: `DELETE http://127.0.0.1:"
    ));
    assert!(failing.contains("    - `status` one\\_of: expected `[204,404]`, actual `500`"));
    assert!(failing.contains("| `config/checkout.json` |"));
    assert!(failing.contains("❌ mismatch"));
    // Every table row has exactly as many unescaped cell separators as the header.
    for line in failing.lines().filter(|l| l.starts_with('|')) {
        let separators = line.matches('|').count() - line.matches("\\|").count();
        assert_eq!(separators, 6, "a table row was broken: {line}");
    }
}
