//! Proxies from the environment: `HTTP_PROXY` for http URLs (absolute-form
//! requests), `HTTPS_PROXY` for https (tunnelled with CONNECT), `NO_PROXY` for hosts reached
//! directly, lower-case names too; loopback is proxied unless `NO_PROXY` names it. The real
//! binary runs against a counting proxy of the test's own, all on 127.0.0.1.

mod hermetic;
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use support::{Outcome, Pki, Server, Suite, preflight, read_head, run, settings};
use tokio::io::{AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A forward proxy on 127.0.0.1 that records what passes through it: the request lines of
/// absolute-form requests it forwarded, and the targets of the CONNECT tunnels it opened. It
/// only ever connects to 127.0.0.1.
struct Proxy {
    url: String,
    forwarded: Arc<Mutex<Vec<String>>>,
    tunnels: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let (f, t) = (forwarded.clone(), tunnels.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(relay(client, f.clone(), t.clone()));
            }
        });
        Proxy {
            url,
            forwarded,
            tunnels,
            task,
        }
    }

    fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }

    fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }

    /// Requests and tunnels together: did anything go through the proxy?
    fn count(&self) -> usize {
        self.forwarded().len() + self.tunnels().len()
    }
}

/// A loopback `host:port`, or nothing: the proxy goes nowhere else.
fn loopback(authority: &str) -> Option<SocketAddr> {
    authority
        .parse::<SocketAddr>()
        .ok()
        .filter(|a| a.ip().is_loopback())
}

async fn relay(
    mut client: TcpStream,
    forwarded: Arc<Mutex<Vec<String>>>,
    tunnels: Arc<Mutex<Vec<String>>>,
) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let (line, fields) = head.split_once("\r\n").unwrap_or((head.as_str(), ""));
    let mut parts = line.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method == "CONNECT" {
        tunnels.lock().unwrap().push(target.to_string());
        let Some(mut upstream) = connect(target).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
            || upstream.write_all(&rest).await.is_err()
        {
            return;
        }
        let _ = copy_bidirectional(&mut client, &mut upstream).await;
    } else {
        forwarded.lock().unwrap().push(line.to_string());
        // Absolute-form to origin-form, as a forward proxy does.
        let Ok(url) = url::Url::parse(target) else {
            let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            return;
        };
        let authority = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(80)
        );
        let Some(mut upstream) = connect(&authority).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        let mut origin_form = url.path().to_string();
        if let Some(query) = url.query() {
            origin_form.push('?');
            origin_form.push_str(query);
        }
        let head = format!("{method} {origin_form} {version}\r\n{fields}");
        if upstream.write_all(head.as_bytes()).await.is_err()
            || upstream.write_all(&rest).await.is_err()
        {
            return;
        }
        let _ = copy_bidirectional(&mut client, &mut upstream).await;
    }
}

async fn connect(authority: &str) -> Option<TcpStream> {
    TcpStream::connect(loopback(authority)?).await.ok()
}

#[track_caller]
fn assert_passed(outcome: &Outcome) {
    assert_eq!(
        (outcome.code, outcome.verdict()),
        (0, "pass"),
        "the gate should pass: {outcome:#?}"
    );
}

fn port(url: &str) -> u16 {
    url::Url::parse(url)
        .expect("url")
        .port()
        .expect("an explicit port")
}

// ----- http:// targets: HTTP_PROXY -----

