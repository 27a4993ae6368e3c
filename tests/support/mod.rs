//! Helpers for the TLS and proxy tests: a test PKI made with rcgen, HTTPS and plain HTTP
//! servers on 127.0.0.1 that record what they were asked, suites in temp dirs, and the real
//! binary run with a controlled environment.
#![allow(dead_code)]

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

// ----- certificates -----

/// A certificate and its key, both PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// Two CAs (one for servers, one for clients) and the certificates they signed.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    client_ca: CertifiedIssuer<'static, KeyPair>,
    /// For `localhost` and `127.0.0.1`, signed by the server CA.
    pub server: Leaf,
    /// A client certificate (`clientAuth`), signed by the client CA.
    pub client: Leaf,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = new_ca("preflight test server CA");
        let client_ca = new_ca("preflight test client CA");

        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = leaf(params, &ca);

        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "preflight smoke client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = leaf(params, &client_ca);

        Pki {
            ca,
            client_ca,
            server,
            client,
        }
    }

    /// The server CA, PEM: what `ca_cert` must name to trust the test server.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The client CA, PEM (a CA that did not sign the server certificate).
    pub fn client_ca_pem(&self) -> String {
        self.client_ca.pem()
    }

    /// A rustls server config with the server certificate; `mtls` requires a client
    /// certificate from the client CA; `h2` offers HTTP/2 by ALPN (before HTTP/1.1).
    pub fn server_config(&self, mtls: bool, h2: bool) -> Arc<rustls::ServerConfig> {
        preflight::engine::http::install_crypto_provider();
        let builder = rustls::ServerConfig::builder();
        let builder = if mtls {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.client_ca.der().clone())
                .expect("client CA into the root store");
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server.key_der.clone()));
        let mut config = builder
            .with_single_cert(vec![self.server.der.clone()], key)
            .expect("server config");
        config.alpn_protocols = if h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Arc::new(config)
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

fn leaf(params: CertificateParams, issuer: &CertifiedIssuer<'static, KeyPair>) -> Leaf {
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf cert");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

// ----- servers -----

/// What a test server saw: one line per request, `"<protocol> <METHOD> <path>"`, and the
/// TLS handshakes it refused.
#[derive(Clone, Default)]
pub struct Log {
    pub requests: Arc<Mutex<Vec<String>>>,
    pub refused: Arc<Mutex<Vec<String>>>,
}

impl Log {
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

/// A server on 127.0.0.1 (bound before `start` returns, so no readiness wait is needed).
/// Every response is `200 OK` with the body `proto=<h2|http/1.1> client-cert=<present|absent>`.
pub struct Server {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` or `http://127.0.0.1:PORT`.
    pub url: String,
    pub log: Log,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// An HTTPS server with this rustls config (HTTP/2 when ALPN picked `h2`).
    pub async fn tls(config: Arc<rustls::ServerConfig>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Log::default();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, log) = (acceptor.clone(), task_log.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            log.refused.lock().unwrap().push(e.to_string());
                            return;
                        }
                    };
                    let (_, conn) = tls.get_ref();
                    let h2 = conn.alpn_protocol() == Some(b"h2".as_slice());
                    let client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
                    if h2 {
                        serve_h2(tls, client_cert, &log).await;
                    } else {
                        serve_http1(tls, client_cert, &log).await;
                    }
                });
            }
        });
        Server {
            addr,
            url: format!("https://{addr}"),
            log,
            task,
        }
    }

    /// A plain HTTP/1.1 server.
    pub async fn plain() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Log::default();
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let log = task_log.clone();
                tokio::spawn(async move { serve_http1(tcp, false, &log).await });
            }
        });
        Server {
            addr,
            url: format!("http://{addr}"),
            log,
            task,
        }
    }
}

fn body(proto: &str, client_cert: bool) -> String {
    let cert = if client_cert { "present" } else { "absent" };
    format!("proto={proto} client-cert={cert}")
}

