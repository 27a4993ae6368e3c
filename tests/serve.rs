//! `preflight serve`, through the real binary: a server process on a free loopback port, a
//! staging stand-in on loopback, and HTTP calls as a delivery controller would make them.

mod binary;
mod hermetic;

use binary::{echo_staging, forms, suite};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "s3rve-token-0123456789abcdef";

/// A running `preflight serve`, killed when dropped.
struct Serve {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn start(suite: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let (child, stderr, url) = spawn(suite, args, env);
        let url = url.unwrap_or_else(|| panic!("serve did not start:\n{}", stderr.lock().unwrap()));
        Serve { child, url, stderr }
    }

    /// Starts `preflight serve SUITE` with a standard error whose reader is gone, so that
    /// writing to it fails (`EPIPE`), once it answers on a loopback port picked here (it cannot
    /// say which).
    async fn start_with_unread_stderr(suite: &Path) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|free| free.local_addr())
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = binary::process()
            .arg("serve")
            .arg(suite)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(writer)
            .spawn()
            .expect("the binary starts");
        for _ in 0..200 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("serve ended ({status}) before it answered");
            }
            let health = Self::client().get(format!("{url}/healthz")).send().await;
            if health.is_ok_and(|h| h.status() == 200) {
                let stderr = Arc::default();
                return Serve { child, url, stderr };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        panic!("serve never answered on {url}");
    }

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    async fn post(&self, route: &str, body: Option<Value>, token: Option<&str>) -> (u16, Value) {
        let mut request = Self::client().post(format!("{}{route}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("serve answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, route: &str, token: Option<&str>) -> (u16, String) {
        let mut request = Self::client().get(format!("{}{route}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("serve answers");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    fn signal(&self, name: &str) {
        binary::signal(self.child.id(), name);
    }

    /// Waits for the process to exit (at most 30 s): its code and everything it printed.
    async fn exit(mut self) -> (Option<i32>, String) {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return (status.code(), self.stderr.lock().unwrap().clone());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve did not exit:\n{}", self.stderr.lock().unwrap());
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `preflight serve SUITE --listen 127.0.0.1:0 ARGS`; the URL once it listens (`None`
/// when it exited first).
fn spawn(
    suite: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, Arc<Mutex<String>>, Option<String>) {
    let mut cmd = binary::process();
    cmd.arg("serve").arg(suite);
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.args(args).envs(env.iter().copied());
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (found, url) = std::sync::mpsc::channel();
    let lines = BufReader::new(child.stderr.take().unwrap());
    let seen = stderr.clone();
    std::thread::spawn(move || {
        for line in lines.lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = found.send(rest.split(' ').next().unwrap_or("").to_string());
            }
            let mut seen = seen.lock().unwrap();
            seen.push_str(&line);
            seen.push('\n');
        }
    });
    let url = url.recv_timeout(Duration::from_secs(20)).ok();
    (child, stderr, url)
}

/// Runs `serve` expecting it not to start: its exit code and stderr.
fn refused(suite: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let (mut child, stderr, url) = spawn(suite, args, env);
    assert!(url.is_none(), "serve started at {url:?}");
    let status = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let stderr = stderr.lock().unwrap().clone();
    (status.code(), stderr)
}

const HEALTH: &str = r#"
name = "health"
[[step]]
name = "ping"
path = "/ping"
expect = { status = 200 }
"#;

async fn staging(status: u16, delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ping"))
        .respond_with(ResponseTemplate::new(status).set_delay(delay))
        .mount(&server)
        .await;
    server
}

/// Waits until the stand-in has received `n` requests: the run in progress has begun (waited
/// for, not timed: a loaded machine is slow).
async fn until_received(server: &MockServer, n: usize) {
    for _ in 0..400 {
        if server.received_requests().await.unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("staging never received {n} requests");
}

async fn pings(server: &MockServer) -> usize {
    binary::count(server, "GET", "/ping").await
}

#[tokio::test]
async fn run_answers_with_the_report_and_the_status_of_its_verdict() {
    let good = staging(200, Duration::ZERO).await;
    let dir = suite(&good.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[]);
    let (status, report) = serve.post("/run", None, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["serve"]["run_id"], "1");
    assert_eq!(report["serve"]["trigger"], "request");
    assert_eq!(report["flows"][0]["name"], "health");
    assert_eq!(pings(&good).await, 1);

    let bad = staging(500, Duration::ZERO).await;
    let dir = suite(&bad.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[]);
    let (status, report) = serve.post("/run", None, None).await;
    assert_eq!(status, 422, "a failed gate is 422: {report}");
    assert_eq!(report["verdict"], "fail");
    assert!(
        report["headline"]
            .as_str()
            .unwrap()
            .starts_with("GATE FAILED")
    );
    // Argo Rollouts' web provider counts a non-2xx as an error: `status=report` is always 200.
    let (status, report) = serve.post("/run?status=report", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(report["verdict"], "fail");
    let (status, text) = serve.get("/run", None).await;
    assert_eq!(status, 405, "{text}");
    let (status, report) = serve.post("/run?status=bogus", None, None).await;
    assert_eq!(status, 400, "{report}");
    let (status, report) = serve
        .post("/run?base_url=http://elsewhere", None, None)
        .await;
    assert_eq!(
        status, 400,
        "no request can point preflight elsewhere: {report}"
    );
    let (status, _) = serve.get("/nowhere", None).await;
    assert_eq!(status, 404);
    assert_eq!(pings(&bad).await, 2, "the refused requests ran nothing");
}

#[tokio::test]
async fn runs_are_listed_and_served_by_id_and_latest() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &["--keep", "2"], &[]);
    let (status, text) = serve.get("/runs/latest", None).await;
    assert_eq!(status, 404, "{text}");
    for _ in 0..3 {
        assert_eq!(serve.post("/run", None, None).await.0, 200);
    }
    let (status, text) = serve.get("/runs", None).await;
    assert_eq!(status, 200);
    let listed: Vec<Value> = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["3", "2"], "newest first, --keep 2");
    assert_eq!(listed[0]["verdict"], "pass");
    let (status, text) = serve.get("/runs/latest", None).await;
    assert_eq!(status, 200);
    let latest: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(latest["serve"]["run_id"], "3");
    let (status, text) = serve.get("/runs/2", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["serve"]["run_id"],
        "2"
    );
    assert_eq!(
        serve.get("/runs/1", None).await.0,
        404,
        "forgotten beyond --keep"
    );
    assert_eq!(serve.get("/runs/x", None).await.0, 404);
    assert_eq!(serve.get("/healthz", None).await, (200, "ok\n".into()));
    assert_eq!(serve.get("/readyz", None).await, (200, "ready\n".into()));
}

#[tokio::test]
async fn a_flagger_payload_is_recorded_without_its_token() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[("PREFLIGHT_SERVE_TOKEN", TOKEN)]);
    let payload = json!({
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": "85d557f47b",
        "metadata": { "type": "pre-rollout", "token": TOKEN }
    });
    // Flagger cannot send headers: the token in its metadata is enough.
    let (status, report) = serve.post("/run", Some(payload), None).await;
    assert_eq!(status, 200, "{report}");
    let flagger = &report["serve"]["flagger"];
    assert_eq!(flagger["name"], "podinfo");
    assert_eq!(flagger["namespace"], "test");
    assert_eq!(flagger["phase"], "Progressing");
    assert_eq!(flagger["checksum"], "85d557f47b");
    assert_eq!(flagger["metadata"], json!({ "type": "pre-rollout" }));
    assert_eq!(report["serve"]["idempotency_key"], "85d557f47b");
    assert!(!report.to_string().contains(TOKEN));
    let wrong = json!({ "checksum": "x", "metadata": { "token": "not-the-token-at-all" } });
    assert_eq!(serve.post("/run", Some(wrong), None).await.0, 401);
    let unknown = json!({ "name": "podinfo", "base_url": "http://elsewhere" });
    let (status, error) = serve.post("/run", Some(unknown), Some(TOKEN)).await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().contains("base_url"),
        "{error}"
    );
}

