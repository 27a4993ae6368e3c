//! Engine integration tests: real suites on disk, loaded with `suite::load`, run by the engine
//! against real loopback HTTP servers (wiremock, or a hand-written one where needed), then
//! judged and reported.

mod common;
mod hermetic;

use common::{
    RawServer, Suite, assertion, check, closed_port, gzip, http_chunked, http_ok, run, sha256_hex,
    zlib,
};
use preflight::report::{FlowOutcome, GateVerdict, Phase, StepOutcome, WarningKind};
use preflight::suite::Overrides;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `preflight.toml` with `base_url` first, then `extra` (top-level keys, then tables).
fn settings(base: &str, extra: &str) -> String {
    format!("base_url = \"{base}\"\n{extra}\n")
}

async fn requests_to(server: &MockServer, m: &str, p: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .collect()
}

fn header_of(request: &wiremock::Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_string())
}

// ---------------------------------------------------------------------------------------------
// 1. Operators, status forms, headers, latency
// ---------------------------------------------------------------------------------------------

const DOC: &str = r#"{"id":"c-1","currency":"EUR","total":12.5,"tags":["x","y"],"items":[{"sku":"A","qty":2},{"sku":"B","qty":1}],"coupon":null,"active":true,"meta":{"a":1,"b":2}}"#;

async fn doc_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/doc"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(DOC, "application/json"))
        .mount(&server)
        .await;
    server
}

