//! What the attack on the HTML report and baselines found, each pinned down through the real
//! binary: a report reader that stops reading, a signal while reports are written, a hostile
//! baseline, hostile saved reports, bidirectional text.

mod binary;
mod hermetic;

use binary::{echo_staging, forms, preflight, suite};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A suite of `n` one-step flows against `url`: its JSON report is far over a pipe's buffer.
fn many_flows(url: &str, n: usize) -> tempfile::TempDir {
    let flows: Vec<(String, String)> = (0..n)
        .map(|i| {
            let text = format!(
                "name = \"flow number {i} with a fairly long name to make the report large\"\n\
                 [[step]]\nname = \"step of flow {i}\"\npath = \"/p/{i}\"\n"
            );
            (format!("f{i:04}.toml"), text)
        })
        .collect();
    let refs: Vec<(&str, &str)> = flows
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    suite(url, "", &refs)
}

async fn ok_staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// `preflight run SUITE --quiet`, as the binary is run for a user, the rest to add.
/// A staging that answers 200 after `delay`: a run stays in flight.
async fn slow_staging(delay: Duration) -> MockServer {
    let staging = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(delay))
        .mount(&staging)
        .await;
    staging
}

/// Waits (up to 5 s) until `staging` got its first request: the run is under way.
async fn first_request(staging: &MockServer) {
    for _ in 0..100 {
        if !staging.received_requests().await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reader for `fifo` that takes everything and throws it away.
fn drain(fifo: &Path) -> std::process::Child {
    std::process::Command::new("cat")
        .arg(fifo)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn quiet_run(suite: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = binary::process();
    cmd.arg("run").arg(suite).arg("--quiet");
    cmd
}

/// Waits up to `limit` for `child` to end (killing it past that): its exit status and what it
/// wrote to standard error, when that was piped.
async fn ended_within(
    mut child: std::process::Child,
    limit: Duration,
) -> Option<(std::process::ExitStatus, String)> {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    pipe.read_to_string(&mut stderr).unwrap();
                }
                return Some((status, stderr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    })
    .await
    .unwrap()
}

/// A FIFO that a process opens for reading and never reads.
fn stalled_fifo(dir: &Path) -> (std::path::PathBuf, std::process::Child) {
    let fifo = dir.join("fifo");
    binary::mkfifo(&fifo);
    let reader = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec sleep 60 < '{}'", fifo.display()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    (fifo, reader)
}

#[tokio::test]
async fn a_report_reader_that_stops_reading_fails_the_gate_instead_of_hanging_it() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 300);
    let out = tempfile::tempdir().unwrap();
    let (fifo, mut reader) = stalled_fifo(out.path());
    let html = out.path().join("r.html");
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(dir.path())
        .arg("--quiet")
        .arg("--json")
        .arg(&fifo)
        .arg("--html")
        .arg(&html)
        .timeout(Duration::from_secs(40));
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let _ = reader.kill();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the reader took nothing for 10s"),
        "{stderr}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("GATE FAILED"),
        "the page agrees with the exit code"
    );
    assert!(!page.contains("GATE PASSED"));
}

/// Starts a run of 300 flows whose JSON report goes to a FIFO that is opened and never read,
/// and returns once its HTML report is in place (renamed before the FIFO is written, whose
/// write then stalls): the run is over, its reports being written.
async fn run_stalled_on_a_fifo(
    out: &Path,
    stderr: impl Into<Stdio>,
) -> (std::process::Child, std::process::Child, std::path::PathBuf) {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 300);
    let (fifo, reader) = stalled_fifo(out);
    let html = out.join("r.html");
    let child = quiet_run(dir.path())
        .arg("--json")
        .arg(&fifo)
        .arg("--html")
        .arg(&html)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if html.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(html.exists(), "the HTML was written first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    (child, reader, html)
}

#[tokio::test]
async fn a_signal_while_reports_are_written_leaves_no_report_saying_pass() {
    let out = tempfile::tempdir().unwrap();
    let (mut child, mut reader, html) = run_stalled_on_a_fifo(out.path(), Stdio::null()).await;
    binary::signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    let _ = reader.kill();
    assert_eq!(status.code(), Some(130));
    assert!(
        !html.exists(),
        "no report stays beside exit 130 to say PASS"
    );
}

/// A report to standard output whose reader stops reading fails the gate after 10 s, and the
/// process does end: the writing thread left blocked holds standard output's lock, which the
/// exit must not wait for (attack finding: it hung for good).
#[tokio::test]
async fn a_report_to_standard_output_whose_reader_stops_reading_still_ends_the_gate() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 300);
    let (reader, writer) = std::io::pipe().unwrap();
    let child = quiet_run(dir.path())
        .arg("--json")
        .arg("-")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ended = ended_within(child, Duration::from_secs(40)).await;
    drop(reader);
    let (status, stderr) = ended.expect("the gate ended within 40 s");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the reader took nothing for 10s"),
        "{stderr}"
    );
}

