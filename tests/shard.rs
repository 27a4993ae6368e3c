//! `run --shard` and `merge` through the real binary against a staging on 127.0.0.1: a suite
//! run whole and as shards ends in the same report; `merge` fails closed on every way shards
//! can fail to make up one run; `[gate]` limits apply to the merged whole; `--shard auto`
//! reads each CI's variables.

mod binary;
mod hermetic;

use binary::{preflight, suite};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Staging: `/ok` and `/login` answer 200 with JSON, `/down` 500.
async fn staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "t-1"})))
        .mount(&server)
        .await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
        .mount(&server)
        .await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&server)
        .await;
    server
}

const SETTINGS: &str = r#"
[[setup]]
name = "log in"
method = "POST"
path = "/login"
capture = { token = "$.token" }

[[teardown]]
name = "log out"
method = "DELETE"
path = "/ok"
"#;

/// 60 one-step flows, one with three rows, a failing critical flow, a failing non-critical
/// one and one whose cleanup fails: 66 flows in all.
fn big_suite(base_url: &str) -> tempfile::TempDir {
    let mut flows: Vec<(String, String)> = (0..60)
        .map(|i| {
            let text = format!(
                "tags = [\"t{}\"]\n[[step]]\npath = \"/ok\"\nheaders = {{ authorization = \"Bearer {{{{ token }}}}\" }}\n[step.expect.json]\n\"$.ok\" = true\n",
                i % 3
            );
            (format!("probe-{i:02}.toml"), text)
        })
        .collect();
    flows.push((
        "rows.toml".into(),
        "each = [{ n = \"1\" }, { n = \"2\" }, { n = \"3\" }]\n[[step]]\npath = \"/ok\"\nquery = { n = \"{{ n }}\" }\n".into(),
    ));
    flows.push(("broken.toml".into(), "[[step]]\npath = \"/down\"\n".into()));
    flows.push((
        "optional.toml".into(),
        "critical = false\n[[step]]\npath = \"/down\"\n".into(),
    ));
    flows.push((
        "messy.toml".into(),
        "[[step]]\npath = \"/ok\"\n[[cleanup]]\nmethod = \"DELETE\"\npath = \"/down\"\n".into(),
    ));
    let refs: Vec<(&str, &str)> = flows
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    suite(base_url, SETTINGS, &refs)
}

