//! Writing a suite: `init`, `-vv`, `--vars-file`, `list --json`, a single flow file, and the
//! smaller authoring conveniences; each through the real binary, against wiremock staging on
//! 127.0.0.1 where one is needed.

mod binary;
mod hermetic;

use binary::preflight;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs the command on a blocking thread so that the test's servers keep serving.
async fn output(mut cmd: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .unwrap()
}

fn assert_passed(out: &Output) {
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{shown}");
}

/// A suite of one GET / step, for what never reaches staging.
fn one_step_suite() -> tempfile::TempDir {
    binary::suite(
        "http://127.0.0.1:9",
        "",
        &[("a.toml", "[[step]]\npath = \"/\"\n")],
    )
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

/// A suite of two flows, `health.toml` and `payments/card.toml`, against `base_url`.
fn two_flow_suite(base_url: &str) -> tempfile::TempDir {
    let dir = binary::suite(
        base_url,
        "[headers]\nx-suite = \"yes\"\n",
        &[(
            "health.toml",
            "tags = [\"health\"]\n[[step]]\npath = \"/health\"\n",
        )],
    );
    std::fs::create_dir(dir.path().join("payments")).unwrap();
    std::fs::write(
        dir.path().join("payments/card.toml"),
        "name = \"card\"\ncritical = false\ntags = [\"pay\", \"card\"]\n\
         [[step]]\npath = \"/card\"\n[[cleanup]]\nmethod = \"DELETE\"\npath = \"/card\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn list_json_is_a_stable_array_of_flows() {
    let suite = two_flow_suite("http://127.0.0.1:9");
    let out = preflight()
        .arg("list")
        .arg(suite.path())
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        listed,
        json!([
            {"name": "health", "file": "health.toml", "tags": ["health"], "critical": true,
             "steps": 1, "cleanups": 0},
            {"name": "card", "file": "payments/card.toml", "tags": ["pay", "card"],
             "critical": false, "steps": 1, "cleanups": 1},
        ])
    );
    let schema: Value = serde_json::from_slice(
        &preflight()
            .args(["schema", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(
        validator.is_valid(&listed),
        "list --json matches `schema list`"
    );
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/list.schema.json"),
    )
    .unwrap();
    assert_eq!(
        committed.trim_end(),
        serde_json::to_string_pretty(&schema).unwrap()
    );
}

/// A staging where the card flow (with the suite's `x-suite` header) is expected once.
async fn card_staging() -> MockServer {
    let staging = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/card"))
        .and(wiremock::matchers::header("x-suite", "yes"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&staging)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/card"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&staging)
        .await;
    staging
}

#[tokio::test]
async fn a_flow_file_runs_alone_with_the_settings_of_its_suite() {
    let staging = card_staging().await;
    let suite = two_flow_suite(&staging.uri());
    // A broken sibling flow does not stop the one named.
    std::fs::write(suite.path().join("broken.toml"), "[[step]]\npath = 3\n").unwrap();
    let mut cmd = preflight();
    cmd.current_dir(suite.path().join("payments"))
        .args(["run", "card.toml", "--json", "-"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let flows = report["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "only the flow named ran");
    assert_eq!(flows[0]["file"], "payments/card.toml");
    // No request to /health arrived: wiremock answers it 404 and `expect` counts the rest.
    let received = staging.received_requests().await.unwrap();
    assert!(received.iter().all(|r| r.url.path() == "/card"));

    let listed = preflight()
        .arg("list")
        .arg(suite.path().join("payments/card.toml"))
        .output()
        .unwrap();
    assert_eq!(listed.status.code(), Some(0));
    assert!(text(&listed.stdout).starts_with("card (payments/card.toml)"));
    let checked = preflight()
        .arg("check")
        .arg(suite.path().join("health.toml"))
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
}

/// A folder of a suite without a preflight.toml of its own runs its flows with the suite's
/// settings: run apart, they would lose its headers, pins, contract and gate.
#[tokio::test]
async fn a_folder_of_a_suite_runs_its_flows_with_the_settings_of_the_suite() {
    let staging = card_staging().await;
    let suite = two_flow_suite(&staging.uri());
    let mut cmd = preflight();
    cmd.current_dir(suite.path())
        .args(["run", "payments", "--json", "-"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let flows = report["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "only the folder's flows ran");
    assert_eq!(flows[0]["file"], "payments/card.toml");

    let checked = preflight()
        .current_dir(suite.path())
        .args(["check", "payments"])
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
    assert!(
        text(&checked.stdout)
            .starts_with("flows valid: the 1 flow in payments with the settings of suite"),
        "{}",
        text(&checked.stdout)
    );
}

#[test]
fn a_flow_file_without_a_suite_above_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("health.toml");
    std::fs::write(&flow, "[[step]]\npath = \"/health\"\n").unwrap();
    let out = preflight().arg("run").arg(&flow).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no preflight.toml in this file's folder or any folder above it"),
        "{stderr}"
    );
}

#[tokio::test]
async fn vars_files_sit_between_vars_and_var() {
    let staging = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/probe"))
        .and(wiremock::matchers::query_param("s_only", "suite"))
        .and(wiremock::matchers::query_param("over_suite", "flow"))
        .and(wiremock::matchers::query_param("flow_vs_file", "file1"))
        .and(wiremock::matchers::query_param("files", "file2"))
        .and(wiremock::matchers::query_param("cli_vs_file", "cli"))
        .and(wiremock::matchers::body_json(
            json!({"n": 5, "who": {"name": "file"}}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&staging)
        .await;
    let suite = binary::suite(
        &staging.uri(),
        "[vars]\ns_only = \"suite\"\nover_suite = \"suite\"\nwho = { name = \"suite\" }\n",
        &[(
            "probe.toml",
            "[vars]\nover_suite = \"flow\"\nflow_vs_file = \"flow\"\n\
             [[step]]\nmethod = \"POST\"\npath = \"/probe\"\n\
             query = { s_only = \"{{ s_only }}\", over_suite = \"{{ over_suite }}\", \
             flow_vs_file = \"{{ flow_vs_file }}\", files = \"{{ files }}\", \
             cli_vs_file = \"{{ cli_vs_file }}\" }\n\
             json = { n = \"{{ n }}\", who = \"{{ who }}\" }\n",
        )],
    );
    let vars = tempfile::tempdir().unwrap();
    let file1 = vars.path().join("staging.toml");
    let file2 = vars.path().join("local.toml");
    std::fs::write(
        &file1,
        "flow_vs_file = \"file1\"\nfiles = \"file1\"\ncli_vs_file = \"file1\"\nn = 5\n\
         who = { name = \"file\" }\n",
    )
    .unwrap();
    std::fs::write(&file2, "files = \"file2\"\n").unwrap();
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(suite.path())
        .arg("--vars-file")
        .arg(&file1)
        .arg("--vars-file")
        .arg(&file2)
        .args(["--var", "cli_vs_file=cli"]);
    let out = output(cmd).await;
    assert_passed(&out);
}

#[test]
fn a_bad_vars_file_is_a_located_problem() {
    let suite = one_step_suite();
    let vars = tempfile::tempdir().unwrap();
    let bad = vars.path().join("bad.toml");
    std::fs::write(&bad, "ok = 1\nn = nan\nbroken = [\n").unwrap();
    let out = preflight()
        .arg("check")
        .arg(suite.path())
        .arg("--vars-file")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:", bad.display())),
        "{stderr}"
    );

    let nan = vars.path().join("nan.toml");
    std::fs::write(&nan, "ok = 1\nn = nan\n").unwrap();
    let missing = vars.path().join("missing.toml");
    let out = preflight()
        .arg("check")
        .arg(suite.path())
        .arg("--vars-file")
        .arg(&nan)
        .arg("--vars-file")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", nan.display())),
        "{stderr}"
    );
    assert!(stderr.contains("NaN and infinity"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}", missing.display())),
        "{stderr}"
    );
    assert!(stderr.contains("suite invalid: 2 problems"), "{stderr}");
}

#[tokio::test]
async fn status_classes_in_upper_case_are_accepted() {
    let staging = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&staging)
        .await;
    let suite = binary::suite(
        &staging.uri(),
        "",
        &[(
            "a.toml",
            "[[step]]\npath = \"/\"\nexpect = { status = \"2XX\" }\n",
        )],
    );
    let mut cmd = preflight();
    cmd.arg("run").arg(suite.path());
    let out = output(cmd).await;
    assert_passed(&out);
}

#[test]
fn a_base_url_without_a_scheme_gets_a_hint() {
    let suite = one_step_suite();
    for url in ["127.0.0.1:18391", "localhost:18391"] {
        let out = preflight()
            .arg("check")
            .arg(suite.path())
            .args(["--base-url", url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("add the scheme: `http://{url}`")),
            "{stderr}"
        );
    }
}

#[test]
fn the_error_line_says_how_many_attempts_were_made() {
    // A port nobody listens on: every attempt is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let suite = binary::suite(
        &format!("http://127.0.0.1:{port}"),
        "[retry]\nattempts = 3\nbackoff = \"1ms\"\n",
        &[("a.toml", "[[step]]\npath = \"/\"\n")],
    );
    let out = preflight().arg("run").arg(suite.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let error = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("error:"))
        .unwrap_or_else(|| panic!("an error line:\n{stdout}"));
    assert!(error.contains("connect failed"), "{error}");
    assert!(error.ends_with(" (3 attempts)"), "{error}");
}

#[test]
fn demo_refuses_a_base_url() {
    let dir = tempfile::tempdir().unwrap();
    let out = preflight()
        .current_dir(dir.path())
        .args(["demo", "--base-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("demo runs against its own embedded staging"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "nothing ran");
}

#[test]
fn help_texts_are_complete_and_consistent() {
    let help = |cmd: &str| text(&preflight().args([cmd, "--help"]).output().unwrap().stdout);
    let check = help("check");
    assert!(check.contains("1 config mismatch"), "{check}");
    assert!(help("run").contains("130 interrupted"));
    let list = help("list");
    assert!(list.contains("[SUITE]  The suite directory"), "{list}");
    for cmd in ["run", "check", "list"] {
        let help = help(cmd);
        assert!(help.contains("--tag <TAG>"), "{cmd}: {help}");
        assert!(help.contains("--skip-tag <TAG>"), "{cmd}: {help}");
    }
    assert!(text(&preflight().arg("--help").output().unwrap().stdout).contains("init"));
}

/// One command of docs/authoring.md: the words after `preflight`, the exit code its comment
/// promises, and whether its output is piped to `jq`.
struct DocCommand {
    line: String,
    args: Vec<String>,
    exit: i32,
    piped: bool,
}

fn doc_command(line: &str, base_url: &str) -> DocCommand {
    let (command, comment) = line.split_once('#').unwrap_or((line, ""));
    let exit = comment
        .trim()
        .strip_prefix("exit ")
        .map_or(0, |rest| rest[..1].parse().unwrap());
    let (command, piped) = match command.split_once(" | ") {
        Some((command, pipe)) => {
            assert!(pipe.trim().starts_with("jq"), "{line}");
            (command, true)
        }
        None => (command, false),
    };
    let args = command
        .split_whitespace()
        .skip(1)
        .map(|w| w.replace("http://127.0.0.1:8080", base_url))
        .collect();
    DocCommand {
        line: line.to_string(),
        args,
        exit,
        piped,
    }
}

/// Runs every `preflight` command of docs/authoring.md, in order, in one fresh folder against
/// a staging that answers the starter suite; files shown as ```toml NAME are written first.
#[tokio::test]
async fn every_command_of_the_authoring_page_works_as_documented() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/authoring.md"))
            .unwrap();
    let staging = starter_staging().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut block, mut ran, mut listed) = (None::<String>, 0, None);
    for line in page.lines() {
        if let Some(info) = line.strip_prefix("```") {
            block = if block.is_some() {
                None
            } else {
                Some(info.to_string())
            };
            continue;
        }
        match block.as_deref() {
            Some(info) if info.starts_with("toml ") => {
                let file = dir.path().join(info[5..].trim());
                let mut text = std::fs::read_to_string(&file).unwrap_or_default();
                text.push_str(line);
                text.push('\n');
                std::fs::write(file, text).unwrap();
            }
            Some("sh") if line.starts_with("preflight ") => {
                let command = doc_command(line, &staging.uri());
                let mut cmd = preflight();
                cmd.current_dir(dir.path()).args(&command.args);
                let out = output(cmd).await;
                assert_eq!(
                    out.status.code(),
                    Some(command.exit),
                    "{}\n{}{}",
                    command.line,
                    text(&out.stdout),
                    text(&out.stderr)
                );
                if command.piped {
                    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
                    assert_eq!(report["verdict"], "pass", "{}", command.line);
                }
                if command.args == ["list", "--json"] {
                    listed = Some(serde_json::from_slice::<Value>(&out.stdout).unwrap());
                }
                ran += 1;
            }
            _ => {}
        }
    }
    assert!(ran >= 10, "the page's commands were found ({ran})");
    // The list --json example is the real output for the starter suite.
    let example = page
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    assert_eq!(
        listed,
        Some(serde_json::from_str::<Value>(example).unwrap())
    );
}