/// Reads up to the end of the head; returns the head and whatever bytes came after it.
pub async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return Some((String::from_utf8_lossy(&data).into_owned(), rest));
        }
        if data.len() > 64 * 1024 {
            return None;
        }
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request (no body expected: the tests only GET), one response, then close.
async fn serve_http1<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, client_cert: bool, log: &Log) {
    let Some((head, _)) = read_head(&mut io).await else {
        return;
    };
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    log.requests
        .lock()
        .unwrap()
        .push(format!("http/1.1 {method} {target}"));
    let body = body("http/1.1", client_cert);
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = io.write_all(response.as_bytes()).await;
    let _ = io.shutdown().await;
}

async fn serve_h2<S: AsyncRead + AsyncWrite + Unpin>(io: S, client_cert: bool, log: &Log) {
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        log.requests.lock().unwrap().push(format!(
            "h2 {} {}",
            request.method(),
            request.uri().path()
        ));
        let response = http::Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(())
            .expect("response");
        if let Ok(mut stream) = respond.send_response(response, false) {
            let _ = stream.send_data(Bytes::from(body("h2", client_cert)), true);
        }
    }
}

// ----- suites and the binary -----

/// A suite directory with one flow `probe` (one step `probe`: GET /probe, status 200, and
/// `expect_body` contained in the body when given), plus a directory for reports.
pub struct Suite {
    dir: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl Suite {
    /// `settings` is the whole `preflight.toml`.
    pub fn new(settings: &str, expect_body: Option<&str>) -> Suite {
        let suite = Suite {
            dir: tempfile::tempdir().expect("temp dir"),
            out: tempfile::tempdir().expect("temp dir"),
        };
        suite.write("preflight.toml", settings);
        let mut flow = String::from(
            "name = \"probe\"\n\n[[step]]\nname = \"probe\"\npath = \"/probe\"\n\n[step.expect]\nstatus = 200\n",
        );
        if let Some(text) = expect_body {
            flow.push_str(&format!("body = {{ contains = \"{text}\" }}\n"));
        }
        suite.write("probe.toml", flow);
        suite
    }

    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> &Suite {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
        std::fs::write(path, content).expect("write suite file");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn report_path(&self) -> PathBuf {
        self.out.path().join("report.json")
    }

    /// Loads through the library with an empty environment; panics with the problems.
    pub fn load(&self) -> preflight::suite::Plan {
        let lookup = |_: &str| None;
        match preflight::suite::load(self.path(), Default::default(), &lookup) {
            Ok(plan) => plan,
            Err(problems) => {
                let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                panic!("the suite should load, got:\n{}", shown.join("\n"))
            }
        }
    }
}

/// The binary with no proxy (or other) variables from the machine running the tests.
pub fn preflight() -> Command {
    let mut cmd = cargo_bin_cmd!("preflight");
    for var in crate::hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd.timeout(Duration::from_secs(20));
    cmd
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The `--json` report, when one was written.
    pub report: Option<Value>,
}

impl Outcome {
    /// stdout and stderr together.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The `error` of the step `probe` in the JSON report.
    pub fn probe_error(&self) -> String {
        let report = self
            .report
            .as_ref()
            .unwrap_or_else(|| panic!("no report: {self:#?}"));
        report["flows"][0]["steps"][0]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("the probe step has no error: {report:#}"))
            .to_string()
    }

    pub fn verdict(&self) -> &str {
        self.report
            .as_ref()
            .and_then(|r| r["verdict"].as_str())
            .unwrap_or("<no report>")
    }
}

/// `preflight run SUITE --no-progress --json FILE` with `cmd`'s environment, off the async
/// runtime so that the test's servers keep serving.
pub async fn run(suite: &Suite, mut cmd: Command) -> Outcome {
    let report = suite.report_path();
    cmd.arg("run")
        .arg(suite.path())
        .arg("--no-progress")
        .arg("--json")
        .arg(&report);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .expect("the blocking task ends");
    let report = std::fs::read_to_string(&report)
        .ok()
        .map(|text| serde_json::from_str(&text).expect("the report is JSON"));
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}

/// `preflight check SUITE` (no network).
pub async fn check(suite: &Suite) -> Outcome {
    let mut cmd = preflight();
    cmd.arg("check").arg(suite.path());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .expect("the blocking task ends");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: None,
    }
}

/// The settings every test suite starts with: `base_url`, short timeouts.
pub fn settings(base_url: &str, extra: &str) -> String {
    format!("base_url = \"{base_url}\"\ntimeout = \"5s\"\ndeadline = \"20s\"\n{extra}")
}
