//! Running the real binary on a suite written into a temp dir, with every report asked for,
//! and reading back everything a user can see. Shared by the test files that check outputs.
#![allow(dead_code)]

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Every output of one run, read back.
pub struct Outputs {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub json: String,
    pub junit: String,
    pub markdown: String,
    pub summary: String,
}

impl Outputs {
    pub fn all(&self) -> [(&str, &str); 6] {
        [
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
            ("JSON", &self.json),
            ("JUnit", &self.junit),
            ("Markdown", &self.markdown),
            ("step summary", &self.summary),
        ]
    }

    /// Panics naming the output and the form when any output holds any form of `secret`.
    pub fn assert_hidden(&self, secret: &str) {
        for form in forms(secret) {
            for (name, text) in self.all() {
                assert!(
                    !text.contains(&form),
                    "{name} shows the secret as `{form}`:\n{text}"
                );
            }
        }
    }

    /// Panics naming the output when any output holds `part` (a piece of a secret, or
    /// anything else that must not be shown).
    pub fn assert_nowhere(&self, part: &str) {
        for (name, text) in self.all() {
            assert!(!text.contains(part), "{name} shows `{part}`:\n{text}");
        }
    }

    pub fn report(&self) -> Value {
        serde_json::from_str(&self.json).expect("the JSON report parses")
    }
}

/// The raw value and every encoding of it that an output could carry.
pub fn forms(secret: &str) -> Vec<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let json = serde_json::to_string(secret).unwrap();
    let xml = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;");
    let mut forms = vec![
        secret.to_string(),
        secret.trim().to_string(),
        json[1..json.len() - 1].to_string(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        secret.replace(' ', "%20"),
        xml,
        secret.replace('&', "&amp;").replace('\'', "&#39;"),
        base64::engine::general_purpose::STANDARD.encode(secret),
    ];
    forms.retain(|f| f.trim().chars().count() >= 4);
    forms.dedup();
    forms
}

/// The binary, with the variables preflight reads cleared.
pub fn preflight() -> Command {
    let mut cmd = cargo_bin_cmd!("preflight");
    for var in crate::hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.timeout(Duration::from_secs(30));
    cmd
}

/// The binary as a process to start and signal (std's `Command`), with the variables
/// preflight reads cleared, as [`preflight`] does.
pub fn process() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_preflight"));
    for var in crate::hermetic::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Sends signal `name` (`TERM`, `INT`, `HUP`) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {pid}");
}

/// The fenced block of the page `doc` (relative to the repository) in language `lang` whose
/// text starts with `first_line`: the example a test runs as written.
pub fn doc_block(doc: &str, lang: &str, first_line: &str) -> String {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let fence = format!("```{lang}\n{first_line}");
    let start = page
        .find(&fence)
        .unwrap_or_else(|| panic!("{doc} has a {lang} block starting {first_line}"));
    let body = &page[start + lang.len() + 4..];
    body[..body.find("```").unwrap()].to_string()
}

/// A JSON file read back (a report, most often), failing with its path.
pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is no JSON: {e}", path.display()))
}

/// Runs `preflight run SUITE --verbose` with every report, on a blocking thread so that the
/// test's servers keep serving.
pub async fn run_all(suite: &Path, env: &[(&str, &str)], extra: &[&str]) -> Outputs {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name);
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(suite)
        .arg("--verbose")
        .arg("--json")
        .arg(out("r.json"))
        .arg("--junit")
        .arg(out("r.xml"))
        .arg("--markdown")
        .arg(out("r.md"))
        .args(extra)
        .env("GITHUB_STEP_SUMMARY", out("summary.md"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(out(name)).unwrap_or_default();
    Outputs {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        json: read("r.json"),
        junit: read("r.xml"),
        markdown: read("r.md"),
        summary: read("summary.md"),
    }
}

/// A suite directory: `preflight.toml` with `base_url`, plus flow files.
pub fn suite<N: AsRef<Path>, F: AsRef<str>>(
    base_url: &str,
    settings: &str,
    flows: &[(N, F)],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("preflight.toml"),
        format!("base_url = \"{base_url}\"\n{settings}"),
    )
    .unwrap();
    for (name, text) in flows {
        std::fs::write(dir.path().join(name), text.as_ref()).unwrap();
    }
    dir
}

/// What the echo staging answers: status 500 and everything it received, as JSON.
pub fn echo(request: &Request) -> Value {
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), json!(String::from_utf8_lossy(v.as_bytes()))))
        .collect();
    json!({
        "url": request.url.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&request.body),
    })
}

/// A staging that echoes every request back with status 500, so that every step fails and
/// everything is shown.
pub async fn echo_staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(|request: &Request| ResponseTemplate::new(500).set_body_json(echo(request)))
        .mount(&server)
        .await;
    server
}

/// How many `m` requests for path `p` the server received.
pub async fn count(server: &MockServer, m: &str, p: &str) -> usize {
    let requests = server.received_requests().await.expect("recording is on");
    requests
        .iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .count()
}

/// The path of every request `server` received, in arrival order.
pub async fn paths(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.expect("recording is on");
    requests.iter().map(|r| r.url.path().to_string()).collect()
}

/// The step that learns the secrets of [`huge_value_after_secrets`].
pub const LEARN_SECRETS: &str = r#"
[[step]]
name = "login"
path = "/login"
capture = { t = { json = "$.t", secret = true } }
"#;

/// 63 secrets staging gives at `/login` as `$.t` (a `secret = true` capture of it learns 64),
/// and at `at` `n` strings (`s0`, `s1`, …) whose fourth holds the eighth secret, wrapped by
/// `wrap`: a huge value to mask against many learned secrets.
pub async fn huge_value_after_secrets(
    at: &str,
    n: usize,
    wrap: impl Fn(Vec<String>) -> Value,
) -> (MockServer, Vec<String>) {
    let secrets: Vec<String> = (0..63)
        .map(|i| format!("tok-{i:02}-qwertyuiopasdf"))
        .collect();
    let mut items: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    items[3] = format!("id {}", secrets[7]);
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "t": &secrets })))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(wrap(items)))
        .mount(&server)
        .await;
    (server, secrets)
}

/// A pet as the Swagger Petstore 3.0 document (tests/fixtures/openapi) describes it.
pub fn pet(id: u64) -> Value {
    json!({
        "id": id,
        "name": "doggie",
        "category": { "id": 1, "name": "Dogs" },
        "photoUrls": ["https://example.com/dog.png"],
        "tags": [{ "id": 0, "name": "good" }],
        "status": "available"
    })
}

/// Makes a FIFO at `path` (in a temp dir: never one of the system's).
pub fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
}