fn doc_suite(server: &MockServer) -> Suite {
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "schemas/doc.schema.json",
        r#"{"type":"object","required":["id","currency","items"],"properties":{"currency":{"type":"string"},"items":{"type":"array","minItems":1}}}"#,
    );
    suite.write(
        "schemas/strict.schema.json",
        r#"{"type":"object","properties":{"currency":{"enum":["USD","GBP"]}}}"#,
    );
    suite.write("fixtures/doc.json", DOC);
    suite.write("fixtures/other.json", "{}");
    suite
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operator_passes_on_a_real_response() {
    let server = doc_server().await;
    let suite = doc_suite(&server);
    let hex = sha256_hex(DOC.as_bytes());
    suite.write(
        "ops.toml",
        r#"
[[step]]
name = "doc"
path = "/doc"

[step.expect]
body = { contains = '"currency":"EUR"', not_contains = "USD", sha256 = "HEX", sha256_of_file = "fixtures/doc.json" }

[step.expect.json]
"$.currency" = "EUR"
"$.id" = { not_equals = "c-2", matches = '^c-\d$', one_of = ["c-1", "c-9"], type = "string" }
"$.tags" = { contains = "y", not_contains = "z", length = 2 }
"$.total" = { lt = 13, le = 12.5, gt = 12, ge = 12.5, type = "number" }
"$.coupon" = { exists = true, type = "null" }
"$.nope" = { exists = false }
"$.items" = { length = { ge = 1, lt = 5 }, type = "array" }
"$.meta" = { length = 2, type = "object" }
"$.active" = { equals = true, type = "boolean" }
"$.items[*].sku" = ["A", "B"]
"$" = { json_schema = "schemas/doc.schema.json" }
"#
        .replace("HEX", &hex),
    );
    let run = run(suite.load()).await;
    let step = run.step("ops", "doc");
    let failed: Vec<_> = step.failed_assertions().collect();
    assert!(
        failed.is_empty(),
        "every assertion should pass: {failed:#?}"
    );
    assert_eq!(step.outcome, StepOutcome::Passed);
    assert_eq!(
        step.assertions.len(),
        1 + 4 + 25,
        "one record per operator: {:#?}",
        step.assertions
    );

    check(step, "status", "class", json!("2xx"), json!(200), true);
    check(
        step,
        "body",
        "contains",
        json!("\"currency\":\"EUR\""),
        json!(DOC),
        true,
    );
    check(step, "body", "not_contains", json!("USD"), json!(DOC), true);
    check(step, "body", "sha256", json!(hex), json!(hex), true);
    check(step, "body", "sha256_of_file", json!(hex), json!(hex), true);
    check(
        step,
        "$.currency",
        "equals",
        json!("EUR"),
        json!("EUR"),
        true,
    );
    check(step, "$.id", "not_equals", json!("c-2"), json!("c-1"), true);
    check(
        step,
        "$.id",
        "matches",
        json!(r"^c-\d$"),
        json!("c-1"),
        true,
    );
    check(
        step,
        "$.id",
        "one_of",
        json!(["c-1", "c-9"]),
        json!("c-1"),
        true,
    );
    check(step, "$.id", "type", json!("string"), json!("string"), true);
    check(
        step,
        "$.tags",
        "contains",
        json!("y"),
        json!(["x", "y"]),
        true,
    );
    check(
        step,
        "$.tags",
        "not_contains",
        json!("z"),
        json!(["x", "y"]),
        true,
    );
    check(step, "$.tags", "length", json!(2), json!(2), true);
    check(step, "$.total", "lt", json!(13), json!(12.5), true);
    check(step, "$.total", "le", json!(12.5), json!(12.5), true);
    check(step, "$.total", "gt", json!(12), json!(12.5), true);
    check(step, "$.total", "ge", json!(12.5), json!(12.5), true);
    check(
        step,
        "$.total",
        "type",
        json!("number"),
        json!("number"),
        true,
    );
    check(step, "$.coupon", "exists", json!(true), Value::Null, true);
    check(step, "$.coupon", "type", json!("null"), json!("null"), true);
    check(
        step,
        "$.nope",
        "exists",
        json!(false),
        json!("<missing>"),
        true,
    );
    check(step, "$.items", "length.ge", json!(1), json!(2), true);
    check(step, "$.items", "length.lt", json!(5), json!(2), true);
    check(step, "$.meta", "length", json!(2), json!(2), true);
    check(step, "$.active", "equals", json!(true), json!(true), true);
    check(
        step,
        "$.items[*].sku",
        "equals",
        json!(["A", "B"]),
        json!(["A", "B"]),
        true,
    );
    let doc: Value = serde_json::from_str(DOC).unwrap();
    check(
        step,
        "$",
        "json_schema",
        json!("schemas/doc.schema.json"),
        doc,
        true,
    );
    assert!(run.passed(), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operator_fails_on_a_real_response() {
    let server = doc_server().await;
    let suite = doc_suite(&server);
    suite.write(
        "ops.toml",
        r#"
[[step]]
name = "doc"
path = "/doc"

[step.expect]
body = { contains = "GBP", not_contains = "EUR", sha256 = "0000000000000000000000000000000000000000000000000000000000000000", sha256_of_file = "fixtures/other.json" }

[step.expect.json]
"$.currency" = "USD"
"$.id" = { not_equals = "c-1", matches = '^x-', one_of = ["a", "b"], type = "number" }
"$.tags" = { contains = "z", not_contains = "y", length = 3 }
"$.total" = { lt = 12, le = 12.4, gt = 12.5, ge = 13 }
"$.coupon" = { exists = false }
"$.nope" = { exists = true, equals = 1 }
"$.items" = { length = { ge = 3 } }
"$.meta" = { length = 1 }
"$" = { json_schema = "schemas/strict.schema.json" }
"#,
    );
    let run = run(suite.load()).await;
    let step = run.step("ops", "doc");
    assert_eq!(step.outcome, StepOutcome::Failed);
    assert_eq!(
        step.error, None,
        "assertion failures are not request errors"
    );
    assert_eq!(step.status, Some(200));
    check(step, "status", "class", json!("2xx"), json!(200), true);
    let still_passing: Vec<_> = step
        .assertions
        .iter()
        .filter(|a| a.passed && a.subject != "status")
        .collect();
    assert!(
        still_passing.is_empty(),
        "every other assertion should fail: {still_passing:#?}"
    );
    assert_eq!(
        step.assertions.len(),
        1 + 4 + 18,
        "all assertions are reported: {:#?}",
        step.assertions
    );

    let hex = sha256_hex(DOC.as_bytes());
    check(step, "body", "contains", json!("GBP"), json!(DOC), false);
    check(
        step,
        "body",
        "not_contains",
        json!("EUR"),
        json!(DOC),
        false,
    );
    check(
        step,
        "body",
        "sha256",
        json!("0".repeat(64)),
        json!(hex),
        false,
    );
    check(
        step,
        "body",
        "sha256_of_file",
        json!(sha256_hex(b"{}")),
        json!(hex),
        false,
    );
    check(
        step,
        "$.currency",
        "equals",
        json!("USD"),
        json!("EUR"),
        false,
    );
    check(
        step,
        "$.id",
        "not_equals",
        json!("c-1"),
        json!("c-1"),
        false,
    );
    check(step, "$.id", "matches", json!("^x-"), json!("c-1"), false);
    check(
        step,
        "$.id",
        "one_of",
        json!(["a", "b"]),
        json!("c-1"),
        false,
    );
    check(
        step,
        "$.id",
        "type",
        json!("number"),
        json!("string"),
        false,
    );
    check(
        step,
        "$.tags",
        "contains",
        json!("z"),
        json!(["x", "y"]),
        false,
    );
    check(
        step,
        "$.tags",
        "not_contains",
        json!("y"),
        json!(["x", "y"]),
        false,
    );
    check(step, "$.tags", "length", json!(3), json!(2), false);
    check(step, "$.total", "lt", json!(12), json!(12.5), false);
    check(step, "$.total", "le", json!(12.4), json!(12.5), false);
    check(step, "$.total", "gt", json!(12.5), json!(12.5), false);
    check(step, "$.total", "ge", json!(13), json!(12.5), false);
    check(step, "$.coupon", "exists", json!(false), Value::Null, false);
    check(
        step,
        "$.nope",
        "exists",
        json!(true),
        json!("<missing>"),
        false,
    );
    check(
        step,
        "$.nope",
        "equals",
        json!(1),
        json!("<missing>"),
        false,
    );
    check(step, "$.items", "length.ge", json!(3), json!(2), false);
    check(step, "$.meta", "length", json!(1), json!(2), false);
    let schema = assertion(step, "$", "json_schema");
    assert!(!schema.passed);
    assert_eq!(schema.expected, json!("schemas/strict.schema.json"));
    assert!(
        schema
            .message
            .as_deref()
            .is_some_and(|m| m.contains("currency")),
        "the schema error says where: {schema:#?}"
    );

    assert_eq!(run.flow("ops").outcome, FlowOutcome::Failed);
    assert_eq!(run.code, 1);
    assert_eq!(run.report.reasons, ["flow 'ops' failed at step 'doc'"]);
    assert_eq!(
        step.body_excerpt.as_deref(),
        Some(DOC),
        "a failed step shows the body"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_forms_integer_list_class_and_default() {
    let server = MockServer::start().await;
    for (p, code) in [("/created", 201), ("/accepted", 202), ("/nocontent", 204)] {
        Mock::given(path(p))
            .respond_with(ResponseTemplate::new(code))
            .mount(&server)
            .await;
    }
    // Anything else is wiremock's 404.
    let suite = Suite::new(&settings(&server.uri(), ""));
    let flows = [
        ("int", "/created", "status = 201"),
        ("int-fail", "/created", "status = 200"),
        ("list", "/accepted", "status = [200, 202]"),
        ("list-fail", "/nocontent", "status = [200, 201]"),
        ("class", "/nocontent", "status = \"2xx\""),
        ("class4", "/missing", "status = \"4xx\""),
        ("class-fail", "/created", "status = \"3xx\""),
        ("default", "/missing", ""),
        ("default-ok", "/created", ""),
    ];
    for (name, p, expect) in flows {
        suite.write(
            &format!("{name}.toml"),
            format!("[[step]]\nname = \"s\"\npath = \"{p}\"\n[step.expect]\n{expect}\n"),
        );
    }
    let run = run(suite.load()).await;
    let s = |flow| run.step(flow, "s");
    check(s("int"), "status", "equals", json!(201), json!(201), true);
    check(
        s("int-fail"),
        "status",
        "equals",
        json!(200),
        json!(201),
        false,
    );
    check(
        s("list"),
        "status",
        "one_of",
        json!([200, 202]),
        json!(202),
        true,
    );
    check(
        s("list-fail"),
        "status",
        "one_of",
        json!([200, 201]),
        json!(204),
        false,
    );
    check(
        s("class"),
        "status",
        "class",
        json!("2xx"),
        json!(204),
        true,
    );
    check(
        s("class4"),
        "status",
        "class",
        json!("4xx"),
        json!(404),
        true,
    );
    check(
        s("class-fail"),
        "status",
        "class",
        json!("3xx"),
        json!(201),
        false,
    );
    check(
        s("default"),
        "status",
        "class",
        json!("2xx"),
        json!(404),
        false,
    );
    check(
        s("default-ok"),
        "status",
        "class",
        json!("2xx"),
        json!(201),
        true,
    );
    for (name, passes) in [
        ("int", true),
        ("int-fail", false),
        ("list", true),
        ("list-fail", false),
        ("class", true),
        ("class4", true),
        ("class-fail", false),
        ("default", false),
        ("default-ok", true),
    ] {
        let want = if passes {
            FlowOutcome::Passed
        } else {
            FlowOutcome::Failed
        };
        assert_eq!(run.flow(name).outcome, want, "flow {name}");
    }
    assert_eq!(run.report.summary.failed, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn header_expectations_use_case_insensitive_names() {
    let server = MockServer::start().await;
    Mock::given(path("/h"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Request-Id", "r-77")
                .set_body_raw("{}", "application/json; charset=utf-8"),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "h-pass.toml",
        r#"
[[step]]
name = "s"
path = "/h"
[step.expect]
headers = { "X-Request-ID" = { matches = '^r-\d+$' }, "Content-Type" = { contains = "application/json" }, x-absent = { exists = false } }
"#,
    );
    suite.write(
        "h-fail.toml",
        r#"
[[step]]
name = "s"
path = "/h"
[step.expect]
headers = { X-REQUEST-ID = "r-78", CONTENT-TYPE = { contains = "text/html" }, X-Absent = { exists = true } }
"#,
    );
    let run = run(suite.load()).await;
    let ok = run.step("h-pass", "s");
    check(
        ok,
        "header x-request-id",
        "matches",
        json!(r"^r-\d+$"),
        json!("r-77"),
        true,
    );
    check(
        ok,
        "header content-type",
        "contains",
        json!("application/json"),
        json!("application/json; charset=utf-8"),
        true,
    );
    check(
        ok,
        "header x-absent",
        "exists",
        json!(false),
        json!("<missing>"),
        true,
    );
    assert_eq!(ok.outcome, StepOutcome::Passed);
    let bad = run.step("h-fail", "s");
    check(
        bad,
        "header x-request-id",
        "equals",
        json!("r-78"),
        json!("r-77"),
        false,
    );
    check(
        bad,
        "header content-type",
        "contains",
        json!("text/html"),
        json!("application/json; charset=utf-8"),
        false,
    );
    check(
        bad,
        "header x-absent",
        "exists",
        json!(true),
        json!("<missing>"),
        false,
    );
    assert_eq!(bad.outcome, StepOutcome::Failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_latency_is_checked_against_a_delayed_server() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "fast-enough.toml",
        "[[step]]\nname = \"s\"\npath = \"/slow\"\n[step.expect]\nmax_latency = \"5s\"\n",
    );
    suite.write(
        "too-slow.toml",
        "[[step]]\nname = \"s\"\npath = \"/slow\"\n[step.expect]\nmax_latency = \"100ms\"\n",
    );
    let run = run(suite.load()).await;

    let ok = run.step("fast-enough", "s");
    let a = assertion(ok, "latency", "le");
    assert!(a.passed);
    assert_eq!(a.expected, json!(5000));
    assert!(
        a.actual
            .as_u64()
            .is_some_and(|ms| (300..5000).contains(&ms)),
        "{a:#?}"
    );
    assert!(ok.latency_ms.is_some_and(|ms| ms >= 300));

    let slow = run.step("too-slow", "s");
    let a = assertion(slow, "latency", "le");
    assert!(!a.passed);
    assert_eq!(a.expected, json!(100));
    assert!(a.actual.as_u64().is_some_and(|ms| ms >= 300), "{a:#?}");
    assert_eq!(slow.outcome, StepOutcome::Failed);
    assert_eq!(run.flow("too-slow").outcome, FlowOutcome::Failed);
}

// ---------------------------------------------------------------------------------------------
// 2. Captures
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_capture_kind_feeds_a_later_step() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/start"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-CSRF-Token", "tok-1")
                .insert_header("set-cookie", "session_id=sess-5; Path=/")
                .set_body_raw(
                    r#"{"cart":{"id":"abc"},"note":"your order-9876 is ready"}"#,
                    "application/json",
                ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/carts/abc"))
        .and(header("x-csrf", "tok-1"))
        .and(header("x-session", "sess-5"))
        .and(query_param("order", "9876"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "checkout.toml",
        r#"
[[step]]
name = "start"
path = "/start"
[step.capture]
cart_id = "$.cart.id"
csrf = { header = "x-csrf-token" }
order_no = { body_regex = 'order-(\d+)' }
session = { cookie = "session_id" }

[[step]]
name = "use"
method = "POST"
path = "/carts/{{ cart_id }}"
query = { order = "{{ order_no }}" }
headers = { x-csrf = "{{ csrf }}", x-session = "{{ session }}" }
[step.expect]
status = 201
"#,
    );
    let run = run(suite.load()).await;
    assert_eq!(
        run.flow("checkout").outcome,
        FlowOutcome::Passed,
        "{:#?}",
        run.flow("checkout")
    );
    assert_eq!(run.step("checkout", "use").status, Some(201));
    let used = requests_to(&server, "POST", "/carts/abc").await;
    assert_eq!(used.len(), 1);
    assert_eq!(header_of(&used[0], "x-csrf").as_deref(), Some("tok-1"));
    assert_eq!(header_of(&used[0], "x-session").as_deref(), Some("sess-5"));
    assert_eq!(used[0].url.query(), Some("order=9876"));
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_that_finds_nothing_fails_the_step() {
    let server = MockServer::start().await;
    Mock::given(path("/thing"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"a":1}"#, "application/json"))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    let cases = [
        ("miss-json", r#""$.nothing""#, "$.nothing"),
        ("miss-header", r#"{ header = "x-none" }"#, "header x-none"),
        (
            "miss-regex",
            r#"{ body_regex = 'zzz(\d+)' }"#,
            r"body_regex zzz(\d+)",
        ),
        ("miss-cookie", r#"{ cookie = "nope" }"#, "cookie nope"),
    ];
    for (name, capture, _) in cases {
        suite.write(
            &format!("{name}.toml"),
            format!("[[step]]\nname = \"get\"\npath = \"/thing\"\ncapture = {{ x = {capture} }}\n\n[[step]]\nname = \"next\"\npath = \"/thing\"\n"),
        );
    }
    let run = run(suite.load()).await;
    for (name, _, label) in cases {
        let step = run.step(name, "get");
        assert_eq!(step.outcome, StepOutcome::Failed, "{name}: {step:#?}");
        assert_eq!(step.status, Some(200));
        let a = assertion(step, "capture x", "captures");
        assert!(!a.passed);
        assert_eq!(a.expected, json!(label), "{name}");
        assert_eq!(a.actual, json!("<missing>"));
        assert!(
            a.message
                .as_deref()
                .is_some_and(|m| m.contains("found nothing")),
            "{a:#?}"
        );
        assert_eq!(run.step(name, "next").outcome, StepOutcome::Skipped);
        assert_eq!(run.flow(name).outcome, FlowOutcome::Failed);
    }
    assert_eq!(
        requests_to(&server, "GET", "/thing").await.len(),
        4,
        "no `next` step ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_capture_never_reaches_the_report() {
    const TOKEN: &str = "cap-secret-9911";
    let server = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "token": TOKEN })))
        .mount(&server)
        .await;
    Mock::given(path("/me"))
        .and(header("x-token", TOKEN))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "ok": false, "echo": TOKEN })),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "secret-capture.toml",
        r#"
[[step]]
name = "login"
path = "/login"
capture = { token = { json = "$.token", secret = true } }

[[step]]
name = "me"
path = "/me"
headers = { x-token = "{{ token }}" }
[step.expect.json]
"$.ok" = true
"$.echo" = { not_equals = "{{ token }}" }
"#,
    );
    let run = run(suite.load()).await;
    let me = run.step("secret-capture", "me");
    assert_eq!(me.status, Some(200), "the captured token was sent");
    assert_eq!(me.outcome, StepOutcome::Failed);
    // ...and the report and the terminal never do.
    let report = run.json();
    assert!(
        !report.contains(TOKEN),
        "secret capture leaked into the report:\n{report}"
    );
    assert!(
        !run.terminal().contains(TOKEN),
        "secret capture leaked into the terminal"
    );
    let shown = &run.report.flows[0].steps[1];
    assert_eq!(
        shown.request_headers.get("x-token").map(String::as_str),
        Some("***")
    );
    assert_eq!(
        assertion(shown, "$.echo", "not_equals").expected,
        json!("***")
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Templates
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn typed_placeholders_vars_precedence_and_env() {
    let server = MockServer::start().await;
    Mock::given(path("/qty"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "qty": 3 })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(
        &server.uri(),
        "[vars]\ncolor = \"red\"\nsize = \"S\"\nregion = \"eu\"\nlimit = 5\nuser = { name = \"zoe\" }\n",
    ));
    suite.write(
        "a-order.toml",
        r#"
[vars]
color = "green"
size = "M"
sku = "SKU-1"

[[step]]
name = "qty"
path = "/qty"
capture = { qty = "$.qty" }

[[step]]
name = "order"
method = "POST"
path = "/order"
query = { c = "{{ color }}" }
headers = { x-user = "{{ env.SMOKE_USER }}" }
json = { qty = "{{ qty }}", note = "sku {{ sku }} x{{ qty }}", color = "{{ color }}", size = "{{ size }}", region = "{{ region }}", limit = "{{ limit }}", who = "{{ env.SMOKE_USER }}", owner = "{{ user.name }}", nested = { list = ["{{ qty }}", "id-{{ region }}"] } }
"#,
    );
    suite.write(
        "b-plain.toml",
        r#"
[[step]]
name = "order2"
method = "POST"
path = "/order2"
json = { color = "{{ color }}", size = "{{ size }}" }
"#,
    );
    let overrides = Overrides {
        vars: vec![("color".into(), "blue".into())],
        ..Overrides::default()
    };
    let plan = suite.load_with(overrides, &[("SMOKE_USER", "ann")]);
    let run = run(plan).await;
    assert!(run.passed(), "{:#?}", run.report.flows);

    let order = requests_to(&server, "POST", "/order").await;
    assert_eq!(order.len(), 1);
    let body: Value = order[0].body_json().expect("a JSON body");
    assert_eq!(
        body,
        json!({
            "qty": 3, "note": "sku SKU-1 x3", "color": "blue", "size": "M", "region": "eu",
            "limit": 5, "who": "ann", "owner": "zoe", "nested": { "list": [3, "id-eu"] }
        }),
        "captured number stays a number, text is interpolated, --var > flow [vars] > suite [vars]"
    );
    assert_eq!(header_of(&order[0], "x-user").as_deref(), Some("ann"));
    assert_eq!(
        header_of(&order[0], "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(order[0].url.query(), Some("c=blue"));

    let order2 = requests_to(&server, "POST", "/order2").await;
    let body: Value = order2[0].body_json().expect("a JSON body");
    assert_eq!(
        body,
        json!({ "color": "blue", "size": "S" }),
        "flow [vars] belong to their flow only"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Cookies
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn cookies_are_kept_within_a_flow_and_not_shared_across_flows() {
    let server = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(ResponseTemplate::new(200).insert_header("set-cookie", "sid=xyz; Path=/"))
        .mount(&server)
        .await;
    Mock::given(path("/account"))
        .and(header("cookie", "sid=xyz"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/public"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    // concurrency 1: flows run in path order, so `b` starts after `a` got its cookie.
    let suite = Suite::new(&settings(&server.uri(), "concurrency = 1"));
    suite.write(
        "a-session.toml",
        "[[step]]\nname = \"login\"\npath = \"/login\"\n\n[[step]]\nname = \"account\"\npath = \"/account\"\n",
    );
    suite.write(
        "b-other.toml",
        "[[step]]\nname = \"public\"\npath = \"/public\"\n",
    );
    let run = run(suite.load()).await;
    assert_eq!(
        run.flow("a-session").outcome,
        FlowOutcome::Passed,
        "{:#?}",
        run.flow("a-session")
    );
    let account = requests_to(&server, "GET", "/account").await;
    assert_eq!(header_of(&account[0], "cookie").as_deref(), Some("sid=xyz"));
    let public = requests_to(&server, "GET", "/public").await;
    assert_eq!(public.len(), 1);
    assert_eq!(
        header_of(&public[0], "cookie"),
        None,
        "another flow must not see the cookie"
    );
    assert!(run.passed());
}

// ---------------------------------------------------------------------------------------------
// 5. Redirects
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn without_follow_redirects_a_302_is_the_response() {
    let server = MockServer::start().await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/new"))
        .mount(&server)
        .await;
    Mock::given(path("/new"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), "follow_redirects = false"));
    suite.write(
        "r-default.toml",
        "[[step]]\nname = \"s\"\npath = \"/old\"\n",
    );
    suite.write(
        "r-302.toml",
        "[[step]]\nname = \"s\"\npath = \"/old\"\n[step.expect]\nstatus = 302\nheaders = { location = \"/new\" }\n",
    );
    let run = run(suite.load()).await;
    let default = run.step("r-default", "s");
    assert_eq!(default.status, Some(302));
    check(default, "status", "class", json!("2xx"), json!(302), false);
    assert_eq!(run.flow("r-default").outcome, FlowOutcome::Failed);
    let expected = run.step("r-302", "s");
    check(expected, "status", "equals", json!(302), json!(302), true);
    check(
        expected,
        "header location",
        "equals",
        json!("/new"),
        json!("/new"),
        true,
    );
    assert_eq!(run.flow("r-302").outcome, FlowOutcome::Passed);
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_redirects_follows_up_to_ten_hops() {
    let server = MockServer::start().await;
    for n in 0..11 {
        Mock::given(path(format!("/hop/{n}")))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("location", format!("/hop/{}", n + 1).as_str()),
            )
            .mount(&server)
            .await;
    }
    Mock::given(path("/hop/11"))
        .respond_with(ResponseTemplate::new(200).set_body_string("arrived"))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), "follow_redirects = true"));
    suite.write(
        "one-hop.toml",
        "[[step]]\nname = \"s\"\npath = \"/hop/10\"\n[step.expect]\nbody = \"arrived\"\n",
    );
    suite.write(
        "ten-hops.toml",
        "[[step]]\nname = \"s\"\npath = \"/hop/1\"\n[step.expect]\nbody = \"arrived\"\n",
    );
    suite.write(
        "eleven-hops.toml",
        "[[step]]\nname = \"s\"\npath = \"/hop/0\"\n",
    );
    let run = run(suite.load()).await;
    for flow in ["one-hop", "ten-hops"] {
        let step = run.step(flow, "s");
        assert_eq!(step.outcome, StepOutcome::Passed, "{flow}: {step:#?}");
        assert_eq!(step.status, Some(200));
        assert_eq!(
            step.url.as_deref(),
            Some(format!("{}/hop/11", server.uri()).as_str()),
            "the final URL is reported"
        );
        check(
            step,
            "body",
            "equals",
            json!("arrived"),
            json!("arrived"),
            true,
        );
    }
    let eleven = run.step("eleven-hops", "s");
    assert_eq!(eleven.outcome, StepOutcome::Failed);
    let error = eleven.error.as_deref().unwrap_or_default();
    assert!(error.contains("too many redirects"), "error: {error:?}");
    assert_eq!(run.flow("eleven-hops").outcome, FlowOutcome::Failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_origin_redirect_drops_credentials() {
    let staging = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(path("/same"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/here"))
        .mount(&staging)
        .await;
    Mock::given(path("/here"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    Mock::given(path("/go"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/landing", other.uri()).as_str()),
        )
        .mount(&staging)
        .await;
    Mock::given(path("/landing"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&other)
        .await;
    let suite = Suite::new(&settings(&staging.uri(), "follow_redirects = true"));
    suite.write(
        "hop.toml",
        r#"
[[step]]
name = "same origin"
path = "/same"
headers = { authorization = "Bearer staging-cred", x-trace = "t-1" }

[[step]]
name = "other origin"
path = "/go"
headers = { authorization = "Bearer staging-cred", proxy-authorization = "Basic cHJveHk6cHc=", cookie = "own=1", x-trace = "t-1" }
"#,
    );
    let run = run(suite.load()).await;
    assert!(run.passed(), "{:#?}", run.report.flows);
    let here = requests_to(&staging, "GET", "/here").await;
    assert_eq!(
        header_of(&here[0], "authorization").as_deref(),
        Some("Bearer staging-cred"),
        "same origin keeps it"
    );
    let landing = requests_to(&other, "GET", "/landing").await;
    assert_eq!(landing.len(), 1);
    assert_eq!(
        header_of(&landing[0], "authorization"),
        None,
        "authorization must not reach another origin"
    );
    assert_eq!(header_of(&landing[0], "proxy-authorization"), None);
    assert!(
        !header_of(&landing[0], "cookie")
            .unwrap_or_default()
            .contains("own=1"),
        "the step's own cookie header must not reach another origin"
    );
    assert_eq!(
        header_of(&landing[0], "x-trace").as_deref(),
        Some("t-1"),
        "other headers are kept"
    );
    assert_eq!(
        run.step("hop", "other origin").url.as_deref(),
        Some(format!("{}/landing", other.uri()).as_str())
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Cleanups
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_runs_after_a_failed_step_and_later_steps_are_skipped() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/carts"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": "c-42" })))
        .mount(&server)
        .await;
    Mock::given(path("/carts/c-42/pay"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/carts/c-42"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/never"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "cart.toml",
        r#"
[[step]]
name = "create"
method = "POST"
path = "/carts"
capture = { cart_id = "$.id" }

[[step]]
name = "pay"
method = "POST"
path = "/carts/{{ cart_id }}/pay"

[[step]]
name = "confirm"
path = "/never"
capture = { order_id = "$.order" }

[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/carts/{{ cart_id }}"

[[cleanup]]
name = "cancel order"
method = "DELETE"
path = "/orders/{{ order_id }}"
"#,
    );
    let run = run(suite.load()).await;
    assert_eq!(run.step("cart", "create").outcome, StepOutcome::Passed);
    let pay = run.step("cart", "pay");
    assert_eq!(pay.outcome, StepOutcome::Failed);
    assert_eq!(pay.status, Some(500));
    let confirm = run.step("cart", "confirm");
    assert_eq!(confirm.outcome, StepOutcome::Skipped);
    assert!(confirm.skipped_because.is_some());
    let delete = run.step("cart", "delete cart");
    assert_eq!(
        (delete.phase, delete.outcome, delete.status),
        (Phase::Cleanup, StepOutcome::Passed, Some(204))
    );
    let cancel = run.step("cart", "cancel order");
    assert_eq!(
        (cancel.phase, cancel.outcome),
        (Phase::Cleanup, StepOutcome::Skipped)
    );
    let because = cancel.skipped_because.as_deref().unwrap_or_default();
    assert!(
        because.contains("order_id") && because.contains("never happened"),
        "{because:?}"
    );
    assert_eq!(
        requests_to(&server, "DELETE", "/carts/c-42").await.len(),
        1,
        "the cleanup reached the server"
    );
    assert!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| !r.url.path().starts_with("/orders"))
    );
    assert_eq!(run.flow("cart").outcome, FlowOutcome::Failed);
    assert_eq!(run.report.reasons, ["flow 'cart' failed at step 'pay'"]);
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_cleanup_warns_but_does_not_change_the_verdict() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/tmp"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "tidy.toml",
        "[[step]]\nname = \"ok\"\npath = \"/ok\"\n\n[[cleanup]]\nname = \"remove tmp\"\nmethod = \"DELETE\"\npath = \"/tmp\"\n",
    );
    let run = run(suite.load()).await;
    assert_eq!(run.flow("tidy").outcome, FlowOutcome::Passed);
    assert_eq!(run.step("tidy", "remove tmp").outcome, StepOutcome::Failed);
    assert!(run.passed(), "{}", run.stdout);
    assert_eq!(run.report.verdict, GateVerdict::Pass);
    assert_eq!(run.report.warnings.len(), 1, "{:?}", run.report.warnings);
    let warning = &run.report.warnings[0];
    assert!(
        warning.kind == WarningKind::CleanupFailed
            && warning.message.starts_with("cleanup failed")
            && warning.message.contains("tidy")
            && warning.message.contains("remove tmp"),
        "{warning:?}"
    );
    assert!(
        run.report
            .headline
            .starts_with("GATE PASSED: 1 flow, 0 failed, 1 warning, "),
        "{}",
        run.report.headline
    );
    server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Deadline
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_stops_the_run_and_cleanups_still_run() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/cleanup"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(path("/later"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(
        &server.uri(),
        "deadline = \"1s\"\nconcurrency = 1",
    ));
    suite.write(
        "a-slow.toml",
        "[[step]]\nname = \"slow\"\npath = \"/slow\"\n\n[[cleanup]]\nname = \"tidy\"\nmethod = \"DELETE\"\npath = \"/cleanup\"\n",
    );
    suite.write(
        "b-later.toml",
        "[[step]]\nname = \"later\"\npath = \"/later\"\n",
    );
    let run = run(suite.load()).await;
    assert!(
        run.elapsed < Duration::from_secs(8),
        "the run took {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed >= Duration::from_millis(900),
        "the run took {:?}",
        run.elapsed
    );
    assert_eq!(run.code, 1);
    assert!(
        run.report
            .reasons
            .iter()
            .any(|r| r == "deadline 1s exceeded"),
        "{:?}",
        run.report.reasons
    );
    assert!(
        run.report.reasons.iter().any(|r| r.contains("deadline")),
        "{:?}",
        run.report.reasons
    );
    assert!(
        run.report.headline.starts_with("GATE FAILED: ")
            && run.report.headline.contains("deadline")
    );
    let slow = run.step("a-slow", "slow");
    assert_eq!(slow.outcome, StepOutcome::Failed);
    assert!(
        slow.error
            .as_deref()
            .is_some_and(|e| e.contains("deadline")),
        "{slow:#?}"
    );
    let tidy = run.step("a-slow", "tidy");
    assert_eq!(
        (tidy.outcome, tidy.status),
        (StepOutcome::Passed, Some(204)),
        "{tidy:#?}"
    );
    assert_eq!(
        requests_to(&server, "DELETE", "/cleanup").await.len(),
        1,
        "the cleanup ran"
    );
    assert_eq!(run.flow("b-later").outcome, FlowOutcome::Skipped);
    server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// 8. Body limit
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_max_body_fail_the_step() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; 64 * 1024]))
        .mount(&server)
        .await;
    Mock::given(path("/exact"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; 1024]))
        .mount(&server)
        .await;
    let raw = RawServer::start(|_| async { http_chunked(64, 1024) }).await;
    let small = RawServer::start(|_| async { http_chunked(2, 100) }).await;
    let suite = Suite::new(&settings(&server.uri(), "max_body = \"1KiB\""));
    suite.write("big.toml", "[[step]]\nname = \"s\"\npath = \"/big\"\n");
    suite.write("exact.toml", "[[step]]\nname = \"s\"\npath = \"/exact\"\n");
    suite.write(
        "chunked.toml",
        format!("[[step]]\nname = \"s\"\nurl = \"{}/stream\"\n", raw.url),
    );
    suite.write(
        "chunked-small.toml",
        format!("[[step]]\nname = \"s\"\nurl = \"{}/stream\"\n[step.expect]\nbody = {{ length = 200 }}\n", small.url),
    );
    let run = run(suite.load()).await;
    for flow in ["big", "chunked"] {
        let step = run.step(flow, "s");
        assert_eq!(step.outcome, StepOutcome::Failed, "{flow}");
        let error = step.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("1024") && error.contains("max_body"),
            "{flow}: error {error:?}"
        );
    }
    assert_eq!(
        run.step("exact", "s").outcome,
        StepOutcome::Passed,
        "exactly max_body is allowed"
    );
    let chunked_small = run.step("chunked-small", "s");
    assert_eq!(
        chunked_small.outcome,
        StepOutcome::Passed,
        "{chunked_small:#?}"
    );
    assert_eq!(raw.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// 9. Concurrency
// ---------------------------------------------------------------------------------------------

async fn concurrency_run(
    flows: usize,
    concurrency: usize,
    delay: Duration,
) -> (RawServer, common::Run) {
    let server = RawServer::start(move |_| async move {
        tokio::time::sleep(delay).await;
        http_ok("ok")
    })
    .await;
    let suite = Suite::new(&settings(
        &server.url,
        &format!("concurrency = {concurrency}"),
    ));
    for i in 0..flows {
        suite.write(
            &format!("f{i:02}.toml"),
            "[[step]]\nname = \"s\"\npath = \"/slow\"\n",
        );
    }
    let run = run(suite.load()).await;
    (server, run)
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_bounds_the_flows_in_flight() {
    use std::sync::atomic::Ordering::SeqCst;
    let (server, run) = concurrency_run(16, 8, Duration::from_secs(1)).await;
    assert!(run.passed(), "{:#?}", run.report.flows);
    assert_eq!(server.hits.load(SeqCst), 16);
    assert_eq!(
        server.peak.load(SeqCst),
        8,
        "exactly `concurrency` requests in flight at the peak"
    );
    let secs = run.elapsed.as_secs_f64();
    assert!(
        (1.8..6.0).contains(&secs),
        "16 flows of 1 s with 8 slots took {secs:.2}s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_one_runs_flows_one_at_a_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let (server, run) = concurrency_run(4, 1, Duration::from_millis(150)).await;
    assert!(run.passed(), "{:#?}", run.report.flows);
    assert_eq!(server.hits.load(SeqCst), 4);
    assert_eq!(server.peak.load(SeqCst), 1);
    assert!(
        run.elapsed >= Duration::from_millis(600),
        "took {:?}",
        run.elapsed
    );
    let names: Vec<&str> = run.report.flows.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["f00", "f01", "f02", "f03"],
        "flows are reported in path order"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Secrets
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "s3cr3t tok/en\"x";

#[tokio::test(flavor = "multi_thread")]
async fn secrets_appear_in_no_report_and_no_terminal_output() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/secure"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "token": "wrong", "echo": SECRET })),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "secure.toml",
        r#"
[[step]]
name = "use secret"
method = "POST"
path = "/secure"
query = { key = "{{ secret.SMOKE_TOKEN }}" }
headers = { authorization = "Bearer {{ secret.SMOKE_TOKEN }}", x-api-key = "{{ secret.SMOKE_TOKEN }}" }
json = { token = "{{ secret.SMOKE_TOKEN }}", note = "t={{ secret.SMOKE_TOKEN }}" }

[step.expect.json]
"$.token" = "{{ secret.SMOKE_TOKEN }}"
"#,
    );
    let plan = suite.load_with(Overrides::default(), &[("SMOKE_TOKEN", SECRET)]);
    let run = run(plan).await;

    // The secret really went out, in every place.
    let sent = requests_to(&server, "POST", "/secure").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        header_of(&sent[0], "authorization"),
        Some(format!("Bearer {SECRET}"))
    );
    assert_eq!(header_of(&sent[0], "x-api-key").as_deref(), Some(SECRET));
    let key: Vec<(String, String)> = sent[0].url.query_pairs().into_owned().collect();
    assert_eq!(key, [("key".to_string(), SECRET.to_string())]);
    assert_eq!(
        sent[0].body_json::<Value>().unwrap(),
        json!({ "token": SECRET, "note": format!("t={SECRET}") })
    );

    let step = run.step("secure", "use secret");
    assert_eq!(step.outcome, StepOutcome::Failed);
    let report = run.json();
    let terminal = run.terminal();
    for (what, text) in [("JSON report", &report), ("terminal summary", &terminal)] {
        for fragment in ["s3cr3t", "tok/en", "tok%2Fen"] {
            assert!(
                !text.contains(fragment),
                "{what} contains `{fragment}`:\n{text}"
            );
        }
    }
    let shown = &run.report.flows[0].steps[0];
    assert_eq!(
        shown
            .request_headers
            .get("authorization")
            .map(String::as_str),
        Some("***")
    );
    assert_eq!(
        shown.request_headers.get("x-api-key").map(String::as_str),
        Some("***")
    );
    assert_eq!(assertion(shown, "$.token", "equals").expected, json!("***"));
    assert!(
        shown
            .url
            .as_deref()
            .is_some_and(|u| u.ends_with("/secure?key=***")),
        "{:?}",
        shown.url
    );
    assert!(terminal.contains("GATE FAILED"));
}

/// A secret is redacted in every output. Here it sits in the path, where the URL
/// percent-encodes it differently from a query string.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_the_path_is_redacted_in_the_reported_url() {
    let server = MockServer::start().await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "path-secret.toml",
        "[[step]]\nname = \"s\"\npath = \"/keys/{{ secret.SMOKE_TOKEN }}\"\n",
    );
    let plan = suite.load_with(Overrides::default(), &[("SMOKE_TOKEN", SECRET)]);
    let run = run(plan).await;
    let step = run.step("path-secret", "s");
    assert_eq!(step.status, Some(404));
    let report = run.json();
    assert!(
        !report.contains("s3cr3t"),
        "the secret leaked through the URL:\n{report}"
    );
    assert!(!run.terminal().contains("s3cr3t"));
}

/// A failed step keeps a body excerpt; a secret the server echoes right at the excerpt's end
/// must not leak partly (the start of a token is still a leak).
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_cut_by_the_body_excerpt_does_not_leak_partly() {
    const TOKEN: &str = "EchoedTokenABCDEFGHIJKLMNOP";
    let server = MockServer::start().await;
    let body = format!("{}{TOKEN}", "-".repeat(490));
    Mock::given(path("/echo"))
        .respond_with(ResponseTemplate::new(500).set_body_string(body))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write("echo.toml", "[[step]]\nname = \"s\"\npath = \"/echo\"\nheaders = { x-t = \"{{ secret.SMOKE_TOKEN }}\" }\n");
    let plan = suite.load_with(Overrides::default(), &[("SMOKE_TOKEN", TOKEN)]);
    let run = run(plan).await;
    assert_eq!(run.step("echo", "s").status, Some(500));
    let report = run.json();
    assert!(
        !report.contains("Echoed"),
        "a cut secret leaked its first characters:\n{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Criticality
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_non_critical_failure_warns_and_a_critical_one_fails() {
    let server = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write("main.toml", "[[step]]\nname = \"s\"\npath = \"/ok\"\n");
    suite.write(
        "optional.toml",
        "critical = false\n[[step]]\nname = \"s\"\npath = \"/missing\"\n",
    );
    let run = run(suite.load()).await;
    assert_eq!(run.flow("optional").outcome, FlowOutcome::Warned);
    assert_eq!(run.flow("main").outcome, FlowOutcome::Passed);
    assert!(run.passed(), "{}", run.stdout);
    assert_eq!(run.report.summary.warned, 1);
    assert!(
        run.report
            .warnings
            .iter()
            .any(|w| w.flow == "optional" && w.kind == WarningKind::NonCriticalFlowFailed),
        "{:?}",
        run.report.warnings
    );

    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write("main.toml", "[[step]]\nname = \"s\"\npath = \"/missing\"\n");
    suite.write(
        "optional.toml",
        "critical = false\n[[step]]\nname = \"s\"\npath = \"/ok\"\n",
    );
    let failing = common::run(suite.load()).await;
    assert_eq!(failing.flow("main").outcome, FlowOutcome::Failed);
    assert_eq!(failing.code, 1);
    assert_eq!(failing.report.reasons, ["flow 'main' failed at step 's'"]);
    assert_eq!(failing.report.headline, "GATE FAILED: 1 of 2 flows failed");
}

// ---------------------------------------------------------------------------------------------
// 12. Setup
// ---------------------------------------------------------------------------------------------

const SETUP: &str = r#"
[[setup]]
name = "log in"
method = "POST"
path = "/login"
json = { user = "smoke" }
capture = { token = "$.token" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn setup_captures_are_visible_to_every_flow() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "token": "t-77" })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path_regex("^/(a|b)$"))
        .and(header("authorization", "Bearer t-77"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), SETUP));
    for name in ["a", "b"] {
        suite.write(
            &format!("{name}.toml"),
            format!("[[step]]\nname = \"s\"\npath = \"/{name}\"\nheaders = {{ authorization = \"Bearer {{{{ token }}}}\" }}\n"),
        );
    }
    let run = run(suite.load()).await;
    assert_eq!(run.report.setup.len(), 1);
    assert_eq!(run.report.setup[0].outcome, StepOutcome::Passed);
    assert_eq!(
        run.flow("a").outcome,
        FlowOutcome::Passed,
        "{:#?}",
        run.flow("a")
    );
    assert_eq!(
        run.flow("b").outcome,
        FlowOutcome::Passed,
        "{:#?}",
        run.flow("b")
    );
    assert!(run.passed());
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_setup_skips_every_flow_and_fails_the_gate() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), SETUP));
    for name in ["a", "b"] {
        suite.write(
            &format!("{name}.toml"),
            format!("[[step]]\nname = \"s\"\npath = \"/{name}\"\n"),
        );
    }
    let run = run(suite.load()).await;
    assert_eq!(run.report.setup[0].outcome, StepOutcome::Failed);
    for name in ["a", "b"] {
        let flow = run.flow(name);
        assert_eq!(flow.outcome, FlowOutcome::Skipped);
        assert_eq!(flow.steps[0].outcome, StepOutcome::Skipped);
    }
    assert_eq!(run.code, 1);
    let reasons = &run.report.reasons;
    assert!(
        reasons.iter().any(|r| r == "setup step 'log in' failed"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "2 flows not run"),
        "{reasons:?}"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no flow request was sent"
    );
    assert_eq!(run.report.summary.skipped, 2);
    server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// 13. Connection refused
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_a_connect_error_with_the_os_reason() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    let suite = Suite::new(&settings(&base, ""));
    suite.write(
        "health.toml",
        "[[step]]\nname = \"health\"\npath = \"/health\"\n",
    );
    let run = run(suite.load()).await;
    let step = run.step("health", "health");
    assert_eq!(step.outcome, StepOutcome::Failed);
    assert_eq!(step.status, None);
    let error = step.error.as_deref().unwrap_or_default();
    assert!(error.starts_with("connect failed"), "error: {error:?}");
    assert!(
        error.to_lowercase().contains("connection refused"),
        "the OS reason is shown: {error:?}"
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.report.verdict, GateVerdict::Fail);
}

