//! The JSON report is written while the run goes on: each flow as soon as it and every flow
//! before it finished, into the report's temporary file beside the destination, which is
//! renamed into place when the report is complete. Checked through the real binary against a
//! loopback server that holds chosen requests until the test lets them go, so that the run is
//! known to be still going while the file is read. No sleep decides anything, and nothing
//! is timed.

mod binary;
mod hermetic;

use binary::{process, read_json, suite};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const FLOWS: usize = 20_000;

/// A keep-alive HTTP/1.1 server on 127.0.0.1 that answers `{"ok": true}` at once, except to
/// the held paths, which wait until their gate is opened.
struct Staging {
    url: String,
    gates: HashMap<String, watch::Sender<bool>>,
}

impl Staging {
    async fn start(held: &[&str]) -> Staging {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut gates = HashMap::new();
        let mut waits = HashMap::new();
        for path in held {
            let (open, wait) = watch::channel(false);
            gates.insert(path.to_string(), open);
            waits.insert(path.to_string(), wait);
        }
        let waits = Arc::new(waits);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, waits.clone()));
            }
        });
        Staging { url, gates }
    }

    fn open(&self, path: &str) {
        self.gates[path].send_replace(true);
    }
}

/// Answers the requests of one connection (GETs without a body) one after another.
async fn serve(
    mut socket: tokio::net::TcpStream,
    waits: Arc<HashMap<String, watch::Receiver<bool>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        buffer.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        if let Some(wait) = waits.get(&path) {
            let mut wait = wait.clone();
            let _ = wait.wait_for(|open| *open).await;
        }
        let body = br#"{"ok": true}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let written = async {
            socket.write_all(response.as_bytes()).await?;
            socket.write_all(body).await
        };
        if written.await.is_err() {
            return;
        }
    }
}

fn probe(i: usize) -> String {
    format!("[[step]]\npath = \"/probe/{i}\"\n\n[step.expect]\nstatus = 200\n")
}

/// The report's temporary file in `dir`, once it exists.
fn staged_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.find_map(|entry| {
        let name = entry.ok()?.file_name().to_string_lossy().into_owned();
        (name.starts_with(".report.json.") && name.ends_with(".tmp")).then(|| dir.join(name))
    })
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// This process's umask (the binary inherits it).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

/// Polls (without deciding anything by time) until `ready` holds; gives up after a generous
/// bound, so that a broken build fails instead of hanging.
async fn until<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let give_up = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < give_up, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The flows in the partial text of a report: each flow object starts at this depth.
fn flows_in(text: &str) -> usize {
    text.matches("\n    {\n      \"name\": \"probe-").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_report_grows_while_the_run_goes_on_and_equals_one_rendered_at_the_end() {
    let middle = format!("/probe/{}", FLOWS / 2);
    let last = format!("/probe/{}", FLOWS - 1);
    let staging = Staging::start(&[&middle, &last]).await;
    let names: Vec<(String, String)> = (0..FLOWS)
        .map(|i| (format!("probe-{i:05}.toml"), probe(i)))
        .collect();
    let flows: Vec<(&str, &str)> = names
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let settings = "concurrency = 64\ntimeout = \"10m\"\ndeadline = \"20m\"\n";
    let dir = suite(&staging.url, settings, &flows);
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report.json");
    let mut child = process()
        .args(["run", "--no-progress", "--quiet", "--json"])
        .arg(&report)
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // The flow in the middle is held: the flows before it are in the file, none after it.
    let staged = until("the report's temporary file", || staged_file(out.path())).await;
    let first = until("the flows before the held one, written", || {
        let text = std::fs::read_to_string(&staged).ok()?;
        (flows_in(&text) >= FLOWS / 2 - 200).then_some(text)
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run is still going"
    );
    assert!(
        !report.exists(),
        "the destination appears only when complete"
    );
    assert!(first.starts_with("{\n  \"schema\": 1,\n  \"tool\": \"preflight\""));
    // Private while it is written (a secret learned later is masked in it only at the end).
    assert_eq!(
        mode(&staged),
        0o600,
        "the temporary file is its owner's only"
    );
    assert!(flows_in(&first) <= FLOWS / 2, "no flow after the held one");

    // Let it go: the file grows up to the last flow, which is held in turn.
    staging.open(&middle);
    let second = until("the flows up to the last one, written", || {
        let text = std::fs::read_to_string(&staged).ok()?;
        (flows_in(&text) >= FLOWS - 200).then_some(text)
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run is still going"
    );
    assert!(second.len() > first.len(), "the file grew");
    assert!(
        second.starts_with(&first),
        "what was written stays as written"
    );

    staging.open(&last);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!staged.exists(), "the temporary file became the report");
    assert_eq!(
        mode(&report),
        0o666 & !umask(),
        "the report has what a new file gets"
    );
    let streamed = std::fs::read_to_string(&report).unwrap();
    assert!(
        streamed.starts_with(&second),
        "the final report continues the same text"
    );

    // The same report rendered at the end, whole, from what was read back.
    let rendered = out.path().join("rendered.json");
    let done = process()
        .arg("report")
        .arg(&report)
        .arg("--json")
        .arg(&rendered)
        .status()
        .unwrap();
    assert!(done.success());
    let (a, b) = (read_json(&report), read_json(&rendered));
    let (a_flows, b_flows) = (
        a["flows"].as_array().unwrap(),
        b["flows"].as_array().unwrap(),
    );
    assert_eq!(a_flows.len(), FLOWS);
    for (i, (x, y)) in a_flows.iter().zip(b_flows).enumerate() {
        assert_eq!(x, y, "flow {i}");
        assert_eq!(x["name"], format!("probe-{i:05}"), "path order");
    }
    assert_eq!(a, b);
    assert_eq!(streamed, std::fs::read_to_string(&rendered).unwrap());
    assert_eq!(a["verdict"], "pass");
    assert_eq!(a["summary"]["passed"], FLOWS);
}

/// A flow that learns the token of [`token_server`] as a secret.
const LOGIN: &str = "[[step]]\nname = \"login\"\npath = \"/token\"\ncapture = { t = { json = \"$.token\", secret = true } }\n";

/// A staging whose `/token` answers `{"token": TOKEN}`.
async fn token_server(token: &str) -> wiremock::MockServer {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "token": token })),
        )
        .mount(&server)
        .await;
    server
}