/// Runs the binary on a blocking thread so that the staging keeps serving.
async fn output(mut cmd: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn last_line(out: &Output) -> String {
    let stdout = text(&out.stdout);
    stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// `run SUITE --json OUT [extra]`, returning the process output.
async fn run(suite: &Path, json: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(suite)
        .arg("--no-progress")
        .arg("--json")
        .arg(json)
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    output(cmd).await
}

/// Runs every shard of N and returns the report paths.
async fn shards(suite: &Path, out: &Path, n: usize) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for k in 1..=n {
        let json = out.join(format!("shard-{k}.json"));
        let arg = format!("{k}/{n}");
        let done = run(suite, &json, &["--shard", &arg], &[]).await;
        assert!(json.exists(), "shard {k}: {}", text(&done.stderr));
        paths.push(json);
    }
    paths
}

/// `merge REPORTS... --json OUT --junit --markdown`, with the step summary.
async fn merge(reports: &[PathBuf], out: &Path) -> Output {
    let mut cmd = preflight();
    cmd.arg("merge")
        .args(reports)
        .arg("--json")
        .arg(out.join("merged.json"))
        .arg("--junit")
        .arg(out.join("merged.xml"))
        .arg("--markdown")
        .arg(out.join("merged.md"))
        .env("GITHUB_STEP_SUMMARY", out.join("summary.md"));
    output(cmd).await
}

fn read_json(path: &Path) -> Value {
    binary::read_json(path)
}

/// The report without what depends on timing or on being a shard.
fn untimed(mut report: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in [
                    "duration_ms",
                    "latency_ms",
                    "waited_ms",
                    "started_at",
                    "started_ms",
                    "last_attempt_started_ms",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let map = report.as_object_mut().unwrap();
    map.remove("suite_digest");
    // A single run names its suite files; a merge of shards does not.
    map.remove("suite_files_digest");
    map.remove("shard");
    strip(&mut report);
    report
}

fn names(report: &Value) -> Vec<String> {
    report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn assert_schema_valid(path: &Path) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc = read_json(path);
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
}

#[tokio::test]
async fn four_shards_merged_equal_the_whole_run() {
    let server = staging().await;
    let suite = big_suite(&server.uri());
    let out = tempfile::tempdir().unwrap();
    let whole_json = out.path().join("whole.json");
    let whole = run(suite.path(), &whole_json, &[], &[]).await;
    assert_eq!(whole.status.code(), Some(1), "{}", text(&whole.stderr));
    let whole_report = read_json(&whole_json);
    assert_eq!(whole_report["summary"]["flows"], 66);

    let paths = shards(suite.path(), out.path(), 4).await;
    let mut seen: Vec<String> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let report = read_json(path);
        assert_eq!(report["shard"]["index"], i + 1);
        assert_eq!(report["shard"]["count"], 4);
        assert_eq!(report["suite_digest"], read_json(&paths[0])["suite_digest"]);
        assert!(
            report["suite_digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        // Setup and teardown ran in every shard.
        assert_eq!(report["setup"][0]["outcome"], "passed");
        assert_eq!(report["teardown"][0]["outcome"], "passed");
        let count = report["flows"].as_array().unwrap().len();
        assert!((16..=17).contains(&count), "shard {} has {count}", i + 1);
        seen.extend(names(&report));
        assert_schema_valid(path);
    }
    // Disjoint and complete: every selected flow exactly once.
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    sorted_seen.dedup();
    assert_eq!(sorted_seen.len(), seen.len(), "a flow ran in two shards");
    let mut all = names(&whole_report);
    all.sort();
    assert_eq!(sorted_seen, all);

    let merged = merge(&paths, out.path()).await;
    assert_eq!(merged.status.code(), Some(1), "{}", text(&merged.stderr));
    let merged_json = out.path().join("merged.json");
    assert_schema_valid(&merged_json);
    let merged_report = read_json(&merged_json);
    assert_eq!(untimed(merged_report.clone()), untimed(whole_report));
    assert_eq!(last_line(&merged), last_line(&whole));
    assert_eq!(last_line(&merged), "GATE FAILED: 1 of 66 flows failed");
    assert!(merged_report.get("shard").is_none());
    assert_eq!(
        merged_report["suite_digest"],
        read_json(&paths[0])["suite_digest"]
    );
    // Every report of the merge carries its verdict.
    let junit = std::fs::read_to_string(out.path().join("merged.xml")).unwrap();
    assert!(junit.contains("broken"), "{junit}");
    let markdown = std::fs::read_to_string(out.path().join("merged.md")).unwrap();
    assert!(markdown.contains("FAIL"), "{markdown}");
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert_eq!(summary, markdown);
}

/// A small passing suite of four flows.
fn small_suite(base_url: &str, settings: &str) -> tempfile::TempDir {
    let flow = "[[step]]\npath = \"/ok\"\n";
    suite(
        base_url,
        settings,
        &[
            ("a.toml", flow),
            ("b.toml", flow),
            ("c.toml", flow),
            ("d.toml", flow),
        ],
    )
}

fn reasons(out: &Path) -> Vec<String> {
    let report = read_json(&out.join("merged.json"));
    report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// Asserts that merging `reports` fails with a reason containing `reason`, in the JSON and on
/// the last line.
async fn assert_merge_fails(reports: &[PathBuf], reason: &str) {
    let out = tempfile::tempdir().unwrap();
    let merged = merge(reports, out.path()).await;
    assert_eq!(merged.status.code(), Some(1), "{}", text(&merged.stdout));
    assert!(
        reasons(out.path()).iter().any(|r| r.contains(reason)),
        "{reason}: {:?}",
        reasons(out.path())
    );
    let last = last_line(&merged);
    assert!(
        last.starts_with("GATE FAILED: ") && last.contains(reason),
        "{last}"
    );
    assert_schema_valid(&out.path().join("merged.json"));
}

fn edit(path: &Path, to: &Path, change: impl FnOnce(&mut Value)) -> PathBuf {
    let mut report = read_json(path);
    change(&mut report);
    std::fs::write(to, serde_json::to_string(&report).unwrap()).unwrap();
    to.to_path_buf()
}

#[tokio::test]
async fn merge_fails_closed_on_every_broken_set_of_shards() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    let paths = shards(suite.path(), dir, 4).await;

    // The complete set passes.
    let ok = tempfile::tempdir().unwrap();
    let merged = merge(&paths, ok.path()).await;
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stdout));
    assert!(last_line(&merged).starts_with("GATE PASSED: 4 flows, 0 failed"));

    assert_merge_fails(&paths[..3], "shard 4 of 4 missing").await;
    let twice = [paths.clone(), vec![paths[3].clone()]].concat();
    assert_merge_fails(&twice, "shard 4 of 4 given twice").await;

    // Another shard count.
    let other = dir.join("other.json");
    run(suite.path(), &other, &["--shard", "1/3"], &[]).await;
    let mixed = vec![other, paths[1].clone(), paths[2].clone(), paths[3].clone()];
    assert_merge_fails(&mixed, "is shard 2 of 4, not of 3").await;

    // Another suite: one flow file changed.
    std::fs::write(
        suite.path().join("a.toml"),
        "[[step]]\npath = \"/ok?v=2\"\n",
    )
    .unwrap();
    let changed = dir.join("changed.json");
    run(suite.path(), &changed, &["--shard", "1/4"], &[]).await;
    let mixed = vec![
        changed,
        paths[1].clone(),
        paths[2].clone(),
        paths[3].clone(),
    ];
    assert_merge_fails(&mixed, "has suite digest").await;

    // An aborted shard.
    let aborted = edit(&paths[1], &dir.join("aborted.json"), |r| {
        r["verdict"] = "aborted".into();
    });
    let set = vec![
        paths[0].clone(),
        aborted,
        paths[2].clone(),
        paths[3].clone(),
    ];
    assert_merge_fails(&set, "shard 2 of 4 was aborted").await;

    // A flow in two shards (and so, in the wrong one).
    let first_flow = read_json(&paths[0])["flows"][0].clone();
    let name = first_flow["name"].as_str().unwrap().to_string();
    let doubled = edit(&paths[1], &dir.join("doubled.json"), |r| {
        r["flows"].as_array_mut().unwrap().push(first_flow);
    });
    let set = vec![
        paths[0].clone(),
        doubled,
        paths[2].clone(),
        paths[3].clone(),
    ];
    assert_merge_fails(&set, &format!("flow '{name}' reported by shards 1 and 2")).await;
    let out2 = tempfile::tempdir().unwrap();
    merge(&set, out2.path()).await;
    let merged = read_json(&out2.path().join("merged.json"));
    assert_eq!(names(&merged).iter().filter(|n| **n == name).count(), 1);
    // The copy left out is not counted either.
    assert_eq!(merged["summary"]["flows"], 4);
    assert_eq!(merged["summary"]["passed"], 4);

    // A flow dropped from its shard's report.
    let dropped = edit(&paths[2], &dir.join("dropped.json"), |r| {
        r["flows"].as_array_mut().unwrap().clear();
    });
    let set = vec![
        paths[0].clone(),
        paths[1].clone(),
        dropped,
        paths[3].clone(),
    ];
    assert_merge_fails(&set, "reported by no shard").await;
}

/// Found by attacking merge: a hand-edited shard report whose verdict still says pass, with a
/// record no run writes, must not merge into a pass. Each edit alone passed the merge before.
#[tokio::test]
async fn merge_fails_on_records_no_run_writes() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), SETTINGS);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    let paths = shards(suite.path(), dir, 2).await;
    let ok = tempfile::tempdir().unwrap();
    assert_eq!(merge(&paths, ok.path()).await.status.code(), Some(0));
    let flow = read_json(&paths[0])["flows"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str); 6] = [
        (
            |f| {
                f["critical"] = false.into();
                f["outcome"] = "failed".into();
                f["steps"][0]["outcome"] = "failed".into();
            },
            "is failed but not critical",
        ),
        (
            |f| f["steps"][0]["assertions"][0]["passed"] = false.into(),
            "has step 'GET /ok' passed with a failed assertion",
        ),
        (
            |f| f["steps"][0]["error"] = "connection refused".into(),
            "has step 'GET /ok' passed with an error",
        ),
        (
            |f| {
                f["critical"] = false.into();
                f["steps"][0]["outcome"] = "skipped".into();
            },
            "passed with step 'GET /ok' skipped",
        ),
        (
            |f| {
                f["outcome"] = "warned".into();
                f["steps"][0]["outcome"] = "failed".into();
            },
            "is warned but critical",
        ),
        (
            |f| {
                f["critical"] = false.into();
                f["outcome"] = "warned".into();
                f["steps"][0]["outcome"] = "failed".into();
                f["steps"][0]["assertions"][0]["passed"] = false.into();
            },
            "",
        ),
    ];
    for (change, why) in cases {
        let edited = edit(&paths[0], &dir.join("edited.json"), |r| {
            change(&mut r["flows"][0]);
        });
        let set = [edited, paths[1].clone()];
        if why.is_empty() {
            // What a run writes for a non-critical failure still merges into a pass.
            let out = tempfile::tempdir().unwrap();
            let merged = merge(&set, out.path()).await;
            assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stdout));
            continue;
        }
        assert_merge_fails(&set, &format!("flow '{flow}' of shard 1 {why}")).await;
    }
    // A setup step is judged from its record too.
    let edited = edit(&paths[1], &dir.join("edited.json"), |r| {
        r["setup"][0]["assertions"][0]["passed"] = false.into();
    });
    let set = [paths[0].clone(), edited];
    assert_merge_fails(
        &set,
        "setup step 'log in' of shard 2 passed with a failed assertion",
    )
    .await;
}

