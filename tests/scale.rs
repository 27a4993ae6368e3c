//! Scale: the real `preflight` binary runs 1,000 one-step flows at concurrency 64 against a
//! loopback server that counts the requests in flight. Checks the report is complete, the
//! concurrency bound holds (and is really used), and the binary's peak RSS stays modest.
//!
//! The peak RSS is printed with `eprintln!`: run with `-- --nocapture` to read it.

mod common;
mod hermetic;

use common::{RawServer, Suite, http_ok};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FLOWS: usize = 1_000;
const CONCURRENCY: usize = 64;
const RSS_LIMIT_KIB: u64 = 200 * 1024;

/// `preflight run` with its arguments; wrapped in `/usr/bin/time -v` when that works.
fn command(program: &str, pre: &[&str], suite: &Path, json: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.args(pre)
        .arg(env!("CARGO_BIN_EXE_preflight"))
        .arg("run")
        .arg(suite)
        .arg("--no-progress")
        .arg("--quiet")
        .arg("--json")
        .arg(json)
        .stdin(Stdio::null());
    cmd
}

/// GNU time's `-v` works here (busybox and BSD `time` differ).
fn gnu_time() -> Option<&'static str> {
    let path = "/usr/bin/time";
    let ok = Command::new(path)
        .args(["-v", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stderr).contains("Maximum resident set size")
        });
    ok.then_some(path)
}

/// Peak RSS in KiB from GNU time's report.
fn max_rss_from_time(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
}

/// VmHWM of a running process, in KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs the binary to the end; its output and peak RSS (KiB) with how it was measured.
fn run_measured(suite: &Path, json: &Path) -> (Output, u64, &'static str) {
    if let Some(time) = gnu_time() {
        let output = command(time, &["-v"], suite, json)
            .output()
            .expect("the binary starts");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let rss = max_rss_from_time(&stderr)
            .unwrap_or_else(|| panic!("no maximum RSS in /usr/bin/time's output:\n{stderr}"));
        return (output, rss, "/usr/bin/time -v");
    }
    // Fallback: sample VmHWM (the kernel's own high-water mark) every 20 ms while it runs.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_preflight"));
    for var in hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    let child = cmd
        .arg("run")
        .arg(suite)
        .arg("--no-progress")
        .arg("--quiet")
        .arg("--json")
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(hwm) = vm_hwm(pid) {
                    peak = peak.max(hwm);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let output = child.wait_with_output().expect("the binary ends");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let rss = sampler.join().expect("the sampler ends");
    (output, rss, "/proc/<pid>/status VmHWM sampled every 20ms")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_flows_at_concurrency_64() {
    let server = RawServer::start(|_head: String| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        http_ok("ok")
    })
    .await;
    let suite = Suite::new(&format!(
        "base_url = \"{}\"\nconcurrency = {CONCURRENCY}\n",
        server.url
    ));
    for i in 0..FLOWS {
        suite.write(
            &format!("flows/f{i:04}.toml"),
            format!("[[step]]\nname = \"get {i}\"\npath = \"/item/{i}\"\n"),
        );
    }
    let out_dir = tempfile::tempdir().expect("temp dir");
    let json_path = out_dir.path().join("report.json");

    let (suite_dir, json) = (suite.path().to_path_buf(), json_path.clone());
    let started = Instant::now();
    let (output, rss_kib, how) =
        tokio::task::spawn_blocking(move || run_measured(&suite_dir, &json))
            .await
            .expect("the blocking task ends");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak = server.peak.load(std::sync::atomic::Ordering::SeqCst);
    let hits = server.hits.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "scale: {FLOWS} flows at concurrency {CONCURRENCY}: {elapsed:?}, peak in flight {peak}, \
         {hits} requests, peak RSS {rss_kib} KiB ({:.1} MiB, by {how})",
        rss_kib as f64 / 1024.0
    );

    assert_eq!(
        output.status.code(),
        Some(0),
        "--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("GATE PASSED: {FLOWS} flows, 0 failed"))),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&json_path).expect("the JSON report is written");
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");
    assert_eq!(report["verdict"], "pass");
    let flows = report["flows"].as_array().expect("flows is an array");
    assert_eq!(flows.len(), FLOWS, "every flow is in the report");
    let names: HashSet<&str> = flows
        .iter()
        .map(|f| f["name"].as_str().expect("a flow name"))
        .collect();
    assert_eq!(names.len(), FLOWS, "flow names are distinct");
    let not_passed: Vec<&Value> = flows.iter().filter(|f| f["outcome"] != "passed").collect();
    assert!(
        not_passed.is_empty(),
        "{} flows did not pass, first: {:#}",
        not_passed.len(),
        not_passed[0]
    );
    // Reports list flows in path order.
    let ordered: Vec<&str> = flows.iter().map(|f| f["name"].as_str().unwrap()).collect();
    let mut sorted = ordered.clone();
    sorted.sort_unstable();
    assert_eq!(ordered, sorted, "flows are in path order");
    assert_eq!(report["summary"]["passed"], FLOWS);
    assert_eq!(hits, FLOWS, "one request per flow");

    assert!(
        peak <= CONCURRENCY,
        "{peak} requests in flight at once, over the concurrency of {CONCURRENCY}"
    );
    assert!(
        peak >= CONCURRENCY / 2,
        "only {peak} requests in flight at once: the flows did not really run concurrently"
    );
    assert!(
        rss_kib > 0 && rss_kib < RSS_LIMIT_KIB,
        "peak RSS {rss_kib} KiB (limit {RSS_LIMIT_KIB} KiB)"
    );
}