#[tokio::test]
async fn requests_with_one_idempotency_key_share_one_run() {
    let staging = staging(200, Duration::from_millis(700)).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Arc::new(Serve::start(dir.path(), &[], &[]));
    let payload = json!({ "name": "podinfo", "checksum": "rev-1" });
    let (a, b) = tokio::join!(
        serve.post("/run", Some(payload.clone()), None),
        serve.post("/run", Some(payload.clone()), None)
    );
    assert_eq!((a.0, b.0), (200, 200));
    assert_eq!(a.1["serve"]["run_id"], b.1["serve"]["run_id"]);
    assert_eq!(pings(&staging).await, 1, "two requests, one run");
    // A retry after the run finished gets its result (a controller that timed out).
    let (status, again) = serve.post("/run", Some(payload), None).await;
    assert_eq!(status, 200);
    assert_eq!(again["serve"]["run_id"], a.1["serve"]["run_id"]);
    assert_eq!(pings(&staging).await, 1);
    // The Idempotency-Key header works the same; another key is another run.
    let keyed = |key: &'static str| {
        Serve::client()
            .post(format!("{}/run", serve.url))
            .header("Idempotency-Key", key)
            .send()
    };
    let (x, y) = tokio::join!(keyed("k-1"), keyed("k-1"));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(
        x.headers()["preflight-run-id"],
        y.headers()["preflight-run-id"]
    );
    assert_eq!(pings(&staging).await, 2);
    let z = keyed("k-2").await.unwrap();
    assert_ne!(
        z.headers()["preflight-run-id"],
        x.headers()["preflight-run-id"]
    );
    assert_eq!(pings(&staging).await, 3);
}

