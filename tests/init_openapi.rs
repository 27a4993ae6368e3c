//! `preflight init --from-openapi` through the real binary: suites drafted from the Swagger
//! Petstore 3.0 document (`fixtures/openapi/petstore-3.0.yaml`) and the OpenAPI Initiative's
//! Tic Tac Toe 3.1 example (`fixtures/openapi/tictactoe-3.1.yaml`) pass `check`, pass against a
//! loopback staging that keeps the contract, and fail, naming the pointer and the rule, against
//! one that breaks it.

mod binary;
mod hermetic;

use binary::{pet, preflight, read_json};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
}

struct Drafted {
    _dir: tempfile::TempDir,
    suite: PathBuf,
    stdout: String,
}

/// `preflight init --from-openapi FIXTURE DIR/suite`, which must succeed.
fn draft(name: &str) -> Drafted {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    let out = preflight()
        .arg("init")
        .arg("--from-openapi")
        .arg(fixture(name))
        .arg(&suite)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Drafted {
        _dir: dir,
        suite,
        stdout,
    }
}

fn check(suite: &Path) -> (i32, String) {
    let out = preflight().arg("check").arg(suite).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `preflight run SUITE --base-url URL --json`, on a blocking thread so the staging serves.
async fn run(suite: &Path, base_url: &str) -> (i32, String, Value) {
    let report = suite.with_extension("report.json");
    let mut cmd = preflight();
    cmd.arg("run")
        .arg(suite)
        .arg("--base-url")
        .arg(base_url)
        .arg("--json")
        .arg(&report);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, read_json(&report))
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn drafts_from_petstore_pass_check_and_list_what_was_skipped() {
    let drafted = draft("petstore-3.0.yaml");
    let suite = &drafted.suite;
    // One flow per tag, one schema per drafted JSON response.
    for file in ["preflight.toml", "pet.toml", "store.toml", "user.toml"] {
        assert!(suite.join(file).is_file(), "{file} missing");
    }
    let schemas: Vec<String> = std::fs::read_dir(suite.join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(schemas.len(), 4, "{schemas:?}");
    let (code, text) = check(suite);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 flows, 5 steps"), "{text}");

    // The relative servers[0] becomes a placeholder no resolver answers, with its path; the document is
    // named relative to the suite, so the contract is checked on every run.
    let settings = read(suite.join("preflight.toml"));
    assert!(
        settings.contains("base_url = \"http://staging.invalid/api/v3\""),
        "{settings}"
    );
    assert!(
        settings.contains("spec = \"../../../") || settings.contains("spec = \"../"),
        "{settings}"
    );
    assert!(settings.contains("validate = \"strict\""), "{settings}");

    // What was skipped, on the terminal and in the flow files, with the reason.
    for (line, file) in [
        ("POST /pet (addPet): a POST changes data", "pet.toml"),
        (
            "GET /pet/{petId} (getPetById): path parameter `petId` is required and has no example",
            "pet.toml",
        ),
        ("DELETE /store/order/{orderId} (deleteOrder)", "store.toml"),
        ("GET /user/{username} (getUserByName)", "user.toml"),
    ] {
        assert!(drafted.stdout.contains(line), "{line}\n{}", drafted.stdout);
        assert!(
            read(suite.join(file)).contains(&format!("# - {line}")),
            "{file}: {line}"
        );
    }
    assert!(
        drafted.stdout.contains("skipped 14 operations"),
        "{}",
        drafted.stdout
    );

    // A step per GET: its documented success status, its schema, the JSON asked for when
    // the response documents XML too; a secured operation says how to add credentials.
    let pet = read(suite.join("pet.toml"));
    assert!(
        pet.contains("name = \"findPetsByStatus\"\npath = \"/pet/findByStatus\"\n"),
        "{pet}"
    );
    assert!(
        pet.contains("headers = { \"accept\" = \"application/json\" }"),
        "{pet}"
    );
    assert!(
        pet.contains(
            "status = 200\nbody = { json_schema = \"schemas/findpetsbystatus.schema.json\" }"
        ),
        "{pet}"
    );
    assert!(
        pet.contains("# the document asks for credentials (petstore_auth)"),
        "{pet}"
    );
    let user = read(suite.join("user.toml"));
    assert!(
        user.contains(
            "name = \"logoutUser\"\npath = \"/user/logout\"\n\n[step.expect]\nstatus = 200\n"
        ),
        "{user}"
    );
}

#[test]
fn drafts_from_json_and_3_1_documents_pass_check() {
    for (name, summary) in [
        ("tictactoe-3.1.yaml", "1 flow, 2 steps"),
        ("petstore3.json", "1 flow, 1 step"),
    ] {
        let drafted = draft(name);
        let (code, text) = check(&drafted.suite);
        assert_eq!(code, 0, "{name}: {text}");
        assert!(text.contains(summary), "{name}: {text}");
    }
    // Path parameters shared by the path item through `$ref`, their example through the
    // schema's `$ref`: /board/{row}/{column} is drafted as /board/1/1.
    let drafted = draft("tictactoe-3.1.yaml");
    let flow = read(drafted.suite.join("gameplay.toml"));
    assert!(
        flow.contains("name = \"get-square\"\npath = \"/board/1/1\""),
        "{flow}"
    );
}

/// A staging implementing the five GET operations the Petstore draft probes; `broken`
/// replaces one operation's answer.
async fn petstore(broken: Option<(&str, ResponseTemplate)>) -> MockServer {
    let server = MockServer::start().await;
    let mut answers = vec![
        (
            "/api/v3/pet/findByStatus",
            ResponseTemplate::new(200).set_body_json(json!([pet(1), pet(2)])),
        ),
        (
            "/api/v3/pet/findByTags",
            ResponseTemplate::new(200).set_body_json(json!([pet(3)])),
        ),
        (
            "/api/v3/store/inventory",
            ResponseTemplate::new(200).set_body_json(json!({"available": 7, "sold": 2})),
        ),
        (
            "/api/v3/user/login",
            ResponseTemplate::new(200).set_body_json(json!("logged in user session:1")),
        ),
        ("/api/v3/user/logout", ResponseTemplate::new(200)),
    ];
    if let Some((at, answer)) = broken {
        let slot = answers.iter_mut().find(|(p, _)| *p == at).unwrap();
        slot.1 = answer;
    }
    for (at, answer) in answers {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(answer)
            .mount(&server)
            .await;
    }
    server
}

/// Every failed assertion of the report: (flow, step, subject, op, message, expected).
fn failures(report: &Value) -> Vec<(String, String, String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out = Vec::new();
    for flow in report["flows"].as_array().unwrap() {
        for step in flow["steps"].as_array().unwrap() {
            for a in step["assertions"].as_array().into_iter().flatten() {
                if a["passed"] == false {
                    out.push((
                        s(&flow["name"]),
                        s(&step["name"]),
                        s(&a["subject"]),
                        s(&a["op"]),
                        s(&a["message"]),
                        a["expected"].to_string(),
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn the_petstore_draft_passes_against_a_staging_that_keeps_the_contract() {
    let drafted = draft("petstore-3.0.yaml");
    let staging = petstore(None).await;
    let (code, text, report) = run(&drafted.suite, &format!("{}/api/v3", staging.uri())).await;
    assert_eq!(code, 0, "{text}");
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["summary"]["passed"], 3, "{}", report["summary"]);
    assert_eq!(report["warnings"], json!([]), "{}", report["warnings"]);
    // Each response was checked against the contract too.
    let openapi = report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["steps"].as_array().unwrap())
        .flat_map(|s| s["assertions"].as_array().unwrap())
        .filter(|a| a["subject"] == "openapi" && a["op"] == "status_documented")
        .count();
    assert_eq!(openapi, 5);
}

#[tokio::test]
async fn the_petstore_draft_fails_on_a_dropped_field_and_a_wrong_type() {
    let drafted = draft("petstore-3.0.yaml");
    let mut nameless = pet(2);
    nameless.as_object_mut().unwrap().remove("name");
    for (at, answer, pointer, rule) in [
        (
            "/api/v3/pet/findByStatus",
            ResponseTemplate::new(200).set_body_json(json!([pet(1), nameless])),
            "/1/name",
            "required",
        ),
        (
            "/api/v3/store/inventory",
            ResponseTemplate::new(200).set_body_json(json!({"available": "7"})),
            "/available",
            "type",
        ),
    ] {
        let staging = petstore(Some((at, answer))).await;
        let (code, text, report) = run(&drafted.suite, &format!("{}/api/v3", staging.uri())).await;
        assert_eq!(code, 1, "{at}: {text}");
        assert_eq!(report["verdict"], "fail");
        let failed = failures(&report);
        // The drafted json_schema expectation and the contract check both name it.
        let contract = failed
            .iter()
            .find(|f| f.2 == "openapi" && f.3 == "schema")
            .unwrap_or_else(|| panic!("{at}: {failed:?}"));
        assert!(contract.4.starts_with(pointer), "{at}: {contract:?}");
        assert!(contract.5.contains(rule), "{at}: {contract:?}");
        assert!(
            failed.iter().any(|f| f.2 == "body" && f.3 == "json_schema"),
            "{at}: {failed:?}"
        );
        assert!(text.contains(pointer), "{at}: {text}");
    }
}

async fn board(square: Value, board_status: u16) -> MockServer {
    let server = MockServer::start().await;
    let row = |m: &str| json!([m, ".", "."]);
    Mock::given(method("GET"))
        .and(path("/board"))
        .respond_with(ResponseTemplate::new(board_status).set_body_json(json!({
            "winner": ".",
            "board": [row("X"), row("."), row("O")]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/board/1/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(square))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_3_1_draft_passes_and_fails_on_an_undocumented_status_and_a_wrong_value() {
    let drafted = draft("tictactoe-3.1.yaml");
    let staging = board(json!("X"), 200).await;
    let (code, text, _) = run(&drafted.suite, &staging.uri()).await;
    assert_eq!(code, 0, "{text}");

    // 201 is no status the document gives /board.
    let staging = board(json!("X"), 201).await;
    let (code, text, report) = run(&drafted.suite, &staging.uri()).await;
    assert_eq!(code, 1, "{text}");
    let failed = failures(&report);
    assert!(
        failed
            .iter()
            .any(|f| f.1 == "get-board" && f.2 == "openapi" && f.3 == "status_documented"),
        "{failed:?}"
    );

    // "Z" is no mark.
    let staging = board(json!("Z"), 200).await;
    let (code, text, report) = run(&drafted.suite, &staging.uri()).await;
    assert_eq!(code, 1, "{text}");
    let failed = failures(&report);
    assert!(
        failed.iter().any(|f| f.1 == "get-square"
            && f.2 == "openapi"
            && f.3 == "schema"
            && f.5.contains("enum")),
        "{failed:?}"
    );
}

/// `init --from-openapi` on `doc` (written as `name`) into a fresh folder.
fn init_with(name: &str, doc: &str) -> (tempfile::TempDir, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), doc).unwrap();
    let out = preflight()
        .current_dir(dir.path())
        .args(["init", "--from-openapi", name, "suite"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_document_it_cannot_draft_from_writes_nothing() {
    for (doc, says) in [
        (
            "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a: [",
            "openapi.yaml:",
        ),
        (
            "swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n",
            "Swagger 2.0",
        ),
        (
            "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: '#/nowhere'}\n",
            "points nowhere",
        ),
        (
            "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    post:\n      responses: {'201': {description: made}}\n  /b/{id}:\n    get:\n      parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n      responses: {'200': {description: one}}\n",
            "POST /a: a POST changes data",
        ),
    ] {
        let (dir, code, text) = init_with("openapi.yaml", doc);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains(says), "{says}: {text}");
        assert!(
            !dir.path().join("suite").join("preflight.toml").exists(),
            "{text}"
        );
    }
}

#[test]
fn it_never_overwrites_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    std::fs::create_dir_all(suite.join("schemas")).unwrap();
    std::fs::write(suite.join("schemas/getinventory.schema.json"), "mine").unwrap();
    let out = preflight()
        .arg("init")
        .arg("--from-openapi")
        .arg(fixture("petstore-3.0.yaml"))
        .arg(&suite)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert!(!suite.join("preflight.toml").exists());
    assert_eq!(read(suite.join("schemas/getinventory.schema.json")), "mine");
}

#[test]
fn what_the_document_says_cannot_break_out_of_a_comment_or_a_string() {
    // Tags, summaries and ids with line breaks, quotes and TOML; an example holding `{{`;
    // an absolute server with a variable.
    let doc = r#"{
      "openapi": "3.1.0",
      "info": {"title": "Evil\n[gate]\nfail_on_warnings = \"x\"", "version": "1"},
      "servers": [{"url": "http://127.0.0.1:{port}/v1", "variables": {"port": {"default": "9"}}}],
      "paths": {
        "/items/{id}": {
          "get": {
            "tags": ["a\"b\n[[step]]\nname = \"injected\""],
            "operationId": "x\"\nmethod = \"DELETE",
            "summary": "line one\n[[step]]\npath = \"/admin\"",
            "parameters": [{"name": "id", "in": "path", "required": true, "example": "a/b c"}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
          }
        },
        "/brace": {
          "get": {
            "parameters": [{"name": "q", "in": "query", "required": true, "example": "{{ secret.X }}"}],
            "responses": {"200": {"description": "ok"}}
          }
        }
      }
    }"#;
    let (dir, code, text) = init_with("openapi.json", doc);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("GET /brace: the example of query parameter `q` holds `{{`"),
        "{text}"
    );
    let suite = dir.path().join("suite");
    let (code, checked) = check(&suite);
    assert_eq!(code, 0, "{checked}");
    assert!(checked.contains("1 flow, 1 step"), "{checked}");
    let settings = read(suite.join("preflight.toml"));
    assert!(
        settings.contains("base_url = \"http://127.0.0.1:9/v1\""),
        "{settings}"
    );
    assert!(!settings.contains("\n[gate]"), "{settings}");
    let flow = std::fs::read_dir(&suite)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap() != "preflight.toml" && p.extension().is_some_and(|e| e == "toml")
        })
        .unwrap();
    let flow = read(flow);
    // The id is one path segment; nothing the document said became a key or a step.
    let parsed: toml::Table = flow.parse().unwrap();
    let keys: Vec<&String> = parsed.keys().collect();
    assert_eq!(keys, ["name", "step"], "{flow}");
    assert_eq!(
        parsed["name"].as_str(),
        Some("a\"b [[step]] name = \"injected\"")
    );
    let steps = parsed["step"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{flow}");
    let step = steps[0].as_table().unwrap();
    let keys: Vec<&String> = step.keys().collect();
    assert_eq!(keys, ["name", "path", "expect"], "{flow}");
    assert_eq!(step["path"].as_str(), Some("/items/a%2Fb%20c"));
    assert_eq!(step["name"].as_str(), Some("x\" method = \"DELETE"));
}

/// The demo shop has an OpenAPI document; `--fault contract-drift` drops a field it requires
/// that no hand-written assertion of the bundled suite looks at: only the contract catches it.
#[test]
fn the_demo_contract_catches_a_dropped_field_no_assertion_looks_at() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let out = preflight()
        .args(["demo", "--no-progress", "--json"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let passed = read_json(&report);
    let contract_checks =
        passed["flows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["steps"].as_array().unwrap())
            .filter(|s| {
                s["assertions"].as_array().unwrap().iter().any(|a| {
                    a["subject"] == "openapi" && a["op"] == "schema" && a["passed"] == true
                })
            })
            .count();
    assert!(
        contract_checks >= 8,
        "{contract_checks} steps checked against the contract"
    );
    assert_eq!(
        passed["warnings"],
        json!([]),
        "every demo request is documented"
    );

    let out = preflight()
        .args([
            "demo",
            "--no-progress",
            "--fault",
            "contract-drift",
            "--json",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("failed at step 'order is paid'"),
        "{stdout}"
    );
    let report = read_json(&report);
    let failed = failures(&report);
    assert_eq!(
        failed,
        [(
            "guest checkout".to_string(),
            "order is paid".to_string(),
            "openapi".to_string(),
            "schema".to_string(),
            "/currency: \"currency\" is a required property".to_string(),
            "\"#/components/schemas/Order/required\"".to_string(),
        )],
        "only the contract check fails"
    );
}

/// The `init --from-openapi` example of docs/openapi.md, run as written: the command's output
/// and the flow file it writes are the page's, and the draft passes `check`.
#[test]
fn the_documented_draft_is_what_init_writes() {
    let block =
        |lang: &str, first_line: &str| binary::doc_block("docs/openapi.md", lang, first_line);
    let spec = block("yaml", "# smoke-tests/openapi.yaml");
    let command = block("sh", "preflight init --from-openapi");
    let output = block("console", "wrote api-gate/preflight.toml");
    let flow = block("toml", "# The GET operations of `orders`");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.yaml"), spec).unwrap();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = preflight()
        .current_dir(dir.path())
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), output);
    assert_eq!(read(dir.path().join("api-gate/orders.toml")), flow);
    let (code, text) = check(&dir.path().join("api-gate"));
    assert_eq!(code, 0, "{text}");

    // The README shows the same command, and `check` on its result, which passed above.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "```sh\n{}   # one flow per tag, one step per GET\npreflight check api-gate\n```",
            command.trim()
        )),
        "README's init --from-openapi example differs from docs/openapi.md"
    );
}

/// Header parameters: one that decides where or how a request goes (`Host`,
/// `Content-Length`), one that is no valid header name, or whose example is no valid value,
/// skips its operation; `Accept`, `Content-Type` and `Authorization` are ignored, as OpenAPI
/// says. A response schema the contract check could not compile is refused, nothing written.
#[test]
fn header_parameters_and_schemas_that_would_not_pass_check_are_never_drafted() {
    let op = |name: &str, header: &str, example: &str| {
        format!(
            "  /{name}:\n    get:\n      parameters:\n        - {{name: {header}, in: header, required: true, example: {example}}}\n      responses: {{200: {{description: x}}}}\n"
        )
    };
    let doc = format!(
        "openapi: 3.0.3\ninfo: {{title: x, version: '1'}}\npaths:\n{}{}{}{}{}{}",
        op("host", "Host", "evil.example"),
        op("length", "Content-Length", "99"),
        op("spaced", "\"x y\"", "v"),
        op("broken", "x-h", "\"a\\r\\nx-injected: 1\""),
        op("accept", "Accept", "text/html"),
        op("fine", "X-Tenant", "blue"),
    );
    let (dir, code, text) = init_with("openapi.yaml", &doc);
    assert_eq!(code, 0, "{text}");
    for skipped in [
        "GET /host: header parameter `Host` decides where or how the request is sent",
        "GET /length: header parameter `Content-Length` decides where or how the request is sent",
        "GET /spaced: header parameter `x y` is not a valid header name",
        "GET /broken: the example of header parameter `x-h` is not a valid header value",
    ] {
        assert!(text.contains(skipped), "{skipped}\n{text}");
    }
    let suite = dir.path().join("suite");
    let (code, checked) = check(&suite);
    assert_eq!(code, 0, "{checked}");
    assert!(checked.contains("2 steps"), "{checked}");
    let flows = format!(
        "{}{}",
        read(suite.join("accept.toml")),
        read(suite.join("fine.toml"))
    );
    assert!(
        flows.contains("headers = { \"x-tenant\" = \"blue\" }"),
        "{flows}"
    );
    assert!(!flows.contains("text/html"), "{flows}");

    for schema in [
        r#""hello""#,
        r#"{type: strang}"#,
        r#"{type: string, pattern: "(("}"#,
    ] {
        let doc = format!(
            "openapi: 3.0.3\ninfo: {{title: x, version: '1'}}\npaths:\n  /a:\n    get:\n      responses:\n        200: {{description: x, content: {{application/json: {{schema: {schema}}}}}}}\n"
        );
        let (dir, code, text) = init_with("openapi.yaml", &doc);
        assert_eq!(code, 2, "{schema}: {text}");
        assert!(
            text.contains("the schema cannot be used"),
            "{schema}: {text}"
        );
        assert!(!dir.path().join("suite").exists(), "{schema}: {text}");
    }
}

/// An example number too large to be read exactly, or a path key with a `..` segment, is
/// not drafted (either would send another request than the document's); a byte order mark
/// before the document is no problem.
#[test]
fn examples_and_paths_it_cannot_send_as_written_are_skipped() {
    let doc = "\u{feff}openapi: 3.0.3
info: {title: x, version: '1'}
paths:
  /orders/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}, example: 123456789012345678901234567890}]
      responses: {200: {description: x}}
  /a/../admin:
    get:
      responses: {200: {description: x}}
  /b/%2e%2e/admin:
    get:
      responses: {200: {description: x}}
  /fine/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}, example: 9007199254740991}]
      responses: {200: {description: x}}
";
    let (dir, code, text) = init_with("openapi.yaml", doc);
    assert_eq!(code, 0, "{text}");
    for skipped in [
        "GET /orders/{id}: path parameter `id`: its example is not a single value preflight can send as written",
        "GET /a/../admin: the path has a `.` or `..` segment",
        "GET /b/%2e%2e/admin: the path has a `.` or `..` segment",
    ] {
        assert!(text.contains(skipped), "{skipped}\n{text}");
    }
    let flow = read(dir.path().join("suite/fine.toml"));
    assert!(flow.contains("path = \"/fine/9007199254740991\""), "{flow}");
}
