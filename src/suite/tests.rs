use super::*;
use std::collections::HashMap;
use std::time::Duration;

fn suite(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn load_with(dir: &Path, overrides: Overrides, env: &[(&str, &str)]) -> Result<Plan, Vec<Problem>> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(dir, overrides, &move |name| env.get(name).cloned())
}

fn problems(files: &[(&str, &str)]) -> Vec<Problem> {
    let dir = suite(files);
    load_with(dir.path(), Overrides::default(), &[]).expect_err("suite should be invalid")
}

const BASE: (&str, &str) = ("preflight.toml", "base_url = \"http://127.0.0.1:1\"\n");

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("10MiB"), Ok(10 << 20));
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert_eq!(parse_size("2048"), Ok(2048));
    assert!(parse_size("ten").is_err());
    assert!(parse_size("1XB").is_err());
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("soon").is_err());
    for out_of_range in ["0s", "999us", "24h 1ms", "9999999h"] {
        assert!(parse_duration(out_of_range).is_err(), "{out_of_range}");
    }
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert!(parse_size("0KiB").is_err());
}

#[test]
fn flows_are_discovered_recursively_in_path_order() {
    let dir = suite(&[
        BASE,
        ("z.toml", "[[step]]\npath = \"/z\"\n"),
        ("payments/card.toml", "[[step]]\npath = \"/c\"\n"),
        ("a.toml", "name = \"first\"\n[[step]]\npath = \"/a\"\n"),
        (".hidden/x.toml", "not toml at all ["),
        ("notes.md", "ignored"),
    ]);
    let plan = load_with(dir.path(), Overrides::default(), &[]).unwrap();
    let files: Vec<&str> = plan.flows.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(files, ["a.toml", "payments/card.toml", "z.toml"]);
    assert_eq!(plan.flows[0].name, "first");
    assert_eq!(plan.flows[1].name, "card", "default name is the file stem");
    assert_eq!(
        plan.steps_of(&plan.flows[1]).unwrap().steps[0].name,
        "GET /c",
        "default step name is METHOD path"
    );
}

#[test]
fn defaults_and_overrides() {
    let dir = suite(&[
        (
            "preflight.toml",
            "base_url = \"http://127.0.0.1:1\"\ntimeout = \"3s\"\n",
        ),
        ("f.toml", "[[step]]\npath = \"/\"\n"),
    ]);
    let plan = load_with(dir.path(), Overrides::default(), &[]).unwrap();
    let s = &plan.settings;
    assert_eq!(
        (s.concurrency, s.timeout, s.deadline, s.max_body),
        (
            8,
            Duration::from_secs(3),
            Duration::from_secs(300),
            10 << 20
        )
    );
    assert!(!s.follow_redirects);
    let overrides = Overrides {
        base_url: Some("http://127.0.0.1:2/prefix".into()),
        base_url_origin: "--base-url",
        concurrency: Some(3),
        timeout: Some(Duration::from_secs(1)),
        ..Overrides::default()
    };
    let plan = load_with(dir.path(), overrides, &[]).unwrap();
    assert_eq!(
        plan.settings.base_url.unwrap().as_str(),
        "http://127.0.0.1:2/prefix"
    );
    assert_eq!(
        (plan.settings.concurrency, plan.settings.timeout),
        (3, Duration::from_secs(1))
    );
}

#[test]
fn captures_must_come_from_earlier_steps() {
    let flow =
        "[[step]]\npath = \"/a/{{ id }}\"\n[[step]]\npath = \"/b\"\ncapture = { id = \"$.id\" }\n";
    let found = problems(&[BASE, ("f.toml", flow)]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .message
            .contains("used before the step that captures it")
    );
    assert_eq!((found[0].line, found[0].col), (2, 15));
}

#[test]
fn cleanups_may_use_any_capture_and_record_what_they_need() {
    let flow = "[[step]]\npath = \"/a\"\ncapture = { id = \"$.id\" }\n[[cleanup]]\nmethod = \"DELETE\"\npath = \"/a/{{ id }}\"\n";
    let plan = load_with(
        suite(&[BASE, ("f.toml", flow)]).path(),
        Overrides::default(),
        &[],
    )
    .unwrap();
    assert_eq!(
        *plan.steps_of(&plan.flows[0]).unwrap().cleanup[0].uses_captures,
        ["id"]
    );
}

#[test]
fn secrets_and_env_are_read_once_and_unset_ones_are_errors() {
    let flow = "[[step]]\npath = \"/{{ env.REGION }}\"\nheaders = { authorization = \"Bearer {{ secret.TOKEN }}\" }\n";
    let dir = suite(&[BASE, ("f.toml", flow)]);
    let plan = load_with(
        dir.path(),
        Overrides::default(),
        &[("REGION", "eu"), ("TOKEN", "t0k-long-enough")],
    )
    .unwrap();
    let secrets: Vec<&str> = plan.secrets.values().map(|s| s.expose()).collect();
    assert_eq!(secrets, ["t0k-long-enough"]);
    assert_eq!(plan.env.get("REGION").map(String::as_str), Some("eu"));
    let found = load_with(dir.path(), Overrides::default(), &[]).unwrap_err();
    assert_eq!(found.len(), 2, "both unset variables are listed: {found:?}");
}