// ---------------------------------------------------------------------------------------------
// 14. Content encodings
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn gzip_and_deflate_bodies_are_decoded_before_assertions() {
    const PLAIN: &str = r#"{"msg":"hello gzip","n":42}"#;
    let server = MockServer::start().await;
    Mock::given(path("/gz"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_raw(gzip(PLAIN.as_bytes()), "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/zz"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "deflate")
                .set_body_raw(zlib(PLAIN.as_bytes()), "application/json"),
        )
        .mount(&server)
        .await;
    let hex = sha256_hex(PLAIN.as_bytes());
    assert_ne!(hex, sha256_hex(&gzip(PLAIN.as_bytes())));
    let suite = Suite::new(&settings(&server.uri(), ""));
    for (name, p) in [("gzip", "/gz"), ("deflate", "/zz")] {
        suite.write(
            &format!("{name}.toml"),
            format!(
                "[[step]]\nname = \"s\"\npath = \"{p}\"\ncapture = {{ n = {{ body_regex = '\"n\":(\\d+)' }} }}\n\
                 [step.expect]\nbody = {{ sha256 = \"{hex}\" }}\n[step.expect.json]\n\"$.msg\" = \"hello gzip\"\n\n\
                 [[step]]\nname = \"use\"\npath = \"/echo/{{{{ n }}}}\"\n[step.expect]\nstatus = 404\n"
            ),
        );
    }
    let run = run(suite.load()).await;
    for name in ["gzip", "deflate"] {
        let step = run.step(name, "s");
        assert_eq!(step.outcome, StepOutcome::Passed, "{name}: {step:#?}");
        check(step, "body", "sha256", json!(hex), json!(hex), true);
        check(
            step,
            "$.msg",
            "equals",
            json!("hello gzip"),
            json!("hello gzip"),
            true,
        );
        assert_eq!(run.flow(name).outcome, FlowOutcome::Passed);
    }
    let echoed = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/echo/42")
        .count();
    assert_eq!(echoed, 2, "the regex capture read the decoded body");
}

// ---------------------------------------------------------------------------------------------
// Extra: per-step timeout
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_step_timeout_fails_the_step_with_its_duration() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "t.toml",
        "[[step]]\nname = \"s\"\npath = \"/slow\"\ntimeout = \"300ms\"\n",
    );
    let run = run(suite.load()).await;
    let step = run.step("t", "s");
    assert_eq!(step.outcome, StepOutcome::Failed);
    assert_eq!(step.error.as_deref(), Some("timed out after 300ms"));
    assert!(
        run.elapsed < Duration::from_secs(2),
        "took {:?}",
        run.elapsed
    );
}

