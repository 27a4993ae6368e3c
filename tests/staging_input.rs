//! What staging and the command line feed in cannot change what preflight does or shows,
//! through the binary: placeholder values stay inside their path segment, equality keeps
//! JSON types, and control characters from staging never reach the terminal raw.

mod binary;
mod hermetic;

use binary::Outputs;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn suite<N: AsRef<std::path::Path>, F: AsRef<str>>(
    base_url: &str,
    flows: &[(N, F)],
) -> tempfile::TempDir {
    binary::suite(base_url, "", flows)
}

async fn run(dir: &tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Outputs {
    binary::run_all(dir.path(), env, args).await
}

/// A flow of one GET of `to` with `expect` (TOML lines) as its `[step.expect]`.
fn expecting(to: &str, expect: &str) -> String {
    format!("[[step]]\nname = \"get\"\npath = \"{to}\"\n[step.expect]\n{expect}\n")
}

/// Finding 25: a `--var` with `#` and a captured id with `../` stay one path segment.
#[tokio::test(flavor = "multi_thread")]
async fn placeholder_values_cannot_change_the_request_target() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": "../admin" })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let flow = r#"
[[step]]
name = "read"
path = "/anything/{{ id }}"
query = { q = "{{ id }}" }
[[step]]
name = "create"
method = "POST"
path = "/carts"
capture = { cart = "$.id" }
[[cleanup]]
name = "delete"
method = "DELETE"
path = "/carts/{{ cart }}"
"#;
    let dir = suite(&server.uri(), &[("f.toml", flow)]);
    let out = run(&dir, &["--var", "id=a#frag"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let requests = server.received_requests().await.unwrap();
    let targets: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, &r.url[url::Position::BeforePath..]))
        .collect();
    assert_eq!(
        targets,
        [
            "GET /anything/a%23frag?q=a%23frag",
            "POST /carts",
            "DELETE /carts/..%2Fadmin"
        ]
    );
}

/// A value that is exactly `..` would still be read as "the folder above": refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_dot_dot_value_is_refused_instead_of_climbing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let dir = suite(
        &server.uri(),
        &[(
            "f.toml",
            "[[step]]\nname = \"up\"\npath = \"/files/{{ name }}/x\"\n",
        )],
    );
    // Known before the run, it is refused when the suite loads: nothing is sent.
    let out = run(&dir, &["--var", "name=.."], &[]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("`{{ name }}` is `..`, which would change the request path"),
        "{}",
        out.stderr
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// An empty value in the path would drop its segment: `/carts/{{ id }}` with an empty id is
/// `/carts/`, the collection, where a cleanup's DELETE would go. The step fails instead, and
/// nothing goes to the collection (attack finding: the gate passed, the DELETE was sent).
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_value_cannot_drop_a_path_segment() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/carts"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": "" })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{ "id": "a" }])))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let flow = r#"
[[step]]
name = "create"
method = "POST"
path = "/api/carts"
[step.capture]
cart_id = "$.id"
[step.expect]
status = 201

[[step]]
name = "view"
path = "/api/carts/{{ cart_id }}"

