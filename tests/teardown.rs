//! `[[teardown]]`, through the real binary against wiremock on 127.0.0.1: run once after
//! every flow (after a failure, the deadline and SIGINT too), with the setup captures; a
//! failed teardown is a warning that never changes the verdict.

mod binary;
mod hermetic;

use binary::{count, run_all, suite};
use serde_json::json;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SETTINGS: &str = r#"
[[setup]]
name = "create user"
method = "POST"
path = "/users"
capture = { user_id = "$.id" }

[[teardown]]
name = "delete user"
method = "DELETE"
path = "/users/{{ user_id }}"
"#;

/// `POST /users` gives `u-7`, `DELETE /users/u-7` answers `delete_status`, `GET /ok` 200,
/// `GET /broken` 500, `GET /slow` 200 after 20 s.
async fn staging(delete_status: u16) -> MockServer {
    let server = MockServer::start().await;
    let mount = |m: &'static str, p: &'static str, r: ResponseTemplate| {
        Mock::given(method(m)).and(path(p)).respond_with(r)
    };
    let created = ResponseTemplate::new(201).set_body_json(json!({ "id": "u-7" }));
    mount("POST", "/users", created).mount(&server).await;
    let deleted = ResponseTemplate::new(delete_status);
    mount("DELETE", "/users/u-7", deleted).mount(&server).await;
    mount("GET", "/ok", ResponseTemplate::new(200))
        .mount(&server)
        .await;
    mount("GET", "/broken", ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(20));
    mount("GET", "/slow", slow).mount(&server).await;
    server
}

fn flow(p: &str) -> String {
    format!("[[step]]\nname = \"get\"\npath = \"{p}\"\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_runs_after_a_failing_flow_with_the_setup_captures() {
    let server = staging(204).await;
    let dir = suite(
        &server.uri(),
        SETTINGS,
        &[("broken.toml", &flow("/broken"))],
    );
    let out = run_all(dir.path(), &[], &[]).await;

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(count(&server, "DELETE", "/users/u-7").await, 1);
    let report = out.report();
    let teardown = &report["teardown"][0];
    assert_eq!(teardown["name"], "delete user", "{report:#}");
    assert_eq!(teardown["outcome"], "passed", "{teardown:#}");
    assert_eq!(teardown["status"], 204, "{teardown:#}");
    assert!(
        out.junit.contains("<testsuite name=\"teardown\""),
        "{}",
        out.junit
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_teardown_is_a_warning_and_the_gate_still_passes() {
    let server = staging(500).await;
    let dir = suite(&server.uri(), SETTINGS, &[("ok.toml", &flow("/ok"))]);
    let out = run_all(dir.path(), &[], &[]).await;

    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(count(&server, "DELETE", "/users/u-7").await, 1);
    let report = out.report();
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["teardown"][0]["outcome"], "failed", "{report:#}");
    let warning = &report["warnings"][0];
    assert_eq!(warning["kind"], "teardown_failed", "{report:#}");
    assert_eq!(warning["step"], "delete user", "{report:#}");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .starts_with("teardown failed: step 'delete user'"),
        "{warning:#}"
    );
    assert!(
        out.stdout.contains("teardown failed: step 'delete user'"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("GATE PASSED: 1 flow, 0 failed, 1 warning"),
        "{}",
        out.stdout
    );
    // JUnit: visible, but no failure on a PASS.
    assert!(!out.junit.contains("<failure"), "{}", out.junit);
    assert!(!out.junit.contains("<error"), "{}", out.junit);
    assert!(out.junit.contains("<system-out>warning: "), "{}", out.junit);
    assert!(
        out.markdown.contains("teardown failed: step `delete user`"),
        "{}",
        out.markdown
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_runs_after_the_deadline() {
    let server = staging(204).await;
    let settings = format!("timeout = \"30s\"\n{SETTINGS}");
    let dir = suite(&server.uri(), &settings, &[("slow.toml", &flow("/slow"))]);
    let out = run_all(dir.path(), &[], &["--deadline", "1s"]).await;

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("deadline"), "{}", out.stdout);
    assert_eq!(count(&server, "DELETE", "/users/u-7").await, 1);
    assert_eq!(out.report()["teardown"][0]["outcome"], "passed");
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_runs_after_sigint() {
    let server = staging(204).await;
    let settings = format!("timeout = \"30s\"\n{SETTINGS}");
    let dir = suite(&server.uri(), &settings, &[("slow.toml", &flow("/slow"))]);
    let out = tempfile::tempdir().unwrap();
    let json_path = out.path().join("r.json");
    let mut child = binary::process()
        .arg("run")
        .arg(dir.path())
        .arg("--no-progress")
        .arg("--json")
        .arg(&json_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    // Signal once the slow step is in flight (a safety bound, not a timing).
    let started = Instant::now();
    while count(&server, "GET", "/slow").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the slow step never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    binary::signal(child.id(), "INT");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();

    assert_eq!(status.code(), Some(130));
    assert_eq!(count(&server, "DELETE", "/users/u-7").await, 1);
    let report: serde_json::Value = binary::read_json(&json_path);
    assert_eq!(report["verdict"], "aborted");
    assert_eq!(report["teardown"][0]["outcome"], "passed", "{report:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_teardown_whose_setup_capture_never_happened_is_a_warning() {
    let server = MockServer::start().await;
    // The setup answers without an id: the capture finds nothing, setup fails.
    Mock::given(method("POST"))
        .and(path("/users"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .mount(&server)
        .await;
    let dir = suite(&server.uri(), SETTINGS, &[("ok.toml", &flow("/ok"))]);
    let out = run_all(dir.path(), &[], &[]).await;

    assert_eq!(out.code, 1, "{}", out.stdout);
    let report = out.report();
    let teardown = &report["teardown"][0];
    assert_eq!(teardown["outcome"], "failed", "{teardown:#}");
    assert!(
        teardown["error"]
            .as_str()
            .unwrap()
            .contains("`user_id` never happened"),
        "{teardown:#}"
    );
    assert_eq!(report["warnings"][0]["kind"], "teardown_failed");
}
