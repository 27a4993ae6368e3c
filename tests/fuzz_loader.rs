//! Fuzzing the loader: arbitrary bytes, arbitrary TOML documents built from the real keys (and
//! values at and past the limits), and mutations of the bundled suite are fed to `suite::load`
//! (and the lock reader). Every input must either load or come back as located problems: never
//! a panic, and line 0 only for a problem about a whole file. Any set of independent mistakes
//! (unknown keys, wrong types, limits, operators, names, a flow name used twice) across the
//! files of a suite must come back as exactly one problem on each mistaken line.
//!
//! `cargo test --test fuzz_loader` runs a quick round (a few hundred cases per strategy). For a
//! long run: `PREFLIGHT_FUZZ_SECS=600 cargo test --release --test fuzz_loader -- --nocapture`
//! runs each strategy for that many seconds and prints how many inputs it tried.

use preflight::suite::{self, Overrides, Problem};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::path::Path;
use std::time::{Duration, Instant};

/// Keys and values the loader knows, so that generated documents reach deep into compile.rs.
const KEYS: &[&str] = &[
    "name",
    "base_url",
    "concurrency",
    "timeout",
    "deadline",
    "follow_redirects",
    "insecure",
    "ca_cert",
    "client_cert",
    "client_key",
    "max_body",
    "headers",
    "vars",
    "retry",
    "attempts",
    "backoff",
    "on",
    "wait",
    "path",
    "status",
    "interval",
    "gate",
    "max_noncritical_failures",
    "max_p95_latency",
    "fail_on_flaky",
    "integrity",
    "file",
    "served_at",
    "version",
    "json",
    "header",
    "expect",
    "setup",
    "tags",
    "critical",
    "step",
    "cleanup",
    "method",
    "url",
    "query",
    "body",
    "body_file",
    "form",
    "capture",
    "max_latency",
    "body_regex",
    "cookie",
    "secret",
    "$.id",
    "$.items[*]",
    "$..x",
    "$[",
];
const STRINGS: &[&str] = &[
    "",
    "/",
    "/api/{{ id }}",
    "{{ env.HOME }}",
    "{{ secret.NOPE }}",
    "{{",
    "}}",
    "{{ }}",
    "{{ a.b.c }}",
    "http://127.0.0.1:1",
    "ftp://x",
    "10s",
    "0ms",
    "9999999999999h",
    "10MiB",
    "-1",
    "2xx",
    "9xx",
    "GET",
    "P OST",
    "$.id",
    "$[",
    "(",
    "\\d+",
    "string",
    "nothing",
    "a.json",
    "../../etc/passwd",
    "sha256:00",
    "connect",
    "5xx",
    "é\u{0}\u{202e}",
    "{{ uuid }}{{ now }}",
    "1us",
    "24h",
    "25h",
    "0KiB",
    "health",
];

fn value(depth: u32) -> BoxedStrategy<toml::Value> {
    let leaf = prop_oneof![
        proptest::sample::select(STRINGS).prop_map(|s| toml::Value::String(s.to_string())),
        any::<String>().prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(200),
            Just(599),
            Just(10_000),
            Just(10_001),
            Just(4_611_686_018_427_387_904),
        ]
        .prop_map(toml::Value::Integer),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => proptest::collection::vec(value(depth - 1), 0..4).prop_map(toml::Value::Array),
        2 => table(depth - 1).prop_map(toml::Value::Table),
    ]
    .boxed()
}

fn table(depth: u32) -> BoxedStrategy<toml::Table> {
    // The operator keywords come from the loader itself, so the two lists cannot drift.
    let known: Vec<&'static str> = KEYS
        .iter()
        .chain(preflight::suite::compile::OPERATORS.iter())
        .copied()
        .collect();
    let key = prop_oneof![4 => proptest::sample::select(known).prop_map(str::to_string), 1 => "[a-z_$.]{1,8}"];
    proptest::collection::vec((key, value(depth)), 0..8)
        .prop_map(|pairs| pairs.into_iter().collect())
        .boxed()
}

