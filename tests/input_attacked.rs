//! What attacking the loader found, each through the binary: `check` accepted what `run` could
//! not build, huge files were read at load time, NaN and dates reached requests, names with
//! control characters reached the terminal, `--var a.b` was accepted and useless, invalid
//! UTF-8 had no location, and a file named `smoke-tests` stopped the demo.

mod binary;
mod hermetic;

use binary::{preflight, suite};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn check(dir: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = preflight();
    cmd.arg("check").arg(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Suite settings, a flow, the environment, and what `check` must say.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

/// What `check` accepts, `run` can build: every request known before the run is rehearsed.
#[test]
fn check_rehearses_every_request_run_would_build() {
    let cases: [Case; 6] = [
        (
            "[vars]\nid = \"..\"\n",
            "[[step]]\npath = \"/x/{{ id }}\"\n",
            &[],
            "`{{ id }}` is `..`, which would change the request path",
        ),
        (
            "",
            "[[step]]\nurl = \"{{ env.U }}\"\n",
            &[("U", "not a url")],
            "invalid url `not a url`",
        ),
        (
            "[vars]\nv = \"a\\nb\"\n",
            "[[step]]\npath = \"/h\"\nheaders = { x-a = \"{{ v }}\" }\n",
            &[],
            "header `x-a` has a value that is not valid in HTTP",
        ),
        (
            "",
            "[[step]]\npath = \"/r\"\n[step.expect.json]\n\"$.a\" = { matches = \"{{ env.R }}\" }\n",
            &[("R", "(")],
            "`$.a` matches `(`, which is not a regex",
        ),
        (
            "[vars]\nid = \"..\"\n[wait]\npath = \"/w/{{ id }}\"\n",
            "[[step]]\npath = \"/ok\"\n",
            &[],
            "[wait] path: the request cannot be built",
        ),
        (
            "[version]\npath = \"/v\"\nheader = \"bad header\"\nexpect = \"1\"\n",
            "[[step]]\npath = \"/ok\"\n",
            &[],
            "invalid header name `bad header`",
        ),
    ];
    for (settings, flow, env, expected) in cases {
        let dir = suite("http://127.0.0.1:9", settings, &[("a.toml", flow)]);
        let (code, text) = check(dir.path(), env);
        assert_eq!(code, 2, "{settings}{flow}: {text}");
        assert!(text.contains(expected), "{settings}{flow}: {text}");
    }
}

/// Files a suite names are read when it loads, which has no deadline: one over 64 MiB is a
/// problem, never minutes of reading or gigabytes of memory.
#[test]
fn huge_files_a_suite_names_are_refused() {
    let dir = suite(
        "http://127.0.0.1:9",
        "",
        &[(
            "a.toml",
            "[[step]]\nmethod = \"POST\"\npath = \"/x\"\nbody_file = \"big.bin\"\nexpect = { body = { sha256_of_file = \"big.bin\" } }\n",
        )],
    );
    let big = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    big.set_len(100 << 20).unwrap();
    let (code, text) = check(dir.path(), &[]);
    assert_eq!(code, 2, "{text}");
    assert_eq!(
        text.matches("over the limit of 67108864 bytes").count(),
        2,
        "{text}"
    );
}

/// NaN and infinity are not values preflight can send or compare; a date in a query is sent
/// as the date, not as a quoted JSON string.
#[tokio::test(flavor = "multi_thread")]
async fn odd_toml_values_are_refused_or_sent_as_written() {
    let dir = suite(
        "http://127.0.0.1:9",
        "[vars]\nx = nan\n",
        &[("a.toml", "[[step]]\npath = \"/x\"\nquery = { q = inf }\n")],
    );
    let (code, text) = check(dir.path(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("preflight.toml:3:5"), "{text}");
    assert!(text.contains("a.toml:3:15"), "{text}");

    let server = MockServer::start().await;
    Mock::given(path("/d"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let dir = suite(
        &server.uri(),
        "",
        &[(
            "d.toml",
            "[[step]]\npath = \"/d\"\nquery = { r = 1979-05-27 }\n",
        )],
    );
    let mut cmd = preflight();
    cmd.arg("run").arg(dir.path());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(sent.url.query(), Some("r=1979-05-27"));
}

/// Names are the suite's own, but `list`, `check` and the progress lines escape control
/// characters as the summary does.
#[test]
fn control_characters_in_names_are_escaped_everywhere() {
    let dir = suite(
        "http://127.0.0.1:9",
        "name = \"S\\u001b]0;T\\u0007\"\n",
        &[(
            "a.toml",
            "name = \"ev\\u001b[2Jil\"\ntags = [\"t\\u001b[31m\"]\n[[step]]\nname = \"s\\u0007\"\npath = \"/x\"\n",
        )],
    );
    for args in [&["list"][..], &["check"], &["run", "--no-progress"]] {
        let command = args[0];
        let out = preflight()
            .arg(command)
            .arg(dir.path())
            .args(&args[1..])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{command}: {text:?}"
        );
        assert!(text.contains(r"\u{1b}"), "{command}: {text:?}");
    }
}

/// `--var` sets a whole variable: `a.b` and the environment's names are refused, clearly.
#[test]
fn var_names_with_dots_are_refused() {
    let dir = one_probe_to_nowhere();
    for (var, says) in [
        ("customer.email=x", "not a key inside a table"),
        ("env.X=1", "set the variable `X` instead"),
    ] {
        let out = preflight()
            .arg("check")
            .arg(dir.path())
            .args(["--var", var])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// A flow file that is not UTF-8 is a problem at the line and column of the first bad byte.
#[test]
fn invalid_utf8_is_located() {
    let dir = suite("http://127.0.0.1:9", "", &[] as &[(&str, &str)]);
    std::fs::write(dir.path().join("a.toml"), b"[[step]]\npath = \"/x\xff\"\n").unwrap();
    let (code, text) = check(dir.path(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not UTF-8 text"), "{text}");
    assert!(text.contains("a.toml:2:11"), "{text}");
}

/// `demo` falls back to its own copy of the suite unless `smoke-tests` is a folder.
#[test]
fn demo_runs_beside_a_file_named_like_its_suite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smoke-tests"), "not a folder").unwrap();
    let out = preflight()
        .current_dir(dir.path())
        .args(["demo", "--no-progress"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("GATE PASSED"), "{stdout}");
}

/// Paths are appended to the base URL: after a query or a fragment every step would probe the
/// same page, and a failing endpoint would never be called. Such a base URL is refused
/// wherever it comes from, before any request.
#[tokio::test(flavor = "multi_thread")]
async fn a_base_url_with_a_query_or_fragment_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/fail"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let flows = [(
        "a.toml",
        "[[step]]\npath = \"/fail\"\nexpect.status = 200\n",
    )];
    let plain = suite(&server.uri(), "", &flows);
    let odd = format!("{}?x=1", server.uri());

    let in_file = suite(&odd, "", &flows);
    let (code, text) = check(in_file.path(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("must not have a query"), "{text}");
    assert!(text.contains("preflight.toml:1:"), "{text}");

    let from_env = format!("{}#frag", server.uri());
    let (code, text) = check(plain.path(), &[("PREFLIGHT_BASE_URL", &from_env)]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("or a fragment"), "{text}");

    let out = preflight()
        .arg("run")
        .arg(plain.path())
        .args(["--base-url", &odd, "--no-progress"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("GATE PASSED"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// A suite of one probe against a port where nothing answers (the discard port).
fn one_probe_to_nowhere() -> tempfile::TempDir {
    suite(
        "http://127.0.0.1:9",
        "",
        &[("a.toml", "[[step]]\npath = \"/x\"\n")],
    )
}

/// Two reports on one file (by the same name or through a symlink) would leave only the last
/// one written, with the gate's exit code standing: refused before the run.
#[test]
fn two_reports_on_one_file_are_refused() {
    let dir = one_probe_to_nowhere();
    let out_dir = tempfile::tempdir().unwrap();
    let report = out_dir.path().join("r.json");
    std::fs::write(&report, "earlier").unwrap();
    let link = out_dir.path().join("link.json");
    std::os::unix::fs::symlink(&report, &link).unwrap();
    let fresh = out_dir.path().join("new.xml");
    let same_folder = out_dir.path().join(".").join("new.xml");
    // A symlink to a file not written yet (relative, as `ln -s new.json dl.json` makes it):
    // a report written to it creates that file.
    let unwritten = out_dir.path().join("new.json");
    let dangling = out_dir.path().join("dl.json");
    std::os::unix::fs::symlink("new.json", &dangling).unwrap();
    // (--json, --junit, --markdown): the same name, a symlink to it, the same file unwritten
    // yet, a dangling symlink to an unwritten one.
    let cases = [
        (&report, &report, &fresh),
        (&report, &fresh, &link),
        (&report, &fresh, &same_folder),
        (&unwritten, &dangling, &fresh),
    ];
    for (i, (json, junit, markdown)) in cases.into_iter().enumerate() {
        let out = preflight()
            .arg("run")
            .arg(dir.path())
            .arg("--json")
            .arg(json)
            .arg("--junit")
            .arg(junit)
            .arg("--markdown")
            .arg(markdown)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        assert!(
            stderr.contains("two reports would go to the same file"),
            "{stderr}"
        );
    }
    assert!(!fresh.exists() && !unwritten.exists());
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "earlier");
}

/// A report to the step summary's own file is refused: replaced, the summary would lose what
/// earlier steps of the job wrote (attack finding: `--markdown "$GITHUB_STEP_SUMMARY"`
/// replaced it).
#[test]
fn a_report_to_the_step_summary_file_is_refused() {
    let dir = one_probe_to_nowhere();
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    std::fs::write(&summary, "an earlier step\n").unwrap();
    let output = preflight()
        .arg("run")
        .arg(dir.path())
        .arg("--markdown")
        .arg(&summary)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is the step summary"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&summary).unwrap(),
        "an earlier step\n"
    );
}

/// Each command that writes reports refuses one to the step summary's own file, and says why:
/// `run` and `merge` append their Markdown report there, `report` never does (it was told it
/// did).
#[test]
fn a_report_to_the_step_summary_file_is_refused_with_the_reason_of_each_command() {
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    std::fs::write(
        &summary,
        "an earlier step
",
    )
    .unwrap();
    // Refused before the input is read: none is needed.
    let input = out.path().join("nothing-here");
    for (command, why) in [
        ("run", "which the Markdown report is appended to"),
        ("merge", "which the Markdown report is appended to"),
        ("report", "which holds what earlier steps wrote"),
    ] {
        let output = preflight()
            .arg(command)
            .arg(&input)
            .arg("--markdown")
            .arg(&summary)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("is the step summary"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains(why), "{command}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(&summary).unwrap(),
            "an earlier step\n"
        );
    }
}

/// A step summary that is no regular file (a device, a FIFO) is written through, never
/// replaced: a report to it is not refused.
#[test]
fn a_report_to_a_step_summary_that_is_a_device_is_not_refused() {
    let dir = one_probe_to_nowhere();
    let output = preflight().arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let output = preflight()
        .arg("run")
        .arg(dir.path())
        .args(["--json", "/dev/null", "--timeout", "1s"])
        .env("GITHUB_STEP_SUMMARY", "/dev/null")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("is the step summary"), "{stderr}");
    // Staging at port 9 does not answer: the gate fails, and says why.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}
