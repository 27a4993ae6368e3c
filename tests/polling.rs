//! `poll` on a step, through the real binary against wiremock on 127.0.0.1: the step is sent
//! again while its expectations fail, counted at the server.

mod binary;
mod hermetic;

use binary::{count, preflight, run_all, suite};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `GET /api/orders/o-1` answers `pending` for the first `pending` requests, then `paid`.
async fn order_staging(pending: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/orders"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": "o-1" })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/orders/o-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "status": "pending" })))
        .up_to_n_times(pending)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/orders/o-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "status": "paid" })))
        .mount(&server)
        .await;
    server
}

fn order_flow(poll: &str) -> String {
    format!(
        r#"name = "async payment"

[[step]]
name = "place order"
method = "POST"
path = "/api/orders"
capture = {{ order_id = "$.id" }}

[[step]]
name = "order is paid"
path = "/api/orders/{{{{ order_id }}}}"
poll = {poll}

[step.expect.json]
"$.status" = "paid"
"#
    )
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["flows"][0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_polled_step_stops_at_the_first_passing_attempt_and_is_not_flaky() {
    let server = order_staging(2).await;
    let flow = order_flow(r#"{ attempts = 10, interval = "10ms" }"#);
    // fail_on_flaky: polls are expected, they must not fail the gate.
    let dir = suite(
        &server.uri(),
        "[gate]\nfail_on_flaky = true\n",
        &[("pay.toml", &flow)],
    );
    let out = run_all(dir.path(), &[], &[]).await;

    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(count(&server, "GET", "/api/orders/o-1").await, 3);
    assert_eq!(count(&server, "POST", "/api/orders").await, 1);
    let report = out.report();
    let polled = step(&report, "order is paid");
    assert_eq!(polled["outcome"], "passed", "{polled:#}");
    assert_eq!(polled["attempts"], 3, "{polled:#}");
    assert_eq!(polled["flaky"], false, "{polled:#}");
    assert_eq!(polled["polled"], true, "{polled:#}");
    let earlier = polled["earlier_attempts"].as_array().expect("earlier");
    assert_eq!(earlier.len(), 2, "{polled:#}");
    assert_eq!(earlier[0]["status"], 200);
    assert!(
        earlier[0]["error"].as_str().unwrap().contains("$.status"),
        "{polled:#}"
    );
    assert_eq!(report["summary"]["flaky"], 0);
    // JUnit: a pass without flaky reruns.
    assert!(!out.junit.contains("flaky"), "{}", out.junit);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_polled_step_gives_up_after_its_attempts_with_the_last_assertions() {
    let server = order_staging(1000).await;
    let flow = order_flow(r#"{ attempts = 4, interval = "10ms" }"#);
    let dir = suite(&server.uri(), "", &[("pay.toml", &flow)]);
    let out = run_all(dir.path(), &[], &[]).await;

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(count(&server, "GET", "/api/orders/o-1").await, 4);
    let report = out.report();
    let polled = step(&report, "order is paid");
    assert_eq!(polled["outcome"], "failed", "{polled:#}");
    assert_eq!(polled["attempts"], 4, "{polled:#}");
    assert_eq!(polled["earlier_attempts"].as_array().unwrap().len(), 3);
    let failed = &polled["assertions"][1];
    assert_eq!(
        (&failed["subject"], &failed["expected"], &failed["actual"]),
        (&json!("$.status"), &json!("paid"), &json!("pending")),
        "{polled:#}"
    );
    assert!(out.stdout.contains("pending"), "{}", out.stdout);
    assert!(out.junit.contains("<failure"), "{}", out.junit);
    assert!(out.stdout.contains("GATE FAILED"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_is_polled_only_when_the_step_says_so() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/charge"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let flow = |poll: &str| {
        format!(
            "[[step]]\nname = \"charge\"\nmethod = \"POST\"\npath = \"/api/charge\"\npoll = {poll}\nexpect = {{ status = 200 }}\n"
        )
    };
    let refused = suite(
        &server.uri(),
        "",
        &[(
            "charge.toml",
            &flow(r#"{ attempts = 3, interval = "10ms" }"#),
        )],
    );
    let out = preflight().arg("run").arg(refused.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = format!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("charge.toml:5:8"), "{shown}");
    assert!(shown.contains("a POST is not polled by default"), "{shown}");
    assert!(shown.contains("non_idempotent = true"), "{shown}");
    assert_eq!(count(&server, "POST", "/api/charge").await, 0);

    let out_of_range = suite(
        &server.uri(),
        "",
        &[("charge.toml", &flow(r#"{ attempts = 0, interval = "0s" }"#))],
    );
    let out = preflight()
        .arg("check")
        .arg(out_of_range.path())
        .output()
        .unwrap();
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("1 to 1000"), "{shown}");

    let allowed = suite(
        &server.uri(),
        "",
        &[(
            "charge.toml",
            &flow(r#"{ attempts = 3, interval = "10ms", non_idempotent = true }"#),
        )],
    );
    let out = run_all(allowed.path(), &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(count(&server, "POST", "/api/charge").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_stops_polling_and_fails_the_gate() {
    let server = order_staging(1_000_000).await;
    let flow = order_flow(r#"{ attempts = 1000, interval = "100ms" }"#);
    let dir = suite(&server.uri(), "", &[("pay.toml", &flow)]);
    let out = run_all(dir.path(), &[], &["--deadline", "1s"]).await;

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let polls = count(&server, "GET", "/api/orders/o-1").await;
    assert!((1..1000).contains(&polls), "{polls} polls");
    let report = out.report();
    let polled = step(&report, "order is paid");
    assert_eq!(polled["outcome"], "failed", "{polled:#}");
    assert!(
        polled["error"].as_str().unwrap_or("").contains("deadline"),
        "{polled:#}"
    );
    assert!(out.stdout.contains("deadline"), "{}", out.stdout);
}

/// The async-payment example of `docs/polling-teardown-rows.md`, as written there.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_async_payment_example_passes_once_the_order_is_paid() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/polling-teardown-rows.md"),
    )
    .unwrap();
    let example = doc
        .split("```toml\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .find(|block| block.contains("name = \"async payment\""))
        .expect("the doc holds the async-payment flow");
    let server = order_staging(2).await;
    let dir = suite(&server.uri(), "", &[("async-payment.toml", example)]);
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(count(&server, "GET", "/api/orders/o-1").await, 3);
    assert_eq!(count(&server, "POST", "/api/orders").await, 1);
}