// ---------------------------------------------------------------------------------------------
// Extra: typed placeholders in expectations
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn placeholders_in_expectations_keep_their_type() {
    let server = MockServer::start().await;
    Mock::given(path("/a"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "qty": 3, "id": "c-9" })))
        .mount(&server)
        .await;
    Mock::given(path("/b"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "qty": 3, "label": "n=3", "ref": "c-9" })),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), "[vars]\nmin = 2\n"));
    suite.write(
        "typed.toml",
        r#"
[[step]]
name = "a"
path = "/a"
capture = { qty = "$.qty", id = "$.id" }

[[step]]
name = "b"
path = "/b"
[step.expect.json]
"$.qty" = { equals = "{{ qty }}", ge = "{{ min }}" }
"$.label" = "n={{ qty }}"
"$.ref" = "{{ id }}"
"#,
    );
    let run = run(suite.load()).await;
    let b = run.step("typed", "b");
    check(b, "$.qty", "equals", json!(3), json!(3), true);
    check(b, "$.qty", "ge", json!(2), json!(3), true);
    check(b, "$.label", "equals", json!("n=3"), json!("n=3"), true);
    check(b, "$.ref", "equals", json!("c-9"), json!("c-9"), true);
    assert!(run.passed());
}

// ---------------------------------------------------------------------------------------------
// Extra: sensitive response headers in assertion records
// ---------------------------------------------------------------------------------------------

