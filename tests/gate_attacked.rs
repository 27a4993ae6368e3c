//! Ways to make the gate lie or hang, found by attacking it, each through the binary: a report
//! that said PASS while the exit code was 1, an empty expected version that passed, a signal
//! ignored while reports were written, a flaky cleanup that failed the gate, flow files that
//! were silently not run, `/dev/stdout` mixing a report with the summary.

mod binary;
mod hermetic;

use binary::{mkfifo, preflight, suite};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PROBE: &str = "[[step]]\nname = \"ok\"\npath = \"/ok\"\n";

async fn ok_staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// A report whose rename fails (here: an immutable target) fails the gate, and the step
/// summary, written through after every file is in place, says so too: never PASS.
#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_cannot_be_renamed_never_leaves_a_pass_behind() {
    let server = ok_staging().await;
    let dir = suite(&server.uri(), "", &[("ok.toml", PROBE)]);
    let out = tempfile::tempdir().unwrap();
    let locked = out.path().join("locked.xml");
    std::fs::write(&locked, "old").unwrap();
    let chattr = Command::new("chattr").arg("+i").arg(&locked).status();
    if !chattr.is_ok_and(|s| s.success()) {
        eprintln!("skipped: this file system cannot make a file immutable");
        return;
    }
    let summary = out.path().join("summary.md");
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(dir.path())
        .arg("--junit")
        .arg(&locked)
        .arg("--json")
        .arg(out.path().join("r.json"))
        .env("GITHUB_STEP_SUMMARY", &summary);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let _ = Command::new("chattr").arg("-i").arg(&locked).status();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("GATE FAILED: cannot write JUnit report"),
        "{stdout}"
    );
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.starts_with("## ❌ preflight: GATE FAILED"),
        "{summary}"
    );
    let json = std::fs::read_to_string(out.path().join("r.json")).unwrap();
    assert!(json.contains("\"verdict\": \"fail\""), "{json}");
}

/// An expected version that renders to nothing proves nothing: the gate fails, and a
/// literal empty `expect` is an invalid suite.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_expected_version_never_passes() {
    let server = MockServer::start().await;
    Mock::given(path("/version"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"commit": ""})))
        .mount(&server)
        .await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let settings =
        "[version]\npath = \"/version\"\njson = \"$.commit\"\nexpect = \"{{ env.GIT_SHA }}\"\n";
    let dir = suite(&server.uri(), settings, &[("ok.toml", PROBE)]);
    let mut cmd = preflight();
    cmd.arg("run").arg(dir.path()).env("GIT_SHA", "");
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("the expected version is empty"), "{stdout}");

    let literal = "[version]\npath = \"/version\"\njson = \"$.commit\"\nexpect = \"\"\n";
    let dir = suite(&server.uri(), literal, &[("ok.toml", PROBE)]);
    let output = preflight().arg("check").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`expect` is empty"), "{stderr}");
}

/// Once the run is over, a signal ends the process at once with 130, even while a report
/// waits for a FIFO that nobody reads; and a FIFO as the step summary is waited for a bounded
/// time, never forever.
#[tokio::test(flavor = "multi_thread")]
async fn reports_never_outlast_a_signal_or_a_missing_reader() {
    let server = ok_staging().await;
    let dir = suite(&server.uri(), "", &[("ok.toml", PROBE)]);
    let fifos = tempfile::tempdir().unwrap();
    let fifo = fifos.path().join("report.fifo");
    mkfifo(&fifo);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_preflight"))
        .arg("run")
        .arg(dir.path())
        .arg("--json")
        .arg(&fifo)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("PREFLIGHT_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run takes a moment; the report then waits up to 10 s for a reader.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));

    let summary = fifos.path().join("summary.fifo");
    mkfifo(&summary);
    let started = Instant::now();
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(dir.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .timeout(Duration::from_secs(40));
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "after {:?}: {stdout}",
        started.elapsed()
    );
    assert!(stdout.contains("cannot write step summary"), "{stdout}");
}

/// A cleanup never changes the verdict, flaky or not, even with `fail_on_flaky`.
#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_cleanup_does_not_fail_the_gate() {
    let server = ok_staging().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let settings = "[retry]\nattempts = 3\nbackoff = \"10ms\"\n[gate]\nfail_on_flaky = true\n";
    let flow =
        format!("{PROBE}[[cleanup]]\nname = \"tidy\"\nmethod = \"DELETE\"\npath = \"/things/1\"\n");
    let dir = suite(&server.uri(), settings, &[("ok.toml", &flow)]);
    let mut cmd = preflight();
    cmd.arg("run").arg(dir.path()).arg("--verbose");
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("cleanup: tidy 204"), "{stdout}");
}

/// A flow file with an upper-case `.TOML` ending is a flow; hidden ones are skipped, as the
/// README says, and `list` shows which is which.
#[test]
fn flow_files_are_found_whatever_the_case_of_their_ending() {
    let dir = suite(
        "http://127.0.0.1:9",
        "",
        &[("UP.TOML", PROBE), (".hidden.toml", PROBE)],
    );
    let output = preflight().arg("list").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("UP (UP.TOML)"), "{stdout}");
    assert!(!stdout.contains("hidden"), "{stdout}");
}

/// `/dev/stdout` is standard output: the JSON report alone on it, the summary on stderr,
/// and no second report there.
#[tokio::test(flavor = "multi_thread")]
async fn dev_stdout_is_standard_output() {
    let server = ok_staging().await;
    let dir = suite(&server.uri(), "", &[("ok.toml", PROBE)]);
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(dir.path())
        .args(["--json", "/dev/stdout"]);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is the JSON report alone");
    assert_eq!(report["verdict"], "pass");
    assert!(String::from_utf8_lossy(&output.stderr).contains("GATE PASSED"));

    let output = preflight()
        .arg("run")
        .arg(dir.path())
        .args(["--json", "/dev/stdout", "--junit", "-"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// A staging on 127.0.0.1 that answers every request with `response` (status line, headers,
/// body, written as they are) and closes the connection: a server that repeats a header line,
/// which a mock server might merge.
async fn raw_staging(response: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A `[version]` header sent on two lines, the expected value first and an old one after,
/// is read whole (joined with ", ", as a step's header expectation reads it), so the check
/// fails: reading only the first line passed the gate on a staging that also says it runs
/// the old release.
#[tokio::test(flavor = "multi_thread")]
async fn a_version_header_repeated_with_another_value_never_passes() {
    let base = raw_staging(
        "HTTP/1.1 200 OK\r\nX-Version: 4f2a9c1\r\nX-Version: 0ld0ld0\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let settings = "[version]\npath = \"/version\"\nheader = \"x-version\"\nexpect = \"4f2a9c1\"\n";
    let dir = suite(&base, settings, &[("ok.toml", PROBE)]);
    let mut cmd = preflight();
    cmd.arg("run").arg(dir.path()).arg("--verbose");
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("staging runs 4f2a9c1, 0ld0ld0, expected 4f2a9c1"),
        "{stdout}"
    );
    assert!(!stdout.contains("GATE PASSED"), "{stdout}");
    assert!(!stderr.contains("GATE PASSED"), "{stderr}");
}
