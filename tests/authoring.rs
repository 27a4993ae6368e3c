//! Writing a suite: `init`, `-vv`, `--vars-file`, `list --json`, a single flow file, and the
//! smaller authoring conveniences; each through the real binary, against wiremock staging on
//! 127.0.0.1 where one is needed.

mod binary;
mod hermetic;

use binary::preflight;
use serde_json::{Value, json};
use std::process::Output;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs the command on a blocking thread so that the test's servers keep serving.
async fn output(mut cmd: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A staging that answers the paths of the suite `init` writes.
async fn starter_staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "ok"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/carts"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": "c-1", "currency": "EUR"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/carts/c-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "c-1", "currency": "EUR"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/carts/c-1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn init_writes_a_suite_that_checks_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("smoke-tests");
    let out = preflight()
        .current_dir(dir.path())
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for file in ["preflight.toml", "health.toml", "checkout.toml"] {
        assert!(suite.join(file).is_file(), "{file} written");
    }
    let settings = std::fs::read_to_string(suite.join("preflight.toml")).unwrap();
    assert!(settings.contains("base_url = \"http://127.0.0.1:8080\""));
    assert!(settings.lines().any(|l| l.starts_with('#')), "commented");

    let out = preflight()
        .current_dir(dir.path())
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("suite valid: staging gate (2 flows, 3 steps"));

    let staging = starter_staging().await;
    let mut cmd = preflight();
    cmd.current_dir(dir.path())
        .args(["run", "--base-url", &staging.uri(), "--json", "-"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("the JSON report on stdout");
    assert_eq!(report["verdict"], "pass");
    let steps = report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["steps"].as_array().unwrap().len())
        .sum::<usize>();
    assert_eq!(steps, 4, "health, create, read and the cleanup ran");
    assert!(
        text(&out.stderr).contains("GATE PASSED"),
        "the summary went to stderr"
    );
}

#[test]
fn init_never_overwrites_and_writes_nothing_when_one_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("checkout.toml"), "mine").unwrap();
    let out = preflight().arg("init").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("checkout.toml already exists"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("checkout.toml")).unwrap(),
        "mine"
    );
    assert!(
        !dir.path().join("preflight.toml").exists(),
        "nothing written"
    );
    assert!(!dir.path().join("health.toml").exists(), "nothing written");
}

#[test]
fn init_into_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smoke-tests");
    std::fs::write(&file, "").unwrap();
    let out = preflight().arg("init").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not a folder"));
}
