//! `[openapi]` through the real binary: every response checked against an OpenAPI document,
//! served by a loopback wiremock staging that implements it correctly, or breaks it.
//!
//! `fixtures/openapi/petstore3.json` is a subset of the Swagger Petstore 3.0 document (its
//! `Pet.status` made `nullable`); `fixtures/openapi/inventory-3.1.yaml` is a small 3.1 one.

mod binary;
mod hermetic;

use binary::{Outputs, pet, preflight, run_all};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PETSTORE: &str = include_str!("fixtures/openapi/petstore3.json");
const INVENTORY: &str = include_str!("fixtures/openapi/inventory-3.1.yaml");

/// A suite with `base_url`, `[openapi]` naming `spec_name` (written with `spec`), `extra`
/// settings and the flows.
fn suite<N: AsRef<std::path::Path>, F: AsRef<str>>(
    base_url: &str,
    spec_name: &str,
    spec: &str,
    extra: &str,
    flows: &[(N, F)],
) -> tempfile::TempDir {
    let settings = format!("[openapi]\nspec = \"{spec_name}\"\n{extra}");
    let dir = binary::suite(base_url, &settings, flows);
    std::fs::write(dir.path().join(spec_name), spec).unwrap();
    dir
}

async fn petstore(pet_body: Value, list_body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/pet/findByStatus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_body))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/pet/10"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pet_body))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/pet/404"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    server
}

/// One flow per step: a failed step stops its flow, and each response is to be checked.
const PET_FLOWS: &[(&str, &str)] = &[
    (
        "one-pet.toml",
        r#"
[[step]]
name = "one pet"
path = "/pet/10"
[step.expect]
status = 200
"#,
    ),
    (
        "available-pets.toml",
        r#"
[[step]]
name = "available pets"
path = "/pet/findByStatus"
query = { status = "available" }
[step.expect]
status = 200
"#,
    ),
    (
        "no-such-pet.toml",
        r#"
[[step]]
name = "no such pet"
path = "/pet/404"
[step.expect]
status = 404
"#,
    ),
];

/// Every `openapi` assertion of the report, across flows.
fn contract_assertions(out: &Outputs) -> Vec<Value> {
    let report = out.report();
    let mut found = Vec::new();
    for flow in report["flows"].as_array().unwrap() {
        for step in flow["steps"].as_array().unwrap() {
            for a in step["assertions"].as_array().unwrap() {
                if a["subject"] == "openapi" {
                    found.push(a.clone());
                }
            }
        }
    }
    found
}