#[tokio::test]
async fn a_request_waits_for_the_run_in_progress_then_gets_429() {
    let staging = staging(200, Duration::from_millis(1500)).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Arc::new(Serve::start(dir.path(), &["--queue-timeout", "200ms"], &[]));
    let first = tokio::spawn({
        let serve = serve.clone();
        async move { serve.post("/run", None, None).await }
    });
    until_received(&staging, 1).await;
    let response = Serve::client()
        .post(format!("{}/run", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(pings(&staging).await, 1, "the rejected request ran nothing");
    let (_, metrics) = serve.get("/metrics", None).await;
    assert_eq!(
        metric(&metrics, "preflight_queue_rejections_total"),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_token_is_required_and_compared() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[("PREFLIGHT_SERVE_TOKEN", TOKEN)]);
    let response = Serve::client()
        .post(format!("{}/run", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        serve
            .post("/run", None, Some("wrong-token-but-long"))
            .await
            .0,
        401
    );
    assert_eq!(
        serve
            .post("/run", None, Some(&TOKEN[..TOKEN.len() - 1]))
            .await
            .0,
        401
    );
    for route in ["/runs", "/runs/latest", "/runs/1", "/metrics"] {
        assert_eq!(serve.get(route, None).await.0, 401, "{route}");
    }
    assert_eq!(pings(&staging).await, 0);
    assert_eq!(serve.post("/run", None, Some(TOKEN)).await.0, 200);
    assert_eq!(serve.get("/runs/1", Some(TOKEN)).await.0, 200);
    assert_eq!(serve.get("/metrics", Some(TOKEN)).await.0, 200);
    assert_eq!(serve.get("/healthz", None).await.0, 200);
    assert_eq!(serve.get("/readyz", None).await.0, 200);

    let public = Serve::start(
        dir.path(),
        &["--public-metrics"],
        &[("PREFLIGHT_SERVE_TOKEN", TOKEN)],
    );
    assert_eq!(public.get("/metrics", None).await.0, 200);
    assert_eq!(public.get("/runs", None).await.0, 401);
}

#[tokio::test]
async fn serve_refuses_to_start_unsafe_or_invalid() {
    let dir = suite("http://127.0.0.1:9", "", &[("health.toml", HEALTH)]);
    let (code, stderr) = refused(dir.path(), &["--listen", "0.0.0.0:0"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("PREFLIGHT_SERVE_TOKEN"), "{stderr}");
    let (code, stderr) = refused(dir.path(), &[], &[("PREFLIGHT_SERVE_TOKEN", "short")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("shorter than 16"), "{stderr}");
    let broken = suite("http://127.0.0.1:9", "", &[("health.toml", "name = \n")]);
    let (code, stderr) = refused(broken.path(), &[], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("health.toml"), "{stderr}");
    let (code, stderr) = refused(dir.path(), &["--allow-var", "region"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("declares no variable `region`"), "{stderr}");
    let aimed = r#"
name = "aimed"
[vars]
host = "127.0.0.1:9"
[[step]]
name = "elsewhere"
url = "http://{{ host }}/ping"
"#;
    let dir = suite("http://127.0.0.1:9", "", &[("aimed.toml", aimed)]);
    let (code, stderr) = refused(dir.path(), &["--allow-var", "host"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("another host"), "{stderr}");
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[("PREFLIGHT_SERVE_TOKEN", TOKEN)]);
    let big = json!({ "name": "x".repeat(70 * 1024) });
    assert_eq!(
        serve.post("/run", Some(big.clone()), Some(TOKEN)).await.0,
        413
    );
    // Without the header the body is read to look for a Flagger token: still within 64 KiB.
    assert_eq!(serve.post("/run", Some(big), None).await.0, 413);
    assert_eq!(pings(&staging).await, 0);
}

#[tokio::test]
async fn allowed_variables_are_set_by_the_request_and_no_others() {
    let staging = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    let flow = r#"
name = "regional"
[vars]
region = "eu"
[[step]]
name = "home"
path = "/shop/{{ region }}"
expect = { status = 200 }
"#;
    let dir = suite(&staging.uri(), "", &[("regional.toml", flow)]);
    let serve = Serve::start(dir.path(), &["--allow-var", "region"], &[]);
    assert_eq!(serve.post("/run", None, None).await.0, 200);
    let body = json!({ "vars": { "region": "us/../../admin" } });
    let (status, report) = serve.post("/run", Some(body), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["serve"]["vars"]["region"], "us/../../admin");
    let body = json!({ "vars": { "other": "x" } });
    let (status, error) = serve.post("/run", Some(body), None).await;
    assert_eq!(status, 400);
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("`other`") && message.contains("region"),
        "{message}"
    );
    let paths = binary::paths(&staging).await;
    // A value stays inside its path segment: it cannot climb out of the suite's path.
    assert_eq!(paths, ["/shop/eu", "/shop/us%2F..%2F..%2Fadmin"]);
}

/// Values a request sets are rehearsed against every flow, stored ones too (a flow stored at
/// load was rehearsed with the suite's own values only).
#[tokio::test(flavor = "multi_thread")]
async fn request_variables_are_rehearsed_against_stored_flows_too() {
    let staging = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    let items =
        "critical = false\n[vars]\nitem = \"abc\"\n[[step]]\npath = \"/items/{{ item }}\"\n";
    let dir = suite(
        &staging.uri(),
        "",
        &[("a.toml", items), ("b.toml", "[[step]]\npath = \"/ok\"\n")],
    );
    for keep in [None, Some("0")] {
        let env: Vec<(&str, &str)> = keep
            .map(|k| ("PREFLIGHT_KEEP_COMPILED", k))
            .into_iter()
            .collect();
        let serve = Serve::start(dir.path(), &["--allow-var", "item"], &env);
        let body = json!({ "vars": { "item": ".." } });
        let (status, error) = serve.post("/run", Some(body), None).await;
        assert_eq!(status, 400, "{keep:?}: {error}");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.contains("cannot run"), "{keep:?}: {message}");
    }
    assert!(staging.received_requests().await.unwrap().is_empty());
}

/// A staging stand-in that counts the requests in flight at once.
async fn counting_staging(delay: Duration) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, max) = (in_flight.clone(), most.clone());
    let app = axum::Router::new().fallback(move || {
        let (now, max) = (now.clone(), max.clone());
        async move {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            now.fetch_sub(1, Ordering::SeqCst);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, most, in_flight)
}

#[tokio::test]
async fn scheduled_and_requested_runs_never_overlap() {
    let (url, most, _) = counting_staging(Duration::from_millis(150)).await;
    let dir = suite(&url, "", &[("health.toml", HEALTH)]);
    let serve = Arc::new(Serve::start(dir.path(), &["--every", "100ms"], &[]));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let serve = serve.clone();
        clients.push(tokio::spawn(async move {
            serve.post("/run", None, None).await.0
        }));
    }
    for client in clients {
        assert_eq!(client.await.unwrap(), 200);
    }
    // The schedule goes on beside the requests (waited for, not timed: a loaded machine is slow).
    let mut scheduled = 0;
    for _ in 0..100 {
        let (_, text) = serve.get("/runs", None).await;
        let runs: Vec<Value> = serde_json::from_str(&text).unwrap();
        scheduled = runs.iter().filter(|r| r["trigger"] == "schedule").count();
        if scheduled >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(scheduled >= 2, "the schedule kept running");
    assert_eq!(most.load(Ordering::SeqCst), 1, "two runs overlapped");
    let mut ready = 0;
    for _ in 0..50 {
        ready = serve.get("/readyz", None).await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 200, "ready while scheduled runs keep finishing");
}

/// The value of the sample `name` (with its labels, as written) in a Prometheus exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name).then(|| value.parse().unwrap())
    })
}

/// Every sample of the exposition, each line checked to be `name{labels} value`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line: {l}"));
            assert!(key.starts_with("preflight_"), "{l}");
            (
                key.to_string(),
                value.parse().unwrap_or_else(|_| panic!("{l}")),
            )
        })
        .collect()
}

