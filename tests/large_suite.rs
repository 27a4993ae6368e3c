//! A suite large enough to be read and parsed on several threads: through the real binary, it
//! must load exactly as a small one does. Every flow in file order, every problem of every
//! file listed once, files in order and lines in order within a file, nothing lost or added.

mod binary;
mod hermetic;

use binary::preflight;
use serde_json::Value;
use std::path::Path;

const FLOWS: usize = 300;

fn flow_file(i: usize) -> String {
    format!(
        "name = \"flow {i:03}\"\n\n[[step]]\nname = \"get\"\npath = \"/f/{i}\"\n\
         [step.expect]\nstatus = 200\n[step.expect.json]\n\"$.id\" = {i}\n[step.capture]\n\
         id = \"$.id\"\n\n[[step]]\nname = \"again\"\npath = \"/f/{{{{ id }}}}\"\n"
    )
}

/// `FLOWS` flow files, `flow-000.toml` ... ; `broken` replaces some of them.
fn write_suite(dir: &Path, broken: &[(usize, &[u8])]) {
    std::fs::write(
        dir.join("preflight.toml"),
        "base_url = \"http://127.0.0.1:9\"\nconcurrency = 4\n",
    )
    .unwrap();
    for i in 0..FLOWS {
        let text = match broken.iter().find(|(at, _)| *at == i) {
            Some((_, text)) => text.to_vec(),
            None => flow_file(i).into_bytes(),
        };
        std::fs::write(dir.join(format!("flow-{i:03}.toml")), text).unwrap();
    }
}

#[test]
fn a_large_suite_lists_every_flow_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path(), &[]);

    let out = preflight()
        .arg("list")
        .arg(dir.path())
        .arg("--json")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let names: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..FLOWS).map(|i| format!("flow {i:03}")).collect();
    assert_eq!(names, expected);

    let out = preflight().arg("check").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("{FLOWS} flows, {} steps", 2 * FLOWS)),
        "{stdout}"
    );
}

#[test]
fn every_problem_of_a_large_suite_is_listed_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let duplicate = flow_file(9); // flow-010.toml takes the name of flow-009.toml
    let broken: Vec<(usize, &[u8])> = vec![
        (3, b"[[step]\npath = \"/x\"\n"),                         // not TOML
        (50, b"[[step]]\npth = \"/x\"\n"),                        // an unknown key, so no path
        (10, duplicate.as_bytes()),                               // a flow name used twice
        (150, b"[[step]]\npath = \"/\xff\"\n"),                   // not UTF-8
        (151, b"[[step]]\npath = \"/{{ nope }}\"\n"),             // an unknown name
        (299, b"[[step]]\nmethod = 5\npath = \"/x\"\nfoo = 1\n"), // two problems in one file
    ];
    write_suite(dir.path(), &broken);

    let out = preflight().arg("check").arg(dir.path()).output().unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected_files = [
        "flow-003.toml",
        "flow-010.toml",
        "flow-050.toml",
        "flow-150.toml",
        "flow-151.toml",
        "flow-299.toml",
    ];
    // Each file's first problem, in the order printed.
    let mut seen: Vec<&str> = Vec::new();
    for line in stderr.lines() {
        if let Some(file) = expected_files.iter().find(|f| line.contains(*f))
            && !seen.contains(file)
        {
            seen.push(file);
        }
    }
    assert_eq!(seen, expected_files, "{stderr}");
    assert!(
        stderr.contains("suite invalid: 8 problems, nothing was run"),
        "every problem, each once: {stderr}"
    );
    assert!(stderr.contains("did you mean `path`?"), "{stderr}");
}