#[tokio::test]
async fn merge_refuses_input_that_is_no_shard_report_with_exit_2() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    let paths = shards(suite.path(), dir, 2).await;
    let whole = dir.join("whole.json");
    run(suite.path(), &whole, &[], &[]).await;
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"schema\": 1}").unwrap();
    let missing = dir.join("missing.json");
    for (bad, says) in [
        (missing, "cannot read"),
        (garbage, "is not a preflight JSON report of schema 1"),
        (whole, "is not a shard report"),
    ] {
        let merged = merge(&[paths[0].clone(), bad.clone()], dir).await;
        assert_eq!(merged.status.code(), Some(2));
        let stderr = text(&merged.stderr);
        assert!(
            stderr.contains(&bad.display().to_string()) && stderr.contains(says),
            "{stderr}"
        );
        assert!(!dir.join("merged.json").exists());
    }
    // Text a JSON reader refuses is refused, wherever it is: a key given twice within a
    // field (a lenient reader keeps the last, `failed: 0`), text after the report, a flow
    // that is no JSON, flows not separated.
    let shard = std::fs::read_to_string(&paths[1]).unwrap();
    assert!(shard.contains("\"failed\": 0,"), "{shard}");
    for (edited, says) in [
        (
            shard.replacen("\"failed\": 0,", "\"failed\": 1, \"failed\": 0,", 1),
            "duplicate field `failed` at line ",
        ),
        (format!("{shard} {{}}"), "trailing characters at line "),
        (
            shard.replacen("\"outcome\": \"passed\"", "\"outcome\": passed", 1),
            "expected value at line ",
        ),
        (
            shard.replacen("\"tags\": [],", "\"tags\": []", 1),
            "expected `,` or `}` at line ",
        ),
    ] {
        assert_ne!(edited, shard);
        let bad = dir.join("edited.json");
        std::fs::write(&bad, &edited).unwrap();
        let merged = merge(&[paths[0].clone(), bad.clone()], dir).await;
        let stderr = text(&merged.stderr);
        assert_eq!(merged.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(!dir.join("merged.json").exists());
    }
    // The shard as written merges (the edits above are what fails).
    let merged = merge(&paths, dir).await;
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stderr));
}