fn failed_messages(out: &Outputs) -> Vec<String> {
    contract_assertions(out)
        .iter()
        .filter(|a| a["passed"] == false)
        .map(|a| a["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn warnings(out: &Outputs, kind: &str) -> Vec<String> {
    out.report()["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == kind)
        .map(|w| w["message"].as_str().unwrap().to_string())
        .collect()
}

fn base(server: &MockServer) -> String {
    format!("{}/api/v3", server.uri())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staging_that_keeps_the_petstore_contract_passes() {
    let server = petstore(pet(10), json!([pet(1), pet(2)])).await;
    let dir = suite(&base(&server), "openapi.json", PETSTORE, "", PET_FLOWS);
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let checks = contract_assertions(&out);
    // status, content type and schema for the two with bodies; status and content for the 404.
    assert_eq!(checks.len(), 8, "{checks:#?}");
    assert!(checks.iter().all(|a| a["passed"] == true), "{checks:#?}");
    assert!(out.report()["warnings"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn nullable_status_is_accepted_and_a_missing_required_field_fails_the_gate() {
    let mut nameless = pet(2);
    nameless.as_object_mut().unwrap().remove("name");
    let mut unknown_status = pet(3);
    unknown_status["status"] = json!(null);
    let mut no_photos = pet(10);
    no_photos.as_object_mut().unwrap().remove("photoUrls");
    let server = petstore(no_photos, json!([pet(1), nameless, unknown_status])).await;
    let dir = suite(&base(&server), "openapi.json", PETSTORE, "", PET_FLOWS);
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let messages = failed_messages(&out);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages.contains(&r#"/photoUrls: "photoUrls" is a required property"#.to_string()),
        "{messages:#?}"
    );
    assert!(
        messages.contains(&r#"/1/name: "name" is a required property"#.to_string()),
        "{messages:#?}"
    );
    let failed = contract_assertions(&out)
        .into_iter()
        .find(|a| a["passed"] == false)
        .unwrap();
    assert_eq!(failed["op"], "schema");
    assert_eq!(failed["expected"], "#/components/schemas/Pet/required");
    // Every report names the pointer and the rule.
    for (name, text) in [
        ("stdout", &out.stdout),
        ("JUnit", &out.junit),
        ("Markdown", &out.markdown),
    ] {
        assert!(text.contains("photoUrls"), "{name}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_type_and_a_wrong_enum_value_are_violations_with_their_pointer() {
    let mut wrong = pet(10);
    wrong["id"] = json!("ten");
    wrong["category"]["id"] = json!(true);
    wrong["status"] = json!("lost");
    let server = petstore(wrong, json!([])).await;
    let dir = suite(&base(&server), "openapi.json", PETSTORE, "", PET_FLOWS);
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let messages = failed_messages(&out);
    assert!(
        messages.contains(&r#"/id: "ten" is not of type "integer""#.to_string()),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("/category/id: true")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("/status: ")),
        "{messages:#?}"
    );
    let id = contract_assertions(&out)
        .into_iter()
        .find(|a| a["message"].as_str().is_some_and(|m| m.starts_with("/id:")))
        .unwrap();
    assert_eq!(id["actual"], "ten");
    assert_eq!(
        id["expected"],
        "#/components/schemas/Pet/properties/id/type"
    );
}

async fn inventory(status: u16, content_type: &str, body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items/a1"))
        .respond_with(
            ResponseTemplate::new(status).set_body_raw(body.to_string().into_bytes(), content_type),
        )
        .mount(&server)
        .await;
    server
}

const ITEM_FLOW: &[(&str, &str)] = &[(
    "item.toml",
    r#"
[[step]]
name = "item"
path = "/items/a1"
"#,
)];

async fn run_inventory(status: u16, content_type: &str, body: Value, extra: &str) -> Outputs {
    let server = inventory(status, content_type, body).await;
    let dir = suite(&server.uri(), "openapi.yaml", INVENTORY, extra, ITEM_FLOW);
    run_all(dir.path(), &[], &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_31_types_with_null_and_one_of_are_checked() {
    for price in [json!(5), json!({ "amount": 500, "currency": "EUR" })] {
        let body = json!({ "id": "a1", "note": null, "price": price });
        let out = run_inventory(200, "application/json", body, "").await;
        assert_eq!(out.code, 0, "{price}: {}", out.stdout);
    }
    let body = json!({ "id": "a1", "note": 7, "price": { "amount": 500 } });
    let out = run_inventory(200, "application/json", body, "").await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let messages = failed_messages(&out);
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("/note: 7 is not of type")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("/price: ")),
        "{messages:#?}"
    );
    // A 4XX range with its own content type.
    let out = run_inventory(
        404,
        "application/problem+json",
        json!({ "title": "no such item" }),
        "",
    )
    .await;
    assert!(
        contract_assertions(&out)
            .iter()
            .all(|a| a["passed"] == true),
        "{}",
        out.json
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undocumented_status_or_content_type_fails_the_gate() {
    let out = run_inventory(500, "application/json", json!({}), "").await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let status = contract_assertions(&out)
        .into_iter()
        .find(|a| a["op"] == "status_documented")
        .unwrap();
    assert_eq!(status["passed"], false);
    assert_eq!(status["actual"], 500);
    assert_eq!(status["expected"], json!(["200", "4XX"]));
    assert!(out.stdout.contains("status_documented"), "{}", out.stdout);

    let body = json!({ "id": "a1", "note": null, "price": 1 });
    let out = run_inventory(200, "text/html; charset=utf-8", body, "").await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let content = contract_assertions(&out)
        .into_iter()
        .find(|a| a["op"] == "content_type_documented")
        .unwrap();
    assert_eq!(content["passed"], false);
    assert_eq!(content["actual"], "text/html");
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_warn_turns_violations_into_warnings() {
    let body = json!({ "id": 1, "note": null, "price": 1 });
    let out = run_inventory(200, "application/json", body, "validate = \"warn\"\n").await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let found = warnings(&out, "contract_violation");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains(r#"/id: 1 is not of type "string""#),
        "{found:#?}"
    );
    assert!(found[0].contains("flow 'item', step 'item'"), "{found:#?}");
    assert!(out.stdout.contains("1 warning"), "{}", out.stdout);
    assert!(out.stdout.contains("contract violation"), "{}", out.stdout);
    assert!(failed_messages(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operation_not_in_the_document_is_one_warning() {
    let server = petstore(pet(10), json!([])).await;
    Mock::given(path("/api/v3/store/inventory"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let flows = [(
        "store.toml",
        r#"
[[step]]
name = "inventory"
path = "/store/inventory"

[[step]]
name = "inventory again"
path = "/store/inventory"

[[step]]
name = "one pet"
path = "/pet/10"
"#,
    )];
    let dir = suite(&base(&server), "openapi.json", PETSTORE, "", &flows);
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let found = warnings(&out, "undocumented_operation");
    assert_eq!(
        found,
        [
            "operation not in the OpenAPI document: GET /store/inventory (flow 'store', step 'inventory')"
        ]
    );
    assert!(
        out.stdout.contains("GET /store/inventory"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_echoed_inside_a_violating_value_stays_masked() {
    const TOKEN: &str = "tok-9f8e7d6c5b4a";
    let server = MockServer::start().await;
    Mock::given(path("/items/a1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": ["echo", TOKEN],
            "note": format!("Bearer {TOKEN}"),
            "price": TOKEN,
        })))
        .mount(&server)
        .await;
    let flows = [(
        "item.toml",
        r#"
[[step]]
name = "item"
path = "/items/a1"
headers = { authorization = "Bearer {{ secret.TOKEN }}" }
"#,
    )];
    let dir = suite(&server.uri(), "openapi.yaml", INVENTORY, "", &flows);
    let out = run_all(dir.path(), &[("TOKEN", TOKEN)], &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(failed_messages(&out).len() >= 2, "{}", out.json);
    out.assert_hidden(TOKEN);
    // And under `validate = "warn"`, where the violation is a warning's text.
    let dir = suite(
        &server.uri(),
        "openapi.yaml",
        INVENTORY,
        "validate = \"warn\"\n",
        &flows,
    );
    let out = run_all(dir.path(), &[("TOKEN", TOKEN)], &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!warnings(&out, "contract_violation").is_empty());
    out.assert_hidden(TOKEN);
}

/// `merge` keeps the shards' contract warnings, each undocumented operation once.
#[tokio::test(flavor = "multi_thread")]
async fn merged_shards_keep_their_contract_warnings() {
    // One pet listed with a number for a name and no photoUrls: two violations.
    let server = petstore(pet(10), json!([{ "name": 1 }])).await;
    Mock::given(path("/api/v3/store/inventory"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let undocumented = "[[step]]\nname = \"inventory\"\npath = \"/store/inventory\"\n";
    let list = "[[step]]\nname = \"list\"\npath = \"/pet/findByStatus\"\n";
    let flows = [
        ("a.toml", undocumented),
        ("b.toml", undocumented),
        ("c.toml", list),
    ];
    let dir = suite(
        &base(&server),
        "openapi.json",
        PETSTORE,
        "validate = \"warn\"\n",
        &flows,
    );
    let out = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for k in 1..=2 {
        let json = out.path().join(format!("shard-{k}.json"));
        let done = preflight()
            .arg("run")
            .arg(dir.path())
            .args(["--no-progress", "--shard", &format!("{k}/2"), "--json"])
            .arg(&json)
            .output()
            .unwrap();
        assert_eq!(
            done.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&done.stdout)
        );
        reports.push(json);
    }
    let merged = out.path().join("merged.json");
    let done = preflight()
        .arg("merge")
        .args(&reports)
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let report: Value = binary::read_json(merged);
    let kinds: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(count("undocumented_operation"), 1, "{kinds:?}");
    assert_eq!(count("contract_violation"), 2, "{kinds:?}");
    assert!(
        report["headline"].as_str().unwrap().contains("3 warnings"),
        "{}",
        report["headline"]
    );
}

/// `preflight check` on a suite whose document is broken: exit 2, and stderr.
fn check_broken(spec_name: &str, spec: Option<&str>, extra: &str) -> String {
    let dir = binary::suite(
        "http://127.0.0.1:9",
        &format!("[openapi]\nspec = \"{spec_name}\"\n{extra}"),
        ITEM_FLOW,
    );
    if let Some(spec) = spec {
        std::fs::write(dir.path().join(spec_name), spec).unwrap();
    }
    let out = preflight().arg("check").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // `run` refuses it the same way, before sending anything.
    let run = preflight().arg("run").arg(dir.path()).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    stderr
}

#[test]
fn a_broken_document_is_exit_2_naming_the_file_and_the_place() {
    let bad_yaml = INVENTORY.replace("type: [string, \"null\"]", "type: [string, \"null\"");
    let stderr = check_broken("openapi.yaml", Some(&bad_yaml), "");
    assert!(stderr.contains("not valid YAML"), "{stderr}");
    let line = INVENTORY
        .lines()
        .position(|l| l.contains("type: [string, \"null\"]"))
        .unwrap();
    assert!(
        stderr.contains(&format!("openapi.yaml:{}:", line + 2)),
        "the error is located just after the unclosed list: {stderr}"
    );

    let stderr = check_broken("missing.yaml", None, "");
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
    assert!(stderr.contains("preflight.toml:3:8"), "{stderr}");

    let nowhere = INVENTORY.replace("#/components/schemas/Problem", "#/components/schemas/Nope");
    let stderr = check_broken("openapi.yaml", Some(&nowhere), "");
    let line = INVENTORY
        .lines()
        .position(|l| l.contains("#/components/schemas/Problem"))
        .unwrap();
    assert!(stderr.contains("points nowhere"), "{stderr}");
    assert!(
        stderr.contains(&format!("openapi.yaml:{}:", line + 1)),
        "{stderr}"
    );

    let stderr = check_broken("openapi.json", Some("{\"openapi\": \"3.0.3\",}"), "");
    assert!(stderr.contains("not valid JSON"), "{stderr}");
    assert!(stderr.contains("openapi.json:1:"), "{stderr}");

    let stderr = check_broken("openapi.yaml", Some(INVENTORY), "validate = \"loose\"\n");
    assert!(
        stderr.contains("`validate` is \"strict\" or \"warn\""),
        "{stderr}"
    );
}

/// The example of docs/openapi.md, run as written against a staging that keeps it.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_example_works_as_written() {
    let block =
        |lang: &str, first_line: &str| binary::doc_block("docs/openapi.md", lang, first_line);
    let settings = block("toml", "# smoke-tests/preflight.toml");
    let flow = block("toml", "# smoke-tests/orders.toml");
    let spec = block("yaml", "# smoke-tests/openapi.yaml");

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/orders/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "id": 42, "status": "paid", "coupon": null, "lines": [{ "sku": "A-1", "qty": 2 }] }),
        ))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings.replace("https://staging.example.com", &server.uri());
    std::fs::write(dir.path().join("preflight.toml"), settings).unwrap();
    std::fs::write(dir.path().join("orders.toml"), flow).unwrap();
    std::fs::write(dir.path().join("openapi.yaml"), spec).unwrap();
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(contract_assertions(&out).len(), 3, "{}", out.json);
}

// What the attack on [openapi] found, each pinned down.

#[tokio::test(flavor = "multi_thread")]
async fn a_body_documented_under_a_wildcard_type_is_still_held_to_its_schema() {
    let wildcard = INVENTORY.replace(
        "            application/json:\n              schema:\n                $ref: \"#/components/schemas/Item\"",
        "            application/*:\n              schema:\n                $ref: \"#/components/schemas/Item\"",
    );
    assert_ne!(wildcard, INVENTORY);
    let server = inventory(200, "application/json", json!({ "id": 1 })).await;
    let dir = suite(&server.uri(), "openapi.yaml", &wildcard, "", ITEM_FLOW);
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let failed = failed_messages(&out).join("\n");
    assert!(
        failed.contains(r#"/id: 1 is not of type "string""#),
        "{failed}"
    );
}

#[test]
fn a_reference_cycle_or_a_reference_to_the_whole_document_is_refused() {
    let cycle = INVENTORY.replace(
        "components:\n  schemas:\n",
        "components:\n  schemas:\n    A:\n      $ref: \"#/components/schemas/B\"\n    B:\n      $ref: \"#/components/schemas/A\"\n",
    );
    let cycle = cycle.replacen("#/components/schemas/Item", "#/components/schemas/A", 1);
    let stderr = check_broken("openapi.yaml", Some(&cycle), "");
    assert!(stderr.contains("cycle of references"), "{stderr}");
    let whole = INVENTORY.replacen("#/components/schemas/Item", "#", 1);
    let stderr = check_broken("openapi.yaml", Some(&whole), "");
    assert!(stderr.contains("names the whole document"), "{stderr}");
}

#[test]
fn a_yaml_alias_bomb_is_refused_not_expanded() {
    let mut bomb =
        String::from("x-bomb:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let spec = format!("{INVENTORY}{bomb}");
    let stderr = check_broken("openapi.yaml", Some(&spec), "");
    assert!(stderr.contains("aliases expand to more than"), "{stderr}");
}

/// Schemas that each refer twice to the next stand for 2^n nodes: validating a response
/// against them would walk every one, past timeouts and signals. Refused at load.
#[test]
fn references_that_expand_exponentially_are_refused() {
    let mut fanout = String::from("x-fanout:\n");
    for i in 0..25 {
        let next = i + 1;
        fanout.push_str(&format!(
            "  S{i}:\n    allOf:\n      - $ref: '#/x-fanout/S{next}'\n      - $ref: '#/x-fanout/S{next}'\n"
        ));
    }
    fanout.push_str("  S25:\n    type: object\n");
    let spec = format!("{INVENTORY}{fanout}");
    let stderr = check_broken("openapi.yaml", Some(&spec), "");
    assert!(
        stderr.contains("`$ref`s expand to more than 1000000 nodes"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn contract_warnings_are_in_the_markdown_report_too() {
    let body = json!({ "id": 1, "note": null, "price": 1 });
    let out = run_inventory(200, "application/json", body, "validate = \"warn\"\n").await;
    assert_eq!(out.code, 0);
    assert!(out.markdown.contains("### Warnings"), "{}", out.markdown);
    assert!(out.markdown.contains("is not of type"), "{}", out.markdown);
    assert!(
        out.summary.contains("is not of type"),
        "the step summary too"
    );
}

/// A secret staging echoes into the `Content-Type` (in its own case) or as a key of the body
/// (where a JSON pointer escapes its `/` and `~`) is masked in the violation.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_echoed_in_the_content_type_or_as_a_key_stays_masked() {
    const TOKEN: &str = "Tok/en~1XyzzySecret";
    let server = MockServer::start().await;
    Mock::given(path("/type"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            b"{}".to_vec(),
            &format!("application/x-{}", "TopSecretValue123"),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ TOKEN: "x" })))
        .mount(&server)
        .await;
    let spec = r#"
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /type:
    get:
      responses:
        200: {description: x, content: {application/json: {schema: {type: object}}}}
  /key:
    get:
      responses:
        200:
          description: x
          content: {application/json: {schema: {type: object, additionalProperties: {type: integer}}}}
"#;
    let flows = [
        (
            "type.toml",
            "[[step]]\npath = \"/type\"\nheaders = { x-token = \"{{ secret.TYPE_TOKEN }}\" }\n",
        ),
        (
            "key.toml",
            "[[step]]\npath = \"/key\"\nheaders = { x-token = \"{{ secret.TOKEN }}\" }\n",
        ),
    ];
    let dir = suite(&server.uri(), "openapi.yaml", spec, "", &flows);
    let env = [("TOKEN", TOKEN), ("TYPE_TOKEN", "TopSecretValue123")];
    let out = run_all(dir.path(), &env, &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let failed = failed_messages(&out).join("\n");
    assert!(
        failed.contains("/***: \"x\" is not of type \"integer\""),
        "{failed}"
    );
    assert!(
        failed.contains("`application/x-***` is not a documented content type"),
        "{failed}"
    );
    for secret in [TOKEN, "TopSecretValue123"] {
        out.assert_hidden(secret);
        out.assert_hidden(&secret.to_ascii_lowercase());
        out.assert_hidden(&secret.replace('~', "~0").replace('/', "~1"));
    }
}

/// A response is matched to its operation under a `servers` URL with `{variables}`, and
/// under the `servers` of a path item, so its violations fail the gate.
#[tokio::test(flavor = "multi_thread")]
async fn servers_with_variables_or_on_a_path_still_match_the_operation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "not-an-integer" })))
        .mount(&server)
        .await;
    let operation = r#"
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses:
        200:
          description: x
          content: {application/json: {schema: {type: object, required: [id], properties: {id: {type: integer}}}}}
"#;
    for (servers, sent) in [
        (
            "servers:\n  - url: \"https://{environment}.example.com/api/{version}\"\n    variables:\n      environment: {default: staging}\n      version: {default: v2}\npaths:\n  /orders/{id}:",
            "/api/v7/orders/42",
        ),
        (
            "paths:\n  /orders/{id}:\n    servers: [{url: /shop}]",
            "/shop/orders/42",
        ),
    ] {
        let spec =
            format!("openapi: 3.0.3\ninfo: {{title: t, version: \"1\"}}\n{servers}{operation}");
        let flow = format!("[[step]]\nname = \"read order\"\npath = \"{sent}\"\n");
        let dir = suite(
            &server.uri(),
            "openapi.yaml",
            &spec,
            "",
            &[("orders.toml", &flow)],
        );
        let out = run_all(dir.path(), &[], &[]).await;
        assert_eq!(out.code, 1, "{sent}: {}", out.stdout);
        let failed = failed_messages(&out).join("\n");
        assert!(
            failed.contains("/id: \"not-an-integer\" is not of type \"integer\""),
            "{sent}: {failed}"
        );
        assert!(
            warnings(&out, "undocumented_operation").is_empty(),
            "{sent}"
        );
    }
}

/// OpenAPI 3.0 read as written: what stands beside a `$ref` is ignored (`nullable` there
/// admits no `null`), a required `writeOnly` property is required of requests only; a key
/// given twice in a response is a violation; a document may start with a byte order mark.
#[tokio::test(flavor = "multi_thread")]
async fn ref_siblings_write_only_duplicate_keys_and_a_bom_are_read_as_openapi_says() {
    let spec = "\u{feff}openapi: 3.0.3
info: {title: t, version: '1'}
paths:
  /user:
    get:
      responses:
        200:
          description: x
          content:
            application/json:
              schema:
                type: object
                required: [id, password, owner]
                properties:
                  id: {type: integer}
                  password: {type: string, writeOnly: true}
                  owner: {$ref: '#/components/schemas/Owner', nullable: true}
components:
  schemas:
    Owner: {type: object}
";
    let server = MockServer::start().await;
    Mock::given(path("/user"))
        .and(wiremock::matchers::query_param("case", "valid"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": 1, "owner": {} })))
        .mount(&server)
        .await;
    Mock::given(path("/user"))
        .and(wiremock::matchers::query_param("case", "null"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": 1, "owner": null })))
        .mount(&server)
        .await;
    Mock::given(path("/user"))
        .and(wiremock::matchers::query_param("case", "twice"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            br#"{"id": "forty-two", "owner": {}, "id": 42}"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;
    let flow = |case: &str| format!("[[step]]\nname = \"{case}\"\npath = \"/user?case={case}\"\n");
    let dir = suite(
        &server.uri(),
        "openapi.yaml",
        spec,
        "",
        &[("valid.toml", &flow("valid"))],
    );
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(
        out.code, 0,
        "a response without the write-only password: {}",
        out.stdout
    );

    for (case, says) in [
        ("null", "/owner: null is not of type \"object\""),
        ("twice", "/id: the key is given twice in one object"),
    ] {
        let dir = suite(
            &server.uri(),
            "openapi.yaml",
            spec,
            "",
            &[("f.toml", &flow(case))],
        );
        let out = run_all(dir.path(), &[], &[]).await;
        assert_eq!(out.code, 1, "{case}: {}", out.stdout);
        let failed = failed_messages(&out).join("\n");
        assert!(failed.contains(says), "{case}: {failed}");
    }
}

/// A secret staging echoes as a JSON number is not quoted back in the parser's own form
/// (`98765.43210` read as `98765.4321`) in a violation's message.
#[tokio::test(flavor = "multi_thread")]
async fn a_numeric_secret_echoed_as_a_number_is_masked_in_the_message() {
    const SECRET: &str = "98765.43210";
    let server = MockServer::start().await;
    Mock::given(path("/n"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"pin": {SECRET}}}"#).into_bytes(),
            "application/json",
        ))
        .mount(&server)
        .await;
    let spec = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /n:\n    get:\n      responses:\n        200: {description: x, content: {application/json: {schema: {type: object, properties: {pin: {type: string}}}}}}\n";
    let flow = "[[step]]\npath = \"/n\"\nheaders = { x-pin = \"{{ secret.PIN }}\" }\n";
    let dir = suite(&server.uri(), "openapi.yaml", spec, "", &[("n.toml", flow)]);
    let out = run_all(dir.path(), &[("PIN", SECRET)], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let failed = failed_messages(&out).join("\n");
    assert!(
        failed.contains("/pin: *** is not of type \"string\""),
        "{failed}"
    );
    out.assert_hidden(SECRET);
    out.assert_hidden("98765.4321");
}

/// A response that breaks its schema at the root, huge, with many learned secrets: the whole
/// value was masked twice against every secret (to show it and to decide how the message
/// quotes it), far past the deadline. Only as much of it as the report shows is masked now.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_violating_value_is_masked_only_as_far_as_it_is_shown() {
    let (server, secrets) =
        binary::huge_value_after_secrets("/items/a1", 800_000, |items| json!(items)).await;
    let flow = format!(
        "{}[[step]]\nname = \"item\"\npath = \"/items/a1\"\n",
        binary::LEARN_SECRETS
    );
    let flows = [("item.toml", flow.as_str())];
    let extra = "max_body = \"64MiB\"\ndeadline = \"10s\"\n";
    let dir = suite(&server.uri(), "openapi.yaml", INVENTORY, "", &flows);
    let settings = dir.path().join("preflight.toml");
    let toml = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, format!("{extra}{toml}")).unwrap();
    let out = run_all(dir.path(), &[], &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("deadline"), "{}", out.stdout);
    let violations: Vec<Value> = contract_assertions(&out)
        .into_iter()
        .filter(|a| a["passed"] == false)
        .collect();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let actual = violations[0]["actual"].as_str().unwrap_or_default();
    assert!(
        actual.starts_with(r#"["s0","s1","s2","id ***","s4""#),
        "{actual}"
    );
    assert!(actual.ends_with('…'), "{actual}");
    for secret in &secrets {
        out.assert_hidden(secret);
    }
}

/// Short secret captures (shorter than the 8 characters a secret is looked for in text) and a
/// secret number in another notation, quoted by a schema error's message: an `[openapi]`
/// violation whose message names items from anywhere in the value (`unevaluatedItems`,
/// `additionalProperties`), and a `json_schema` check's (attack findings). Every value a
/// message quotes is masked as a value now.
#[tokio::test(flavor = "multi_thread")]
async fn a_schema_error_never_quotes_a_short_or_numeric_secret() {
    const SPEC: &str = r#"
openapi: 3.1.0
info: {title: Quotes, version: "1"}
paths:
  /login:
    get:
      responses:
        200: {description: ok, content: {application/json: {schema: {type: object}}}}
  /arr:
    get:
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: {type: array, prefixItems: [{type: string}], unevaluatedItems: false}
  /obj:
    get:
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {a: {type: string}}, additionalProperties: false}
"#;
    let server = MockServer::start().await;
    let answers = [
        ("/login", r#"{"pin": 4821.50, "code": "x7Q2"}"#.to_string()),
        (
            "/arr",
            format!(r#"["{}", 4821.50, "x7Q2"]"#, "a".repeat(700)),
        ),
        ("/obj", r#"{"a": "b", "x7Q2": 1}"#.to_string()),
        ("/small", r#"{"pin": 4821.50, "code": "x7Q2"}"#.to_string()),
    ];
    for (at, body) in answers {
        Mock::given(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
    }
    let login = "[[step]]\nname = \"login\"\npath = \"/login\"\ncapture = { pin = { json = \"$.pin\", secret = true }, code = { json = \"$.code\", secret = true } }\n";
    let step = |at: &str| format!("[[step]]\nname = \"{at}\"\npath = \"{at}\"\n");
    let small = "[step.expect.json]\n\"$\" = { json_schema = \"s.json\" }\n";
    let flows: Vec<(String, String)> = [
        ("a", step("/arr")),
        ("o", step("/obj")),
        ("s", format!("{}{small}", step("/small"))),
    ]
    .into_iter()
    .map(|(name, steps)| (format!("{name}.toml"), format!("{login}{steps}")))
    .collect();
    let dir = suite(&server.uri(), "openapi.yaml", SPEC, "", &flows);
    let schema =
        r#"{"type":"object","properties":{"pin":{"type":"string"},"code":{"type":"integer"}}}"#;
    std::fs::write(dir.path().join("s.json"), schema).unwrap();
    let out = run_all(dir.path(), &[], &["-vv"]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(failed_messages(&out).len() >= 2, "{}", out.json);
    let messages = failed_messages(&out).join("\n");
    for said in [
        "Unevaluated items are not allowed (2 items)",
        "Additional properties are not allowed ('***' was unexpected)",
    ] {
        assert!(messages.contains(said), "{messages}");
    }
    assert!(
        out.stdout
            .contains("*** is not of type \"string\" at `/pin`"),
        "{}",
        out.stdout
    );
    for shown in ["x7Q2", "4821.5"] {
        out.assert_nowhere(shown);
    }
}
