//! The docs are the user's contract, so their examples are run: `preflight check` on every
//! suite the repository ships, the README's quickstart written into a fresh folder and run
//! through the real binary against a loopback server, and every relative link followed.

mod binary;
mod hermetic;

use binary::preflight;
use std::path::{Path, PathBuf};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Pages the README links to that other branches of the same change add; until they land
/// here, a link to them may point at nothing.
const PAGES_OF_OTHER_BRANCHES: &[&str] = &["docs/authoring.md", "docs/polling-teardown-rows.md"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file below `dir`, in path order.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The `env.` and `secret.` names a suite's files mention.
fn environment_names(suite: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for file in files_below(suite) {
        if file
            .extension()
            .is_none_or(|e| !e.eq_ignore_ascii_case("toml"))
        {
            continue;
        }
        let text = read(&file);
        for prefix in ["secret.", "env."] {
            for (at, _) in text.match_indices(prefix) {
                let name: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// `smoke-tests/` and every folder under `examples/` that holds a `preflight.toml`.
fn shipped_suites() -> Vec<PathBuf> {
    let mut suites = vec![root().join("smoke-tests")];
    for file in files_below(&root().join("examples")) {
        if file.file_name().is_some_and(|n| n == "preflight.toml") {
            suites.push(file.parent().unwrap().to_path_buf());
        }
    }
    suites
}

#[test]
fn every_suite_the_repository_ships_passes_check() {
    for suite in shipped_suites() {
        let mut cmd = preflight();
        cmd.current_dir(root())
            .arg("check")
            .arg(&suite)
            .args(["--base-url", "http://127.0.0.1:9"]);
        for name in environment_names(&suite) {
            cmd.env(name, "dummy-value-for-check");
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "preflight check {}:\n{}{}",
            suite.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("suite valid: "));
    }
}

/// A section of a Markdown text: from its `## ` heading to the next one.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("a `## {heading}` section"));
    let rest = &text[start + 1..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The fenced code blocks of a text whose info string is `lang`.
fn code_blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let fence = format!("```{lang}\n");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&fence) {
        let body = &rest[at + fence.len()..];
        let end = body.find("```").expect("a closed code block");
        blocks.push(&body[..end]);
        rest = &body[end + 3..];
    }
    blocks
}

/// The words of a command line, without its comment (the README's commands need no quoting).
fn words(line: &str) -> Vec<String> {
    let line = line.split(" #").next().unwrap();
    line.split_whitespace().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_quickstart_works_as_written() {
    let readme = read(&root().join("README.md"));
    let quickstart = section(&readme, "Quickstart");

    // The suite: every toml block that starts with `# <folder>/<file>`.
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for block in code_blocks(quickstart, "toml") {
        let first = block.lines().next().unwrap();
        let name = first
            .strip_prefix("# ")
            .and_then(|n| n.split(':').next())
            .expect("a quickstart file starts with `# <path>`");
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, block).unwrap();
        files.push(name.to_string());
    }
    assert_eq!(
        files,
        ["smoke-tests/preflight.toml", "smoke-tests/health.toml"],
        "the quickstart is a two-file suite"
    );
    let lines: usize = code_blocks(quickstart, "toml")
        .iter()
        .map(|b| b.lines().count())
        .sum();
    assert!((10..=15).contains(&lines), "{lines} lines");

    // The config file it pins is the user's; here it is one we write.
    let settings: toml::Table = toml::from_str(&read(&dir.path().join(&files[0]))).unwrap();
    let pinned: Vec<PathBuf> = settings
        .get("integrity")
        .and_then(|i| i.as_array())
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    dir.path()
                        .join("smoke-tests")
                        .join(e["file"].as_str().unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    for file in &pinned {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, "{\"feature\": true}\n").unwrap();
    }

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"status": "ok"})))
        .expect(1)
        .mount(&server)
        .await;

    // The commands, in order, as written; the run's base URL points at the test server.
    let commands: Vec<Vec<String>> = code_blocks(quickstart, "sh")
        .iter()
        .flat_map(|b| b.lines())
        .filter(|l| l.starts_with("preflight "))
        .map(words)
        .collect();
    let verbs: Vec<&str> = commands.iter().map(|c| c[1].as_str()).collect();
    let expected: &[&str] = if pinned.is_empty() {
        &["check", "run"]
    } else {
        &["lock", "check", "run"]
    };
    assert_eq!(verbs, expected);
    for command in commands {
        let mut args = command[1..].to_vec();
        if let Some(i) = args.iter().position(|a| a == "--base-url") {
            args[i + 1] = server.uri();
        }
        let mut cmd = preflight();
        cmd.current_dir(dir.path()).args(&args);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "preflight {}:\n{stdout}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        match args[0].as_str() {
            "lock" => assert!(dir.path().join("smoke-tests/preflight.lock").is_file()),
            "check" => assert!(stdout.starts_with("suite valid: "), "{stdout}"),
            "run" => assert!(stdout.contains("GATE PASSED: 1 flow, 0 failed"), "{stdout}"),
            other => panic!("unexpected command {other}"),
        }
    }
    server.verify().await;

    // What the quickstart says next: a changed config without a new lock fails `check`.
    for file in &pinned {
        std::fs::write(file, "{\"feature\": false}\n").unwrap();
        let out = preflight()
            .current_dir(dir.path())
            .arg("check")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("config mismatch: ../config/app.json")
        );
    }
}

/// Every file of the user-facing docs: the README, `docs/`, `examples/`.
fn user_docs() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    files.extend(files_below(&root().join("docs")));
    files.extend(files_below(&root().join("examples")));
    files
}

#[test]
fn no_user_facing_file_refers_to_a_document_users_do_not_have() {
    for file in user_docs() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        assert!(
            !text.contains("SPEC"),
            "{} mentions SPEC, which users do not have",
            file.display()
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of the inline links `[text](target)` of a Markdown text.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        targets.push(after[..end].to_string());
        rest = &after[end..];
    }
    targets
}

#[test]
fn every_relative_link_in_the_readme_and_docs_points_at_something_that_exists() {
    let mut pages = vec![root().join("README.md")];
    pages.extend(
        files_below(&root().join("docs"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    let mut checked = 0;
    for page in pages {
        let text = read(&page);
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let linked = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            let from_root = normalize(linked.strip_prefix(root()).unwrap());
            let elsewhere = PAGES_OF_OTHER_BRANCHES
                .iter()
                .any(|other| Path::new(other) == from_root);
            if !linked.exists() && elsewhere {
                continue;
            }
            assert!(
                linked.exists(),
                "{} links to {target}, which does not exist",
                page.display()
            );
            if let Some(fragment) = fragment
                && linked.extension().is_some_and(|e| e == "md")
            {
                assert!(
                    anchors(&read(&linked)).iter().any(|a| a == fragment),
                    "{} links to {target}: no such heading in {}",
                    page.display(),
                    linked.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} links found");
}

/// `a/../b` as `b`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
