//! `--baseline PREVIOUS.json` through the real binary: the regression rules (relative and
//! absolute), warnings or a failed gate, steps and flows new or gone, refused baselines; and
//! the step timings (`started_ms`) a timeline is drawn from.

mod binary;
mod hermetic;

use binary::{preflight, suite};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHECKOUT: &str = r#"
name = "checkout"
[[step]]
name = "cart"
path = "/cart"
expect = { status = 200 }
[[step]]
name = "pay"
path = "/pay"
expect = { status = 200 }
"#;

/// A staging whose `/pay` takes `pay` and whose `/cart` takes `cart`.
async fn staging(cart: u64, pay: u64) -> MockServer {
    let server = MockServer::start().await;
    for (route, ms) in [("/cart", cart), ("/pay", pay)] {
        Mock::given(path(route))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(ms)))
            .mount(&server)
            .await;
    }
    server
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    report: Value,
}

/// `preflight run SUITE --base-url URL --json OUT ARGS`, on a blocking thread.
async fn run(suite: &Path, url: &str, out: &Path, args: &[&str]) -> Ran {
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(suite)
        .args(["--base-url", url, "--json"])
        .arg(out)
        .args(args);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let report = std::fs::read_to_string(out)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report,
    }
}

/// The comparison of `step` in a report's `baseline` section.
fn compared<'a>(report: &'a Value, step: &str) -> &'a Value {
    report["baseline"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("{step} not compared: {report}"))
}

#[tokio::test]
async fn a_step_regresses_only_past_both_thresholds_and_warns() {
    let dir = suite("http://unused.invalid", "", &[("checkout.toml", CHECKOUT)]);
    let out = tempfile::tempdir().unwrap();
    let before = out.path().join("before.json");
    let fast = staging(200, 0).await;
    assert_eq!(run(dir.path(), &fast.uri(), &before, &[]).await.code, 0);
    // cart: 200 -> 260 ms is +60 ms but +30%; pay: 0 -> 30 ms is a lot in percent but 30 ms.
    let slower = staging(260, 30).await;
    let now = out.path().join("now.json");
    let before_arg = before.to_str().unwrap();
    let ran = run(dir.path(), &slower.uri(), &now, &["--baseline", before_arg]).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(compared(&ran.report, "cart")["regressed"], false);
    assert_eq!(compared(&ran.report, "pay")["regressed"], false);
    assert!(ran.report["warnings"].as_array().unwrap().is_empty());

    // cart: 200 -> 450 ms is +250 ms and +125%: a regression, and a warning.
    let slow = staging(450, 0).await;
    let ran = run(dir.path(), &slow.uri(), &now, &["--baseline", before_arg]).await;
    assert_eq!(ran.code, 0, "a regression warns by default: {}", ran.stdout);
    let cart = compared(&ran.report, "cart");
    assert_eq!(cart["regressed"], true);
    assert!(cart["baseline_ms"].as_u64().unwrap() >= 200);
    assert!(cart["now_ms"].as_u64().unwrap() >= 450);
    assert!(cart["change_pct"].as_i64().unwrap() > 50);
    let warning = &ran.report["warnings"][0];
    assert_eq!(warning["kind"], "latency_regression");
    assert_eq!(warning["step"], "cart");
    assert!(
        ran.stdout.contains("slower: 'checkout' / 'cart'"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("1 warning"), "{}", ran.stdout);
    let header = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("! baseline "))
        .unwrap();
    assert!(
        header.ends_with("): 2 steps compared, 1 slower by more than 50% and 50ms"),
        "{header}"
    );
    assert_eq!(ran.report["baseline"]["max_latency_regression_pct"], 50);
    assert_eq!(ran.report["baseline"]["min_latency_regression_ms"], 50);
}

