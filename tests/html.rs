//! The HTML report through the real binary: `run --html` for a passing, a failing, an aborted
//! and a 1,000-flow run against wiremock on 127.0.0.1, and `preflight report` rendering the
//! saved JSON again, byte for byte. Each page must be well-formed (quick-xml parses it),
//! self-contained (nothing a browser would fetch), name every flow and step, say the verdict,
//! and hold no form of a secret.

mod binary;
mod hermetic;

use binary::{Outputs, echo_staging, forms, preflight, run_all, suite};
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "s3cr3t-'html'-<key>&value";

/// A run with `--html`, every output read back.
struct Page {
    out: Outputs,
    html: String,
    json_path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn run_html(suite: &Path, env: &[(&str, &str)]) -> Page {
    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("r.html");
    let out = run_all(suite, env, &["--html", html_path.to_str().unwrap()]).await;
    let html = std::fs::read_to_string(&html_path).unwrap_or_default();
    // run_all's own files live in a folder that is gone by now: keep the JSON for `report`.
    let json_path = dir.path().join("r.json");
    std::fs::write(&json_path, &out.json).unwrap();
    Page {
        out,
        html,
        json_path,
        _dir: dir,
    }
}

/// Parses the page as XML (panics if it is not well-formed) and returns everything a reader
/// can see: the text, entities resolved, and every attribute value.
fn visible_text(html: &str) -> String {
    let mut reader = quick_xml::Reader::from_str(html);
    let mut text = String::new();
    let mut open = Vec::new();
    loop {
        match reader.read_event().expect("the HTML is well-formed XML") {
            Event::Start(start) => {
                open.push(start.name().as_ref().to_vec());
                attributes(&start, &mut text);
            }
            Event::Empty(start) => {
                attributes(&start, &mut text);
            }
            Event::End(end) => {
                assert_eq!(open.pop().as_deref(), Some(end.name().as_ref()));
            }
            Event::Text(t) => text.push_str(&t.xml10_content().unwrap()),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    text.push(r.resolve_char_ref().unwrap().expect("a character"));
                } else {
                    let name = r.decode().unwrap();
                    text.push_str(match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        other => panic!("unexpected entity &{other};"),
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(open.is_empty(), "every element is closed");
    text
}

/// Appends the attribute values of `start` to `text`; only a `title` may hold a URL.
fn attributes(start: &quick_xml::events::BytesStart, text: &mut String) {
    for a in start.attributes() {
        let a = a.expect("a well-formed attribute");
        let value = a.normalized_value(XmlVersion::Explicit1_0).unwrap();
        assert!(
            a.key.as_ref() == b"title" || !value.contains("://"),
            "an attribute with a URL: {value}"
        );
        text.push_str(&value);
        text.push('\n');
    }
}

/// What every page must be: well-formed, self-contained, the verdict said, every flow and step
/// of the report named (`drawn_all`: small runs), and no form of `secret` anywhere.
fn check_page(html: &str, report: &Value, secret: Option<&str>, drawn_all: bool) -> String {
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    let text = visible_text(html);
    for fetched in [
        "src=", "href=", "url(", "@import", "<link", "<script", "<img", "<iframe",
    ] {
        assert!(!html.contains(fetched), "the page holds `{fetched}`");
    }
    // URLs (the base URL, step URLs, what staging echoed) are text from the report only: no
    // attribute but a tooltip holds one (checked by `visible_text`).
    let heading = match report["verdict"].as_str().unwrap() {
        "pass" => "GATE PASSED",
        "fail" => "GATE FAILED",
        _ => "GATE ABORTED",
    };
    assert!(text.contains(heading), "{heading} missing");
    assert!(text.contains(report["headline"].as_str().unwrap()));
    if drawn_all {
        let steps = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let mut all = steps(&report["setup"]);
        all.extend(steps(&report["teardown"]));
        for flow in report["flows"].as_array().unwrap() {
            let name = flow["name"].as_str().unwrap();
            assert!(text.contains(name), "flow {name} missing");
            all.extend(steps(&flow["steps"]));
        }
        for step in all {
            let name = step["name"].as_str().unwrap();
            assert!(text.contains(name), "step {name} missing");
        }
    }
    if let Some(secret) = secret {
        for form in forms(secret) {
            assert!(
                !html.contains(&form),
                "the page shows the secret as `{form}`"
            );
            assert!(
                !text.contains(&form),
                "the page shows the secret as `{form}`"
            );
        }
    }
    text
}

/// `preflight report JSON --html --markdown --junit --json` into a fresh folder: the exit
/// code and the four files.
fn rerender(json: &Path) -> (i32, [String; 4]) {
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| dir.path().join(n);
    let output = preflight()
        .arg("report")
        .arg(json)
        .arg("--html")
        .arg(file("x.html"))
        .arg("--markdown")
        .arg(file("x.md"))
        .arg("--junit")
        .arg(file("x.xml"))
        .arg("--json")
        .arg(file("x.json"))
        .env("GITHUB_STEP_SUMMARY", file("summary.md"))
        .output()
        .unwrap();
    assert!(
        !file("summary.md").exists(),
        "report never appends to the step summary"
    );
    let read = |n: &str| std::fs::read_to_string(file(n)).unwrap_or_default();
    (
        output.status.code().unwrap_or(-1),
        [read("x.html"), read("x.md"), read("x.xml"), read("x.json")],
    )
}

/// Re-rendering the run's JSON gives the run's own reports, byte for byte.
fn assert_rerendered(page: &Page) {
    let (code, [html, markdown, junit, json]) = rerender(&page.json_path);
    assert_eq!(code, 0);
    assert!(html == page.html, "the HTML differs when rendered again");
    assert!(markdown == page.out.markdown, "the Markdown differs");
    assert!(junit == page.out.junit, "the JUnit differs");
    assert!(json == page.out.json, "the JSON differs");
}

const SETTINGS: &str = r#"name = "html <gate> & 'co'"

[headers]
x-api-key = "{{ secret.PREFLIGHT_TEST_SECRET }}"

[[setup]]
name = "setup: health"
path = "/health"

[[teardown]]
name = "teardown: reset"
method = "DELETE"
path = "/reset"
"#;

const SHOP: &str = r#"name = "browse & <buy> \"quoted\" 'flow'"

[[step]]
name = "list <items> & 'more'"
path = "/items"

[[step]]
name = "order is paid"
path = "/order"
poll = { attempts = 5, interval = "10ms" }

[step.expect.json]
"$.state" = "paid"

[[step]]
name = "flaky search"
path = "/search"
retry = { attempts = 3, on = ["5xx"], backoff = "10ms" }

[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/cart"
"#;

/// A staging where everything passes: the order is paid on the third poll and the search
/// answers 503 once.
async fn passing_staging() -> MockServer {
    let server = MockServer::start().await;
    let ok = ResponseTemplate::new(200).set_body_string("ok");
    for (m, p) in [
        ("GET", "/health"),
        ("GET", "/items"),
        ("DELETE", "/cart"),
        ("DELETE", "/reset"),
    ] {
        Mock::given(method(m))
            .and(path(p))
            .respond_with(ok.clone())
            .mount(&server)
            .await;
    }
    let polls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET"))
        .and(path("/order"))
        .respond_with(move |_: &Request| {
            let state = if polls.fetch_add(1, Ordering::SeqCst) < 2 {
                "pending"
            } else {
                "paid"
            };
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "state": state }))
        })
        .mount(&server)
        .await;
    let searches = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET"))
        .and(path("/search"))
        .respond_with(move |_: &Request| {
            let status = if searches.fetch_add(1, Ordering::SeqCst) == 0 {
                503
            } else {
                200
            };
            ResponseTemplate::new(status)
        })
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passing_run_draws_every_step_polls_retries_and_cleanups() {
    let server = passing_staging().await;
    let dir = suite(&server.uri(), SETTINGS, &[("shop.toml", SHOP)]);
    let page = run_html(dir.path(), &[("PREFLIGHT_TEST_SECRET", SECRET)]).await;

    assert_eq!(page.out.code, 0, "{}", page.out.stdout);
    let report = page.out.report();
    check_page(&page.html, &report, Some(SECRET), true);
    assert!(page.html.contains("<header class=\"banner pass\">"));
    // Escaped in text and in attributes alike.
    assert!(
        page.html
            .contains("<th title=\"browse &amp; &lt;buy&gt; &quot;quoted&quot; &#39;flow&#39;\">"),
        "{}",
        page.html
    );
    // Two polls and one retry are segments of their own; the cleanup is outlined; setup and
    // teardown have rows.
    assert_eq!(page.html.matches("<rect class=\"poll\"").count(), 2);
    assert_eq!(page.html.matches("<rect class=\"retry\"").count(), 1);
    assert!(page.html.contains("<rect class=\"passed cleanup\""));
    assert!(page.html.contains("<th>setup</th>"));
    assert!(page.html.contains("<th>teardown</th>"));
    assert!(page.html.contains("order is paid: poll 1 of 3"));
    assert!(
        page.html
            .contains("flaky search: attempt 1 of 2, status 503")
    );
    // The histogram marks p50 and p95, and there are no failures to show.
    let p95 = report["summary"]["latency_ms"]["p95"].as_u64().unwrap();
    assert!(page.html.contains(&format!(">p95 {p95}ms</text>")));
    assert!(!page.html.contains("id=\"failures\""));
    assert_rerendered(&page);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_run_shows_expected_actual_and_the_body_without_the_secret() {
    // The echo staging answers 500 with everything it received, the secret header included.
    let server = echo_staging().await;
    let flow = "name = \"checkout\"\n\n[[step]]\nname = \"pay\"\nmethod = \"POST\"\npath = \"/pay?key={{ secret.PREFLIGHT_TEST_SECRET }}\"\n\n[step.expect]\nstatus = 200\n\n[step.expect.json]\n\"$.state\" = \"paid\"\n";
    let dir = suite(
        &server.uri(),
        "name = \"failing\"\n\n[headers]\nx-api-key = \"{{ secret.PREFLIGHT_TEST_SECRET }}\"\n",
        &[("checkout.toml", flow)],
    );
    let page = run_html(dir.path(), &[("PREFLIGHT_TEST_SECRET", SECRET)]).await;

    assert_eq!(page.out.code, 1, "{}", page.out.stdout);
    page.out.assert_hidden(SECRET);
    let report = page.out.report();
    let text = check_page(&page.html, &report, Some(SECRET), true);
    assert!(page.html.contains("<header class=\"banner fail\">"));
    assert!(text.contains("flow 'checkout' failed at step 'pay'"));
    let failures = &text[text.find("Failures").expect("a failures section")..];
    assert!(failures.contains("POST http://127.0.0.1:"), "{failures}");
    assert!(failures.contains("x-api-key"), "{failures}");
    // status: expected 200, actual 500; $.state: expected "paid", actual a missing value.
    assert!(
        page.html.contains(
            "<td><code>status</code> equals</td><td><pre>200</pre></td><td><pre>500</pre></td>"
        ),
        "{}",
        page.html
    );
    assert!(page.html.contains("<pre>&quot;paid&quot;</pre>"));
    let body = report["flows"][0]["steps"][0]["body_excerpt"]
        .as_str()
        .unwrap();
    assert!(body.contains("***"), "the echoed secret is masked: {body}");
    assert!(failures.contains("body excerpt:"));
    assert!(failures.contains(body), "{failures}");
    assert_rerendered(&page);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_run_says_so_and_lists_what_never_began() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount(&server)
        .await;
    let flow = "[[step]]\nname = \"slow step\"\npath = \"/slow\"\n\n[[step]]\nname = \"never sent\"\npath = \"/after\"\n";
    let dir = suite(&server.uri(), "timeout = \"60s\"\n", &[("slow.toml", flow)]);
    let out = tempfile::tempdir().unwrap();
    let html_path = out.path().join("r.html");
    let json_path = out.path().join("r.json");
    let mut child = binary::process()
        .arg("run")
        .arg(dir.path())
        .arg("--no-progress")
        .args(["--html".as_ref(), html_path.as_os_str()])
        .args(["--json".as_ref(), json_path.as_os_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    // Signal once the slow step is in flight (a safety bound, not a timing).
    let started = Instant::now();
    while binary::count(&server, "GET", "/slow").await == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "no request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    binary::signal(child.id(), "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();

    assert_eq!(status.code(), Some(130));
    let html = std::fs::read_to_string(&html_path).unwrap();
    let report: Value = binary::read_json(&json_path);
    assert_eq!(report["verdict"], "aborted");
    let text = check_page(&html, &report, None, true);
    assert!(html.contains("<header class=\"banner aborted\">"));
    assert!(text.contains("slow step: failed, interrupted"), "{text}");
    assert!(
        text.contains("Not drawn: 1 step or flow that never began"),
        "{text}"
    );
    assert!(text.contains("never sent"));
    let (code, [again, ..]) = rerender(&json_path);
    assert_eq!(code, 0, "rendering succeeded, whatever the verdict");
    assert!(again == html, "the HTML differs when rendered again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_flows_stay_small_and_draw_every_failure() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/broken"))
        .respond_with(ResponseTemplate::new(500).set_body_string("broken"))
        .mount(&server)
        .await;
    let names: Vec<String> = (0..1000).map(|i| format!("flow-{i:04}")).collect();
    let failing = |i: usize| i % 100 == 7;
    let files: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let route = if failing(i) { "/broken" } else { "/ok" };
            (
                format!("{name}.toml"),
                format!("name = \"{name}\"\n\n[[step]]\nname = \"get\"\npath = \"{route}\"\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    let dir = suite(&server.uri(), "concurrency = 32\n", &refs);
    let page = run_html(dir.path(), &[]).await;

    assert_eq!(page.out.code, 1, "{}", page.out.stderr);
    let report = page.out.report();
    check_page(&page.html, &report, None, false);
    eprintln!(
        "HTML report of 1,000 flows (10 failed): {} bytes",
        page.html.len()
    );
    assert!(page.html.len() < 60_000, "{} bytes", page.html.len());
    // Every failed flow is a row, 50 passed ones are, and the rest are counted.
    for (i, name) in names.iter().enumerate().filter(|(i, _)| failing(*i)) {
        assert!(
            page.html
                .contains(&format!("<tr class=\"o-failed\"><th title=\"{name}\">")),
            "failed flow {i} not drawn"
        );
    }
    assert_eq!(page.html.matches("<tr class=\"o-failed\">").count(), 10);
    assert_eq!(page.html.matches("<tr class=\"o-passed\">").count(), 50);
    assert!(
        page.html
            .contains("940 more passed flows not drawn: see the JSON report.")
    );
    assert_eq!(page.html.matches("<article class=\"failure\">").count(), 10);
    assert_rerendered(&page);
}

#[test]
fn report_refuses_what_it_cannot_read_and_needs_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| dir.path().join(n);
    std::fs::write(file("not.json"), "{ nope").unwrap();
    std::fs::write(file("other.json"), "{\"schema\": 2, \"tool\": \"other\"}").unwrap();
    for input in ["missing.json", "not.json", "other.json"] {
        let output = preflight()
            .arg("report")
            .arg(file(input))
            .arg("--html")
            .arg(file("x.html"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{input}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(input), "{input}: {stderr}");
        assert!(!file("x.html").exists());
    }
    let output = preflight()
        .arg("report")
        .arg(file("not.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least one of --html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn report_exits_1_when_an_output_cannot_be_written_writes_to_stdout_and_runs_as_documented() {
    let server = passing_staging().await;
    let dir = suite(&server.uri(), SETTINGS, &[("shop.toml", SHOP)]);
    let page = run_html(dir.path(), &[("PREFLIGHT_TEST_SECRET", SECRET)]).await;
    let json = page.json_path.clone();
    let nowhere = page.json_path.with_file_name("no-such-dir").join("x.html");
    let output = tokio::task::spawn_blocking(move || {
        preflight()
            .arg("report")
            .arg(&json)
            .arg("--html")
            .arg(&nowhere)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot write HTML report"));

    let json = page.json_path.clone();
    let output = tokio::task::spawn_blocking(move || {
        preflight()
            .args([
                "report".as_ref(),
                json.as_os_str(),
                "--html".as_ref(),
                "-".as_ref(),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout == page.html.as_bytes(), "stdout is the page");

    // As docs/reports.md shows it.
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(&page.json_path, folder.path().join("preflight.json")).unwrap();
    let at = folder.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        preflight()
            .current_dir(at)
            .args(["report", "preflight.json", "--html", "preflight.html"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let written = std::fs::read_to_string(folder.path().join("preflight.html")).unwrap();
    assert!(
        written == page.html,
        "the documented command writes the run's page"
    );
}

#[tokio::test]
async fn a_baseline_shows_beside_the_run_in_the_waterfall_and_the_histogram() {
    let flow = r#"
name = "checkout"
[[step]]
name = "pay"
path = "/pay"
expect = { status = 200 }
"#;
    let dir = suite("http://unused.invalid", "", &[("checkout.toml", flow)]);
    let staging = |ms: u64| async move {
        let server = MockServer::start().await;
        Mock::given(path("/pay"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(ms)))
            .mount(&server)
            .await;
        server
    };
    let out = tempfile::tempdir().unwrap();
    let before = out.path().join("before.json");
    let fast = staging(0).await;
    let status = preflight()
        .arg("run")
        .arg(dir.path())
        .args(["--base-url", &fast.uri(), "--json"])
        .arg(&before)
        .output()
        .unwrap()
        .status;
    assert_eq!(status.code(), Some(0));
    let slow = staging(300).await;
    let args = [
        "--base-url",
        &slow.uri(),
        "--baseline",
        before.to_str().unwrap(),
    ];
    let html_path = out.path().join("now.html");
    let json_path = out.path().join("now.json");
    let output = preflight()
        .arg("run")
        .arg(dir.path())
        .args(args)
        .args(["--html", html_path.to_str().unwrap()])
        .args(["--json", json_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "a regression warns");
    let html = std::fs::read_to_string(&html_path).unwrap();
    let report: Value = binary::read_json(&json_path);
    let text = check_page(&html, &report, None, true);
    assert!(text.contains("Against the baseline"), "{text}");
    assert!(text.contains("1 slower by more than 50%"), "{text}");
    assert!(
        text.contains("in the baseline run"),
        "the waterfall's baseline line"
    );
    assert!(
        text.contains("baseline run: 1 step"),
        "the histogram's baseline bars"
    );
    assert_eq!(html.matches("class=\"base\"").count(), 2);
}

/// A report read back may hold any latency: the largest a JSON number of the schema allows
/// draws a page (with the histogram's scale saturated) instead of crashing.
#[tokio::test(flavor = "multi_thread")]
async fn a_report_with_the_largest_latency_still_renders() {
    let server = passing_staging().await;
    let dir = suite(&server.uri(), SETTINGS, &[("shop.toml", SHOP)]);
    let page = run_html(dir.path(), &[("PREFLIGHT_TEST_SECRET", SECRET)]).await;
    assert_eq!(page.out.code, 0, "{}", page.out.stdout);
    let mut report = page.out.report();
    report["flows"][0]["steps"][0]["latency_ms"] = Value::from(u64::MAX);
    let edited = page._dir.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&report).unwrap()).unwrap();
    let (code, [html, ..]) = rerender(&edited);
    assert_eq!(code, 0, "a passing report renders and exits 0");
    assert!(html.contains("<header class=\"banner pass\">"));
    assert!(html.contains("class=\"hist\""), "the histogram is drawn");
}
