//! The JSON Schemas: committed copies match the generated ones, the bundled suite validates
//! against the editor schemas, and every report the binary writes validates against the
//! report schema.

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn generated(kind: &str) -> String {
    let out = cargo_bin_cmd!("preflight")
        .args(["schema", kind])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn validator(kind: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&generated(kind)).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schemas_match_the_generated_ones() {
    for kind in ["suite", "flow", "report"] {
        let committed =
            std::fs::read_to_string(root().join(format!("schemas/{kind}.schema.json"))).unwrap();
        assert_eq!(
            committed.trim_end(),
            generated(kind).trim_end(),
            "schemas/{kind}.schema.json is stale: run `cargo run -- schema {kind} > schemas/{kind}.schema.json`"
        );
    }
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn bundled_and_valid_fixture_suites_validate_against_the_editor_schemas() {
    let (suite, flow) = (validator("suite"), validator("flow"));
    let mut files = Vec::new();
    toml_files(&root().join("smoke-tests"), &mut files);
    toml_files(&root().join("tests/fixtures/valid"), &mut files);
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let doc = serde_json::to_value(doc).unwrap();
        let schema = if file.ends_with("preflight.toml") {
            &suite
        } else {
            &flow
        };
        assert_valid(schema, &doc, &file.display().to_string());
    }
}

#[test]
fn the_editor_schemas_reject_unknown_keys_and_bad_operators() {
    let flow = validator("flow");
    let typo: Value = serde_json::json!({"step": [{"path": "/", "methd": "GET"}]});
    assert!(!flow.is_valid(&typo));
    let bad_op: Value =
        serde_json::json!({"step": [{"path": "/", "expect": {"json": {"$.a": {"containz": 1}}}}]});
    assert!(!flow.is_valid(&bad_op));
    let good: Value = serde_json::json!({"step": [{"path": "/", "expect": {"status": "2xx", "json": {"$.a": {"contains": 1}, "$.b": 2}}, "capture": {"id": "$.id", "t": {"header": "x", "secret": true}}}]});
    assert_valid(&flow, &good, "good flow");
}

#[test]
fn demo_reports_passing_failing_and_aborted_validate_against_the_report_schema() {
    let report = validator("report");
    let dir = tempfile::tempdir().unwrap();
    for (name, faults) in [
        ("pass", vec![]),
        (
            "fail",
            vec!["--fault", "broken-payments", "--fault", "stale-config"],
        ),
    ] {
        let path = dir.path().join(format!("{name}.json"));
        let out = cargo_bin_cmd!("preflight")
            .current_dir(root())
            .args(["demo", "--no-progress", "--json"])
            .arg(&path)
            .args(&faults)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(if name == "pass" { 0 } else { 1 }));
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_valid(&report, &doc, name);
        assert_eq!(doc["schema"], 1);
    }
}
