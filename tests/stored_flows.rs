//! Flows a large suite stores (past `PREFLIGHT_KEEP_COMPILED` flows, 16,384 by default: only
//! the SHA-256 of their file is kept) are read and compiled again when they run. Through the
//! real binary against wiremock on 127.0.0.1: a suite run with every flow stored says exactly
//! what it says compiled (verdict, exit code, every flow and step of the JSON report, `check`,
//! `list`), masks the same secrets, and a flow that is not the one checked fails the gate.

mod binary;
mod common;
mod hermetic;

use binary::{preflight, run_all, suite};
use preflight::engine::{self, RunOptions};
use preflight::redact::Redactor;
use preflight::suite::FlowBody;
use preflight::verdict::{Verdict, judge};
use serde_json::{Value, json};
use std::sync::Arc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "tok-3f9a1c77e2d84b05";

/// Every kind of flow: captures, cleanups, variables, a secret capture, a failing critical
/// flow, a warning, and the flows that always stay compiled (`each` rows, an environment
/// variable, a SHA-256, a body file).
fn flows() -> Vec<(&'static str, String)> {
    vec![
        (
            "a-checkout.toml",
            r#"name = "checkout"
tags = ["checkout"]

[vars]
sku = "SKU-1"

[[step]]
name = "create cart"
method = "POST"
path = "/carts"
json = { sku = "{{ sku }}", qty = 2 }
[step.expect]
status = 201
[step.expect.json]
"$.id" = { exists = true }
[step.capture]
cart = "$.id"
token = { json = "$.token", secret = true }

[[step]]
name = "pay"
method = "POST"
path = "/carts/{{ cart }}/pay"
headers = { authorization = "Bearer {{ token }}" }
query = { currency = "EUR" }
[step.expect]
status = 200

[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/carts/{{ cart }}"
"#
            .into(),
        ),
        (
            "b-broken.toml",
            "[[step]]\npath = \"/health\"\n[step.expect]\nstatus = 204\n".into(),
        ),
        (
            "c-optional.toml",
            "critical = false\n[[step]]\npath = \"/missing\"\n".into(),
        ),
        (
            "d-rows.toml",
            "each = [{ c = \"EUR\" }, { c = \"USD\" }]\n[[step]]\npath = \"/health\"\nquery = { c = \"{{ c }}\" }\n"
                .into(),
        ),
        (
            "e-env.toml",
            "[[step]]\npath = \"/health\"\nheaders = { x-region = \"{{ env.PREFLIGHT_TEST_REGION }}\" }\n"
                .into(),
        ),
        (
            "f-sha.toml",
            format!(
                "[[step]]\npath = \"/health\"\n[step.expect]\nbody = {{ sha256 = \"{}\" }}\n",
                common::sha256_hex(b"{\"ok\":true}")
            ),
        ),
        (
            "g-body-file.toml",
            "[[step]]\nmethod = \"POST\"\npath = \"/upload\"\nbody_file = \"payload.txt\"\n".into(),
        ),
    ]
}

async fn staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/carts"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": "c42", "token": TOKEN})),
        )
        .mount(&server)
        .await;
    for (m, p) in [
        ("POST", "/carts/c42/pay"),
        ("DELETE", "/carts/c42"),
        ("POST", "/upload"),
    ] {
        Mock::given(method(m))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"ok\":true}"))
        .mount(&server)
        .await;
    server
}

fn the_suite(server: &MockServer) -> tempfile::TempDir {
    let flows = flows();
    let borrowed: Vec<(&str, &str)> = flows.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let dir = suite(&server.uri(), "concurrency = 1\n", &borrowed);
    std::fs::write(dir.path().join("payload.txt"), "hello").unwrap();
    dir
}