#[tokio::test]
async fn fail_on_latency_regression_fails_the_gate_with_its_reason() {
    let gate = "[gate]\nfail_on_latency_regression = true\nmax_latency_regression = \"100%\"\nmin_latency_regression = \"100ms\"\n";
    let dir = suite(
        "http://unused.invalid",
        gate,
        &[("checkout.toml", CHECKOUT)],
    );
    let out = tempfile::tempdir().unwrap();
    let before = out.path().join("before.json");
    let fast = staging(0, 100).await;
    assert_eq!(run(dir.path(), &fast.uri(), &before, &[]).await.code, 0);
    let before_arg = before.to_str().unwrap();
    let now = out.path().join("now.json");
    // pay: 100 -> 160 ms is +60%: under the suite's 100%.
    let a_bit = staging(0, 160).await;
    let ran = run(dir.path(), &a_bit.uri(), &now, &["--baseline", before_arg]).await;
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    let slow = staging(0, 450).await;
    let ran = run(dir.path(), &slow.uri(), &now, &["--baseline", before_arg]).await;
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    let last = ran.stdout.lines().last().unwrap();
    assert_eq!(last, "GATE FAILED: 1 step slower than the baseline");
    let reason = ran.report["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("slower than the baseline: 'checkout' / 'pay': "),
        "{reason}"
    );
    assert_eq!(ran.report["verdict"], "fail");
    assert!(ran.report["warnings"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn new_and_gone_steps_and_flows_are_listed_and_another_suite_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let staging = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    let flow = |name: &str, steps: &[&str]| {
        let mut text = format!("name = \"{name}\"\n");
        for step in steps {
            text.push_str(&format!(
                "[[step]]\nname = \"{step}\"\npath = \"/{step}\"\n"
            ));
        }
        text
    };
    let old = suite(
        "http://unused.invalid",
        "",
        &[
            ("a.toml", &flow("a", &["s1", "s2"])),
            ("b.toml", &flow("b", &["s1"])),
        ],
    );
    let new = suite(
        "http://unused.invalid",
        "",
        &[
            ("a.toml", &flow("a", &["s1", "s3"])),
            ("c.toml", &flow("c", &["s1"])),
        ],
    );
    let before = out.path().join("before.json");
    assert_eq!(run(old.path(), &staging.uri(), &before, &[]).await.code, 0);
    let sent = staging.received_requests().await.unwrap().len();
    let now = out.path().join("now.json");
    let before_arg = before.to_str().unwrap();
    let refused = run(
        new.path(),
        &staging.uri(),
        &now,
        &["--baseline", before_arg],
    )
    .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("another suite"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--baseline-any"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        staging.received_requests().await.unwrap().len(),
        sent,
        "nothing was run"
    );

    let args = ["--baseline", before_arg, "--baseline-any"];
    let ran = run(new.path(), &staging.uri(), &now, &args).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let baseline = &ran.report["baseline"];
    assert_eq!(baseline["new_flows"], serde_json::json!(["c"]));
    assert_eq!(baseline["gone_flows"], serde_json::json!(["b"]));
    assert_eq!(
        baseline["new_steps"],
        serde_json::json!([{"flow": "a", "step": "s3"}])
    );
    assert_eq!(
        baseline["gone_steps"],
        serde_json::json!([{"flow": "a", "step": "s2"}])
    );
    assert_eq!(
        baseline["steps"].as_array().unwrap().len(),
        1,
        "only a/s1 is in both"
    );
    assert!(
        ran.stdout.contains("new flows since the baseline: c"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("gone steps since the baseline: 'a' / 's2'")
    );
}

#[tokio::test]
async fn a_baseline_that_is_no_report_of_this_suite_is_refused_before_anything_runs() {
    let staging = staging(0, 0).await;
    let dir = suite("http://unused.invalid", "", &[("checkout.toml", CHECKOUT)]);
    let out = tempfile::tempdir().unwrap();
    let now = out.path().join("now.json");
    let not_json = out.path().join("not.json");
    std::fs::write(&not_json, "not json").unwrap();
    let before = out.path().join("before.json");
    assert_eq!(run(dir.path(), &staging.uri(), &before, &[]).await.code, 0);
    let mut other_schema: Value = binary::read_json(&before);
    other_schema["schema"] = 2.into();
    let schema_2 = out.path().join("schema2.json");
    std::fs::write(&schema_2, other_schema.to_string()).unwrap();
    let mut no_digest = other_schema.clone();
    no_digest["schema"] = 1.into();
    no_digest
        .as_object_mut()
        .unwrap()
        .remove("suite_files_digest");
    let older = out.path().join("older.json");
    std::fs::write(&older, no_digest.to_string()).unwrap();
    let sent = staging.received_requests().await.unwrap().len();
    for (file, why) in [
        (out.path().join("missing.json"), "cannot read the baseline"),
        (not_json, "not a preflight JSON report"),
        (schema_2, "schema 2"),
        (older, "no suite digest"),
    ] {
        let args = ["--baseline", file.to_str().unwrap()];
        let ran = run(dir.path(), &staging.uri(), &now, &args).await;
        assert_eq!(ran.code, 2, "{why}: {}", ran.stderr);
        assert!(ran.stderr.contains(why), "{why}: {}", ran.stderr);
    }
    assert_eq!(staging.received_requests().await.unwrap().len(), sent);
}

#[tokio::test]
async fn step_and_attempt_start_offsets_are_monotone_and_consistent_with_latencies() {
    let staging = MockServer::start().await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(30)))
        .up_to_n_times(2)
        .mount(&staging)
        .await;
    for route in ["/flaky", "/a", "/b"] {
        Mock::given(path(route))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(40)))
            .mount(&staging)
            .await;
    }
    let flow = r#"