/// Reports show the values of `authorization`, `cookie`, `set-cookie` and
/// `proxy-authorization` as `***` unless `--show-sensitive-headers`. An expectation on the
/// `set-cookie` response header must not print the session cookie in its `actual`.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_cookie_expectation_does_not_show_the_cookie_value() {
    let server = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("set-cookie", "sid=live-session-4242; Path=/; HttpOnly"),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "login.toml",
        "[[step]]\nname = \"s\"\npath = \"/login\"\n[step.expect]\nheaders = { set-cookie = { contains = \"Secure\" } }\n",
    );
    let run = run(suite.load()).await;
    let step = run.step("login", "s");
    assert!(
        !assertion(step, "header set-cookie", "contains").passed,
        "no Secure flag: the step fails"
    );
    let report = run.json();
    assert!(
        !report.contains("live-session-4242"),
        "set-cookie value shown in the report:\n{report}"
    );
    assert!(
        !run.terminal().contains("live-session-4242"),
        "set-cookie value shown in the terminal"
    );
}

// ---------------------------------------------------------------------------------------------
// Extra: the deadline also stops `[[setup]]`
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_stops_a_slow_setup() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "token": "t" }))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(
        &server.uri(),
        &format!("deadline = \"1s\"\n{SETUP}"),
    ));
    suite.write(
        "a.toml",
        "[[step]]\nname = \"s\"\npath = \"/a\"\nheaders = { x-t = \"{{ token }}\" }\n",
    );
    let run = run(suite.load()).await;
    assert!(
        run.elapsed < Duration::from_secs(8),
        "took {:?}",
        run.elapsed
    );
    assert_ne!(run.report.setup[0].outcome, StepOutcome::Passed);
    assert_eq!(run.flow("a").outcome, FlowOutcome::Skipped);
    assert_eq!(run.code, 1);
    assert!(
        run.report
            .reasons
            .iter()
            .any(|r| r == "deadline 1s exceeded"),
        "{:?}",
        run.report.reasons
    );
    assert_eq!(requests_to(&server, "GET", "/a").await.len(), 0);
}