/// Checks one suite on disk: loading must not panic and every problem must be located.
fn check_suite(dir: &Path) -> Result<(), TestCaseError> {
    let env = |name: &str| (name == "HOME").then(|| "/root".to_string());
    let loaded = std::panic::catch_unwind(|| suite::load(dir, Overrides::default(), &env));
    let Ok(result) = loaded else {
        return Err(TestCaseError::fail("the loader panicked"));
    };
    if let Err(problems) = result {
        prop_assert!(!problems.is_empty());
        for p in &problems {
            prop_assert!(located(p, dir), "unlocated problem: {p:?}");
        }
    }
    let lock = std::panic::catch_unwind(|| preflight::integrity::read_lock(dir));
    prop_assert!(lock.is_ok(), "the lock reader panicked");
    Ok(())
}

/// Problems about a whole file (or folder), the only ones that may have no line.
const WHOLE_FILE: &[&str] = &[
    "cannot read",
    "cannot list the suite",
    "symlink cycle",
    "a flow needs at least one [[step]]",
    "two flows are named",
    "more than 100 problems",
];

/// In a file of the suite, at a line and column with the line shown; line 0 only for a
/// problem about the whole file.
fn located(p: &Problem, dir: &Path) -> bool {
    let at_text = p.line >= 1 && p.col >= 1 && p.snippet.is_some();
    let whole_file = p.line == 0
        && p.col == 0
        && p.snippet.is_none()
        && WHOLE_FILE.iter().any(|m| p.message.starts_with(m));
    p.file.starts_with(dir) && (at_text || whole_file)
}

fn write_suite(dir: &Path, settings: &[u8], flow: &[u8], lock: Option<&[u8]>) {
    write_flows(dir, settings, &[("flow.toml", flow)], lock);
}

fn write_flows(dir: &Path, settings: &[u8], flows: &[(&str, &[u8])], lock: Option<&[u8]>) {
    std::fs::write(dir.join("preflight.toml"), settings).unwrap();
    for (name, flow) in flows {
        std::fs::write(dir.join(name), flow).unwrap();
    }
    if let Some(lock) = lock {
        std::fs::write(dir.join("preflight.lock"), lock).unwrap();
    }
}