/// A flow written before a later flow captured a secret is masked again with it: the value
/// shown by the first flow (a failed assertion's actual, its body excerpt) never reaches a
/// report, though it was not known to be secret when that flow was written.
#[tokio::test]
async fn a_secret_learned_after_a_flow_was_written_is_masked_in_it_too() {
    let token = "tok-5f1e0c9a7b3d";
    let server = token_server(token).await;
    // One at a time: the first flow is written before the second one starts.
    let shown = "[[step]]\nname = \"show\"\npath = \"/token\"\n[step.expect.json]\n\"$.token\" = \"other\"\n";
    let dir = suite(
        &server.uri(),
        "concurrency = 1\n",
        &[("a-shown.toml", shown), ("b-login.toml", LOGIN)],
    );
    let out = tempfile::tempdir().unwrap();
    let (json, junit) = (out.path().join("r.json"), out.path().join("r.xml"));
    let status = process()
        .args(["run", "--no-progress", "--quiet", "--json"])
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "the first flow fails");
    let report = read_json(&json);
    let assertions = report["flows"][0]["steps"][0]["assertions"]
        .as_array()
        .unwrap();
    let token_check = assertions
        .iter()
        .find(|a| a["subject"] == "$.token")
        .unwrap();
    assert_eq!(
        token_check["actual"], "***",
        "masked though written before it was known"
    );
    for file in [&json, &junit] {
        let text = std::fs::read_to_string(file).unwrap();
        for form in binary::forms(token) {
            assert!(
                !text.contains(&form),
                "{} shows the secret:\n{text}",
                file.display()
            );
        }
    }
}

/// The temporary file lies in the report's folder for the whole run: a file swapped in for it
/// by another process is never renamed into place as the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_file_swapped_during_the_run_is_not_made_the_report() {
    let staging = Staging::start(&["/probe/1"]).await;
    let (first, second) = (probe(0), probe(1));
    let dir = suite(
        &staging.url,
        "concurrency = 1\n",
        &[("probe-0.toml", &first), ("probe-1.toml", &second)],
    );
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report.json");
    let child = process()
        .args(["run", "--no-progress", "--json"])
        .arg(&report)
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let staged = until("the report's temporary file", || staged_file(out.path())).await;
    let forged = out.path().join("forged");
    std::fs::write(
        &forged,
        r#"{"schema": 1, "tool": "preflight", "verdict": "pass"}"#,
    )
    .unwrap();
    std::fs::rename(&forged, &staged).unwrap();
    staging.open("/probe/1");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was replaced by another process"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("GATE FAILED"),
        "{stdout}"
    );
    assert!(
        !report.exists() || read_json(&report)["verdict"] != "pass",
        "the forged file is not the report"
    );
}