/// A signal as the run ends gives either exit 130 with no report kept, or the verdict's exit
/// with every report in place: never exit 0 with a report removed (attack finding: the
/// signal's removal of the reports raced the exit, and won 4-43% of the time).
#[tokio::test]
async fn a_signal_as_the_run_ends_never_leaves_exit_0_without_its_reports() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 1);
    let suite = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        for attempt in 0..30u64 {
            let out = tempfile::tempdir().unwrap();
            let (junit, json) = (out.path().join("r.xml"), out.path().join("r.json"));
            let mut child = binary::process()
                .arg("run")
                .arg(&suite)
                .arg("--junit")
                .arg(&junit)
                .arg("--json")
                .arg(&json)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            while stdout.read_line(&mut line).unwrap() > 0 && !line.contains("GATE") {
                line.clear();
            }
            // Sent 0 to 1.5 ms after the verdict is printed: across the exit.
            std::thread::sleep(Duration::from_micros(50 * attempt));
            // SAFETY: a signal to the child, which is not reaped yet.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let status = child.wait().unwrap();
            let kept = [junit.exists(), json.exists()];
            match status.code() {
                Some(0) => assert_eq!(kept, [true, true], "attempt {attempt}: exit 0"),
                Some(130) => assert_eq!(kept, [false, false], "attempt {attempt}: exit 130"),
                other => panic!("attempt {attempt}: exit {other:?}"),
            }
        }
    })
    .await
    .unwrap();
}

/// A report that would pass the file size limit (`ulimit -f`) fails the gate like any report
/// that cannot be written, and leaves no temporary file (attack finding: the signal killed
/// the process, exit 153, the temporary file left behind).
#[tokio::test]
async fn a_report_over_the_file_size_limit_fails_the_gate_and_leaves_nothing() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 300);
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("r.json");
    let mut cmd = quiet_run(dir.path());
    cmd.arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    with_file_size_limit(&mut cmd, 8192);
    let output = finished(cmd).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write JSON report"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Runs `cmd` with a file size limit of `bytes` (`ulimit -f`).
fn with_file_size_limit(cmd: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A step summary that cannot be appended whole is taken back: the gate fails for it, and no
/// summary cut short says PASS above it (attack finding: "GATE PASSED" was left, cut off).
#[tokio::test]
async fn a_step_summary_cut_short_is_taken_back() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 3);
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    let earlier = format!("{}\n", "x".repeat(900));
    std::fs::write(&summary, &earlier).unwrap();
    let mut cmd = quiet_run(dir.path());
    cmd.env("GITHUB_STEP_SUMMARY", &summary)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    with_file_size_limit(&mut cmd, 1024);
    let output = finished(cmd).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write step summary"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), earlier);
}

/// With the report on standard output, a summary that cannot be written to standard error is
/// no panic: the exit code and the report say the verdict (attack finding: exit 101).
#[tokio::test]
async fn a_summary_that_cannot_be_written_to_standard_error_is_no_panic() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 1);
    let mut cmd = binary::process();
    cmd.arg("run")
        .arg(dir.path())
        .arg("--json")
        .arg("-")
        .stderr(dev_full());
    let output = finished(cmd).await;
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"], "pass", "{report}");
}

/// A report that cannot be written, with standard error unwritable too, is exit 1, no panic
/// (attack finding: the error line panicked, exit 101).
#[tokio::test]
async fn a_report_that_cannot_be_written_with_standard_error_unwritable_is_exit_1() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 1);
    let mut cmd = quiet_run(dir.path());
    cmd.arg("--json")
        .arg("/dev/full")
        .stdout(Stdio::null())
        .stderr(dev_full());
    let output = finished(cmd).await;
    assert_eq!(output.status.code(), Some(1));
}

/// A signal while reports are written ends the process with 130 even when standard error is a
/// full pipe nobody reads (attack finding: the message blocked while the exit's lock was held,
/// and the process hung until killed).
#[tokio::test]
async fn a_signal_while_reports_are_written_ends_130_even_when_standard_error_is_full() {
    let (reader, writer) = full_stderr();
    let out = tempfile::tempdir().unwrap();
    let (child, mut fifo_reader, html) = run_stalled_on_a_fifo(out.path(), writer).await;
    binary::signal(child.id(), "TERM");
    let ended = ended_within(child, Duration::from_secs(10)).await;
    let _ = fifo_reader.kill();
    let _ = fifo_reader.wait();
    drop(reader);
    let (status, _) = ended.expect("ended within 10 s");
    assert_eq!(status.code(), Some(130));
    assert!(!html.exists(), "no report stays beside exit 130");
}