#[tokio::test]
async fn http_proxy_carries_requests_to_loopback() {
    let target = Server::plain().await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, ""), Some("proto=http/1.1"));
    let mut cmd = preflight();
    cmd.env("HTTP_PROXY", &proxy.url).env("NO_PROXY", "");

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(
        proxy.forwarded(),
        [format!(
            "GET http://127.0.0.1:{}/probe HTTP/1.1",
            port(&target.url)
        )],
        "the proxy should get the request in absolute form"
    );
    assert!(proxy.tunnels().is_empty(), "{:?}", proxy.tunnels());
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn lower_case_http_proxy_works_too() {
    let target = Server::plain().await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, ""), None);
    let mut cmd = preflight();
    cmd.env("http_proxy", &proxy.url);

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.forwarded().len(), 1, "{:?}", proxy.forwarded());
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn no_proxy_naming_loopback_goes_direct() {
    let target = Server::plain().await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, ""), None);
    let mut cmd = preflight();
    cmd.env("HTTP_PROXY", &proxy.url)
        .env("NO_PROXY", "127.0.0.1");

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.count(), 0, "NO_PROXY names the host: no proxy");
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn lower_case_no_proxy_and_lists_with_networks_work() {
    let target = Server::plain().await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, ""), None);
    let mut cmd = preflight();
    cmd.env("HTTP_PROXY", &proxy.url)
        .env("no_proxy", "staging.example.com, 127.0.0.0/8");

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.count(), 0, "127.0.0.0/8 covers the host: no proxy");
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn no_proxy_naming_other_hosts_still_proxies_loopback() {
    let target = Server::plain().await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, ""), None);
    let mut cmd = preflight();
    cmd.env("HTTP_PROXY", &proxy.url)
        .env("NO_PROXY", "staging.example.com,10.0.0.0/8");

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.forwarded().len(), 1, "{:?}", proxy.forwarded());
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn https_proxy_is_not_used_for_http_urls() {
    let target = Server::plain().await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, ""), None);
    let mut cmd = preflight();
    cmd.env("HTTPS_PROXY", &proxy.url);

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.count(), 0);
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn an_unreachable_proxy_fails_the_gate_with_the_cause() {
    let target = Server::plain().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let suite = Suite::new(&settings(&target.url, ""), None);
    let mut cmd = preflight();
    cmd.env("HTTP_PROXY", format!("http://127.0.0.1:{closed}"));

    let outcome = run(&suite, cmd).await;

    assert_eq!(
        (outcome.code, outcome.verdict()),
        (1, "fail"),
        "{outcome:#?}"
    );
    let error = outcome.probe_error();
    assert!(
        error.to_lowercase().contains("refused"),
        "the step error should show the refused connection, got `{error}`"
    );
    assert!(target.log.requests().is_empty(), "fail closed: no bypass");
}

// ----- https:// targets: HTTPS_PROXY and CONNECT -----

#[tokio::test]
async fn https_proxy_tunnels_tls_with_connect() {
    let pki = Pki::new();
    let target = Server::tls(pki.server_config(false, false)).await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(
        &settings(&target.url, "ca_cert = \"ca.pem\"\n"),
        Some("proto=http/1.1"),
    );
    suite.write("ca.pem", pki.ca_pem());
    let mut cmd = preflight();
    cmd.env("HTTPS_PROXY", &proxy.url).env("NO_PROXY", "");

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(
        proxy.tunnels(),
        [format!("127.0.0.1:{}", port(&target.url))],
        "the proxy should get one CONNECT to the target"
    );
    assert!(proxy.forwarded().is_empty(), "{:?}", proxy.forwarded());
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn http2_goes_through_a_connect_tunnel() {
    let pki = Pki::new();
    let target = Server::tls(pki.server_config(false, true)).await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(
        &settings(&target.url, "ca_cert = \"ca.pem\"\n"),
        Some("proto=h2"),
    );
    suite.write("ca.pem", pki.ca_pem());
    let mut cmd = preflight();
    cmd.env("https_proxy", &proxy.url);

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.tunnels().len(), 1, "{:?}", proxy.tunnels());
    assert_eq!(target.log.requests(), ["h2 GET /probe"]);
}

#[tokio::test]
async fn an_untrusted_certificate_through_the_tunnel_still_fails() {
    let pki = Pki::new();
    let target = Server::tls(pki.server_config(false, false)).await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, ""), None);
    let mut cmd = preflight();
    cmd.env("HTTPS_PROXY", &proxy.url);

    let outcome = run(&suite, cmd).await;

    assert_eq!(
        (outcome.code, outcome.verdict()),
        (1, "fail"),
        "{outcome:#?}"
    );
    let error = outcome.probe_error();
    assert!(error.contains("UnknownIssuer"), "got `{error}`");
    assert_eq!(proxy.tunnels().len(), 1, "{:?}", proxy.tunnels());
    assert!(target.log.requests().is_empty());
}

#[tokio::test]
async fn http_proxy_is_not_used_for_https_urls() {
    let pki = Pki::new();
    let target = Server::tls(pki.server_config(false, false)).await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, "ca_cert = \"ca.pem\"\n"), None);
    suite.write("ca.pem", pki.ca_pem());
    let mut cmd = preflight();
    cmd.env("HTTP_PROXY", &proxy.url);

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.count(), 0);
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn no_proxy_naming_loopback_skips_the_https_proxy() {
    let pki = Pki::new();
    let target = Server::tls(pki.server_config(false, false)).await;
    let proxy = Proxy::start().await;
    let suite = Suite::new(&settings(&target.url, "ca_cert = \"ca.pem\"\n"), None);
    suite.write("ca.pem", pki.ca_pem());
    let mut cmd = preflight();
    cmd.env("HTTPS_PROXY", &proxy.url)
        .env("NO_PROXY", "127.0.0.1");

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(proxy.count(), 0);
    assert_eq!(target.log.requests(), ["http/1.1 GET /probe"]);
}