name = "timed"
[[step]]
name = "a"
path = "/a"
[[step]]
name = "flaky"
path = "/flaky"
retry = { attempts = 3, backoff = "20ms" }
[[step]]
name = "b"
path = "/b"
[[cleanup]]
name = "undo"
method = "DELETE"
path = "/a"
"#;
    let dir = suite(&staging.uri(), "", &[("timed.toml", flow)]);
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("r.json");
    let ran = run(dir.path(), &staging.uri(), &json, &[]).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let steps = ran.report["flows"][0]["steps"].as_array().unwrap();
    let run_ms = ran.report["duration_ms"].as_u64().unwrap();
    let mut end_of_previous = 0;
    for step in steps {
        let started = step["started_ms"]
            .as_u64()
            .expect("every step that ran is timed");
        let latency = step["latency_ms"].as_u64().unwrap();
        // Offsets and latencies are each whole milliseconds, cut: they may disagree by one.
        const CUT: u64 = 2;
        assert!(
            started + CUT >= end_of_previous,
            "steps overlap: {steps:#?}"
        );
        let mut at = started;
        let mut own = 0;
        for attempt in step["earlier_attempts"].as_array().into_iter().flatten() {
            let attempt_start = attempt["started_ms"].as_u64().unwrap();
            let attempt_latency = attempt["latency_ms"].as_u64().unwrap();
            assert!(attempt_start + CUT >= at, "attempts in order: {step:#}");
            at = attempt_start + attempt_latency;
            own += attempt_latency;
        }
        let last = step["last_attempt_started_ms"].as_u64().unwrap_or(started);
        assert!(
            last + CUT >= at,
            "the last attempt after the others: {step:#}"
        );
        let last_latency = latency - own;
        end_of_previous = last + last_latency;
        assert!(end_of_previous <= run_ms + CUT, "inside the run: {step:#}");
    }
    let flaky = &steps[1];
    assert_eq!(flaky["attempts"], 3);
    assert_eq!(flaky["earlier_attempts"].as_array().unwrap().len(), 2);
    // Two retries at 30 ms each, 20 ms apart at least, then 40 ms.
    let last = flaky["last_attempt_started_ms"].as_u64().unwrap();
    assert!(last >= flaky["started_ms"].as_u64().unwrap() + 2 * 30 + 2 * 20);
    assert_eq!(steps[3]["phase"], "cleanup");
}