/// A run that passes, appends its step summary to `summary`, then fails: its JSON report goes
/// to a standard output that cannot be written.
fn failing_after_the_summary(suite: &Path, summary: &Path) -> std::process::Command {
    let mut cmd = quiet_run(suite);
    cmd.arg("--json")
        .arg("-")
        .env("GITHUB_STEP_SUMMARY", summary)
        .stdout(dev_full())
        .stderr(Stdio::null());
    cmd
}

/// The step summary ends with the verdict the gate ends with: appended before a report on
/// standard output that then fails, it is appended again, saying it replaces the one above
/// (attack finding: it said GATE PASSED beside exit 1).
#[tokio::test]
async fn a_step_summary_follows_a_verdict_changed_after_it() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 1);
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    std::fs::write(&summary, "earlier\n").unwrap();
    let output = finished(failing_after_the_summary(dir.path(), &summary)).await;
    assert_eq!(output.status.code(), Some(1));
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("earlier\n"), "{text}");
    let (before, last) = text.split_once("this one replaces it").expect("said");
    assert!(before.contains("GATE PASSED"), "{text}");
    assert!(last.contains("GATE FAILED"), "{text}");
    assert!(!last.contains("GATE PASSED"), "{text}");
}

/// When the summary appended again (the verdict changed after it) does not fit (a full disk),
/// the one that no longer holds is cut back: it is never left last beside exit 1 (attack
/// finding).
#[tokio::test]
async fn a_step_summary_that_no_longer_holds_is_cut_back_when_nothing_can_follow_it() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 1);
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    let run = |limit: Option<u64>| {
        let mut cmd = failing_after_the_summary(dir.path(), &summary);
        if let Some(bytes) = limit {
            with_file_size_limit(&mut cmd, bytes);
        }
        cmd
    };
    // Once without a limit, to learn how long the first summary is.
    std::fs::write(&summary, "").unwrap();
    assert_eq!(finished(run(None)).await.status.code(), Some(1));
    let first = std::fs::read_to_string(&summary)
        .unwrap()
        .find("\n> The verdict changed")
        .expect("appended again") as u64;
    let earlier = "earlier\n";
    std::fs::write(&summary, earlier).unwrap();
    let limit = earlier.len() as u64 + first + first / 2;
    let output = finished(run(Some(limit))).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), earlier);
}

/// A signal while a report is written to standard output ends the step summary appended
/// before it with a note that it does not hold: exit 130 leaves nothing that says PASS last
/// (attack finding).
#[tokio::test]
async fn a_signal_ends_the_step_summary_with_a_note_that_it_does_not_hold() {
    use std::os::fd::AsRawFd;
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 300);
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    std::fs::write(&summary, "earlier\n").unwrap();
    // A small pipe nobody reads: the JSON report on standard output stalls in it.
    let (reader, writer) = std::io::pipe().unwrap();
    // SAFETY: fcntl on a pipe this test owns.
    unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    let mut child = quiet_run(dir.path())
        .arg("--json")
        .arg("-")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::fs::read_to_string(&summary)
            .unwrap()
            .contains("GATE PASSED")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.contains("GATE PASSED"),
        "appended before the report: {text}"
    );
    binary::signal(child.id(), "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    drop(reader);
    assert_eq!(status.code(), Some(130));
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("earlier\n"), "{text}");
    let (_, last) = text.rsplit_once("## ").unwrap();
    assert!(
        last.starts_with("⛔ preflight: interrupted") && last.contains("does not hold"),
        "{text}"
    );
}

/// A file whose every write fails: the device that is always full.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

