//! The gate as users run it: the real binary as a process, suites and reports as real files in
//! temp dirs, staging a real server on 127.0.0.1.
//!
//! What comes after the verdict (every report, the GitHub step summary, the exit code) must
//! agree, whatever the report paths are (missing folders, devices, FIFOs, symlinks, `-`);
//! selectors must match a flow; non-critical flows alone get no free pass; cleanups see
//! `[[setup]]` captures and warn when they cannot run; a flow cut off by the deadline keeps its
//! results.

mod common;
mod hermetic;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use common::{RawServer, Suite};
use serde_json::{Value, json};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The binary, with the variables preflight reads removed (the machine running the tests
/// cannot change an outcome) and a generous bound on a hung run.
fn preflight() -> Command {
    let mut cmd = cargo_bin_cmd!("preflight");
    for var in hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// Runs the command on a blocking thread so that the test's servers keep serving.
async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .expect("the blocking task ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Exit 1, `reason` alone on the last line, and on stderr.
#[track_caller]
fn assert_failed_for(out: &Output, reason: &str) {
    let context = shown(out);
    assert_eq!(out.status.code(), Some(1), "{context}");
    let last = last_line(&text(&out.stdout)).to_string();
    assert_eq!(last, format!("GATE FAILED: {reason}"), "{context}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("error: {reason}")), "{context}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{} not written: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    let doc = read(path);
    common::assert_matches_report_schema(&doc);
    serde_json::from_str(&doc).expect("the JSON report parses")
}

/// `pass`, `failure` or `error`: what the JUnit report as a whole says.
fn junit_verdict(xml: &str) -> &'static str {
    // A failing step already shows the failure, and the `gate` testcase then carries only
    // what no testcase shows: the report as a whole tells the verdict.
    assert!(
        xml.contains("<testcase name=\"verdict\""),
        "no verdict testcase in\n{xml}"
    );
    if xml.contains("<failure") {
        "failure"
    } else if xml.contains("<error") {
        "error"
    } else {
        "pass"
    }
}

/// The heading of a Markdown report: `GATE PASSED`, `GATE FAILED` or `GATE ABORTED`.
fn markdown_verdict(markdown: &str) -> &str {
    let first = markdown.lines().next().unwrap_or_default();
    first
        .split("preflight: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no verdict heading in\n{markdown}"))
}

/// A staging with `GET /ok` (200) and `GET /broken` (500).
async fn staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/broken"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&server)
        .await;
    server
}

/// A suite named `shop` against `base`, with one-step flows `name.toml` that GET `path`.
fn suite(base: &str, flows: &[(&str, &str)]) -> Suite {
    let suite = Suite::new(&format!("name = \"shop\"\nbase_url = \"{base}\"\n"));
    for (name, path) in flows {
        suite.write(
            &format!("{name}.toml"),
            format!("[[step]]\nname = \"get\"\npath = \"{path}\"\n"),
        );
    }
    suite
}

/// A staging, a suite whose one probe passes against it, and report paths.
async fn passing() -> (MockServer, Suite, Reports) {
    let server = staging().await;
    let suite = suite(&server.uri(), &[("probe", "/ok")]);
    (server, suite, Reports::new())
}

/// Report paths in a temp dir of their own.
struct Reports {
    dir: tempfile::TempDir,
}

impl Reports {
    fn new() -> Reports {
        Reports {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Each of the named reports (JUnit `.xml`, JSON `.json`, Markdown otherwise) says the gate
    /// failed, for `reason` among others.
    #[track_caller]
    fn assert_failed_with(&self, reason: &str, names: &[&str]) {
        for name in names {
            let path = self.path(name);
            let (verdict, failed) = if name.ends_with(".xml") {
                (junit_verdict(&read(&path)).to_string(), "failure")
            } else if name.ends_with(".json") {
                (
                    read_json(&path)["verdict"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    "fail",
                )
            } else {
                (markdown_verdict(&read(&path)).to_string(), "GATE FAILED")
            };
            assert_eq!(verdict, failed, "{name}");
            assert!(read(&path).contains(reason), "{name} lacks {reason}");
        }
    }

    /// `run SUITE --no-progress` with the JSON, JUnit and Markdown reports and the step
    /// summary in this dir, unless `extra` names a report path itself.
    fn run(&self, suite: &Suite, extra: &[&str]) -> Command {
        let mut cmd = preflight();
        cmd.arg("run").arg(suite.path()).arg("--no-progress");
        for (flag, name) in [
            ("--json", "r.json"),
            ("--junit", "r.xml"),
            ("--markdown", "r.md"),
        ] {
            if !extra.contains(&flag) {
                cmd.arg(flag).arg(self.path(name));
            }
        }
        cmd.env("GITHUB_STEP_SUMMARY", self.path("summary.md"));
        // A report path `-` that some build wrote as a file lands here, not in the repository.
        cmd.current_dir(self.dir.path());
        cmd.args(extra);
        cmd
    }
}

// ---------------------------------------------------------------------------------------------
// Reports agree with the exit code
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_report_and_the_step_summary_carry_the_verdict_of_the_exit_code() {
    let server = staging().await;
    for (probe, code, verdict, shown_as, junit) in [
        ("/ok", 0, "pass", "GATE PASSED", "pass"),
        ("/broken", 1, "fail", "GATE FAILED", "failure"),
    ] {
        let suite = suite(&server.uri(), &[("probe", probe)]);
        let reports = Reports::new();
        let out = output(reports.run(&suite, &[])).await;
        let context = shown(&out);
        assert_eq!(out.status.code(), Some(code), "{context}");
        let stdout = text(&out.stdout);
        assert!(last_line(&stdout).starts_with(shown_as), "{context}");
        let json = read_json(&reports.path("r.json"));
        assert_eq!(json["verdict"], verdict, "{context}");
        assert_eq!(json["headline"], last_line(&stdout), "{context}");
        assert_eq!(junit_verdict(&read(&reports.path("r.xml"))), junit);
        assert_eq!(markdown_verdict(&read(&reports.path("r.md"))), shown_as);
        assert_eq!(
            markdown_verdict(&read(&reports.path("summary.md"))),
            shown_as
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_cannot_be_opened_fails_the_gate_in_every_report() {
    let (_server, suite, reports) = passing().await;
    let missing = reports.path("no-such-dir/r.json");
    let out = output(reports.run(&suite, &["--json", missing.to_str().unwrap()])).await;
    let reason = format!(
        "cannot write JSON report {}: No such file or directory (os error 2)",
        missing.display()
    );
    assert_failed_for(&out, &reason);
    // The staging passed, yet no report may say so: the verdict is the exit code's.
    reports.assert_failed_with(&reason, &["r.xml", "r.md", "summary.md"]);
    assert!(!missing.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_fails_while_written_fails_the_gate_in_the_others() {
    // `--json >(jq ...)` where jq dies: the FIFO opens fine (a reader comes), then the reader
    // goes away, so writing fails after every report was prepared. The report is made larger
    // than a pipe's buffer (a long step name), so that the write fails whether the reader is
    // gone before it starts or while it waits for room.
    let server = staging().await;
    let suite = suite(&server.uri(), &[]);
    let long_name = "x".repeat(100_000);
    suite.write(
        "probe.toml",
        format!("[[step]]\nname = \"{long_name}\"\npath = \"/ok\"\n"),
    );
    let reports = Reports::new();
    let fifo = mkfifo(&reports.path("jq"));
    let reader = fifo.clone();
    std::thread::spawn(move || drop(std::fs::File::open(reader)));
    let out = output(reports.run(&suite, &["--json", fifo.to_str().unwrap()])).await;
    let reason = format!(
        "cannot write JSON report {}: Broken pipe (os error 32)",
        fifo.display()
    );
    assert_failed_for(&out, &reason);
    reports.assert_failed_with(&reason, &["r.xml", "r.md", "summary.md"]);
    let meta = std::fs::metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_report_writes_its_target_and_stays_a_link() {
    let (_server, suite, reports) = passing().await;
    std::fs::create_dir(reports.path("kept")).unwrap();
    std::fs::write(reports.path("kept/report.json"), "old").unwrap();
    let link = reports.path("r.json");
    std::os::unix::fs::symlink("kept/report.json", &link).unwrap();

    let out = output(reports.run(&suite, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    assert_eq!(
        read_json(&reports.path("kept/report.json"))["verdict"],
        "pass"
    );
    let kept: Vec<_> = std::fs::read_dir(reports.path("kept")).unwrap().collect();
    assert_eq!(kept.len(), 1, "no temporary file left beside the target");
}

/// Makes a FIFO at `path` (a temp dir's: never a system path, in case a broken build
/// replaces what it writes).
fn mkfifo(path: &Path) -> PathBuf {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
    path.to_path_buf()
}

/// Reads `path` whole on a thread (opening a FIFO waits for a writer); the text comes back on
/// the channel.
fn read_on_a_thread(path: &Path) -> std::sync::mpsc::Receiver<String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("read error: {e}"));
        let _ = sender.send(text);
    });
    receiver
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_and_a_link_to_one_are_written_through_not_replaced() {
    // A FIFO stands for `--json >(jq ...)`; a symlink to it for `/dev/stdout`, which links to
    // a pipe the same way.
    let (_server, suite, reports) = passing().await;
    let fifo = mkfifo(&reports.path("fifo"));
    let link = reports.path("stdout-like");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for given in [&fifo, &link] {
        let received = read_on_a_thread(&fifo);
        let out = output(reports.run(&suite, &["--json", given.to_str().unwrap()])).await;
        assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
        let doc = received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!("nothing came through {}\n{}", given.display(), shown(&out))
            });
        common::assert_matches_report_schema(&doc);
        let doc: Value = serde_json::from_str(&doc).expect("JSON came through");
        assert_eq!(doc["verdict"], "pass");
        let meta = std::fs::metadata(&fifo).unwrap();
        assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "the link was replaced");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dash_writes_the_report_to_stdout_and_the_summary_to_stderr() {
    let (_server, suite, reports) = passing().await;
    let out = output(reports.run(&suite, &["--json", "-"])).await;
    let context = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{context}");
    let stdout = text(&out.stdout);
    common::assert_matches_report_schema(&stdout);
    let doc: Value = serde_json::from_str(&stdout).expect("stdout is the JSON report alone");
    assert_eq!(doc["verdict"], "pass");
    let stderr = text(&out.stderr);
    assert!(
        last_line(&stderr).starts_with("GATE PASSED: 1 flow, "),
        "{context}"
    );
    assert_eq!(doc["headline"], last_line(&stderr));
    assert!(!reports.path("-").exists(), "a file named `-` was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_reports_on_stdout_are_a_usage_error() {
    let (server, suite, reports) = passing().await;
    let out = output(reports.run(&suite, &["--json", "-", "--junit", "-"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(text(&out.stderr).contains("only one report can go to standard output"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Selectors must match
// ---------------------------------------------------------------------------------------------

/// `checkout` (tag `shop`) and `payments` (tags `shop`, `money`), both passing.
async fn tagged_suite(server: &MockServer) -> Suite {
    let suite = suite(&server.uri(), &[]);
    suite.write(
        "checkout.toml",
        "tags = [\"shop\"]\n[[step]]\nname = \"get\"\npath = \"/ok\"\n",
    );
    suite.write(
        "payments.toml",
        "tags = [\"shop\", \"money\"]\n[[step]]\nname = \"get\"\npath = \"/ok\"\n",
    );
    suite
}

#[tokio::test(flavor = "multi_thread")]
async fn a_selector_that_matches_no_flow_is_a_usage_error_and_sends_nothing() {
    let server = staging().await;
    let suite = tagged_suite(&server).await;
    let reports = Reports::new();
    let flows = "flows of the suite: checkout, payments";
    let tags = "tags of the suite: money, shop";
    let cases: [(&str, &[&str], String); 4] = [
        (
            "run",
            &["--flow", "checkout", "--flow", "paymnets"],
            format!("error: --flow 'paymnets' matches no flow (did you mean `payments`?); {flows}"),
        ),
        (
            "run",
            &["--skip-tag", "slow"],
            format!("error: --skip-tag 'slow' matches no flow; {tags}"),
        ),
        (
            "check",
            &["--tag", "monye"],
            format!("error: --tag 'monye' matches no flow (did you mean `money`?); {tags}"),
        ),
        (
            "list",
            &["--flow", "refunds"],
            format!("error: --flow 'refunds' matches no flow; {flows}"),
        ),
    ];
    for (command, selection, message) in cases {
        let mut cmd = if command == "run" {
            reports.run(&suite, &[])
        } else {
            let mut cmd = preflight();
            cmd.arg(command).arg(suite.path());
            cmd
        };
        cmd.args(selection);
        let out = output(cmd).await;
        let context = format!("{command} {selection:?}\n{}", shown(&out));
        assert_eq!(out.status.code(), Some(2), "{context}");
        let stderr = text(&out.stderr);
        assert!(stderr.lines().any(|l| l == message), "{context}");
        assert_eq!(last_line(&stderr), "nothing to run", "{context}");
        assert!(!text(&out.stdout).contains("GATE"), "{context}");
    }
    assert!(
        !reports.path("r.json").exists(),
        "no report when nothing ran"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_validates_the_selection_it_is_given() {
    let server = staging().await;
    let suite = tagged_suite(&server).await;
    let mut cmd = preflight();
    cmd.arg("check").arg(suite.path()).args(["--tag", "money"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(
        last_line(&text(&out.stdout)),
        "suite valid: shop (1 flow, 1 step, 0 setup steps)"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Nothing critical, no free pass
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn non_critical_flows_alone_are_judged_as_critical() {
    // Nothing listens on staging: `--tag browse` picks only the non-critical flow.
    let base = format!("http://127.0.0.1:{}", common::closed_port());
    let suite = suite(&base, &[("checkout", "/ok")]);
    suite.write(
        "browse.toml",
        "critical = false\ntags = [\"browse\"]\n[[step]]\nname = \"get\"\npath = \"/ok\"\n",
    );
    let reports = Reports::new();
    let out = output(reports.run(&suite, &["--tag", "browse"])).await;
    let context = shown(&out);
    assert_eq!(out.status.code(), Some(1), "{context}");
    assert_eq!(
        last_line(&text(&out.stdout)),
        "GATE FAILED: 1 of 1 flow failed",
        "{context}"
    );
    assert!(
        text(&out.stderr).contains("no critical flow selected"),
        "{context}"
    );
    let json = read_json(&reports.path("r.json"));
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["flows"][0]["name"], "browse");
    assert_eq!(json["flows"][0]["outcome"], "failed");
    assert_eq!(json["flows"][0]["critical"], true);
}

// ---------------------------------------------------------------------------------------------
// Cleanups
// ---------------------------------------------------------------------------------------------

const TOKEN: &str = "tok-setup-4711";

#[tokio::test(flavor = "multi_thread")]
async fn a_cleanup_uses_a_setup_capture() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "token": TOKEN })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/things"))
        .respond_with(ResponseTemplate::new(201).set_body_string("made"))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/things"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let suite = Suite::new(&format!(
        "base_url = \"{}\"\n\n[[setup]]\nname = \"log in\"\nmethod = \"POST\"\npath = \"/login\"\ncapture = {{ token = \"$.token\" }}\n",
        server.uri()
    ));
    suite.write(
        "things.toml",
        "[[step]]\nname = \"make\"\nmethod = \"POST\"\npath = \"/things\"\nheaders = { authorization = \"Bearer {{ token }}\" }\n\n[[cleanup]]\nname = \"tidy\"\nmethod = \"DELETE\"\npath = \"/things\"\nheaders = { authorization = \"Bearer {{ token }}\" }\n",
    );
    let reports = Reports::new();
    let out = output(reports.run(&suite, &[])).await;
    let context = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{context}");
    assert!(
        last_line(&text(&out.stdout)).starts_with("GATE PASSED: 1 flow, 0 failed, 0 warnings, "),
        "{context}"
    );
    let json = read_json(&reports.path("r.json"));
    let tidy = &json["flows"][0]["steps"][1];
    assert_eq!(
        (&tidy["name"], &tidy["outcome"], &tidy["status"]),
        (&json!("tidy"), &json!("passed"), &json!(204)),
        "{tidy:#}"
    );
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cleanup_that_cannot_run_for_a_missing_capture_is_a_warning() {
    let server = staging().await;
    Mock::given(method("POST"))
        .and(path("/carts"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": "c-1" })))
        .mount(&server)
        .await;
    let suite = suite(&server.uri(), &[("health", "/ok")]);
    let cleanup = "[[cleanup]]\nname = \"delete cart\"\nmethod = \"DELETE\"\npath = \"/carts/{{ cart_id }}\"\n";
    // A capture typo: the cart is made, its id never captured, the cleanup cannot delete it.
    suite.write(
        "cart.toml",
        format!("critical = false\n[[step]]\nname = \"create cart\"\nmethod = \"POST\"\npath = \"/carts\"\ncapture = {{ cart_id = \"$.ID\" }}\n\n{cleanup}"),
    );
    // The step that would make the cart never runs: nothing to delete, nothing to warn about.
    suite.write(
        "order.toml",
        format!("critical = false\n[[step]]\nname = \"home\"\npath = \"/broken\"\n\n[[step]]\nname = \"create cart\"\nmethod = \"POST\"\npath = \"/carts\"\ncapture = {{ cart_id = \"$.id\" }}\n\n{cleanup}"),
    );
    let reports = Reports::new();
    let out = output(reports.run(&suite, &[])).await;
    let context = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{context}");
    let stdout = text(&out.stdout);
    assert!(
        last_line(&stdout).starts_with("GATE PASSED: 3 flows, 0 failed, 3 warnings, "),
        "{context}"
    );
    let warning = "cleanup failed: flow 'cart', step 'delete cart': capture `cart_id` never \
                   happened: the cleanup could not run, test data may be left behind";
    assert!(stdout.contains(warning), "{context}");
    let json = read_json(&reports.path("r.json"));
    assert_eq!(
        warning_messages(&json),
        json!([
            "non-critical flow 'cart' failed at step 'create cart'",
            warning,
            "non-critical flow 'order' failed at step 'home'"
        ])
    );
    let skipped = &json["flows"][2]["steps"][2];
    assert_eq!(skipped["outcome"], "skipped", "{skipped:#}");
    let deletes = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .count();
    assert_eq!(deletes, 0);
}

// ---------------------------------------------------------------------------------------------
// Aborted flows keep their results
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_cut_off_by_the_deadline_keeps_its_results_and_warns_of_its_cleanup() {
    // Both steps are done (the second got a 502) and the cleanup hangs when the deadline
    // passes; the cleanup's grace time runs out.
    let server = RawServer::start(|head: String| async move {
        let status = if head.starts_with("GET /a ") {
            "200 OK"
        } else if head.starts_with("GET /b ") {
            "502 Bad Gateway"
        } else {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "204 No Content"
        };
        format!("HTTP/1.1 {status}\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream")
            .into_bytes()
    })
    .await;
    let suite = Suite::new(&format!(
        "base_url = \"{}\"\ndeadline = \"1s\"\ntimeout = \"60s\"\n",
        server.url
    ));
    suite.write(
        "shop.toml",
        "[[step]]\nname = \"a\"\npath = \"/a\"\n\n[[step]]\nname = \"b\"\npath = \"/b\"\n\n[[cleanup]]\nname = \"tidy\"\nmethod = \"DELETE\"\npath = \"/data\"\n",
    );
    let reports = Reports::new();
    let out = output(reports.run(&suite, &[])).await;
    let context = shown(&out);
    assert_eq!(out.status.code(), Some(1), "{context}");
    let json = read_json(&reports.path("r.json"));
    let steps = &json["flows"][0]["steps"];
    assert_eq!(
        (&steps[0]["outcome"], &steps[0]["status"]),
        (&json!("passed"), &json!(200)),
        "{context}"
    );
    assert_eq!(
        (&steps[1]["outcome"], &steps[1]["status"]),
        (&json!("failed"), &json!(502)),
        "{context}"
    );
    let unfinished = "cleanup did not finish: test data may be left behind";
    assert_eq!(
        (&steps[2]["outcome"], &steps[2]["error"]),
        (&json!("failed"), &json!(unfinished)),
        "{context}"
    );
    assert_eq!(
        warning_messages(&json),
        json!([format!("{unfinished} (flow 'shop', step 'tidy')")])
    );
    assert_eq!(
        json["reasons"],
        json!(["deadline 1s exceeded", "flow 'shop' failed at step 'b'"])
    );
    assert!(text(&out.stdout).contains("502"), "{context}");
}

/// The messages of the report's warnings, in order.
fn warning_messages(report: &serde_json::Value) -> serde_json::Value {
    let warnings = report["warnings"].as_array().expect("warnings is an array");
    warnings.iter().map(|w| w["message"].clone()).collect()
}