#[tokio::test]
async fn a_gate_limit_broken_only_by_the_whole_fails_the_merge() {
    let server = staging().await;
    // Sorted by name, a-warn goes to shard 1 and b-warn to shard 2: one warning each.
    let warn = "critical = false\n[[step]]\npath = \"/down\"\n";
    let ok = "[[step]]\npath = \"/ok\"\n";
    let suite = suite(
        &server.uri(),
        "[gate]\nmax_noncritical_failures = 1\n",
        &[
            ("a-warn.toml", warn),
            ("b-warn.toml", warn),
            ("c.toml", ok),
            ("d.toml", ok),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let paths = shards(suite.path(), out.path(), 2).await;
    for path in &paths {
        let report = read_json(path);
        assert_eq!(report["verdict"], "pass", "{report:#}");
        assert_eq!(report["summary"]["warned"], 1);
        assert_eq!(report["shard"]["gate"]["max_noncritical_failures"], 1);
    }
    let merged = merge(&paths, out.path()).await;
    assert_eq!(merged.status.code(), Some(1));
    let reason = "2 non-critical flows failed, over the limit of 1";
    assert_eq!(last_line(&merged), format!("GATE FAILED: {reason}"));
    assert_eq!(reasons(out.path()), [reason]);
    let whole = out.path().join("whole.json");
    let run_whole = run(suite.path(), &whole, &[], &[]).await;
    assert_eq!(last_line(&run_whole), last_line(&merged));
}

/// A CI's name, the variables it sets and the flags the job adds.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[tokio::test]
async fn shard_auto_reads_each_ci_and_refuses_none() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let out = tempfile::tempdir().unwrap();
    let cases: [Case; 4] = [
        (
            "gitlab",
            &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")],
            &[],
        ),
        (
            "buildkite",
            &[
                ("BUILDKITE_PARALLEL_JOB", "1"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "3"),
            ],
            &[],
        ),
        (
            "circleci",
            &[("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "3")],
            &[],
        ),
        (
            "kubernetes",
            &[("JOB_COMPLETION_INDEX", "1")],
            &["--shard-count", "3"],
        ),
    ];
    for (ci, env, extra) in cases {
        let json = out.path().join(format!("{ci}.json"));
        let args = [&["--shard", "auto"], extra].concat();
        let done = run(suite.path(), &json, &args, env).await;
        assert_eq!(done.status.code(), Some(0), "{ci}: {}", text(&done.stderr));
        let report = read_json(&json);
        assert_eq!(report["shard"]["index"], 2, "{ci}");
        assert_eq!(report["shard"]["count"], 3, "{ci}");
        // Sorted a, b, c, d: shard 2 of 3 owns b.
        assert_eq!(names(&report), ["b"], "{ci}");
    }
    let json = out.path().join("none.json");
    let none = run(suite.path(), &json, &["--shard", "auto"], &[]).await;
    assert_eq!(none.status.code(), Some(2));
    let stderr = text(&none.stderr);
    for name in [
        "CI_NODE_INDEX",
        "BUILDKITE_PARALLEL_JOB",
        "CIRCLE_NODE_INDEX",
        "JOB_COMPLETION_INDEX",
    ] {
        assert!(stderr.contains(name), "{stderr}");
    }
    assert!(!json.exists());
    let k8s = run(
        suite.path(),
        &json,
        &["--shard", "auto"],
        &[("JOB_COMPLETION_INDEX", "0")],
    )
    .await;
    assert_eq!(k8s.status.code(), Some(2));
    assert!(
        text(&k8s.stderr).contains("--shard-count"),
        "{}",
        text(&k8s.stderr)
    );
    // Two CIs' variables that name different shards (CircleCI counts from 0, GitLab from 1):
    // no silent pick, which could run one part twice and another never.
    let both = run(
        suite.path(),
        &json,
        &["--shard", "auto"],
        &[
            ("CI_NODE_INDEX", "1"),
            ("CI_NODE_TOTAL", "2"),
            ("CIRCLE_NODE_INDEX", "1"),
            ("CIRCLE_NODE_TOTAL", "2"),
        ],
    )
    .await;
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    assert!(
        text(&both.stderr).contains("CI_NODE_INDEX and CIRCLE_NODE_INDEX name different shards"),
        "{}",
        text(&both.stderr)
    );
    assert!(!json.exists());
    // Only the four shard runs reached staging, one flow each.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4);
}

#[tokio::test]
async fn more_shards_than_flows_is_a_usage_error() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("r.json");
    let done = run(suite.path(), &json, &["--shard", "1/5"], &[]).await;
    assert_eq!(done.status.code(), Some(2));
    assert!(
        text(&done.stderr).contains("only 4 flows"),
        "{}",
        text(&done.stderr)
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The ```sh block of docs/pipelines.md's sharding section.
fn sharding_commands() -> Vec<String> {
    let page = repo_file("docs/pipelines.md");
    let section = page
        .split("## Sharding: one suite over many machines")
        .nth(1)
        .expect("the sharding section")
        .split("\n## ")
        .next()
        .unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block.lines().map(str::to_string).collect()
}

/// Runs every command of the sharding section as written (the `# exit N` comment is the exit
/// code it promises), in a folder holding a `smoke-tests` suite whose base_url is 127.0.0.1.
#[tokio::test]
async fn every_sharding_command_of_the_pipelines_page_works_as_documented() {
    let server = staging().await;
    let dir = tempfile::tempdir().unwrap();
    let suite = small_suite(&server.uri(), "");
    let target = dir.path().join("smoke-tests");
    std::fs::create_dir(&target).unwrap();
    for entry in std::fs::read_dir(suite.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
    let commands = sharding_commands();
    assert!(commands.len() >= 5, "{commands:?}");
    for line in commands {
        let (command, comment) = line.split_once('#').unwrap_or((&line, ""));
        let exit: i32 = comment
            .trim()
            .strip_prefix("exit ")
            .map_or(0, |rest| rest[..1].parse().unwrap());
        let mut words = command.split_whitespace().peekable();
        let mut cmd = preflight();
        while let Some((name, value)) = words.peek().and_then(|w| w.split_once('=')) {
            cmd.env(name, value);
            words.next();
        }
        assert_eq!(words.next(), Some("preflight"), "{line}");
        cmd.current_dir(dir.path()).args(words);
        let out = output(cmd).await;
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{line}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        if !comment.is_empty() {
            let said = comment.trim().split_once(": ").unwrap().1;
            let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert!(all.contains(said), "{line}: {all}");
        }
    }
    // docs/cli.md merges four shards.
    let cli = repo_file("docs/cli.md");
    let line = cli
        .lines()
        .find(|l| l.starts_with("preflight merge shard-1.json"))
        .expect("the merge example of docs/cli.md");
    for k in 1..=4 {
        let mut cmd = preflight();
        let (arg, json) = (format!("{k}/4"), format!("shard-{k}.json"));
        cmd.current_dir(dir.path())
            .args(["run", "smoke-tests", "--shard", &arg, "--json", &json]);
        assert_eq!(output(cmd).await.status.code(), Some(0));
    }
    let mut cmd = preflight();
    cmd.current_dir(dir.path())
        .args(line.split_whitespace().skip(1));
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{line}: {}", text(&out.stdout));
    assert!(
        last_line(&out).starts_with("GATE PASSED: 4 flows"),
        "{}",
        last_line(&out)
    );
}

/// The sharded pipeline examples agree with themselves: the number of parts each starts is the
/// N its shards are told, and every flag they pass exists.
#[test]
fn sharded_pipeline_examples_agree_with_themselves() {
    use yaml_rust2::YamlLoader;
    let k8s_text = repo_file("examples/kubernetes-indexed-job.yaml");
    let k8s = YamlLoader::load_from_str(&k8s_text).unwrap();
    let job = k8s
        .iter()
        .find(|d| d["metadata"]["name"].as_str() == Some("preflight-shards"))
        .expect("the shard Job");
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    let completions = job["spec"]["completions"].as_i64().unwrap();
    assert!(k8s_text.contains(&format!("--shard-count {completions}")));
    assert!(k8s_text.contains(&format!("-ge {completions} ]")));
    assert!(k8s_text.contains("preflight merge /reports/shard-*.json"));

    let gitlab_text = repo_file("examples/gitlab-ci-sharded.yml");
    let gitlab = &YamlLoader::load_from_str(&gitlab_text).unwrap()[0];
    assert_eq!(gitlab["preflight"]["parallel"].as_i64(), Some(4));
    assert!(
        gitlab["preflight"]["script"][0]
            .as_str()
            .unwrap()
            .contains("--shard auto")
    );
    let merge_job = &gitlab["preflight-merge"];
    assert_eq!(merge_job["when"].as_str(), Some("always"));
    assert_eq!(
        gitlab["promote"]["needs"][0].as_str(),
        Some("preflight-merge")
    );

    let github_text = repo_file("examples/github-actions-sharded.yml");
    let github = &YamlLoader::load_from_str(&github_text).unwrap()[0];
    let matrix = github["jobs"]["preflight"]["strategy"]["matrix"]["shard"]
        .as_vec()
        .unwrap();
    assert!(github_text.contains(&format!("--shard ${{{{ matrix.shard }}}}/{}", matrix.len())));
    assert_eq!(
        github["jobs"]["promote"]["needs"].as_str(),
        Some("preflight-merge")
    );

    let help = |command: &str| {
        text(
            &preflight()
                .args([command, "--help"])
                .output()
                .unwrap()
                .stdout,
        )
    };
    let (run_help, merge_help) = (help("run"), help("merge"));
    for text in [&k8s_text, &gitlab_text, &github_text] {
        for line in text
            .lines()
            .filter(|l| l.contains("preflight run") || l.contains("--shard"))
        {
            for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
                assert!(run_help.contains(flag), "{flag} in {line}");
            }
        }
        for line in text.lines().filter(|l| l.contains("preflight merge")) {
            for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
                assert!(merge_help.contains(flag), "{flag} in {line}");
            }
        }
    }
}

/// Extra arguments and environment of one shard run.
type Args<'a> = &'a [&'a str];
type Env<'a> = &'a [(&'a str, &'a str)];

/// Found by attacking merge: shards run with other settings, against another deployment or
/// in another pipeline run must never be joined, and hand-made shard numbers never drive it.
#[tokio::test]
async fn shards_of_other_settings_deployments_or_runs_are_never_joined() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let one = |extra: &'static [&'static str], env: &'static [(&'static str, &'static str)]| {
        let (suite, json) = (suite.path().to_path_buf(), at("1.json"));
        async move {
            run(
                &suite,
                &json,
                &[&["--shard", "1/2"][..], extra].concat(),
                env,
            )
            .await
        }
    };
    // Shard 2 of the same run, the reference.
    run(
        suite.path(),
        &at("2.json"),
        &["--shard", "2/2"],
        &[("PREFLIGHT_RUN_ID", "r1")],
    )
    .await;
    let cases: [(Args, Env); 3] = [
        (
            &["--base-url", "http://127.0.0.1:9"],
            &[("PREFLIGHT_RUN_ID", "r1")],
        ),
        (&["--var", "release=B"], &[("PREFLIGHT_RUN_ID", "r1")]),
        (&[], &[("PREFLIGHT_RUN_ID", "an-earlier-run")]),
    ];
    for (extra, env) in cases {
        one(extra, env).await;
        assert_merge_fails(&[at("1.json"), at("2.json")], "digest").await;
    }
    // The same run, but a report that says it saw another deployment.
    one(&[], &[("PREFLIGHT_RUN_ID", "r1")]).await;
    let other = edit(&at("2.json"), &at("2b.json"), |r| {
        r["deployed_version"] =
            serde_json::json!({ "expected": "B", "actual": "B", "passed": true });
    });
    assert_merge_fails(&[at("1.json"), other], "another deployment").await;
    // Shard numbers no run writes are input errors, never a panic or a huge allocation.
    for (index, count) in [(0, 0), (1, 1_000_000_000_000u64)] {
        let bad = edit(&at("1.json"), &at("bad.json"), |r| {
            r["shard"]["index"] = index.into();
            r["shard"]["count"] = count.into();
        });
        let merged = merge(&[bad], dir.path()).await;
        assert_eq!(merged.status.code(), Some(2), "{}", text(&merged.stderr));
    }
}

/// The `[openapi]` contract is part of what a shard checks: shards run against different
/// contracts (one weakened between them) are never joined, even with the same run id.
#[tokio::test]
async fn shards_checked_against_different_contracts_are_never_joined() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "[openapi]\nspec = \"openapi.yaml\"\n");
    let reviewed = r#"openapi: 3.0.3