/// Runs `strategy` for PREFLIGHT_FUZZ_SECS seconds (or `quick_cases` cases) and says how many.
fn fuzz<S: Strategy>(
    label: &str,
    quick_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let seconds: Option<u64> = std::env::var("PREFLIGHT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let started = Instant::now();
    let runs = std::cell::Cell::new(0u64);
    loop {
        let cases = if seconds.is_some() {
            2_000
        } else {
            quick_cases
        };
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let outcome = runner.run(&strategy, |input| {
            runs.set(runs.get() + 1);
            test(input)
        });
        if let Err(e) = outcome {
            panic!("{label}: {e}");
        }
        match seconds {
            Some(s) if started.elapsed() < Duration::from_secs(s) => continue,
            _ => break,
        }
    }
    let runs = runs.get();
    eprintln!(
        "{label}: {runs} inputs in {:.1}s, no crash",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn arbitrary_bytes_never_panic_the_loader() {
    fuzz(
        "bytes",
        256,
        (
            proptest::collection::vec(any::<u8>(), 0..512),
            proptest::collection::vec(any::<u8>(), 0..512),
        ),
        |(settings, flow)| {
            let dir = tempfile::tempdir().unwrap();
            write_suite(dir.path(), &settings, &flow, Some(&settings));
            check_suite(dir.path())
        },
    );
}

#[test]
fn arbitrary_toml_documents_never_panic_the_loader() {
    fuzz(
        "toml documents",
        128,
        (table(3), table(3), table(3), table(2)),
        |(settings, flow, other, lock)| {
            let dir = tempfile::tempdir().unwrap();
            let text = |t: &toml::Table| toml::to_string(t).unwrap_or_default();
            let (flow, other) = (text(&flow), text(&other));
            write_flows(
                dir.path(),
                text(&settings).as_bytes(),
                &[
                    ("flow.toml", flow.as_bytes()),
                    ("other.toml", other.as_bytes()),
                ],
                Some(text(&lock).as_bytes()),
            );
            check_suite(dir.path())
        },
    );
}

#[test]
fn mutated_bundled_suite_files_never_panic_the_loader() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("smoke-tests");
    let settings = std::fs::read(root.join("preflight.toml")).unwrap();
    let flow = std::fs::read(root.join("guest-checkout.toml")).unwrap();
    let mutations =
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8);
    fuzz(
        "mutations",
        256,
        (mutations.clone(), mutations),
        |(m1, m2)| {
            let mutate = |base: &[u8], edits: &[(prop::sample::Index, u8, u8)]| {
                let mut bytes = base.to_vec();
                for (at, byte, kind) in edits {
                    let i = at.index(bytes.len().max(1)).min(bytes.len());
                    match kind {
                        0 if i < bytes.len() => bytes[i] = *byte,
                        1 => bytes.insert(i, *byte),
                        _ if i < bytes.len() => {
                            bytes.remove(i);
                        }
                        _ => {}
                    }
                }
                bytes
            };
            let dir = tempfile::tempdir().unwrap();
            write_suite(
                dir.path(),
                &mutate(&settings, &m1),
                &mutate(&flow, &m2),
                None,
            );
            std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
            std::fs::copy(
                root.join("schemas/products.schema.json"),
                dir.path().join("schemas/products.schema.json"),
            )
            .unwrap();
            check_suite(dir.path())
        },
    );
}

/// Independent mistakes, each on its own line of preflight.toml or a flow: `(file, line
/// template, mistake)`. A line is written with or without its mistake.
const MISTAKES: &[(&str, &str, &str)] = &[
    ("preflight.toml", "name = \"s\"", "concurrency = 10001"),
    ("preflight.toml", "", "timeout = 5"),
    ("preflight.toml", "", "retries = 1"),
    ("preflight.toml", "", "deadline = \"0s\""),
    ("preflight.toml", "", "max_body = \"0\""),
    (
        "preflight.toml",
        "[gate]",
        "[gate]\nmax_p95_latency = \"99h\"",
    ),
    (
        "flow.toml",
        "[[step]]\npath = \"/a\"",
        "[[step]]\npath = \"/a\"\nmethd = \"GET\"",
    ),
    ("flow.toml", "", "timeout = 5"),
    ("flow.toml", "", "retry = { attempts = 0 }"),
    ("flow.toml", "", "headers = { x = \"{{ currency.code }}\" }"),
    (
        "flow.toml",
        "[step.expect]",
        "[step.expect]\nmax_latency = \"0ms\"",
    ),
    ("flow.toml", "", "status = \"9xx\""),
    (
        "flow.toml",
        "[step.expect.json]",
        "[step.expect.json]\n\"$.a\" = { equal = 1 }",
    ),
    ("flow.toml", "", "\"$.b\" = { matches = \"(\" }"),
    ("zz.toml", "name = \"other\"", "name = \"flow\""),
];

/// Any set of independent mistakes is found in one pass: exactly one problem on each line
/// with a mistake, none elsewhere, whatever the other files hold.
#[test]
fn every_mistake_is_found_in_one_pass() {
    fuzz(
        "independent mistakes",
        128,
        proptest::collection::vec(any::<bool>(), MISTAKES.len()),
        |chosen| {
            let dir = tempfile::tempdir().unwrap();
            let mut files: Vec<(&str, String)> = vec![
                (
                    "preflight.toml",
                    "base_url = \"http://127.0.0.1:9\"\n".into(),
                ),
                ("flow.toml", String::new()),
                ("zz.toml", String::new()),
            ];
            let mut expected: Vec<(String, usize)> = Vec::new();
            for ((file, plain, mistake), on) in MISTAKES.iter().zip(&chosen) {
                let text = &mut files.iter_mut().find(|(f, _)| f == file).unwrap().1;
                let written = if *on { mistake } else { plain };
                if *on {
                    // The mistake is on the last line of what is written.
                    let line = text.lines().count() + written.lines().count();
                    expected.push((file.to_string(), line));
                }
                text.push_str(written);
                text.push('\n');
            }
            files[0].1.push_str("[vars]\ncurrency = \"EUR\"\n");
            files[2].1.push_str("[[step]]\npath = \"/d\"\n");
            for (file, text) in &files {
                std::fs::write(dir.path().join(file), text).unwrap();
            }
            let env = |_: &str| None;
            let found: Vec<(String, usize)> =
                match suite::load(dir.path(), Overrides::default(), &env) {
                    Ok(_) => Vec::new(),
                    Err(problems) => problems
                        .iter()
                        .map(|p| {
                            (
                                p.file.file_name().unwrap().to_string_lossy().into_owned(),
                                p.line,
                            )
                        })
                        .collect(),
                };
            let mut expected_sorted = expected.clone();
            expected_sorted.sort();
            let mut found_sorted = found.clone();
            found_sorted.sort();
            prop_assert_eq!(found_sorted, expected_sorted, "files: {:#?}", files);
            Ok(())
        },
    );
}