/// An excerpt cut inside a secret that was learned only later (the body of a failed step,
/// cut at 500 characters, 20 characters into the token) keeps none of it: the start of the
/// secret before the cut is masked in every report, whether staging echoed the token as it
/// is, percent-encoded or in base64 (the two were kept, attack finding).
#[tokio::test]
async fn a_secret_learned_later_is_masked_where_an_excerpt_cut_it() {
    use base64::Engine as _;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use wiremock::matchers::path;
    use wiremock::{Mock, ResponseTemplate};
    let token = "tok!a'b~c/d efghij-SECRETVALUE/0123456789+abcdef";
    let server = token_server(token).await;
    // JavaScript's encodeURIComponent, and WHATWG form encoding (attack finding: both kept
    // the start of the token, as did Python's html.escape).
    const URI_COMPONENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    const FORM: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'*')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    let forms = [
        token.to_string(),
        utf8_percent_encode(token, NON_ALPHANUMERIC).to_string(),
        base64::engine::general_purpose::STANDARD.encode(token),
        utf8_percent_encode(token, URI_COMPONENT).to_string(),
        utf8_percent_encode(token, FORM)
            .to_string()
            .replace("%20", "+"),
        token.replace('\'', "&#x27;"),
    ];
    let mut flows = Vec::new();
    for (i, form) in forms.iter().enumerate() {
        Mock::given(path(format!("/echo{i}")))
            .respond_with(
                ResponseTemplate::new(500)
                    .set_body_string(format!("{}{form} tail", "x".repeat(480))),
            )
            .mount(&server)
            .await;
        let echoed = format!("[[step]]\nname = \"echo\"\npath = \"/echo{i}\"\n");
        flows.push((format!("a-echo{i}.toml"), echoed));
    }
    flows.push(("b-login.toml".into(), LOGIN.into()));
    let dir = suite(&server.uri(), "concurrency = 1\n", &flows);
    let out = tempfile::tempdir().unwrap();
    let file = |name: &str| out.path().join(name);
    let output = process()
        .args(["run", "--no-progress", "--verbose", "--json"])
        .arg(file("r.json"))
        .arg("--junit")
        .arg(file("r.xml"))
        .arg("--markdown")
        .arg(file("r.md"))
        .arg("--html")
        .arg(file("r.html"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "the echo fails");
    let report = read_json(file("r.json"));
    let excerpts: Vec<&str> = report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|flow| flow["steps"][0]["body_excerpt"].as_str())
        .collect();
    assert_eq!(excerpts.len(), forms.len(), "{report}");
    for excerpt in excerpts {
        assert!(excerpt.ends_with("x***…"), "{excerpt}");
    }
    for form in &forms {
        let start = &form[..6];
        for name in ["r.json", "r.xml", "r.md", "r.html"] {
            let text = std::fs::read_to_string(file(name)).unwrap();
            assert!(
                !text.contains(start),
                "{name} shows the start of the secret as `{start}`"
            );
        }
        assert!(!String::from_utf8_lossy(&output.stdout).contains(start));
    }
}

/// Found by attacking the reports: when a secret learned late must be masked into the flows
/// written before it, and the temporary folder cannot be written, the run fails (it cannot
/// prove the report is masked) and says so, naming the folder, not only the JSON report.
#[tokio::test]
async fn a_temporary_folder_that_cannot_be_written_is_named_when_flows_are_masked_again() {
    let server = token_server("t").await;
    // One at a time: the first flow is written before the second one learns the secret.
    let first = "[[step]]\nname = \"first\"\npath = \"/token\"\n";
    let dir = suite(
        &server.uri(),
        "concurrency = 1\n",
        &[("a-first.toml", first), ("b-login.toml", LOGIN)],
    );
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("r.json");
    let run = process()
        .args(["run", "--no-progress", "--json"])
        .arg(&json)
        .arg(dir.path())
        .env("TMPDIR", "/nonexistent")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(1), "{stdout}{stderr}");
    let said = "cannot create a temporary file in /nonexistent (TMPDIR): ";
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(
        last.starts_with("GATE FAILED: ") && last.contains(said),
        "{stdout}{stderr}"
    );
}
