//! Helpers for the engine integration tests: suites written into temp dirs, a run that goes
//! from plan to report, a tiny raw HTTP server for what wiremock cannot do, and gzip/zlib
//! encoders (stored blocks) so that no extra crate is needed.
#![allow(dead_code)]

// Every test file that uses `common` declares `mod hermetic;` too.
use crate::hermetic;

use preflight::report::{AssertionRecord, FlowRecord, GateVerdict, Report, StepRecord};
use preflight::suite::{self, Overrides, Plan};
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A suite directory on disk, removed when dropped.
pub struct Suite {
    dir: tempfile::TempDir,
}

impl Suite {
    /// A suite whose `preflight.toml` is `settings`.
    pub fn new(settings: &str) -> Suite {
        let suite = Suite {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        suite.write("preflight.toml", settings);
        suite
    }

    /// Writes a file below the suite directory (parents created).
    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> &Suite {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
        std::fs::write(path, content).expect("write suite file");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Loads with no overrides and an empty environment; panics with the problems if invalid.
    pub fn load(&self) -> Plan {
        self.load_with(Overrides::default(), &[])
    }

    pub fn load_with(&self, overrides: Overrides, env: &[(&str, &str)]) -> Plan {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| env.get(name).cloned();
        match suite::load(self.path(), overrides, &lookup) {
            Ok(plan) => plan,
            Err(problems) => {
                let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                panic!("the suite should load, got:\n{}", shown.join("\n"))
            }
        }
    }
}

/// What one run of the real binary showed: its exit code, its output, and the JSON report
/// it wrote, read back into the report's own type.
pub struct Run {
    pub report: Report,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `preflight run` on the plan's suite as a user would: the real binary, with the
/// plan's environment (its `env.` and `secret.` values), `--var`s, base URL and limits on its
/// command line, `--json` to a temporary file, `--verbose` on stdout.
pub async fn run(plan: Plan) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_preflight"));
    for var in hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    let settings = &plan.settings;
    cmd.arg("run")
        .arg(&settings.dir)
        .arg("--json")
        .arg(&json)
        .arg("--verbose")
        .arg("--no-progress")
        .args(["--concurrency", &settings.concurrency.to_string()])
        .args([
            "--timeout",
            &humantime::format_duration(settings.timeout).to_string(),
        ])
        .args([
            "--deadline",
            &humantime::format_duration(settings.deadline).to_string(),
        ]);
    if let Some(base) = &settings.base_url {
        cmd.args(["--base-url", base.as_str()]);
    }
    for (name, value) in &settings.cli_vars {
        let value = preflight::template::value_to_text(value);
        cmd.arg("--var").arg(format!("{name}={value}"));
    }
    cmd.envs(&plan.env);
    cmd.envs(plan.secrets.iter().map(|(k, v)| (k, v.expose())));
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .expect("the blocking task ends");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"));
    assert_matches_report_schema(&text);
    let report = serde_json::from_str(&text).expect("the report reads back");
    Run {
        report,
        code: output.status.code().unwrap_or(-1),
        stdout,
        stderr,
        elapsed,
    }
}

impl Run {
    /// A flow as the report shows it.
    pub fn flow(&self, name: &str) -> &FlowRecord {
        self.report
            .flows
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no flow `{name}` in {:#?}", self.report.flows))
    }

    /// A step as the report shows it.
    pub fn step(&self, flow: &str, step: &str) -> &StepRecord {
        let f = self.flow(flow);
        f.steps
            .iter()
            .find(|s| s.name == step)
            .unwrap_or_else(|| panic!("no step `{step}` in flow `{flow}`: {:#?}", f.steps))
    }

    pub fn json(&self) -> String {
        self.report.to_json()
    }

    /// What the terminal showed (`--verbose`), stdout and stderr.
    pub fn terminal(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Exit 0 and a report that says so.
    pub fn passed(&self) -> bool {
        assert_eq!(
            self.code == 0,
            self.report.verdict == GateVerdict::Pass,
            "the exit code and the report disagree: {}\n{}",
            self.code,
            self.stdout
        );
        self.code == 0
    }

    /// The last line of stdout.
    pub fn headline(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }
}

/// The one assertion of `step` with this subject and op.
pub fn assertion<'a>(step: &'a StepRecord, subject: &str, op: &str) -> &'a AssertionRecord {
    let found: Vec<&AssertionRecord> = step
        .assertions
        .iter()
        .filter(|a| a.subject == subject && a.op == op)
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "expected exactly one assertion `{subject}` `{op}`, found {}: {:#?}",
            found.len(),
            step.assertions
        ),
    }
}

/// Asserts the full record of one assertion.
#[track_caller]
pub fn check(
    step: &StepRecord,
    subject: &str,
    op: &str,
    expected: serde_json::Value,
    actual: serde_json::Value,
    passed: bool,
) {
    let a = assertion(step, subject, op);
    assert_eq!(
        (&a.expected, &a.actual, a.passed),
        (&expected, &actual, passed),
        "assertion `{subject}` `{op}` (expected, actual, passed); whole record: {a:#?}"
    );
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// A hand-written HTTP/1.1 server on 127.0.0.1: one request per connection, answered with
/// whatever bytes the handler returns, then the connection is closed. Counts requests, the
/// requests in flight and the peak of that.
pub struct RawServer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    pub in_flight: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    pub async fn start<F, Fut>(handler: F) -> RawServer
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<u8>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw server");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (h, f, p) = (hits.clone(), in_flight.clone(), peak.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, hits, in_flight, peak) =
                    (handler.clone(), h.clone(), f.clone(), p.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                        if head.len() > 64 * 1024 {
                            return;
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let response = handler(String::from_utf8_lossy(&head).into_owned()).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    // The client may hang up early (body over the limit): that is fine.
                    let _ = socket.write_all(&response).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        RawServer {
            url,
            hits,
            in_flight,
            peak,
            task,
        }
    }
}

/// A complete `200 OK` response with `body`, closing the connection.
pub fn http_ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// A chunked `200 OK` response of `chunks` chunks of `size` bytes each (no content-length).
pub fn http_chunked(chunks: usize, size: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..chunks {
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'z', size));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Hex SHA-256, computed independently of the crate under test.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A valid gzip stream of `data` (deflate stored blocks, CRC-32 and size trailer).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(deflate_stored(data));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// A valid zlib stream of `data` (HTTP's `deflate` content-encoding).
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    out.extend(deflate_stored(data));
    out.extend(adler32(data).to_be_bytes());
    out
}

fn deflate_stored(data: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65_535).collect()
    };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        out.push(u8::from(last)); // BFINAL, BTYPE = 00 (stored), padded to the byte
        let len = chunk.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[test]
fn crc32_and_adler32_match_known_values() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
}

/// Every report a test produces must validate against the published report schema.
pub fn assert_matches_report_schema(json: &str) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema = preflight::schema::render(preflight::schema::Kind::Report);
        jsonschema::validator_for(&serde_json::from_str(&schema).unwrap()).unwrap()
    });
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match schemas/report.schema.json: {errors:#?}"
    );
}