info: {title: T, version: "1"}
paths:
  /ok:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}
"#;
    let weakened = reviewed.replace("required: [ok], ", "");
    let spec = suite.path().join("openapi.yaml");
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let env = [("PREFLIGHT_RUN_ID", "r1")];
    std::fs::write(&spec, &weakened).unwrap();
    let one = run(suite.path(), &at("1.json"), &["--shard", "1/2"], &env).await;
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    std::fs::write(&spec, reviewed).unwrap();
    let two = run(suite.path(), &at("2.json"), &["--shard", "2/2"], &env).await;
    assert_eq!(two.status.code(), Some(0), "{}", text(&two.stderr));
    for digest in ["suite_digest", "suite_files_digest"] {
        assert_ne!(
            read_json(&at("1.json"))[digest],
            read_json(&at("2.json"))[digest],
            "{digest}"
        );
    }
    assert_merge_fails(&[at("1.json"), at("2.json")], "digest").await;
    // The same contract on both: joined.
    run(suite.path(), &at("1.json"), &["--shard", "1/2"], &env).await;
    let out = tempfile::tempdir().unwrap();
    let merged = merge(&[at("1.json"), at("2.json")], out.path()).await;
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stdout));
}

/// `--shard auto` with an index no number type holds, and `--shard-count` with a fixed
/// shard, are usage errors.
#[tokio::test]
async fn odd_shard_arguments_are_usage_errors() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let json = suite.path().join("r.json");
    let huge = [
        ("CIRCLE_NODE_INDEX", "18446744073709551615"),
        ("CIRCLE_NODE_TOTAL", "2"),
    ];
    let out = run(suite.path(), &json, &["--shard", "auto"], &huge).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(
        suite.path(),
        &json,
        &["--shard", "1/2", "--shard-count", "3"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--shard-count 3 goes with --shard auto"));
}

/// A shard that failed on its own (here: a report it could not write) fails the merge, even
/// though every flow of it passed.
#[tokio::test]
async fn a_shard_that_failed_on_its_own_fails_the_merge() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let env = [("PREFLIGHT_RUN_ID", "r2")];
    let failed = run(
        suite.path(),
        &at("1.json"),
        &["--shard", "1/2", "--junit", "/nonexistent-dir/x.xml"],
        &env,
    )
    .await;
    assert_eq!(failed.status.code(), Some(1));
    run(suite.path(), &at("2.json"), &["--shard", "2/2"], &env).await;
    assert_merge_fails(&[at("1.json"), at("2.json")], "failed on its own").await;
}