#[test]
fn retry_wait_gate_and_tls_settings() {
    let settings = "base_url = \"http://127.0.0.1:1\"\n[retry]\nattempts = 3\nbackoff = \"100ms\"\n\
        [wait]\npath = \"/health\"\nstatus = 200\n[gate]\nmax_noncritical_failures = 2\nmax_p95_latency = \"800ms\"\nfail_on_flaky = true\n";
    let flow = "[[step]]\npath = \"/a\"\n[[step]]\nmethod = \"POST\"\npath = \"/b\"\nretry = { on = [\"timeout\"] }\n";
    let plan = load_with(
        suite(&[("preflight.toml", settings), ("f.toml", flow)]).path(),
        Overrides::default(),
        &[],
    )
    .unwrap();
    let s = &plan.settings;
    assert_eq!(
        (s.retry.attempts, s.retry.backoff),
        (3, Duration::from_millis(100))
    );
    assert_eq!(s.retry.delay_before(2), Duration::from_millis(100));
    assert_eq!(s.retry.delay_before(4), Duration::from_millis(400));
    assert_eq!(
        RetryPolicy {
            backoff: Duration::from_secs(8),
            ..RetryPolicy::none()
        }
        .delay_before(5),
        Duration::from_secs(10),
        "capped"
    );
    let body = plan.steps_of(&plan.flows[0]).unwrap();
    let steps = &body.steps;
    assert_eq!(steps[0].retry, s.retry, "steps inherit the suite policy");
    assert_eq!(steps[1].retry.attempts, 3);
    assert_eq!(
        steps[1].retry.on,
        RetryKinds {
            timeout: true,
            ..RetryKinds::default()
        }
    );
    assert_eq!(
        steps[1].retry.named_by_step, steps[1].retry.on,
        "the step named timeout itself"
    );
    let wait = s.wait.as_ref().unwrap();
    assert_eq!(
        (wait.timeout, wait.interval),
        (Duration::from_secs(60), Duration::from_secs(1))
    );
    assert_eq!(
        s.gate,
        GatePolicy {
            max_noncritical_failures: Some(2),
            max_p95_latency: Some(Duration::from_millis(800)),
            fail_on_flaky: true,
            latency_regression: crate::suite::RegressionPolicy::default(),
        }
    );
}

#[test]
fn bad_retry_kinds_and_half_mutual_tls_are_located() {
    let found = problems(&[
        (
            "preflight.toml",
            "base_url = \"http://127.0.0.1:1\"\nclient_cert = \"c.pem\"\n[retry]\non = [\"4xx\"]\n",
        ),
        ("f.toml", "[[step]]\npath = \"/\"\n"),
    ]);
    let messages: Vec<String> = found
        .iter()
        .map(|p| format!("{}:{} {}", p.line, p.col, p.message))
        .collect();
    assert_eq!(
        messages,
        [
            "2:15 mutual TLS needs both `client_cert` and `client_key`",
            "4:7 `4xx` cannot be retried: `on` takes connect, timeout and 5xx"
        ]
    );
}

#[test]
fn empty_secrets_are_errors_but_empty_env_values_are_not() {
    let flow = "[[step]]\npath = \"/{{ env.EMPTY_OK }}\"\nheaders = { authorization = \"{{ secret.TOKEN }}\" }\n";
    let dir = suite(&[BASE, ("f.toml", flow)]);
    let found = load_with(
        dir.path(),
        Overrides::default(),
        &[("EMPTY_OK", ""), ("TOKEN", "")],
    )
    .unwrap_err();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("`TOKEN` is empty"));
}

#[test]
fn every_problem_of_every_file_is_listed() {
    let found = problems(&[
        ("preflight.toml", "timeout = \"soon\"\n"),
        ("a.toml", "[[step]]\nmethd = \"GET\"\n"),
        (
            "b.toml",
            "[[step]]\npath = \"/x\"\nurl = \"http://h/\"\n[step.expect]\nstatus = \"2xy\"\n",
        ),
    ]);
    let where_: Vec<String> = found
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p.file.file_name().unwrap().to_string_lossy(),
                p.line
            )
        })
        .collect();
    assert_eq!(
        where_,
        // With `methd` dropped, a.toml's step has no `path` either: a problem of its own.
        [
            "preflight.toml:1",
            "a.toml:1",
            "a.toml:2",
            "b.toml:3",
            "b.toml:5"
        ],
        "{found:#?}"
    );
    assert_eq!(found[1].message, "a step needs `path` or `url`");
    assert_eq!(found[2].hint.as_deref(), Some("did you mean `method`?"));
}

#[test]
fn filters_select_by_tag_and_name() {
    let dir = suite(&[
        BASE,
        ("a.toml", "tags = [\"x\"]\n[[step]]\npath = \"/\"\n"),
        ("b.toml", "tags = [\"y\"]\n[[step]]\npath = \"/\"\n"),
        (
            "c.toml",
            "tags = [\"x\", \"slow\"]\n[[step]]\npath = \"/\"\n",
        ),
    ]);
    let plan = load_with(dir.path(), Overrides::default(), &[]).unwrap();
    let names = |tags: &[&str], skip: &[&str], flows: &[&str]| {
        let mut p = plan.clone();
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        p.select(&own(tags), &own(skip), &own(flows));
        p.flows.into_iter().map(|f| f.name).collect::<Vec<_>>()
    };
    assert_eq!(names(&["x"], &[], &[]), ["a", "c"]);
    assert_eq!(names(&["x"], &["slow"], &[]), ["a"]);
    assert_eq!(names(&[], &[], &["b"]), ["b"]);
    assert!(names(&["nope"], &[], &[]).is_empty());
}

#[test]
fn a_bad_template_written_with_escapes_is_located_at_its_value() {
    // The error's offset is in the unescaped string: added to the source it once landed
    // inside `é` and panicked.
    let found = problems(&[BASE, ("f.toml", "[[step]]\npath = \"\\t\\téé{{\"\n")]);
    let at: Vec<_> = found
        .iter()
        .map(|p| (p.line, p.col, p.message.as_str()))
        .collect();
    assert_eq!(
        at,
        [(2, 8, "unclosed `{{`: a placeholder ends with `}}`")],
        "{found:#?}"
    );
}