[[cleanup]]
name = "delete"
method = "DELETE"
path = "/api/carts/{{ cart_id }}"
"#;
    let dir = suite(&server.uri(), &[("cart.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("`{{ cart_id }}` is empty, which would change the request path"),
        "{}",
        out.stdout
    );
    let sent = binary::paths(&server).await;
    assert_eq!(sent, ["/api/carts"], "only the POST was sent");

    // Known before the run, it is refused when the suite loads: nothing is sent.
    let dir = suite(
        &server.uri(),
        &[(
            "f.toml",
            "[[step]]\nname = \"one\"\npath = \"/items/{{ id }}\"\n",
        )],
    );
    let out = run(&dir, &["--var", "id="], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(binary::paths(&server).await.len(), 1);
}

/// Finding 24: `equals` keeps JSON types both ways; a value from the environment or `--var`
/// (always text) may equal a number or boolean written as that text.
#[tokio::test(flavor = "multi_thread")]
async fn equality_keeps_json_types() {
    let server = MockServer::start().await;
    Mock::given(path("/v"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({ "n": 5, "s": "5", "b": true, "t": "true", "list": [1, "2"] }),
            ),
        )
        .mount(&server)
        .await;
    let typed = r#"
[[step]]
name = "typed"
path = "/v"
[step.expect.json]
"$.n" = "5"
"$.s" = 5
"$.b" = "true"
"$.t" = true
"$.list" = { contains = 2 }
"#;
    let dir = suite(&server.uri(), &[("typed.toml", typed)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 1);
    let lines = out.stdout.clone();
    for (subject, op) in [
        ("$.n", "equals"),
        ("$.s", "equals"),
        ("$.b", "equals"),
        ("$.t", "equals"),
        ("$.list", "contains"),
    ] {
        assert!(
            lines.contains(&format!("✗ {subject} {op}")),
            "{subject} must fail:\n{lines}"
        );
    }

    let from_text = r#"
[[step]]
name = "from text"
path = "/v"
[step.expect.json]
"$.n" = "{{ n }}"
"$.b" = "{{ env.FLAG }}"
"$.s" = "{{ n }}"
"#;
    let dir = suite(&server.uri(), &[("text.toml", from_text)]);
    let out = run(&dir, &["--var", "n=5"], &[("FLAG", "true")]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
}

/// Integers are compared exactly: above 2^53 two different ones are the same `f64`, and a
/// check of `9007199254740993` passed against `9007199254740992` (attack finding).
#[tokio::test(flavor = "multi_thread")]
async fn large_integers_compare_exactly() {
    let server = MockServer::start().await;
    Mock::given(path("/n"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"big": 9007199254740992, "big2": 9007199254740993, "f": 9007199254740992.0, "list": [9007199254740992]}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let wrong = [
        ("equals", r#""$.big" = 9007199254740993"#),
        ("one-of", r#""$.big" = { one_of = [9007199254740993] }"#),
        ("contains", r#""$.list" = { contains = 9007199254740993 }"#),
        ("ge", r#""$.big" = { ge = 9007199254740993 }"#),
        ("lt", r#""$.big2" = { lt = 9007199254740993 }"#),
        ("le", r#""$.big2" = { le = 9007199254740992 }"#),
        ("float", r#""$.f" = 9007199254740993"#),
        (
            "not-equals",
            r#""$.big2" = { not_equals = 9007199254740993 }"#,
        ),
    ];
    let flow = |check: &str| expecting("/n", &format!("[step.expect.json]\n{check}"));
    for (name, check) in wrong {
        let dir = suite(&server.uri(), &[(&format!("{name}.toml"), &flow(check))]);
        let out = run(&dir, &[], &[]).await;
        assert_eq!(out.code, 1, "{check} must fail:\n{}", out.stdout);
    }
    let right = [
        r#""$.big2" = 9007199254740993"#,
        r#""$.big" = { lt = 9007199254740993 }"#,
        r#""$.big2" = { gt = 9007199254740992 }"#,
        r#""$.f" = 9007199254740992"#,
        r#""$.big" = { one_of = [1, 9007199254740992] }"#,
        r#""$.big" = { ge = 9007199254740991.5 }"#,
    ];
    let flows: Vec<(String, String)> = right
        .iter()
        .enumerate()
        .map(|(i, check)| (format!("right{i}.toml"), flow(check)))
        .collect();
    let dir = suite(&server.uri(), &flows);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Text that Rust reads as a float but is no number (`inf`, `-Infinity`) fails every numeric
/// comparison, and an integer just under 2^127 is below the float 2^127 (attack findings: a
/// total that turned into "-Infinity" passed `le = 100`).
#[tokio::test(flavor = "multi_thread")]
async fn text_that_only_reads_as_a_number_is_not_one() {
    let server = MockServer::start().await;
    Mock::given(path("/t"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-inf", "inf")
                .insert_header("x-ninf", "-infinity")
                .insert_header("x-big", "170141183460469231731687303715884105727")
                .set_body_json(json!({ "ninf": "-inf", "inf": "Infinity" })),
        )
        .mount(&server)
        .await;
    for check in [
        r#"headers = { x-inf = { gt = 100 } }"#,
        r#"headers = { x-ninf = { lt = 0 } }"#,
        r#"json = { "$.ninf" = { le = 100 } }"#,
        r#"json = { "$.inf" = { gt = 10 } }"#,
        r#"headers = { x-big = { ge = 1.7014118346046923e38 } }"#,
    ] {
        let flow = expecting("/t", check);
        let dir = suite(&server.uri(), &[("t.toml", &flow)]);
        let out = run(&dir, &[], &[]).await;
        assert_eq!(
            out.code, 1,
            "{check} must fail:\n{}{}",
            out.stdout, out.stderr
        );
    }
    let flow = "[[step]]\nname = \"t\"\npath = \"/t\"\n[step.expect]\nheaders = { x-big = { lt = 1.7014118346046923e38 } }\n";
    let dir = suite(&server.uri(), &[("t.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Finding 22: control characters in what staging sends are shown escaped; a response
/// cannot erase the failure or paint a verdict.
#[tokio::test(flavor = "multi_thread")]
async fn control_characters_from_staging_are_escaped() {
    let server = MockServer::start().await;
    let body = "boom\u{1b}[2J\u{1b}[1;32mGATE PASSED\u{7}\u{0}\u{9b}31m";
    Mock::given(path("/x"))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("x-evil", "a")
                .set_body_string(body),
        )
        .mount(&server)
        .await;
    let flow = "[[step]]\nname = \"x\"\npath = \"/x\"\nexpect = { body = { contains = \"ok\" } }\n";
    let dir = suite(&server.uri(), &[("x.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 1);
    // XML 1.0 cannot hold a NUL even escaped: the JUnit report stays well-formed.
    let xml = out.junit.clone();
    let mut reader = quick_xml::Reader::from_str(&xml);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("the JUnit report is not well-formed XML: {e}\n{xml}"),
        }
    }
    assert!(!xml.contains('\u{0}'), "{xml}");
    let text = out.stdout.clone();
    for raw in ['\u{1b}', '\u{7}', '\u{0}', '\u{9b}'] {
        assert!(!text.contains(raw), "{raw:?} reached the terminal:\n{text}");
    }
    assert!(
        text.contains(r"boom\u{1b}[2J\u{1b}[1;32mGATE PASSED\u{7}\u{0}\u{9b}31m"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("GATE FAILED: 1 of 1 flow failed"),
        "{text}"
    );
}

/// A response with these `set-cookie` lines.
fn setting(status: u16, cookies: &[&str]) -> ResponseTemplate {
    cookies
        .iter()
        .fold(ResponseTemplate::new(status), |response, cookie| {
            response.append_header("set-cookie", *cookie)
        })
}

/// Answers every GET of `to` with `response`.
async fn answer(server: &MockServer, to: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(to))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Answers the first GET of `to` with `first`, the later ones with `then`.
async fn answer_first(
    server: &MockServer,
    to: &str,
    first: ResponseTemplate,
    then: ResponseTemplate,
) {
    Mock::given(method("GET"))
        .and(path(to))
        .respond_with(first)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    answer(server, to, then).await;
}

/// Answers 200 to every GET no other mock answers.
async fn ok_otherwise(server: &MockServer) {
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
}

/// Cookies staging sets go back on the flow's later requests only where the cookie rules say
/// they apply: within their path, never one that expired as it was set, and a malformed one
/// is ignored. (A `Secure` one goes over plain http to loopback only, which counts as secure,
/// as in browsers; these tests send nothing elsewhere.)
#[tokio::test(flavor = "multi_thread")]
async fn cookies_from_staging_go_back_only_where_they_apply() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(setting(
            200,
            &[
                "sid=s-1; Path=/account",
                "theme=dark",
                "old=1; Max-Age=0",
                "=; ;",
            ],
        ))
        .mount(&server)
        .await;
    ok_otherwise(&server).await;
    let flow = r#"
[[step]]
name = "login"
method = "POST"
path = "/login"

[[step]]
name = "account"
path = "/account/me"

[[step]]
name = "public"
path = "/public"
"#;
    let dir = suite(&server.uri(), &[("session.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = server.received_requests().await.unwrap();
    let cookies_to = |to: &str| -> Vec<String> {
        let request = requests.iter().find(|r| r.url.path() == to).unwrap();
        let mut pairs: Vec<String> = request
            .headers
            .get_all("cookie")
            .iter()
            .flat_map(|v| v.to_str().unwrap().split("; ").map(str::to_string))
            .collect();
        pairs.sort();
        pairs
    };
    assert!(cookies_to("/login").is_empty());
    assert_eq!(cookies_to("/account/me"), ["sid=s-1", "theme=dark"]);
    assert_eq!(cookies_to("/public"), ["theme=dark"]);
}

/// A cookie capture takes only what the flow's jar holds: a cookie deleted as it is set
/// (`Max-Age=0`) or one for another domain is not found, so a login that set no usable session
/// fails its capture instead of passing with an empty or foreign value (attack finding).
#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_capture_finds_only_cookies_the_jar_holds() {
    let server = MockServer::start().await;
    let login = [
        "gone=; Max-Age=0; Path=/",
        "foreign=abc; Domain=other.example",
        "sid=s-7; Path=/",
    ];
    answer(&server, "/login", setting(200, &login)).await;
    let stale = ["stale=STALEVALUE123; Path=/", "stale=; Max-Age=0; Path=/"];
    answer(&server, "/set-then-delete", setting(200, &stale)).await;
    let ready = |ready: bool| json!({ "ready": ready });
    let first_poll = setting(200, &["polled=FROMPOLL1; Path=/"]).set_body_json(ready(false));
    let later_poll = ResponseTemplate::new(200).set_body_json(ready(true));
    answer_first(&server, "/poll", first_poll, later_poll).await;
    let unavailable = setting(503, &["retried=FROMATTEMPT1; Path=/"]);
    answer_first(&server, "/retry", unavailable, ResponseTemplate::new(200)).await;
    answer(&server, "/set-old", setting(200, &["sid2=OLD; Path=/"])).await;
    let set_and_deleted = ["sid2=OLD; Path=/p", "sid2=; Path=/p; Max-Age=0"];
    answer(&server, "/set-old-p-del", setting(200, &set_and_deleted)).await;
    let hop = setting(302, &["hopped=HOPSTALE1234; Path=/"]).append_header("location", "/hop-end");
    answer(&server, "/hop", hop).await;
    answer(
        &server,
        "/hop-end",
        setting(200, &["hopped=; Max-Age=0; Path=/"]),
    )
    .await;
    let capturing = |cookie: &str| {
        format!(
            "[[step]]\nname = \"login\"\npath = \"/login\"\n[step.capture]\nvalue = {{ cookie = \"{cookie}\" }}\n"
        )
    };
    let (deleted, foreign, held) = (capturing("gone"), capturing("foreign"), capturing("sid"));
    // Set, then deleted by the next line of the same response, and on the next hop.
    let set_then_deleted = "[[step]]\nname = \"login\"\npath = \"/set-then-delete\"\n[step.capture]\nvalue = { cookie = \"stale\" }\n";
    // Set as `sid2=OLD` on `/` by an earlier step, then on `/p` and deleted there: the one
    // this step set is gone, whatever the jar holds elsewhere.
    let deleted_elsewhere = "[[step]]\nname = \"first\"\npath = \"/set-old\"\n\n[[step]]\nname = \"login\"\npath = \"/set-old-p-del\"\n[step.capture]\nvalue = { cookie = \"sid2\" }\n";
    // Set by the first poll only (a server sets the session on a request without one), and by
    // a retried 503: the step's capture takes what any of its attempts set (attack finding:
    // only the last response counted).
    let polled = "[[step]]\nname = \"wait\"\npath = \"/poll\"\npoll = { attempts = 3, interval = \"10ms\" }\n[step.expect.json]\n\"$.ready\" = true\n[step.capture]\nvalue = { cookie = \"polled\" }\n";
    let retried = "[[step]]\nname = \"retry\"\npath = \"/retry\"\nretry = { attempts = 3, backoff = \"10ms\", on = [\"5xx\"] }\n[step.capture]\nvalue = { cookie = \"retried\" }\n";
    let over_hops = "[[step]]\nname = \"login\"\npath = \"/hop\"\n[step.capture]\nvalue = { cookie = \"hopped\", secret = true }\n";
    let dir = binary::suite(
        &server.uri(),
        "follow_redirects = true\n",
        &[
            ("deleted.toml", deleted.as_str()),
            ("foreign.toml", foreign.as_str()),
            ("held.toml", held.as_str()),
            ("set-then-deleted.toml", set_then_deleted),
            ("over-hops.toml", over_hops),
            ("deleted-elsewhere.toml", deleted_elsewhere),
            ("polled.toml", polled),
            ("retried.toml", retried),
        ],
    );
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.report();
    let outcome = |name: &str| {
        report["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["outcome"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(outcome("deleted"), "failed");
    assert_eq!(outcome("foreign"), "failed");
    assert_eq!(outcome("held"), "passed");
    assert_eq!(outcome("set-then-deleted"), "failed");
    assert_eq!(outcome("over-hops"), "failed");
    assert_eq!(outcome("deleted-elsewhere"), "failed");
    assert_eq!(outcome("polled"), "passed");
    assert_eq!(outcome("retried"), "passed");
}

/// Cookies of the same name go back longest path first, as browsers send them, every run: a
/// server reading the first one gets the one for its path (attack finding: the order was
/// random, and so could be the verdict).
#[tokio::test(flavor = "multi_thread")]
async fn cookies_go_back_longest_path_first() {
    let server = MockServer::start().await;
    let paths = [
        "sid=root; Path=/",
        "sid=deeper; Path=/app/x",
        "sid=app; Path=/app",
        "sid=deepest; Path=/app/x/y",
    ];
    answer(&server, "/login", setting(200, &paths)).await;
    ok_otherwise(&server).await;
    let flow = "[[step]]\nname = \"login\"\npath = \"/login\"\n\n[[step]]\nname = \"page\"\npath = \"/app/x/y/page\"\n";
    let dir = suite(&server.uri(), &[("paths.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = server.received_requests().await.unwrap();
    let page = requests
        .iter()
        .find(|r| r.url.path() == "/app/x/y/page")
        .unwrap();
    assert_eq!(
        page.headers.get("cookie").unwrap().to_str().unwrap(),
        "sid=deepest; sid=deeper; sid=app; sid=root"
    );
}

/// A signed cookie holding a secret the run knows (`user:signature`): a message quoting it
/// has that part masked already, and the rest must not show either (attack finding).
const SIGNED: &str = r#"
[[step]]
name = "get"
path = "/signed"
headers = { x-user = "{{ secret.API_USER }}" }
[step.expect]
headers = { set-cookie = { json_schema = "int.json" } }
"#;

/// A secret that matches a sensitive header's value only as a message escapes it (a tab
/// written `\t`): the rest of the value must not show either (attack finding).
const TAB: &str = r#"
[[step]]
name = "get"
path = "/tab"
headers = { x-tok = "{{ secret.TOK1 }}" }
[step.expect]
headers = { Set-Cookie = { json_schema = "int.json" } }
"#;

/// The value of a sensitive response header is never shown, not even quoted in why a check of
/// it failed (attack findings: a `json_schema` check of `set-cookie` printed the session cookie
/// in its message, in the terminal and every report; so did one of a value over 300 characters
/// and one of several `set-cookie` lines, after the first fix).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_check_of_a_sensitive_header_does_not_quote_its_value() {
    let server = MockServer::start().await;
    let long = format!("sid=S3CR3T{}TAILSECRET", "x".repeat(400));
    let answers = [
        ("/login", vec!["sid=TOPSECRETSESSION1; Path=/; HttpOnly"]),
        ("/long", vec![long.as_str()]),
        ("/tab", vec!["ab\ttopsecretSIG99;LEAKMARKERTAB"]),
        ("/signed", vec!["sess=smokeuser01:ENVSIGLEAK4242; Path=/"]),
        (
            "/many",
            vec![
                "session_id=REALSESS9f83; Path=/; HttpOnly",
                "csrftoken=CSRFVAL77abc; Path=/; SameSite=Strict",
                "remember=REMEMB3R; Path=/; Max-Age=2592000",
            ],
        ),
    ];
    for (to, cookies) in answers {
        answer(&server, to, setting(200, &cookies)).await;
    }
    let checking = |to: &str, schema: &str| {
        format!(
            "[[step]]\nname = \"get\"\npath = \"{to}\"\n[step.expect]\nheaders = {{ set-cookie = {{ json_schema = \"{schema}\" }} }}\n"
        )
    };
    let (login, long_flow, many) = (
        checking("/login", "int.json"),
        checking("/long", "int.json"),
        checking("/many", "short.json"),
    );
    let dir = suite(
        &server.uri(),
        &[
            ("login.toml", login.as_str()),
            ("long.toml", long_flow.as_str()),
            ("many.toml", many.as_str()),
            ("signed.toml", SIGNED),
            ("tab.toml", TAB),
        ],
    );
    std::fs::write(dir.path().join("int.json"), r#"{"type":"integer"}"#).unwrap();
    std::fs::write(
        dir.path().join("short.json"),
        r#"{"type":"string","maxLength":20}"#,
    )
    .unwrap();
    let out = run(
        &dir,
        &["-vv"],
        &[("API_USER", "smokeuser01"), ("TOK1", "ttopsecretSIG99")],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for shown in [
        "ENVSIGLEAK4242",
        "LEAKMARKERTAB",
        "TOPSECRETSESSION1",
        "TAILSECRET",
        "S3CR3Txxxx",
        "REALSESS9f83",
        "CSRFVAL77abc",
        "REMEMB3R",
    ] {
        out.assert_hidden(shown);
    }
    assert!(
        out.json.contains("not of type"),
        "the failure still says why: {}",
        out.json
    );
}

/// A version read from a sensitive response header is compared, never shown (attack finding:
/// `[version] header = "set-cookie"` printed the cookie in the headline and every report).
#[tokio::test(flavor = "multi_thread")]
async fn a_version_read_from_a_sensitive_header_is_not_shown() {
    let server = MockServer::start().await;
    answer(&server, "/sc", setting(200, &["sid=LEAKMARKER01abc"])).await;
    ok_otherwise(&server).await;
    let settings = "[version]\npath = \"/sc\"\nheader = \"set-cookie\"\nexpect = \"v1\"\n";
    let flow = "[[step]]\nname = \"home\"\npath = \"/\"\n";
    let dir = binary::suite(&server.uri(), settings, &[("home.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.assert_hidden("LEAKMARKER01abc");
    assert!(out.stdout.contains("staging runs ***"), "{}", out.stdout);

    // Nor when it passes, where what it was compared with would show it.
    let settings =
        "[version]\npath = \"/sc\"\nheader = \"Set-Cookie\"\nexpect = \"{{ env.VV }}\"\n";
    let dir = binary::suite(&server.uri(), settings, &[("home.toml", flow)]);
    let out = run(&dir, &[], &[("VV", "sid=LEAKMARKER01abc")]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_hidden("LEAKMARKER01abc");

    // Nor when the header cannot be read, directly or through `[wait]`.
    for wait in [
        "",
        "[wait]\npath = \"/\"\ntimeout = \"1s\"\ninterval = \"100ms\"\n",
    ] {
        let settings = format!(
            "{wait}[version]\npath = \"/no-cookie\"\nheader = \"set-cookie\"\nexpect = \"{{{{ env.VV }}}}\"\n"
        );
        let dir = binary::suite(&server.uri(), &settings, &[("home.toml", flow)]);
        let out = run(&dir, &[], &[("VV", "sid=LEAKMARKER01abc")]).await;
        assert_eq!(out.code, 1, "{}", out.stderr);
        out.assert_hidden("LEAKMARKER01abc");
    }
}

/// What a sensitive response header is compared with may be its value, so it is not shown
/// either: not the expected side of a passing `equals` or `matches`, nor of a failing
/// `not_equals`, nor the part of a schema (`not`, `const`, `enum`, `pattern`) a schema error
/// would quote (attack findings).
#[tokio::test(flavor = "multi_thread")]
async fn what_a_sensitive_header_is_compared_with_is_not_shown() {
    let server = MockServer::start().await;
    let checks = [
        ("equals", "sid=EQLEAK01", r#"equals = "sid=EQLEAK01""#),
        (
            "matches",
            "sid=MATCHLEAK05",
            r#"matches = "^sid=MATCHLEAK05$""#,
        ),
        ("one_of", "sid=ONELEAK06", r#"one_of = ["sid=ONELEAK06"]"#),
        (
            "not-equals",
            "sid=NELEAK02",
            r#"not_equals = "sid=NELEAK02""#,
        ),
        ("not", "sid=NOTLEAK03", r#"json_schema = "not.json""#),
        ("const", "sid=CONSTLEAK04", r#"json_schema = "const.json""#),
        ("enum", "sid=ENUMLEAK07", r#"json_schema = "enum.json""#),
        (
            "pattern",
            "sid=PATLEAK08",
            r#"json_schema = "pattern.json""#,
        ),
    ];
    let mut flows = Vec::new();
    for (name, cookie, check) in checks {
        answer(&server, &format!("/{name}"), setting(200, &[cookie])).await;
        flows.push((
            format!("{name}.toml"),
            format!(
                "[[step]]\nname = \"get\"\npath = \"/{name}\"\n[step.expect]\nheaders = {{ set-cookie = {{ {check} }} }}\n"
            ),
        ));
    }
    let dir = suite(&server.uri(), &flows);
    for (file, schema) in [
        ("not.json", r#"{"not":{"const":"sid=NOTLEAK03"}}"#),
        ("const.json", r#"{"const":"sid=CONSTLEAK04x"}"#),
        ("enum.json", r#"{"enum":["sid=ENUMLEAK07x"]}"#),
        ("pattern.json", r#"{"pattern":"^sid=PATLEAK08x$"}"#),
    ] {
        std::fs::write(dir.path().join(file), schema).unwrap();
    }
    let out = run(&dir, &["-vv"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for (_, cookie, _) in checks {
        out.assert_hidden(&cookie["sid=".len()..]);
    }
    let report = out.report();
    let passed = |flow: &str| {
        report["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == flow)
            .unwrap_or_else(|| panic!("{flow} is in the report"))["outcome"]
            .clone()
    };
    for flow in ["equals", "matches", "one_of"] {
        assert_eq!(passed(flow), "passed", "{flow}: {report}");
    }
    for flow in ["not-equals", "not", "const", "enum", "pattern"] {
        assert_eq!(passed(flow), "failed", "{flow}: {report}");
    }
    assert!(
        out.json.contains("fails the schema's `not`"),
        "a schema failure still says which keyword failed: {}",
        out.json
    );
}

/// A sensitive header whose value is literally `<missing>` is still masked: whether to mask
/// is decided by the header being there, not by what its value reads (attack finding).
#[tokio::test(flavor = "multi_thread")]
async fn a_sensitive_header_valued_like_a_missing_one_is_masked() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/odd",
        ResponseTemplate::new(200).insert_header("authorization", "<missing>"),
    )
    .await;
    let flow = "[[step]]\nname = \"get\"\npath = \"/odd\"\n[step.expect]\nheaders = { authorization = { equals = \"Bearer x\" } }\n";
    let dir = suite(&server.uri(), &[("odd.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.report();
    let assertion = &report["flows"][0]["steps"][0]["assertions"][1];
    assert_eq!(assertion["subject"], "header authorization", "{report}");
    assert_eq!(assertion["actual"], "***", "{report}");
}

/// A `status` of three bytes whose first character is not ASCII (`"€"`, `"éx"`) is an
/// invalid suite, in a step and in `[wait]`, not a panic (attack finding).
#[test]
fn a_status_of_multibyte_characters_is_an_invalid_suite() {
    for status in ["€", "éx"] {
        let step =
            format!("[[step]]\nname = \"s\"\npath = \"/\"\n[step.expect]\nstatus = \"{status}\"\n");
        let wait = format!("[wait]\npath = \"/\"\nstatus = \"{status}\"\n");
        for (settings, flow) in [
            ("", step.as_str()),
            (wait.as_str(), "[[step]]\npath = \"/\"\n"),
        ] {
            let dir = binary::suite("http://127.0.0.1:9", settings, &[("a.toml", flow)]);
            let out = binary::preflight()
                .arg("check")
                .arg(dir.path())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{status}: {stderr}");
            assert!(
                stderr.contains("`status` is an integer (201)"),
                "{status}: {stderr}"
            );
        }
    }
}

/// A `matches` pattern that is not a valid regex, compared with a sensitive header, does not
/// quote itself in the error: it may be the header's value (attack finding: a capture of the
/// cookie with a `(` in it, matched against the next response's cookie).
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_pattern_for_a_sensitive_header_is_not_quoted() {
    let server = MockServer::start().await;
    answer(&server, "/", setting(200, &["sid=TOPSECRET(COOKIE123"])).await;
    let flow = r#"
[[step]]
name = "first"
path = "/"
[step.capture]
c = { header = "set-cookie" }

[[step]]
name = "again"
path = "/"
[step.expect.headers]
set-cookie = { matches = "^{{ c }}$" }
"#;
    let dir = suite(&server.uri(), &[("a.toml", flow)]);
    let out = run(&dir, &["-v"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.assert_hidden("TOPSECRET(COOKIE123");
    assert!(out.json.contains("invalid regex"), "{}", out.json);
}

/// `contains`, `not_contains`, `not_equals` and `matches` hold for more values when a
/// placeholder of what they compare with is empty, and for every value when all of it is
/// empty, so they fail instead of passing: an empty `env.` variable cannot weaken a check or
/// turn it into a free pass (attack findings).
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_text_proves_nothing() {
    let server = MockServer::start().await;
    Mock::given(path("/e"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-build", "build 42")
                .set_body_json(json!({ "name": "build-42", "version": "v42" })),
        )
        .mount(&server)
        .await;
    for check in [
        r#"body = { contains = "{{ env.BUILD_ID }}" }"#,
        r#"body = { matches = "{{ env.BUILD_ID }}" }"#,
        r#"json = { "$.name" = { contains = "{{ env.BUILD_ID }}" } }"#,
        r#"json = { "$.name" = { matches = "{{ env.BUILD_ID }}" } }"#,
        r#"json = { "$.name" = { matches = "^build-{{ env.BUILD_ID }}" } }"#,
        r#"json = { "$.version" = { matches = "v{{ env.BUILD_ID }}" } }"#,
        r#"body = { contains = "v{{ env.BUILD_ID }}" }"#,
        r#"headers = { x-build = { contains = " {{ env.BUILD_ID }}" } }"#,
        r#"json = { "$.version" = { not_equals = "v{{ env.BUILD_ID }}1" } }"#,
        r#"json = { "$.version" = { not_contains = "x{{ env.BUILD_ID }}" } }"#,
    ] {
        let flow = expecting("/e", check);
        let dir = suite(&server.uri(), &[("e.toml", &flow)]);
        let out = run(&dir, &[], &[("BUILD_ID", "")]).await;
        assert_eq!(out.code, 1, "{check}:\n{}{}", out.stdout, out.stderr);
        assert!(
            out.json.contains("`{{ env.BUILD_ID }}` is empty"),
            "{}",
            out.json
        );
        // With the variable set, the same check holds.
        let out = run(&dir, &[], &[("BUILD_ID", "42")]).await;
        assert_eq!(out.code, 0, "{check}:\n{}{}", out.stdout, out.stderr);
    }
    // Nor a blank one, which `contains` finds in any text with a space.
    let flow = expecting(
        "/e",
        r#"headers = { x-build = { contains = "{{ env.BUILD_ID }}" } }"#,
    );
    let dir = suite(&server.uri(), &[("e.toml", &flow)]);
    let out = run(&dir, &[], &[("BUILD_ID", " ")]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    // Written empty or blank, with no placeholder, it proves nothing either.
    for check in [
        r#"body = { contains = "" }"#,
        r#"body = { matches = "" }"#,
        r#"headers = { x-build = { contains = " " } }"#,
    ] {
        let flow = expecting("/e", check);
        let dir = suite(&server.uri(), &[("e.toml", &flow)]);
        let out = run(&dir, &[], &[]).await;
        assert_eq!(out.code, 1, "{check}:\n{}{}", out.stdout, out.stderr);
        assert!(
            out.json.contains("the expected text is empty"),
            "{}",
            out.json
        );
    }
}

/// A blank or JSON `null` value in the path fails the step as an empty one does (`/items/null`
/// is no item), and a `;` is encoded, since servlet containers read `..;` as `..` (attack
/// findings).
#[tokio::test(flavor = "multi_thread")]
async fn no_value_and_semicolons_cannot_change_the_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": null })))
        .mount(&server)
        .await;
    ok_otherwise(&server).await;
    let flow = "[[step]]\nname = \"create\"\nmethod = \"POST\"\npath = \"/items\"\n[step.capture]\nid = \"$.id\"\n\n[[step]]\nname = \"view\"\npath = \"/items/{{ id }}\"\n";
    let dir = suite(&server.uri(), &[("n.toml", flow)]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("`{{ id }}` is null, which would change the request path"),
        "{}",
        out.stdout
    );
    assert_eq!(binary::paths(&server).await, ["/items"]);

    let flow = "[[step]]\nname = \"one\"\npath = \"/carts/{{ id }}/items\"\n";
    let dir = suite(&server.uri(), &[("f.toml", flow)]);
    let out = run(&dir, &["--var", "id= "], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is blank"), "{}", out.stderr);

    let out = run(&dir, &["--var", "id=..;"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let sent = binary::paths(&server).await;
    assert_eq!(sent.last().unwrap(), "/carts/..%3B/items", "{sent:?}");
}

/// A body is UTF-8 text whatever charset it names, and where some bytes are not UTF-8 text,
/// in a body or a header, `not_contains` and `not_equals` prove nothing: `Accès refusé` sent in
/// Latin-1 read as `Acc\u{fffd}s refus\u{fffd}`, and `ERROR` in UTF-16 as `E\0R\0R\0O\0R\0`,
/// and `not_contains` passed against both (attack findings).
#[tokio::test(flavor = "multi_thread")]
async fn text_that_is_not_utf8_proves_no_absence() {
    use reqwest::header::HeaderValue;
    let server = MockServer::start().await;
    let latin1 = |content_type: &str| {
        ResponseTemplate::new(200)
            .set_body_raw(b"\xab Acc\xe8s refus\xe9 \xbb".to_vec(), content_type)
            .insert_header(
                "x-msg",
                HeaderValue::from_bytes(b"Acc\xe8s refus\xe9").unwrap(),
            )
    };
    answer(&server, "/named", latin1("text/plain; charset=iso-8859-1")).await;
    answer(&server, "/unnamed", latin1("text/plain")).await;
    let utf16: Vec<u8> = "FATAL ERROR: db down"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    answer(
        &server,
        "/utf16",
        ResponseTemplate::new(200).set_body_raw(utf16, "text/plain"),
    )
    .await;
    answer(
        &server,
        "/utf8",
        ResponseTemplate::new(200).set_body_raw("« Accès permis »".as_bytes(), "text/plain"),
    )
    .await;
    for (to, check) in [
        ("/named", r#"body = { not_contains = "Accès refusé" }"#),
        ("/unnamed", r#"body = { not_contains = "Accès refusé" }"#),
        ("/unnamed", r#"body = { not_equals = "« Accès refusé »" }"#),
        (
            "/unnamed",
            r#"headers = { x-msg = { not_contains = "Accès" } }"#,
        ),
        ("/utf16", r#"body = { not_contains = "ERROR" }"#),
    ] {
        let dir = suite(&server.uri(), &[("f.toml", &expecting(to, check))]);
        let out = run(&dir, &[], &[]).await;
        assert_eq!(out.code, 1, "{to} {check}: {}", out.stdout);
        assert!(
            out.stdout.contains("characters that could not be read"),
            "{to} {check}: {}",
            out.stdout
        );
    }
    // UTF-8 text proves what it does not hold, as before.
    let check = r#"body = { not_contains = "Accès refusé" }"#;
    let dir = suite(&server.uri(), &[("f.toml", &expecting("/utf8", check))]);
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
}

/// A body whose `content-type` names a charset other than UTF-8 proves no absence unless it
/// is ASCII text in a charset that writes ASCII as ASCII: `中止` in UTF-16 is the bytes `-Nbk`,
/// no NUL and no U+FFFD; ISO-2022-JP, UTF-7 and HZ write Japanese and Chinese in ASCII
/// letters, and `not_contains` passed against all four (attack findings). Latin-1 bytes that
/// are also UTF-8 (`Ã©chec`, the bytes of `échec`) read as other text.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_in_a_charset_that_is_not_read_proves_no_absence() {
    let server = MockServer::start().await;
    let bodies: [(&str, &[u8], &str); 6] = [
        ("/utf16", b"-Nbk", "text/plain; charset=utf-16le"),
        (
            "/jis",
            b"\x1b$B%(%i!<\x1b(B",
            "text/plain; charset=ISO-2022-JP",
        ),
        ("/jis-unnamed", b"\x1b$B%(%i!<\x1b(B", "text/plain"),
        ("/utf7", b"+MKgw6TD8-", "text/plain; charset=\"utf-7\""),
        ("/hz", b"~{4mNs~}", "text/plain;charset=HZ-GB-2312"),
        ("/latin1", b"\xc3\xa9chec", "text/plain; charset=iso-8859-1"),
    ];
    for (to, body, content_type) in bodies {
        let response = ResponseTemplate::new(200).set_body_raw(body.to_vec(), content_type);
        answer(&server, to, response).await;
    }
    // A charset named inside another parameter's quotes first, or on a second line.
    let quoted = r#"text/plain; foo="x;charset=utf-8"; charset=utf-16be"#;
    let response = ResponseTemplate::new(200).set_body_raw(b"N-kb".to_vec(), quoted);
    answer(&server, "/quoted", response).await;
    let two_lines = ResponseTemplate::new(200)
        .set_body_bytes(b"N-kb".to_vec())
        .append_header("content-type", "text/plain; charset=utf-8")
        .append_header("content-type", "text/plain; charset=utf-16be");
    answer(&server, "/two-lines", two_lines).await;
    // Bytes beyond ASCII under `us-ascii` (windows-1252 to a browser), and charsets the
    // body's start names.
    let response = ResponseTemplate::new(200)
        .set_body_raw(b"caf\xc3\xa9".to_vec(), "text/html; charset=US-ASCII");
    answer(&server, "/us-ascii", response).await;
    let meta = b"<meta charset=\"windows-1252\"><p>caf\xc3\xa9".to_vec();
    answer(
        &server,
        "/meta",
        ResponseTemplate::new(200).set_body_raw(meta, "text/html"),
    )
    .await;
    let xml = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><p>caf\xc3\xa9</p>".to_vec();
    answer(
        &server,
        "/xml",
        ResponseTemplate::new(200).set_body_raw(xml, "application/xml"),
    )
    .await;
    // A `<meta charset>` past the first 1,024 bytes (a browser reads it in the head), and a
    // label that only starts like UTF-8's.
    let late = [
        b"<html><head><title>".to_vec(),
        vec![b'a'; 1100],
        b"</title><meta charset=\"windows-1252\"></head><body>caf\xc3\xa9".to_vec(),
    ]
    .concat();
    answer(
        &server,
        "/late-meta",
        ResponseTemplate::new(200).set_body_raw(late, "text/html"),
    )
    .await;
    let bogus = b"<meta charset=\"utf-8 x\"><p>caf\xc3\xa9".to_vec();
    answer(
        &server,
        "/bogus-label",
        ResponseTemplate::new(200).set_body_raw(bogus, "text/html"),
    )
    .await;
    let ascii = |content_type| ResponseTemplate::new(200).set_body_raw("all fine", content_type);
    answer(
        &server,
        "/ascii-latin1",
        ascii("text/plain; charset=iso-8859-1"),
    )
    .await;
    answer(
        &server,
        "/ascii-sjis",
        ascii("text/plain; charset=Shift_JIS"),
    )
    .await;
    answer(&server, "/utf8", ascii("text/plain; charset=UTF-8")).await;
    let tos = bodies.iter().map(|(to, _, _)| *to);
    for to in tos.chain([
        "/quoted",
        "/two-lines",
        "/us-ascii",
        "/meta",
        "/xml",
        "/late-meta",
        "/bogus-label",
    ]) {
        let check = r#"body = { not_contains = "ERROR" }"#;
        let dir = suite(&server.uri(), &[("f.toml", &expecting(to, check))]);
        let out = run(&dir, &[], &[]).await;
        assert_eq!(out.code, 1, "{to}: {}", out.stdout);
        assert!(
            out.stdout.contains("charset other than UTF-8")
                || out.stdout.contains("characters that could not be read"),
            "{to}: {}",
            out.stdout
        );
    }
    // ASCII text in a charset that keeps ASCII, or UTF-8, still proves what it does not hold.
    for to in ["/ascii-latin1", "/ascii-sjis", "/utf8"] {
        let check = r#"body = { not_contains = "ERROR" }"#;
        let dir = suite(&server.uri(), &[("f.toml", &expecting(to, check))]);
        let out = run(&dir, &[], &[]).await;
        assert_eq!(out.code, 0, "{to}: {}", out.stdout);
    }
}