/// The report without what differs from one run to the next (times).
fn without_times(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            for key in [
                "duration_ms",
                "latency_ms",
                "started_at",
                "started_ms",
                "last_attempt_started_ms",
                "latency",
            ] {
                map.remove(key);
            }
            for (_, v) in map.iter_mut() {
                *v = without_times(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_times(v.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_flows_run_exactly_as_compiled_ones() {
    let server = staging().await;
    let dir = the_suite(&server);
    // Which flows the run below stores: those that read nothing else.
    let overrides = preflight::suite::Overrides {
        keep_compiled: Some(0),
        ..Default::default()
    };
    let region = |name: &str| (name == "PREFLIGHT_TEST_REGION").then(|| "eu-west".to_string());
    let plan = preflight::suite::load(dir.path(), overrides, &region).unwrap();
    let stored: Vec<&str> = plan
        .flows
        .iter()
        .filter(|f| matches!(f.body, FlowBody::Stored { .. }))
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(stored, ["checkout", "b-broken", "c-optional"]);
    let env = [("PREFLIGHT_TEST_REGION", "eu-west")];
    let compiled = run_all(dir.path(), &env, &[]).await;
    let mut stored_env = env.to_vec();
    stored_env.push(("PREFLIGHT_KEEP_COMPILED", "0"));
    let stored = run_all(dir.path(), &stored_env, &[]).await;

    assert_eq!(compiled.code, 1, "{}", compiled.stderr);
    assert_eq!(stored.code, compiled.code, "{}", stored.stderr);
    let report = stored.report();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(
        without_times(stored.report()),
        without_times(compiled.report())
    );
    let flows: Vec<(&str, &str)> = report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        flows,
        [
            ("checkout", "passed"),
            ("b-broken", "failed"),
            ("c-optional", "warned"),
            ("d-rows [c=EUR]", "passed"),
            ("d-rows [c=USD]", "passed"),
            ("e-env", "passed"),
            ("f-sha", "passed"),
            ("g-body-file", "passed"),
        ]
    );
    let checkout = &report["flows"][0];
    let steps: Vec<&str> = checkout["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["create cart", "pay", "delete cart"]);
    // The capture marked secret is masked in every output of the run with stored flows.
    stored.assert_hidden(TOKEN);
    compiled.assert_hidden(TOKEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_list_say_the_same_of_stored_flows() {
    let server = staging().await;
    let dir = the_suite(&server);
    for args in [
        vec!["check"],
        vec!["list"],
        vec!["list", "--json"],
        vec!["list", "--tag", "checkout"],
    ] {
        let output = |keep: Option<&str>| {
            let mut cmd = preflight();
            cmd.args(&args)
                .arg(dir.path())
                .env("PREFLIGHT_TEST_REGION", "eu-west");
            if let Some(keep) = keep {
                cmd.env("PREFLIGHT_KEEP_COMPILED", keep);
            }
            let out = cmd.output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let compiled = output(None);
        assert_eq!(compiled.0, Some(0), "{args:?}: {compiled:?}");
        for keep in ["0", "1", "3"] {
            assert_eq!(output(Some(keep)), compiled, "{args:?} with {keep} kept");
        }
    }
}

/// A request that cannot be built is found before anything is sent, whichever way its flow is
/// kept, and the problems come in the same order.
#[test]
fn rehearsal_problems_are_the_same_whichever_way_flows_are_kept() {
    let flow = |n: u32| {
        format!(
            "[vars]\nnote = \"admin{n}\\nbroken\"\n\n[[step]]\npath = \"/a\"\nheaders = {{ x-note = \"{{{{ note }}}}\" }}\n"
        )
    };
    let (one, three) = (flow(1), flow(3));
    // Reads a variable, so it stays compiled between two stored flows.
    let two = "[[step]]\npath = \"/b\"\nheaders = { x-note = \"{{ env.PREFLIGHT_TEST_NOTE }}\" }\n";
    let dir = suite(
        "http://127.0.0.1:9",
        "",
        &[
            ("a.toml", one.as_str()),
            ("b.toml", two),
            ("c.toml", three.as_str()),
        ],
    );
    let check = |keep: Option<&str>| {
        let mut cmd = preflight();
        cmd.arg("check")
            .arg(dir.path())
            .env("PREFLIGHT_TEST_NOTE", "line\nbreak");
        if let Some(keep) = keep {
            cmd.env("PREFLIGHT_KEEP_COMPILED", keep);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let compiled = check(None);
    assert_eq!(compiled.0, Some(2), "{}", compiled.1);
    let named: Vec<usize> = ["flow 'a'", "flow 'b'", "flow 'c'"]
        .iter()
        .map(|n| compiled.1.find(n).expect(n))
        .collect();
    assert!(named.is_sorted(), "{}", compiled.1);
    for keep in ["0", "1", "2"] {
        assert_eq!(check(Some(keep)), compiled, "{keep} kept");
    }
}

#[test]
fn a_keep_compiled_that_is_not_a_number_is_refused() {
    let dir = suite(
        "http://127.0.0.1:9",
        "",
        &[("a.toml", "[[step]]\npath = \"/\"\n")],
    );
    for bad in ["many", "-1", "1.5", ""] {
        let out = preflight()
            .arg("check")
            .arg(dir.path())
            .env("PREFLIGHT_KEEP_COMPILED", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("PREFLIGHT_KEEP_COMPILED") && stderr.contains("not a number"),
            "{bad:?}: {stderr}"
        );
    }
    // Not UTF-8: refused too, never taken for unset.
    use std::os::unix::ffi::OsStrExt as _;
    let out = preflight()
        .arg("check")
        .arg(dir.path())
        .env(
            "PREFLIGHT_KEEP_COMPILED",
            std::ffi::OsStr::from_bytes(b"1\xff"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A whole number past the largest count is the largest: every flow stays compiled.
    let out = preflight()
        .arg("check")
        .arg(dir.path())
        .env("PREFLIGHT_KEEP_COMPILED", "99999999999999999999999")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// A flow file whose path cannot be named exactly (not UTF-8, or a `\` in a name outside
/// Windows) is refused before anything is sent: reports and digests name a file by its
/// `/`-separated path, which would be another file's (`q/w.toml`) or none.
#[tokio::test(flavor = "multi_thread")]
async fn a_flow_file_that_cannot_be_named_exactly_is_refused() {
    use std::os::unix::ffi::OsStrExt as _;
    let server = staging().await;
    let names: [(&[u8], &str); 2] = [
        (b"h\xff.toml", "its path is not UTF-8 text"),
        (
            b"q\\w.toml",
            "which reports would read as a folder separator",
        ),
    ];
    for (name, why) in names {
        let dir = suite(&server.uri(), "", &[] as &[(&str, &str)]);
        let name = std::ffi::OsStr::from_bytes(name);
        std::fs::write(dir.path().join(name), "[[step]]\npath = \"/health\"\n").unwrap();
        std::fs::create_dir(dir.path().join("q")).unwrap();
        std::fs::write(dir.path().join("q/w.toml"), "[[step]]\npath = \"/other\"\n").unwrap();
        for keep in [None, Some("0")] {
            let mut cmd = preflight();
            cmd.arg("run")
                .arg(dir.path())
                .arg("--json")
                .arg(dir.path().join("r.json"));
            if let Some(keep) = keep {
                cmd.env("PREFLIGHT_KEEP_COMPILED", keep);
            }
            let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{why} {keep:?}: {stderr}");
            assert!(
                stderr.contains("this file cannot be named exactly"),
                "{stderr}"
            );
            assert!(stderr.contains(why), "{stderr}");
        }
    }
    assert!(binary::paths(&server).await.is_empty());
}

/// In process: a stored flow whose file changed (or vanished) after the load, or whose file
/// no longer compiles to the flow checked, is failed with nothing sent, and the gate fails
/// even though the flow is not critical.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_flow_that_is_not_the_one_checked_fails_the_gate() {
    let server = staging().await;
    let probe = "critical = false\n[[step]]\npath = \"/health\"\n";
    type Change = fn(&std::path::Path);
    let changes: [(&str, Change); 3] = [
        ("changed after the suite was checked", |b| {
            std::fs::write(b, "critical = false\n[[step]]\npath = \"/other\"\n").unwrap()
        }),
        ("cannot read b.toml again", |b| {
            std::fs::remove_file(b).unwrap()
        }),
        // The same text, but recorded under another hash: what a flow compiled from other
        // bytes than those checked would be.
        ("changed after the suite was checked", |_| {}),
    ];
    for (i, (said, change)) in changes.into_iter().enumerate() {
        let suite = common::Suite::new(&format!("base_url = \"{}\"\n", server.uri()));
        suite.write("a.toml", probe);
        suite.write("b.toml", probe);
        let overrides = preflight::suite::Overrides {
            keep_compiled: Some(0),
            ..Default::default()
        };
        let mut plan = suite.load_with(overrides, &[]);
        assert!(matches!(plan.flows[1].body, FlowBody::Stored { .. }));
        change(&suite.path().join("b.toml"));
        if i == 2 {
            plan.flows[1].body = FlowBody::Stored {
                sha256: [0; 32],
                rehearsed: true,
            };
        }
        let before = server.received_requests().await.unwrap().len();
        let plan = Arc::new(plan);
        let redactor = Arc::new(Redactor::new(plan.secrets.values()));
        let result = engine::run(plan.clone(), redactor, RunOptions::default()).await;

        let verdict = judge(&result, &plan.settings.gate);
        assert!(matches!(verdict, Verdict::Failed(_)), "{verdict:?}");
        assert_eq!(
            result.flows[0].steps[0].outcome,
            preflight::engine::StepOutcome::Passed
        );
        let failed = &result.flows[1];
        assert_eq!(failed.name, "b");
        assert_eq!(failed.steps[0].attempts, 0);
        let error = failed.steps[0].error.as_deref().unwrap_or_default();
        assert!(error.contains(said), "{error}");
        assert!(
            result
                .internal_errors
                .iter()
                .any(|e| e.contains("flow 'b'")),
            "{:?}",
            result.internal_errors
        );
        // Only the first flow's request reached staging.
        assert_eq!(server.received_requests().await.unwrap().len(), before + 1);
    }
}

/// Through the binary: a stored flow's file rewritten while the run goes on fails that flow,
/// and the gate, instead of running what was not checked.
#[tokio::test(flavor = "multi_thread")]
async fn a_flow_file_changed_during_the_run_fails_the_gate() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(2)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let dir = suite(
        &server.uri(),
        "concurrency = 1\n",
        &[
            ("a.toml", "[[step]]\npath = \"/slow\"\n"),
            ("b.toml", "[[step]]\npath = \"/checked\"\n"),
        ],
    );
    let child = binary::process()
        .args(["run", "--quiet"])
        .arg(dir.path())
        .env("PREFLIGHT_KEEP_COMPILED", "0")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once flow a's request is in flight, b (not started: concurrency 1) gets another step.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.received_requests().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "flow a never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    std::fs::write(
        dir.path().join("b.toml"),
        "[[step]]\npath = \"/unchecked\"\n",
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("GATE FAILED"), "{stdout}");
    let paths = binary::paths(&server).await;
    assert_eq!(paths, ["/slow"]);
}

/// A stored flow is compiled again inside the run, where neither the deadline nor a signal can
/// interrupt it: a large flow file stays compiled.
#[test]
fn a_large_flow_file_stays_compiled() {
    let suite = common::Suite::new("base_url = \"http://127.0.0.1:9\"\n");
    let step = "[[step]]\npath = \"/a\"\n";
    suite.write("small.toml", step);
    suite.write("large.toml", step.repeat(8 * 1024 / step.len() + 1));
    let overrides = preflight::suite::Overrides {
        keep_compiled: Some(0),
        ..Default::default()
    };
    let plan = suite.load_with(overrides, &[]);
    let stored = |name: &str| {
        let flow = plan.flows.iter().find(|f| f.name == name).unwrap();
        matches!(flow.body, FlowBody::Stored { .. })
    };
    assert!(stored("small"));
    assert!(!stored("large"));
}

#[test]
fn the_documented_count_is_the_one_kept() {
    let shown = {
        let n = preflight::suite::KEEP_COMPILED;
        format!("{},{:03}", n / 1000, n % 1000)
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in [
        "docs/cli.md",
        "docs/performance.md",
        "README.md",
        "ARCHITECTURE.md",
    ] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        assert!(text.contains(&shown), "{doc} does not say {shown}");
    }
}

/// A stored flow is rehearsed while the suite loads, before later flows have read their
/// secrets: its problems are masked with every secret of the suite all the same.
#[test]
fn a_stored_flows_problem_never_shows_a_secret_read_by_a_later_flow() {
    let token = "sekrit-abcdef-123456";
    let dir = suite(
        "http://127.0.0.1:9",
        "[vars]\nhost = \"127.0.0.1:9\"\n",
        &[
            ("a.toml", "[[step]]\nurl = \"http://{{ host }}/x\"\n"),
            (
                "b.toml",
                "[[step]]\npath = \"/x\"\nheaders = { authorization = \"Bearer {{ secret.TOKEN }}\" }\n",
            ),
        ],
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let vars = elsewhere.path().join("vars.toml");
    std::fs::write(&vars, format!("host = \"{token} bad\"\n")).unwrap();
    for keep in [None, Some("0")] {
        let mut cmd = preflight();
        cmd.arg("check")
            .arg(dir.path())
            .arg("--vars-file")
            .arg(&vars)
            .env("TOKEN", token);
        if let Some(keep) = keep {
            cmd.env("PREFLIGHT_KEEP_COMPILED", keep);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{keep:?}: {stderr}");
        assert!(stderr.contains("***"), "{keep:?}: {stderr}");
        for form in binary::forms(token) {
            assert!(!stderr.contains(&form), "{keep:?} shows {form}: {stderr}");
        }
    }
}