/// A secret whose value happens to be a word of the report's own vocabulary ("critical")
/// must not break the report: its fields keep their names and meaning, data is masked.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_equal_to_a_report_keyword_keeps_the_report_whole() {
    let server = MockServer::start().await;
    Mock::given(path("/probe"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "state": "critical" })))
        .mount(&server)
        .await;
    let suite = Suite::new(&settings(&server.uri(), ""));
    suite.write(
        "probe.toml",
        r#"
[[step]]
name = "probe"
path = "/probe"
headers = { x-token = "{{ secret.WORD }}" }
[step.expect.json]
"$.state" = "failed"
"#,
    );
    let run = run(suite.load_with(Overrides::default(), &[("WORD", "critical")])).await;
    let step = run.step("probe", "probe");
    assert_eq!(step.outcome, StepOutcome::Failed);
    assert_eq!(
        run.report.flows[0].outcome,
        FlowOutcome::Failed,
        "outcomes are not data"
    );
    assert_eq!(run.report.flows[0].steps[0].outcome, StepOutcome::Failed);
    let shown = &run.report.flows[0].steps[0].assertions[1];
    assert_eq!(
        shown.actual,
        json!("***"),
        "the secret value itself is still redacted"
    );
    let excerpt = run.report.flows[0].steps[0]
        .body_excerpt
        .as_deref()
        .unwrap();
    assert_eq!(excerpt, r#"{"state":"***"}"#);
    assert_eq!(
        run.report.flows[0].steps[0].request_headers["x-token"],
        "***"
    );
    assert_eq!(run.report.summary.failed, 1);
    assert!(run.json().contains(r#""critical": true"#), "{}", run.json());
}