/// Runs `cmd` to its end, off the test's runtime (the staging server runs on it).
async fn finished(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// `n` shard reports of `suite`, written into `into` by `run --shard K/n`, each passing.
async fn shard_reports(suite: &Path, into: &Path, n: usize) -> Vec<std::path::PathBuf> {
    let mut shards = Vec::new();
    for k in 1..=n {
        let shard = into.join(format!("shard-{k}.json"));
        let mut cmd = quiet_run(suite);
        cmd.arg("--shard")
            .arg(format!("{k}/{n}"))
            .arg("--json")
            .arg(&shard);
        let ran = finished(cmd).await;
        assert_eq!(ran.status.code(), Some(0), "shard {k}/{n}");
        shards.push(shard);
    }
    shards
}

/// A standard error nobody reads: writing to it fails (`EPIPE`).
fn closed_stderr() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

/// A signal stops the run, and it ends 130, even when standard error cannot be written
/// (attack finding: the message about stopping panicked before the run was stopped, and the
/// gate passed).
#[tokio::test]
async fn a_signal_stops_the_run_even_when_standard_error_cannot_be_written() {
    let staging = slow_staging(Duration::from_secs(3)).await;
    let dir = many_flows(&staging.uri(), 1);
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("r.json");
    let mut child = quiet_run(dir.path())
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(closed_stderr())
        .spawn()
        .unwrap();
    first_request(&staging).await;
    binary::signal(child.id(), "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let report = binary::read_json(&json);
    assert_ne!(report["verdict"], "pass", "{report}");
}

/// A signal while the reports are written removes those in place and ends 130, even when
/// standard error cannot be written and the report being written then goes through (attack
/// finding: the message panicked after the removal, and the gate went on to exit 0).
#[tokio::test]
async fn a_signal_while_reports_are_written_ends_130_even_when_standard_error_cannot_be_written() {
    let out = tempfile::tempdir().unwrap();
    let (mut child, mut reader, html) = run_stalled_on_a_fifo(out.path(), closed_stderr()).await;
    let fifo = out.path().join("fifo");
    binary::signal(child.id(), "TERM");
    // The report waiting for the FIFO's reader then goes through.
    let mut drain = drain(&fifo);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let _ = reader.kill();
    let _ = reader.wait();
    let _ = drain.kill();
    let _ = drain.wait();
    assert_eq!(status.code(), Some(130));
    assert!(!html.exists(), "no report stays beside exit 130");
}

/// A signal that comes before the process ends is never followed by exit 0, even when the
/// reports get written before the task that acts on the signal runs (CI finding: on a busy
/// machine the report waited on went through first, and the gate exited 0).
#[tokio::test]
async fn a_signal_that_came_before_the_reports_were_written_is_never_exit_0() {
    // The race is lost about one time in ten by a gate that waits for the signal's task.
    for _ in 0..5 {
        signal_races_the_end_of_the_reports().await;
    }
}

async fn signal_races_the_end_of_the_reports() {
    let out = tempfile::tempdir().unwrap();
    let (mut child, mut reader, html) = run_stalled_on_a_fifo(out.path(), Stdio::null()).await;
    let fifo = out.path().join("fifo");
    // Stopped, the process takes the signal only when it goes on, at the moment the report it
    // waits on can go through: its task and the end of the reports race.
    binary::signal(child.id(), "STOP");
    binary::signal(child.id(), "TERM");
    let mut drain = drain(&fifo);
    tokio::time::sleep(Duration::from_millis(200)).await;
    binary::signal(child.id(), "CONT");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let _ = reader.kill();
    let _ = reader.wait();
    let _ = drain.kill();
    let _ = drain.wait();
    assert_eq!(status.code(), Some(130));
    assert!(!html.exists(), "no report stays beside exit 130");
}

/// A signal while a report waits for its FIFO's reader leaves no temporary file of the other
/// reports (attack finding: only the JSON report's was removed).
#[tokio::test]
async fn a_signal_while_a_report_waits_for_its_reader_leaves_no_temporary_file() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 3);
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("fifo");
    binary::mkfifo(&fifo);
    let mut child = quiet_run(dir.path())
        .arg("--junit")
        .arg(out.path().join("r.xml"))
        .arg("--markdown")
        .arg(out.path().join("r.md"))
        .arg("--html")
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The FIFO has no reader: its report waits up to 10 s for one, the others staged.
    let staged = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "fifo")
            .count()
    };
    for _ in 0..100 {
        if staged(out.path()) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    binary::signal(child.id(), "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "fifo")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn what_a_baseline_says_is_masked_and_unanswered_steps_are_not_compared() {
    let secret = "hunter2hunter2";
    let staging = echo_staging().await;
    let flow = r#"
name = "leaky"
[[step]]
name = "one"
path = "/one"
headers = { x-tok = "{{ secret.PREFLIGHT_TEST_SECRET }}" }
"#;
    let dir = suite(&staging.uri(), "", &[("leaky.toml", flow)]);
    let out = tempfile::tempdir().unwrap();
    let before = out.path().join("before.json");
    let run = |args: Vec<String>| {
        let mut cmd = preflight();
        cmd.arg("run")
            .arg(dir.path())
            .args(args)
            .env("PREFLIGHT_TEST_SECRET", secret);
        cmd
    };
    let mut first = run(vec!["--json".into(), before.display().to_string()]);
    let _ = tokio::task::spawn_blocking(move || first.output().unwrap()).await;
    // A baseline that holds the value in clear (written before it became a secret, say).
    let mut doctored: serde_json::Value = binary::read_json(&before);
    doctored["started_at"] = format!("{secret} <b>").into();
    let mut gone = doctored["flows"][0].clone();
    gone["name"] = format!("gone {secret}").into();
    doctored["flows"].as_array_mut().unwrap().push(gone);
    std::fs::write(&before, doctored.to_string()).unwrap();
    let (json, html, md) = (
        out.path().join("r.json"),
        out.path().join("r.html"),
        out.path().join("r.md"),
    );
    let args: Vec<String> = [
        "--baseline",
        before.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut second = run(args);
    let output = tokio::task::spawn_blocking(move || second.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    for text in [
        std::fs::read_to_string(&json).unwrap(),
        std::fs::read_to_string(&html).unwrap(),
        std::fs::read_to_string(&md).unwrap(),
        stdout,
    ] {
        for form in forms(secret) {
            assert!(!text.contains(&form), "`{form}` shows in:\n{text}");
        }
    }
    let report: serde_json::Value = binary::read_json(&json);
    assert_eq!(
        report["baseline"]["gone_flows"],
        serde_json::json!(["gone ***"])
    );
}

#[tokio::test]
async fn a_step_that_timed_out_is_no_latency_regression() {
    let flow = "name = \"f\"\n[[step]]\nname = \"slow\"\npath = \"/x\"\ntimeout = \"300ms\"\n";
    let dir = suite("http://unused.invalid", "", &[("f.toml", flow)]);
    let out = tempfile::tempdir().unwrap();
    let before = out.path().join("before.json");
    let now = out.path().join("now.json");
    let fast = ok_staging().await;
    let slow = slow_staging(Duration::from_secs(5)).await;
    for (server, json, extra) in [(&fast, &before, vec![]), (&slow, &now, vec!["--baseline"])] {
        let mut cmd = preflight();
        cmd.arg("run")
            .arg(dir.path())
            .args(["--base-url", &server.uri(), "--json"])
            .arg(json)
            .args(&extra);
        if !extra.is_empty() {
            cmd.arg(&before);
        }
        let _ = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await;
    }
    let report: serde_json::Value = binary::read_json(&now);
    assert_eq!(
        report["verdict"], "fail",
        "the timeout fails the gate itself"
    );
    assert_eq!(
        report["baseline"]["steps"],
        serde_json::json!([]),
        "{report}"
    );
    let reasons = report["reasons"].to_string();
    assert!(!reasons.contains("slower than the baseline"), "{reasons}");
}

#[test]
fn a_saved_report_whose_verdict_is_fail_is_never_green_in_junit() {
    let dir = tempfile::tempdir().unwrap();
    let report = serde_json::json!({
        "schema": 1, "tool": "preflight", "version": "0.1.0", "suite": "s",
        "base_url": null, "started_at": "2026-12-01T00:00:00Z", "duration_ms": 1,
        "verdict": "fail", "reasons": [], "gate_reasons": [],
        "summary": {"flows": 0, "passed": 0, "failed": 0, "warned": 0, "skipped": 0, "flaky": 0,
                    "latency_ms": {"p50": null, "p95": null, "max": null}},
        "wait": null, "integrity": [], "deployed_version": null, "setup": [], "flows": [],
        "warnings": [], "headline": "GATE FAILED"
    });
    let path = dir.path().join("r.json");
    std::fs::write(&path, report.to_string()).unwrap();
    let output = preflight()
        .arg("report")
        .arg(&path)
        .args(["--junit", "-"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let junit = String::from_utf8_lossy(&output.stdout);
    assert!(junit.contains("<failure"), "{junit}");
}

#[tokio::test]
async fn bidirectional_and_invisible_characters_are_written_as_escapes() {
    let staging = ok_staging().await;
    let flow =
        "name = \"pay\u{202E}lapyap\"\n[[step]]\nname = \"zero\u{200B}width\"\npath = \"/x\"\n";
    let dir = suite(&staging.uri(), "", &[("f.toml", flow)]);
    let out = tempfile::tempdir().unwrap();
    let (html, md) = (out.path().join("r.html"), out.path().join("r.md"));
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(dir.path())
        .arg("--verbose")
        .arg("--html")
        .arg(&html)
        .arg("--markdown")
        .arg(&md);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    for text in [
        stdout,
        std::fs::read_to_string(&html).unwrap(),
        std::fs::read_to_string(&md).unwrap(),
    ] {
        assert!(
            !text.contains('\u{202E}') && !text.contains('\u{200B}'),
            "{text}"
        );
        assert!(text.contains("\\u{202e}"), "{text}");
    }
}

/// A standard error that is full and never read: saying anything on it blocks.
fn full_stderr() -> (std::io::PipeReader, std::io::PipeWriter) {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let (reader, mut writer) = std::io::pipe().unwrap();
    // SAFETY: fcntl on a pipe this test owns.
    let size = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(size > 0);
    writer.write_all(&vec![b'x'; size as usize]).unwrap();
    (reader, writer)
}

/// What is left in `dir` but the FIFO `fifo`.
fn left_beside(dir: &Path, fifo: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != fifo)
        .collect()
}

/// A signal while the reports are written keeps every report out, also those the run goes on
/// to write while the signal's exit waits for a full standard error (attack finding: the
/// HTML and Markdown reports were renamed into place after the sweep and said GATE PASSED
/// beside exit 130).
#[tokio::test]
async fn no_report_is_put_in_place_after_a_signal_swept_them() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 3);
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("junit.fifo");
    binary::mkfifo(&fifo);
    let (stderr_reader, stderr) = full_stderr();
    // The FIFO is opened first, and waits for a reader; the other reports come after it.
    let child = quiet_run(dir.path())
        .arg("--junit")
        .arg(&fifo)
        .arg("--html")
        .arg(out.path().join("r.html"))
        .arg("--markdown")
        .arg(out.path().join("r.md"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    binary::signal(child.id(), "TERM");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut drain = drain(&fifo);
    let ended = ended_within(child, Duration::from_secs(20)).await;
    let _ = drain.kill();
    let _ = drain.wait();
    drop(stderr_reader);
    let (status, _) = ended.expect("ended within 20 s");
    assert_eq!(status.code(), Some(130));
    assert_eq!(left_beside(out.path(), "junit.fifo"), Vec::<String>::new());
}

/// A signal just after the suite is loaded, as the JSON report's temporary file is made, never
/// leaves that file behind (attack finding: the signals were listened for only once a task
/// ran, after the file was made, and the default exit left it).
#[tokio::test]
async fn a_signal_as_the_run_starts_leaves_no_temporary_file() {
    let staging = slow_staging(Duration::from_secs(3)).await;
    let dir = many_flows(&staging.uri(), 1);
    // The moment moves with the machine: signals sent from 1 to 20 ms after the start.
    for tenth_ms in (10..200).step_by(3) {
        let out = tempfile::tempdir().unwrap();
        let child = quiet_run(dir.path())
            .arg("--json")
            .arg(out.path().join("r.json"))
            .arg("--html")
            .arg(out.path().join("r.html"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(tenth_ms * 100));
        binary::signal(child.id(), "TERM");
        let (status, _) = ended_within(child, Duration::from_secs(20))
            .await
            .expect("ended within 20 s");
        assert_ne!(status.code(), Some(0));
        let left = left_beside(out.path(), "");
        assert!(
            left.iter().all(|name| !name.ends_with(".tmp")),
            "signal {} ms after the start: {status:?}, left {left:?}",
            tenth_ms as f64 / 10.0
        );
    }
}

/// `demo` interrupted while its reports are written removes the bundled suite it wrote to a
/// temporary folder (attack finding: the exit at once skipped that).
#[tokio::test]
async fn demo_interrupted_while_reports_are_written_leaves_no_bundled_suite() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = cwd.path().join("fifo");
    binary::mkfifo(&fifo);
    let child = binary::process()
        .current_dir(cwd.path())
        .env("TMPDIR", tmp.path())
        .args(["demo", "--quiet", "--json"])
        .arg(&fifo)
        .arg("--html")
        .arg(cwd.path().join("d.html"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The bundled suite is written, and the JSON report then waits for the FIFO's reader.
    let bundled = || left_beside(tmp.path(), "");
    for _ in 0..100 {
        if !bundled().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!bundled().is_empty(), "the bundled suite was written");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    binary::signal(child.id(), "TERM");
    let (status, _) = ended_within(child, Duration::from_secs(20))
        .await
        .expect("ended within 20 s");
    assert_eq!(status.code(), Some(130));
    assert_eq!(bundled(), Vec::<String>::new());
    assert_eq!(left_beside(cwd.path(), "fifo"), Vec::<String>::new());
}

/// A signal that the parent blocked (a blocked mask is inherited) still stops the run:
/// preflight unblocks the signals it handles (attack finding: it stayed pending, and the gate
/// passed with exit 0).
#[tokio::test]
async fn a_signal_blocked_by_the_parent_still_stops_the_run() {
    use std::os::unix::process::CommandExt;
    let staging = slow_staging(Duration::from_secs(1)).await;
    let dir = many_flows(&staging.uri(), 1);
    let mut cmd = quiet_run(dir.path());
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec, on memory of this closure.
    unsafe {
        cmd.pre_exec(|| {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    first_request(&staging).await;
    binary::signal(child.id(), "TERM");
    let (status, _) = ended_within(child, Duration::from_secs(20))
        .await
        .expect("ended within 20 s");
    assert_eq!(status.code(), Some(130));
}

/// Nothing more is written through (standard output, a FIFO) once a signal's exit swept the
/// reports (attack finding: the JSON report on standard output and the JUnit one to a FIFO
/// went out whole, saying pass, beside exit 130).
#[tokio::test]
async fn nothing_is_written_through_after_a_signal_swept_the_reports() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 3);
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("junit.fifo");
    binary::mkfifo(&fifo);
    let stdout = out.path().join("stdout.json");
    let (stderr_reader, stderr) = full_stderr();
    let child = quiet_run(dir.path())
        .arg("--json")
        .arg("-")
        .arg("--junit")
        .arg(&fifo)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // The FIFO waits for a reader; standard output comes after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    binary::signal(child.id(), "TERM");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let drain = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ended = ended_within(child, Duration::from_secs(20)).await;
    let junit = tokio::task::spawn_blocking(move || drain.wait_with_output().unwrap())
        .await
        .unwrap();
    drop(stderr_reader);
    let (status, _) = ended.expect("ended within 20 s");
    assert_eq!(status.code(), Some(130));
    let json = std::fs::read_to_string(&stdout).unwrap();
    assert!(!json.contains("\"verdict\""), "{json}");
    let junit = String::from_utf8_lossy(&junit.stdout);
    assert!(!junit.contains("<testsuites"), "{junit}");
}

/// A signal during the run ends it 130 even when standard error is full and nobody reads it
/// (attack finding: the message about stopping blocked the task that listens for signals, and
/// the run hung for good, a second signal too).
#[tokio::test]
async fn a_signal_during_the_run_ends_it_when_standard_error_is_full() {
    let staging = slow_staging(Duration::from_secs(3)).await;
    let dir = many_flows(&staging.uri(), 1);
    let (stderr_reader, stderr) = full_stderr();
    let child = quiet_run(dir.path())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    first_request(&staging).await;
    binary::signal(child.id(), "TERM");
    let ended = ended_within(child, Duration::from_secs(15)).await;
    drop(stderr_reader);
    let (status, _) = ended.expect("ended within 15 s");
    assert_eq!(status.code(), Some(130));
}

/// A signal's exit removes only files it made: a file another process put at a report's path
/// since stays (attack finding: it was removed by path).
#[tokio::test]
async fn a_signal_never_removes_a_file_another_process_put_at_a_reports_path() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 3);
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("r.json");
    let (stdout_reader, stdout) = full_stderr();
    // The JSON report is put in place, then the Markdown one waits on a full standard output.
    let child = quiet_run(dir.path())
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg("-")
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(binary::read_json(&json)["verdict"] == "pass");
    let other = out.path().join("other");
    std::fs::write(&other, "another process's file\n").unwrap();
    std::fs::rename(&other, &json).unwrap();
    binary::signal(child.id(), "TERM");
    let ended = ended_within(child, Duration::from_secs(20)).await;
    drop(stdout_reader);
    let (status, _) = ended.expect("ended within 20 s");
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        "another process's file\n"
    );
}

/// A signal the parent set to be ignored (`nohup`, `cmd &` in a script) and that is pending
/// when preflight starts still ends it, never with exit 0 (attack finding: it stayed ignored
/// until the run listened for signals, and the gate passed).
#[tokio::test]
async fn a_signal_ignored_by_the_parent_still_ends_the_gate() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 1);
    let mut cmd = quiet_run(dir.path());
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec, on memory of this closure.
    unsafe {
        cmd.pre_exec(|| {
            // Ignored and blocked, a signal raised now stays pending across exec.
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::raise(libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let (status, _) = ended_within(child, Duration::from_secs(20))
        .await
        .expect("ended within 20 s");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

/// `merge` stopped by a signal while its reports are written leaves none saying PASS and ends
/// 130, as `run` does (attack finding: it died by the signal with its JSON report and step
/// summary saying PASS in place).
#[tokio::test]
async fn a_signal_while_merge_writes_its_reports_leaves_none_saying_pass() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 3);
    let out = tempfile::tempdir().unwrap();
    let shards = shard_reports(dir.path(), out.path(), 1).await;
    let shard = &shards[0];
    let merged = out.path().join("out.json");
    let summary = out.path().join("summary.md");
    let (stdout_reader, stdout) = full_stderr();
    // The JSON report is put in place and the summary appended; the HTML one then waits on a
    // full standard output.
    let child = binary::process()
        .arg("merge")
        .arg(shard)
        .arg("--json")
        .arg(&merged)
        .args(["--html", "-"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    binary::signal(child.id(), "TERM");
    let ended = ended_within(child, Duration::from_secs(20)).await;
    drop(stdout_reader);
    let (status, _) = ended.expect("ended within 20 s");
    assert_eq!(status.code(), Some(130));
    assert!(!merged.exists(), "no merged report beside exit 130");
    let summary = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(
        summary.is_empty() || summary.trim_end().ends_with("does not hold."),
        "{summary}"
    );
}

/// `merge` and `report` keep their exit codes when standard error cannot be written (attack
/// finding: their error lines panicked, exit 101).
#[tokio::test]
async fn merge_and_report_keep_their_exit_codes_when_standard_error_cannot_be_written() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("nosuch.json");
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 1);
    let saved = out.path().join("ok.json");
    let ran = finished({
        let mut cmd = quiet_run(dir.path());
        cmd.arg("--json").arg(&saved);
        cmd
    })
    .await;
    assert_eq!(ran.status.code(), Some(0));
    let x = out.path().join("x.json");
    let nowhere = out.path().join("nodir/x.json");
    let cases: [(Vec<&std::ffi::OsStr>, i32); 3] = [
        (
            vec![
                "report".as_ref(),
                missing.as_os_str(),
                "--json".as_ref(),
                x.as_os_str(),
            ],
            2,
        ),
        (vec!["merge".as_ref(), missing.as_os_str()], 2),
        (
            vec![
                "report".as_ref(),
                saved.as_os_str(),
                "--json".as_ref(),
                nowhere.as_os_str(),
            ],
            1,
        ),
    ];
    for (args, code) in cases {
        let mut cmd = binary::process();
        cmd.args(&args)
            .stdout(Stdio::null())
            .stderr(closed_stderr());
        let output = finished(cmd).await;
        assert_eq!(output.status.code(), Some(code), "{args:?}");
    }
}

/// A library to preload that raises SIGTERM each time a handler is put in place for it, right
/// after: a signal that comes at that very moment, every time.
fn sigterm_as_its_handler_is_put_in_place(dir: &Path) -> std::path::PathBuf {
    let source = dir.join("raise.c");
    std::fs::write(
        &source,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
typedef int (*real_t)(int, const struct sigaction *, struct sigaction *);
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    int done = ((real_t)dlsym(RTLD_NEXT, "sigaction"))(sig, act, old);
    if (done == 0 && sig == SIGTERM && act && act->sa_handler != SIG_DFL
        && act->sa_handler != SIG_IGN)
        raise(SIGTERM);
    return done;
}
"#,
    )
    .unwrap();
    let library = dir.join("raise.so");
    let built = std::process::Command::new(std::env::var_os("CC").unwrap_or("cc".into()))
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .status()
        .expect("a C compiler (cc) to build the preloaded library");
    assert!(built.success(), "cc raise.c");
    library
}

/// A signal that comes just as its handler is put in place is never lost (attack finding:
/// `signal_hook_registry` puts its handler in place before it stores the actions, and a
/// signal in between ran only the default disposition it replaced, which it does not run:
/// `merge`, `report` and `run` went on to exit 0 with every report in place).
#[tokio::test]
async fn a_signal_as_its_handler_is_put_in_place_is_never_lost() {
    let staging = ok_staging().await;
    let dir = many_flows(&staging.uri(), 2);
    let out = tempfile::tempdir().unwrap();
    let shards = shard_reports(dir.path(), out.path(), 2).await;
    let preload = sigterm_as_its_handler_is_put_in_place(out.path());
    let merged = out.path().join("merged.json");
    let rendered = out.path().join("rendered.html");
    let ran = out.path().join("ran.json");
    let mut merge = binary::process();
    merge
        .arg("merge")
        .args(&shards)
        .arg("--json")
        .arg(&merged)
        .arg("--quiet");
    let mut report = binary::process();
    report
        .arg("report")
        .arg(&shards[0])
        .arg("--html")
        .arg(&rendered);
    let mut run = quiet_run(dir.path());
    run.arg("--json").arg(&ran);
    for (mut cmd, written) in [(merge, &merged), (report, &rendered), (run, &ran)] {
        let status = cmd
            .env("LD_PRELOAD", &preload)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let name = cmd
            .get_args()
            .next()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_ne!(status.code(), Some(0), "{name} ended 0 after a SIGTERM");
        assert!(!written.exists(), "{name} left its report after a SIGTERM");
    }
}