#[tokio::test]
async fn metrics_tell_what_ran() {
    let staging = MockServer::start().await;
    Mock::given(path("/ping"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    Mock::given(path("/pay"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&staging)
        .await;
    let pay = r#"
name = "pay"
[[step]]
name = "charge"
path = "/pay"
expect = { status = 200 }
"#;
    let dir = suite(
        &staging.uri(),
        "",
        &[("health.toml", HEALTH), ("pay.toml", pay)],
    );
    let serve = Serve::start(dir.path(), &[], &[]);
    let (_, before) = serve.get("/metrics", None).await;
    let before = samples(&before);
    assert_eq!(before["preflight_suite_flows"], 2.0);
    assert_eq!(before["preflight_run_in_progress"], 0.0);
    assert_eq!(before["preflight_last_run_timestamp_seconds"], 0.0);
    assert_eq!(serve.post("/run", None, None).await.0, 422);
    assert_eq!(serve.post("/run", None, None).await.0, 422);
    let (status, text) = serve.get("/metrics", None).await;
    assert_eq!(status, 200);
    let m = samples(&text);
    assert_eq!(
        m[r#"preflight_runs_total{verdict="fail",trigger="request"}"#],
        2.0
    );
    assert_eq!(m[r#"preflight_last_run_verdict{verdict="fail"}"#], 1.0);
    assert_eq!(m[r#"preflight_last_run_verdict{verdict="pass"}"#], 0.0);
    assert!(m["preflight_last_run_timestamp_seconds"] > 1.7e9);
    assert_eq!(m["preflight_run_duration_seconds_count"], 2.0);
    assert_eq!(
        m[r#"preflight_flow_outcome{flow="pay",outcome="failed"}"#],
        1.0
    );
    assert_eq!(
        m[r#"preflight_flow_outcome{flow="pay",outcome="passed"}"#],
        0.0
    );
    assert_eq!(
        m[r#"preflight_flow_outcome{flow="health",outcome="passed"}"#],
        1.0
    );
    assert!(m.contains_key(r#"preflight_flow_duration_seconds{flow="pay"}"#));
    assert_eq!(
        m[r#"preflight_step_latency_seconds_count{flow="health",step="ping"}"#],
        2.0
    );
    assert_eq!(
        m[r#"preflight_step_latency_seconds_bucket{le="+Inf",flow="pay",step="charge"}"#],
        2.0
    );
    assert_eq!(m["preflight_integrity_mismatches"], 0.0);
    assert_eq!(m["preflight_version_mismatch"], 0.0);
    // Bounded labels: the suite's names and fixed words, never a URL.
    assert!(!text.contains("127.0.0.1"), "{text}");
}

#[tokio::test]
async fn sighup_reloads_the_suite_and_a_bad_reload_keeps_the_old_one() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[]);
    let second = HEALTH.replace("\"health\"", "\"health-two\"");
    std::fs::write(dir.path().join("two.toml"), second).unwrap();
    assert_eq!(
        serve.post("/run", None, None).await.1["summary"]["flows"],
        1
    );
    serve.signal("HUP");
    wait_for(&serve, "suite reloaded").await;
    let (status, report) = serve.post("/run", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(report["summary"]["flows"], 2);
    std::fs::write(dir.path().join("two.toml"), "name = [broken").unwrap();
    serve.signal("HUP");
    wait_for(&serve, "reload failed").await;
    let (status, report) = serve.post("/run", None, None).await;
    assert_eq!(status, 200, "the old suite still runs: {report}");
    assert_eq!(report["summary"]["flows"], 2);
    let (_, text) = serve.get("/metrics", None).await;
    let m = samples(&text);
    assert_eq!(m[r#"preflight_suite_reloads_total{result="ok"}"#], 1.0);
    assert_eq!(m[r#"preflight_suite_reloads_total{result="failed"}"#], 1.0);
    assert!(serve.stderr().contains("two.toml"), "{}", serve.stderr());
}

/// The flows' series are the last run's only: a flow gone from the suite is gone from them,
/// and each family is described once.
#[tokio::test]
async fn metrics_show_the_last_runs_flows_only() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let second = HEALTH.replace("\"health\"", "\"health-two\"");
    std::fs::write(dir.path().join("two.toml"), second).unwrap();
    let serve = Serve::start(dir.path(), &[], &[]);
    assert_eq!(serve.post("/run", None, None).await.0, 200);
    let m = samples(&serve.get("/metrics", None).await.1);
    for flow in ["health", "health-two"] {
        assert_eq!(
            m[&format!(r#"preflight_flow_outcome{{flow="{flow}",outcome="passed"}}"#)],
            1.0
        );
        assert!(m.contains_key(&format!(
            r#"preflight_flow_duration_seconds{{flow="{flow}"}}"#
        )));
    }
    std::fs::remove_file(dir.path().join("two.toml")).unwrap();
    serve.signal("HUP");
    wait_for(&serve, "suite reloaded").await;
    assert_eq!(serve.post("/run", None, None).await.0, 200);
    let (_, text) = serve.get("/metrics", None).await;
    let m = samples(&text);
    assert_eq!(
        m[r#"preflight_flow_outcome{flow="health",outcome="passed"}"#],
        1.0
    );
    assert!(!text.contains("health-two"), "{text}");
    let flow_lines = text
        .lines()
        .filter(|l| l.starts_with("preflight_flow_outcome{"))
        .count();
    assert_eq!(
        flow_lines, 4,
        "one series per outcome of the one flow: {text}"
    );
    for family in ["flow_outcome", "flow_duration_seconds", "runs"] {
        let help = format!("# HELP preflight_{family} ");
        let described: Vec<_> = text.lines().filter(|l| l.starts_with(&help)).collect();
        assert_eq!(described.len(), 1, "{text}");
        assert!(described[0].ends_with('.'), "{text}");
        let kind = format!("# TYPE preflight_{family} ");
        assert_eq!(text.lines().filter(|l| l.starts_with(&kind)).count(), 1);
    }
}

async fn wait_for(serve: &Serve, text: &str) {
    for _ in 0..200 {
        if serve.stderr().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve never said `{text}`:\n{}", serve.stderr());
}

#[tokio::test]
async fn sigterm_during_a_run_aborts_it_after_the_grace_and_runs_its_cleanups() {
    let staging = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount(&staging)
        .await;
    Mock::given(path("/cart"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    let flow = r#"
name = "checkout"
[[step]]
name = "slow"
path = "/slow"
[[cleanup]]
name = "empty cart"
method = "DELETE"
path = "/cart"
"#;
    let dir = suite(&staging.uri(), "", &[("checkout.toml", flow)]);
    let serve = Arc::new(Serve::start(
        dir.path(),
        &["--shutdown-grace", "300ms"],
        &[],
    ));
    let call = tokio::spawn({
        let serve = serve.clone();
        async move { serve.post("/run", None, None).await }
    });
    until_received(&staging, 1).await;
    serve.signal("TERM");
    let (status, report) = call.await.unwrap();
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["verdict"], "aborted");
    assert_eq!(
        binary::count(&staging, "DELETE", "/cart").await,
        1,
        "cleanup ran"
    );
    let serve = Arc::into_inner(serve).expect("one owner left");
    let (code, stderr) = serve.exit().await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// A standard error nobody reads changes neither a served verdict nor the exit code: serve
/// says there that it listens, each run's headline and that it stops, and `eprintln!` panicked
/// when it could not (exit 101 before listening; a run's panic would answer a pass as failed).
#[tokio::test]
async fn a_standard_error_nobody_reads_changes_no_verdict_and_no_exit_code() {
    let good = staging(200, Duration::ZERO).await;
    let dir = suite(&good.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start_with_unread_stderr(dir.path()).await;
    let (status, report) = serve.post("/run", None, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["verdict"], "pass");
    serve.signal("TERM");
    assert_eq!(serve.exit().await.0, Some(0));
}

#[tokio::test]
async fn reports_outlive_a_restart_in_the_state_dir() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let serve = Serve::start(dir.path(), &["--state-dir", state_dir, "--keep", "2"], &[]);
    for _ in 0..3 {
        assert_eq!(serve.post("/run", None, None).await.0, 200);
    }
    serve.signal("TERM");
    assert_eq!(serve.exit().await.0, Some(0));
    let mut files: Vec<String> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["run-00000002.json", "run-00000003.json"]);
    let serve = Serve::start(dir.path(), &["--state-dir", state_dir, "--keep", "2"], &[]);
    let (status, text) = serve.get("/runs/3", None).await;
    assert_eq!(status, 200, "{text}");
    let (_, report) = serve.post("/run", None, None).await;
    assert_eq!(report["serve"]["run_id"], "4", "numbering goes on");
}

#[tokio::test]
async fn no_secret_appears_in_any_response_metric_or_log() {
    let secret = "sup3r-s3cret-value";
    let staging = echo_staging().await;
    let flow = r#"
name = "leaky"
[[step]]
name = "echo"
path = "/echo"
headers = { Authorization = "Bearer {{ secret.PREFLIGHT_TEST_SECRET }}" }
expect = { status = 200 }
"#;
    let dir = suite(
        &staging.uri(),
        "[vars]\nnote = \"n\"\n",
        &[("leaky.toml", flow)],
    );
    let serve = Serve::start(
        dir.path(),
        &["--allow-var", "note"],
        &[
            ("PREFLIGHT_TEST_SECRET", secret),
            ("PREFLIGHT_SERVE_TOKEN", TOKEN),
        ],
    );
    let body = json!({
        "name": secret,
        "checksum": secret,
        "metadata": { "note": secret, "token": TOKEN },
        "vars": { "note": TOKEN },
    });
    let (status, report) = serve.post("/run", Some(body), Some(TOKEN)).await;
    assert_eq!(status, 422, "{report}");
    let mut seen = vec![report.to_string()];
    for route in ["/runs", "/runs/latest", "/runs/1", "/metrics"] {
        seen.push(serve.get(route, Some(TOKEN)).await.1);
    }
    let bad = json!({ "vars": { secret: "x" } });
    seen.push(
        serve
            .post("/run", Some(bad), Some(TOKEN))
            .await
            .1
            .to_string(),
    );
    seen.push(serve.stderr());
    for value in [secret, TOKEN] {
        for form in forms(value) {
            for text in &seen {
                assert!(!text.contains(&form), "`{form}` shows in:\n{text}");
            }
        }
    }
    assert!(seen[0].contains("***"), "the echo was masked, not missing");
}

#[tokio::test]
async fn a_soak_of_concurrent_calls_keeps_memory_flat() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Arc::new(Serve::start(dir.path(), &["--queue-timeout", "60s"], &[]));
    let rss = |serve: &Serve| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", serve.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let round = |calls: usize| {
        let serve = serve.clone();
        async move {
            let mut clients = Vec::new();
            for _ in 0..8 {
                let serve = serve.clone();
                clients.push(tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    for _ in 0..calls / 8 {
                        statuses.push(serve.post("/run", None, None).await.0);
                    }
                    statuses
                }));
            }
            for client in clients {
                assert!(client.await.unwrap().iter().all(|s| *s == 200));
            }
        }
    };
    round(80).await;
    let warm = rss(&serve);
    round(320).await;
    let after = rss(&serve);
    eprintln!("serve RSS after 80 runs: {warm} KiB; after 400: {after} KiB");
    assert_eq!(pings(&staging).await, 400);
    // Reports beyond --keep are dropped: 320 more runs may not keep piling up memory.
    assert!(
        after < warm + 8 * 1024,
        "RSS grew from {warm} KiB to {after} KiB"
    );
}

// The examples and docs, as a user takes them.

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml_docs(path: &str) -> Vec<yaml_rust2::Yaml> {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn of_kind<'a>(docs: &'a [yaml_rust2::Yaml], kind: &str) -> &'a yaml_rust2::Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// A staging stand-in for the example suite of `kubernetes.yaml`.
async fn shop_staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/health"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/api/products"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "items": [] })))
        .mount(&server)
        .await;
    server
}

/// The suite of the example ConfigMap, written into a folder.
fn example_suite() -> tempfile::TempDir {
    let docs = yaml_docs("examples/serve/kubernetes.yaml");
    let dir = tempfile::tempdir().unwrap();
    let data = of_kind(&docs, "ConfigMap")["data"].as_hash().unwrap();
    for (name, text) in data {
        let (name, text) = (name.as_str().unwrap(), text.as_str().unwrap());
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[tokio::test]
async fn the_kubernetes_example_serves_as_written() {
    let docs = yaml_docs("examples/serve/kubernetes.yaml");
    let suite = example_suite();
    let state = tempfile::tempdir().unwrap();
    let container = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let staging = shop_staging().await;
    // The Deployment's arguments, with the mounts and the address made local.
    let mut args: Vec<String> = Vec::new();
    let mut given = container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap());
    assert_eq!(given.next(), Some("serve"));
    assert_eq!(given.next(), Some("/suite"));
    for arg in given {
        args.push(match arg {
            "/state" => state.path().to_str().unwrap().to_string(),
            "0.0.0.0:9464" => "127.0.0.1:0".to_string(),
            other => other.to_string(),
        });
    }
    assert!(args.contains(&"--listen".to_string()) && args.contains(&"--every".to_string()));
    args.extend(["--base-url".to_string(), staging.uri()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The Secret's placeholder is refused: nobody runs the example with it by mistake.
    let placeholder = of_kind(&docs, "Secret")["stringData"]["token"]
        .as_str()
        .unwrap();
    let (code, stderr) = refused(
        suite.path(),
        &args,
        &[("PREFLIGHT_SERVE_TOKEN", placeholder)],
    );
    assert_eq!(code, Some(2), "{stderr}");
    let serve = Serve::start(suite.path(), &args, &[("PREFLIGHT_SERVE_TOKEN", TOKEN)]);
    for probe in ["livenessProbe", "readinessProbe"] {
        let route = container[probe]["httpGet"]["path"].as_str().unwrap();
        assert_eq!(serve.get(route, None).await.0, 200, "{probe} {route}");
    }
    let (status, report) = serve.post("/run", None, Some(TOKEN)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["verdict"], "pass");
}

#[tokio::test]
async fn the_argo_rollouts_example_judges_the_report() {
    let docs = yaml_docs("examples/serve/argo-rollouts-web-analysis.yaml");
    let metric = &of_kind(&docs, "AnalysisTemplate")["spec"]["metrics"][0];
    assert_eq!(
        metric["successCondition"].as_str(),
        Some(r#"result.verdict == "pass""#)
    );
    assert_eq!(metric["provider"]["web"]["jsonPath"].as_str(), Some("{$}"));
    let web = &metric["provider"]["web"];
    assert_eq!(web["method"].as_str(), Some("POST"));
    let url = url::Url::parse(web["url"].as_str().unwrap()).unwrap();
    let route = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let header = &web["headers"][0];
    assert_eq!(header["key"].as_str(), Some("Authorization"));
    let value = header["value"]
        .as_str()
        .unwrap()
        .replace("{{args.preflight-token}}", TOKEN);
    for (staging_status, verdict) in [(200, "pass"), (500, "fail")] {
        let staging = staging(staging_status, Duration::ZERO).await;
        let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
        let serve = Serve::start(dir.path(), &[], &[("PREFLIGHT_SERVE_TOKEN", TOKEN)]);
        let response = Serve::client()
            .post(format!("{}{route}", serve.url))
            .header("Authorization", &value)
            .send()
            .await
            .unwrap();
        // A non-2xx would be an Error of the measurement in Argo Rollouts, not a Failure.
        assert_eq!(response.status().as_u16(), 200);
        let result: Value = response.json().await.unwrap();
        assert_eq!(result["verdict"], verdict);
    }
}

#[tokio::test]
async fn the_flagger_example_webhooks_pass_and_fail_the_check() {
    let docs = yaml_docs("examples/serve/flagger-canary.yaml");
    let hooks = of_kind(&docs, "Canary")["spec"]["analysis"]["webhooks"]
        .as_vec()
        .unwrap();
    let types: Vec<&str> = hooks.iter().map(|h| h["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["pre-rollout", "rollout"]);
    for (staging_status, expected) in [(200, 200), (500, 422)] {
        let staging = staging(staging_status, Duration::ZERO).await;
        let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
        let serve = Serve::start(dir.path(), &[], &[("PREFLIGHT_SERVE_TOKEN", TOKEN)]);
        for hook in hooks {
            let url = url::Url::parse(hook["url"].as_str().unwrap()).unwrap();
            let mut metadata = serde_json::Map::new();
            for (k, v) in hook["metadata"].as_hash().unwrap() {
                let v = v.as_str().unwrap();
                let v = if v == "CHANGE-ME" { TOKEN } else { v };
                metadata.insert(k.as_str().unwrap().to_string(), json!(v));
            }
            // What Flagger sends: its payload, no header.
            let payload = json!({
                "name": "shop", "namespace": "shop", "phase": "Progressing",
                "checksum": format!("rev-{}", hook["type"].as_str().unwrap()),
                "metadata": metadata,
            });
            let (status, report) = serve.post(url.path(), Some(payload), None).await;
            assert_eq!(status, expected, "{report}");
        }
    }
}

/// The `preflight_*` names a text mentions.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (at, _) in text.match_indices("preflight_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.len() > "preflight_".len() {
            names.insert(name);
        }
    }
    names
}

#[tokio::test]
async fn every_metric_the_docs_and_alerts_name_is_exposed() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[]);
    serve.signal("HUP");
    wait_for(&serve, "suite reloaded").await;
    assert_eq!(serve.post("/run", None, None).await.0, 200);
    let (_, exposition) = serve.get("/metrics", None).await;
    let exposed: std::collections::BTreeSet<String> = samples(&exposition)
        .keys()
        .map(|k| k.split('{').next().unwrap().to_string())
        .collect();
    let known = |name: &str| {
        ["", "_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| exposed.contains(&format!("{name}{suffix}")))
    };
    let docs = std::fs::read_to_string(repo("docs/serve.md")).unwrap();
    let rules = std::fs::read_to_string(repo("examples/serve/prometheus-rules.yaml")).unwrap();
    for name in metric_names(&docs).iter().chain(&metric_names(&rules)) {
        assert!(
            known(name),
            "`{name}` is documented but not exposed:\n{exposition}"
        );
    }
    for name in &exposed {
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            docs.contains(base),
            "`{name}` is exposed but not in docs/serve.md"
        );
    }
}

#[tokio::test]
async fn the_quick_start_of_the_docs_runs_the_bundled_suite() {
    let docs = std::fs::read_to_string(repo("docs/serve.md")).unwrap();
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let curl = r#"curl -X POST -H "Authorization: Bearer $PREFLIGHT_SERVE_TOKEN" http://127.0.0.1:9464/run"#;
    for text in [&docs, &readme] {
        assert!(text.contains("preflight serve smoke-tests --base-url http://127.0.0.1:8080"));
        assert!(text.contains(curl));
        assert!(text.contains(r#"export PREFLIGHT_SERVE_TOKEN="$(openssl rand -hex 32)""#));
    }
    // The bundled suite, served against the demo staging on a free port in place of :8080.
    let staging = preflight::demo::DemoServer::start(&[]).await.unwrap();
    let base_url = staging.base_url();
    let serve = Serve::start(
        &repo("smoke-tests"),
        &["--base-url", &base_url, "--every", "5m"],
        &[
            ("PREFLIGHT_SERVE_TOKEN", TOKEN),
            (preflight::demo::DEMO_TOKEN_ENV, preflight::demo::DEMO_TOKEN),
        ],
    );
    let (status, report) = serve.post("/run", None, Some(TOKEN)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["verdict"], "pass");
    for route in ["/runs", "/runs/latest", "/metrics"] {
        assert_eq!(serve.get(route, Some(TOKEN)).await.0, 200, "{route}");
    }
    let (_, report) = serve.get("/runs/latest", Some(TOKEN)).await;
    assert!(!report.contains(preflight::demo::DEMO_TOKEN));
    drop(serve);
    staging.shutdown().await;
}

#[tokio::test]
async fn a_key_reused_with_other_vars_never_gets_the_other_runs_verdict() {
    let staging = MockServer::start().await;
    Mock::given(path("/shop/eu"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    Mock::given(path("/shop/us"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&staging)
        .await;
    let flow = r#"
name = "regional"
[vars]
region = "eu"
[[step]]
name = "home"
path = "/shop/{{ region }}"
expect = { status = 200 }
"#;
    let dir = suite(&staging.uri(), "", &[("regional.toml", flow)]);
    let serve = Serve::start(dir.path(), &["--allow-var", "region"], &[]);
    let eu = json!({ "checksum": "rev-1", "vars": { "region": "eu" } });
    assert_eq!(serve.post("/run", Some(eu), None).await.0, 200);
    let us = json!({ "checksum": "rev-1", "vars": { "region": "us" } });
    let (status, error) = serve.post("/run", Some(us), None).await;
    assert_eq!(status, 409, "a pass for eu is no answer for us: {error}");
    let us = json!({ "checksum": "rev-2", "vars": { "region": "us" } });
    assert_eq!(serve.post("/run", Some(us), None).await.0, 422);
}

#[tokio::test]
async fn a_reload_forgets_the_run_a_replay_would_answer_with() {
    let staging = MockServer::start().await;
    Mock::given(path("/ping"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&staging)
        .await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[]);
    let payload = json!({ "checksum": "rev-1" });
    assert_eq!(serve.post("/run", Some(payload.clone()), None).await.0, 200);
    let stricter = HEALTH.replace("/ping", "/pong");
    std::fs::write(dir.path().join("health.toml"), stricter).unwrap();
    serve.signal("HUP");
    wait_for(&serve, "suite reloaded").await;
    let (status, report) = serve.post("/run", Some(payload), None).await;
    assert_eq!(status, 422, "the new suite ran: {report}");
    assert_eq!(report["serve"]["run_id"], "2");
}

// What the attack on serve found, each pinned down.

#[tokio::test]
async fn a_header_key_and_a_checksum_never_answer_for_each_other() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[]);
    let first = Serve::client()
        .post(format!("{}/run", serve.url))
        .header("Idempotency-Key", "R2")
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["preflight-run-id"], "1");
    let (_, report) = serve
        .post("/run", Some(json!({ "checksum": "R2" })), None)
        .await;
    assert_eq!(
        report["serve"]["run_id"], "2",
        "another kind of key, another run"
    );
    assert_eq!(pings(&staging).await, 2);
}

#[tokio::test]
async fn a_request_joining_a_run_with_other_vars_is_refused() {
    let staging = MockServer::start().await;
    Mock::given(path("/shop/eu"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&staging)
        .await;
    let flow = r#"
name = "regional"
[vars]
region = "eu"
[[step]]
name = "home"
path = "/shop/{{ region }}"
expect = { status = 200 }
"#;
    let dir = suite(&staging.uri(), "", &[("regional.toml", flow)]);
    let serve = Arc::new(Serve::start(dir.path(), &["--allow-var", "region"], &[]));
    let first = tokio::spawn({
        let serve = serve.clone();
        async move {
            let eu = json!({ "checksum": "k", "vars": { "region": "eu" } });
            serve.post("/run", Some(eu), None).await.0
        }
    });
    until_received(&staging, 1).await;
    let bad = json!({ "checksum": "k", "vars": { "region": "bad-evil" } });
    assert_eq!(serve.post("/run", Some(bad), None).await.0, 409);
    assert_eq!(first.await.unwrap(), 200);
}

#[tokio::test]
async fn what_a_request_says_is_never_echoed_unmasked() {
    let secret = "sup3rS3cretValue42";
    let staging = staging(200, Duration::ZERO).await;
    let flow = HEALTH.replace(
        "expect = { status = 200 }",
        "headers = { x-api-key = \"{{ secret.PREFLIGHT_TEST_SECRET }}\" }\nexpect = { status = 200 }",
    );
    let dir = suite(&staging.uri(), "", &[("health.toml", &flow)]);
    let env = [
        ("PREFLIGHT_TEST_SECRET", secret),
        ("PREFLIGHT_SERVE_TOKEN", TOKEN),
    ];
    let serve = Serve::start(dir.path(), &[], &env);
    for value in [secret, TOKEN] {
        for route in [format!("/run?status={value}"), format!("/run?{value}=1")] {
            let (status, error) = serve.post(&route, None, Some(TOKEN)).await;
            assert_eq!(status, 400);
            assert!(!error.to_string().contains(value), "{route}: {error}");
        }
    }
    let (status, _) = serve
        .post("/run?status=bogus&status=report", None, Some(TOKEN))
        .await;
    assert_eq!(status, 400, "one status, given once");
    // An array is no run request, even if serde could read it field by field.
    let array = json!([null, null, null, null, null, { "x": "y" }]);
    assert_eq!(serve.post("/run", Some(array), Some(TOKEN)).await.0, 400);
    assert_eq!(pings(&staging).await, 0);
}

#[tokio::test]
async fn no_allowed_variable_can_reach_another_host() {
    let host = r#"
name = "tenant"
[vars]
tenant = "shop.staging"
[[step]]
name = "home"
path = "/"
headers = { Host = "{{ tenant }}" }
"#;
    let dir = suite("http://127.0.0.1:9", "", &[("tenant.toml", host)]);
    let (code, stderr) = refused(dir.path(), &["--allow-var", "tenant"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("`Host` header"), "{stderr}");
    // Through a capture: staging could echo the value back, and a `url` read it.
    let echoed = r#"
name = "echoed"
[vars]
ref = "x"
[[step]]
name = "first"
path = "/echo"
query = { next = "{{ ref }}" }
[step.capture]
next = "$.query.next"
[[step]]
name = "second"
url = "{{ next }}"
"#;
    let dir = suite("http://127.0.0.1:9", "", &[("echoed.toml", echoed)]);
    let (code, stderr) = refused(dir.path(), &["--allow-var", "ref"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("reads `next` in its `url`"), "{stderr}");
    // Without --allow-var nothing a request says reaches a template: the suite serves.
    let serve = Serve::start(dir.path(), &[], &[]);
    assert_eq!(serve.get("/healthz", None).await.0, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_does_not_hold_up_shutdown() {
    use std::io::Write;
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &["--shutdown-grace", "1s"], &[]);
    let address = serve.url.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    slow.write_all(b"POST /run HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut body = std::net::TcpStream::connect(&address).unwrap();
    body.write_all(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    serve.signal("TERM");
    let (code, stderr) = serve.exit().await;
    assert_eq!(code, Some(0), "{stderr}");
    drop((slow, body));
}

#[tokio::test]
async fn the_state_dir_serves_only_reports_serve_wrote() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious").unwrap();
    type Plant<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: [(&str, Plant); 3] = [
        (
            "a symlink",
            Box::new(|state: &Path| {
                std::os::unix::fs::symlink(victim.path(), state.join("run-00000001.json")).unwrap()
            }),
        ),
        (
            "names are",
            Box::new(|state: &Path| std::fs::write(state.join("run-2.json"), "{}").unwrap()),
        ),
        (
            "expected",
            Box::new(|state: &Path| {
                std::fs::write(state.join("run-00000003.json"), "not json").unwrap()
            }),
        ),
    ];
    for (why, plant) in cases {
        let state = tempfile::tempdir().unwrap();
        plant(state.path());
        let state_dir = state.path().to_str().unwrap();
        let (code, stderr) = refused(dir.path(), &["--state-dir", state_dir], &[]);
        assert_eq!(code, Some(2), "{why}: {stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
}

#[tokio::test]
async fn a_token_read_from_a_file_works_without_its_newline() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let with_newline = format!("{TOKEN}\n");
    let serve = Serve::start(dir.path(), &[], &[("PREFLIGHT_SERVE_TOKEN", &with_newline)]);
    assert_eq!(serve.post("/run", None, Some(TOKEN)).await.0, 200);
    let flagger = json!({ "metadata": { "token": TOKEN } });
    assert_eq!(serve.post("/run", Some(flagger), None).await.0, 200);
}

#[tokio::test]
async fn a_queued_request_whose_caller_left_is_not_run() {
    let staging = staging(200, Duration::from_millis(2000)).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Arc::new(Serve::start(dir.path(), &["--queue-timeout", "60s"], &[]));
    let first = tokio::spawn({
        let serve = serve.clone();
        async move { serve.post("/run", None, None).await.0 }
    });
    until_received(&staging, 1).await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let url = format!("{}/run", serve.url);
    let calls = (0..5).map(|_| impatient.post(&url).send());
    for gone in futures_join_all(calls).await {
        assert!(gone.is_err(), "the caller gave up");
    }
    assert_eq!(first.await.unwrap(), 200);
    // Had one of them run, it would be going now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pings(&staging).await,
        1,
        "runs nobody waits for were not run"
    );
    let (_, text) = serve.get("/runs", None).await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&text).unwrap().len(), 1);
}

/// Awaits every future, concurrently.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn a_serve_report_can_be_the_baseline_of_a_run() {
    let staging = staging(200, Duration::ZERO).await;
    let dir = suite(&staging.uri(), "", &[("health.toml", HEALTH)]);
    let serve = Serve::start(dir.path(), &[], &[]);
    let (status, report) = serve.post("/run", None, None).await;
    assert_eq!(status, 200);
    let digest = report["suite_files_digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{report}");
    let out = tempfile::tempdir().unwrap();
    let baseline = out.path().join("served.json");
    std::fs::write(&baseline, report.to_string()).unwrap();
    let json = out.path().join("run.json");
    let mut cmd = binary::preflight();
    cmd.arg("run")
        .arg(dir.path())
        .arg("--baseline")
        .arg(&baseline)
        .arg("--json")
        .arg(&json);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let ran: Value = binary::read_json(&json);
    assert_eq!(ran["suite_files_digest"], digest.as_str());
    assert_eq!(ran["baseline"]["steps"].as_array().unwrap().len(), 1);
}
