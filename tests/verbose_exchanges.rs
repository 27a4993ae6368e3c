//! `run -vv`: every step's request and response, passing steps too, masked like every other
//! output; and the JSON report unchanged without it.

mod binary;
mod hermetic;

use binary::{echo, run_all, suite};
use serde_json::json;
use wiremock::matchers::{any, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "tok-8f3a 9Q&x=\"z\"";
const CAPTURED: &str = "sess-51c0ffee77";

/// Staging echoes every request (headers, URL, body) back in a passing JSON response, and sets
/// a cookie and a header that carry the secret too.
async fn echoing_staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "session": CAPTURED })))
        .mount(&server)
        .await;
    Mock::given(path("/raw"))
        .respond_with(ResponseTemplate::new(200).set_body_string("done\u{1b}[2J"))
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(|request: &Request| {
            ResponseTemplate::new(200)
                .set_body_json(json!({ "echo": echo(request), "n": [1, 2] }))
                .insert_header("set-cookie", format!("sid={CAPTURED}; Path=/").as_str())
                .insert_header("x-echo-token", SECRET)
        })
        .mount(&server)
        .await;
    server
}

const FLOW: &str = r#"
[[step]]
name = "log in"
method = "POST"
path = "/login"
form = { user = "smoke", password = "{{ secret.TOKEN }}" }
capture = { session = { json = "$.session", secret = true } }

[[step]]
name = "use it"
method = "POST"
path = "/orders/{{ secret.TOKEN }}"
query = { t = "{{ secret.TOKEN }}", s = "{{ session }}" }
headers = { authorization = "Bearer {{ secret.TOKEN }}", x-token = "{{ secret.TOKEN }}", x-session = "{{ session }}" }
json = { token = "{{ secret.TOKEN }}", session = "{{ session }}", qty = 1 }

[[step]]
name = "raw"
method = "PUT"
path = "/raw"
body = "token={{ secret.TOKEN }}"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn vv_shows_every_exchange_and_never_a_secret() {
    let server = echoing_staging().await;
    let dir = suite(&server.uri(), "", &[("flow.toml", FLOW)]);
    let out = run_all(dir.path(), &[("TOKEN", SECRET)], &["-vv"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out.assert_hidden(SECRET);
    out.assert_hidden(CAPTURED);
    let stdout = &out.stdout;
    // Passing steps show their request and response.
    assert!(stdout.contains("      > POST "), "{stdout}");
    assert!(stdout.contains("      > authorization: ***"), "{stdout}");
    assert!(stdout.contains("      > x-token: ***"), "{stdout}");
    assert!(stdout.contains("      < set-cookie: ***"), "{stdout}");
    assert!(stdout.contains("      < x-echo-token: ***"), "{stdout}");
    assert!(
        stdout.contains("      >   \"qty\": 1"),
        "request JSON pretty-printed:\n{stdout}"
    );
    assert!(
        stdout.contains("      <   \"n\": ["),
        "response JSON pretty-printed:\n{stdout}"
    );
    assert!(
        stdout.contains("      > token=***"),
        "the raw body shown masked:\n{stdout}"
    );
    assert!(
        stdout.contains("      < done\\u{1b}[2J"),
        "control characters escaped:\n{stdout}"
    );
    // The JSON report carries the same detail, masked.
    let report = out.report();
    let exchange = &report["flows"][0]["steps"][1]["exchange"];
    assert!(
        exchange["response_body"]
            .as_str()
            .unwrap()
            .contains("\"echo\"")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vv_with_show_sensitive_headers_still_masks_secret_values() {
    let server = echoing_staging().await;
    let dir = suite(&server.uri(), "", &[("flow.toml", FLOW)]);
    let out = run_all(
        dir.path(),
        &[("TOKEN", SECRET)],
        &["-vv", "--show-sensitive-headers"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_hidden(SECRET);
    out.assert_hidden(CAPTURED);
    assert!(
        out.stdout.contains("      < set-cookie: sid=***; Path=/"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_vv_the_report_has_no_exchange() {
    let server = echoing_staging().await;
    let dir = suite(&server.uri(), "", &[("flow.toml", FLOW)]);
    let out = run_all(dir.path(), &[("TOKEN", SECRET)], &[]).await;
    assert_eq!(out.code, 0);
    assert!(!out.json.contains("\"exchange\""));
    assert!(!out.stdout.contains("      > "));
}