/// Found by attacking merge: a temporary folder that cannot be written stops the merge (it
/// spools the flows there), and the error names that folder.
#[tokio::test]
async fn a_temporary_folder_that_cannot_be_written_is_named_by_merge() {
    let server = staging().await;
    let suite = small_suite(&server.uri(), "");
    let out = tempfile::tempdir().unwrap();
    let paths = shards(suite.path(), out.path(), 2).await;
    let mut cmd = preflight();
    cmd.arg("merge")
        .args(&paths)
        .arg("--json")
        .arg(out.path().join("merged.json"))
        .env("TMPDIR", "/nonexistent");
    let merged = output(cmd).await;
    assert_eq!(merged.status.code(), Some(2), "{}", text(&merged.stdout));
    let stderr = text(&merged.stderr);
    assert!(
        stderr.contains("cannot create a temporary file in /nonexistent (TMPDIR): "),
        "{stderr}"
    );
    assert!(!out.path().join("merged.json").exists());
}

/// What docs/templates.md says of secrets and shards: a `secret.` value is masked in every
/// shard's report and the merged one; a `secret = true` capture only in the report of the
/// shard that captured it. Flow `a` (shard 1) is shown a token that flow `b` (shard 2)
/// captures as a secret: shard 1 never learned it, and `merge` joins reports as written.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_capture_is_masked_in_its_own_shard_only_as_documented() {
    const KEY: &str = "ENV-SECRET-VALUE-77";
    const TOKEN: &str = "CAPTURED-TOKEN-0042";
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "token": TOKEN })),
        )
        .mount(&server)
        .await;
    Mock::given(path("/list"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(serde_json::json!({ "tokens": [TOKEN], "key": KEY })),
        )
        .mount(&server)
        .await;
    let list = "[[step]]\npath = \"/list\"\nheaders = { x-key = \"{{ secret.KEY }}\" }\n";
    let capture = format!(
        "[[step]]\npath = \"/token\"\ncapture = {{ t = {{ json = \"$.token\", secret = true }} }}\n{list}"
    );
    let dir = suite(&server.uri(), "", &[("a.toml", list), ("b.toml", &capture)]);
    let out = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for k in 1..=2 {
        let json = out.path().join(format!("shard-{k}.json"));
        let done = run(
            dir.path(),
            &json,
            &["--shard", &format!("{k}/2")],
            &[("KEY", KEY)],
        )
        .await;
        assert_eq!(done.status.code(), Some(1), "{}", text(&done.stderr));
        reports.push(json);
    }
    let merged = merge(&reports, out.path()).await;
    assert_eq!(merged.status.code(), Some(1), "{}", text(&merged.stderr));
    let shown = |path: &Path| std::fs::read_to_string(path).unwrap();
    let (first, second) = (shown(&reports[0]), shown(&reports[1]));
    let whole = shown(&out.path().join("merged.json"));
    for report in [&first, &second, &whole] {
        assert!(!report.contains(KEY), "{report}");
    }
    assert!(!second.contains(TOKEN), "{second}");
    // The documented limit: another shard, and so the merge, show it.
    assert!(first.contains(TOKEN), "{first}");
    assert!(whole.contains(TOKEN), "{whole}");
}
