//! Data-driven flows (`each`), through the real binary against wiremock on 127.0.0.1: one run
//! per row with the row's values as variables, named after the row everywhere.

mod binary;
mod hermetic;

use binary::{preflight, run_all, suite};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FLOW: &str = r#"name = "guest checkout"
each = [{ currency = "EUR" }, { currency = "USD" }]

[vars]
currency = "GBP"

[[step]]
name = "price"
path = "/price"
query = { currency = "{{ currency }}" }
"#;

async fn staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/price"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// The `currency` query of each request, in arrival order, sorted.
async fn currencies(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.expect("recording is on");
    let mut seen: Vec<String> = requests
        .iter()
        .flat_map(|r| r.url.query_pairs())
        .filter(|(k, _)| k == "currency")
        .map(|(_, v)| v.into_owned())
        .collect();
    seen.sort();
    seen
}

fn flow_names(report: &serde_json::Value) -> Vec<&str> {
    report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_row_runs_with_its_values_and_is_named_after_them() {
    let server = staging().await;
    let dir = suite(&server.uri(), "", &[("checkout.toml", FLOW)]);
    let out = run_all(dir.path(), &[], &[]).await;

    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(currencies(&server).await, ["EUR", "USD"]);
    let report = out.report();
    assert_eq!(
        flow_names(&report),
        [
            "guest checkout [currency=EUR]",
            "guest checkout [currency=USD]"
        ]
    );
    assert!(
        out.junit
            .contains("<testsuite name=\"guest checkout [currency=USD]\""),
        "{}",
        out.junit
    );
    assert!(
        out.markdown.contains(r"guest checkout \[currency=USD\]"),
        "{}",
        out.markdown
    );
    assert!(
        out.stdout.contains("GATE PASSED: 2 flows"),
        "{}",
        out.stdout
    );

    let listed = preflight().arg("list").arg(dir.path()).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("guest checkout [currency=EUR]"), "{listed}");
    assert!(listed.contains("guest checkout [currency=USD]"), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn flow_selects_every_row_by_the_flows_name_or_one_row_by_its_name() {
    let server = staging().await;
    // `[[each]]` tables are the same rows as the inline array.
    let tables = FLOW.replace(
        "each = [{ currency = \"EUR\" }, { currency = \"USD\" }]\n",
        "",
    ) + "\n[[each]]\ncurrency = \"EUR\"\n\n[[each]]\ncurrency = \"USD\"\n";
    let dir = suite(&server.uri(), "", &[("checkout.toml", &tables)]);

    let all = run_all(dir.path(), &[], &["--flow", "guest checkout"]).await;
    assert_eq!(all.code, 0, "{}\n{}", all.stdout, all.stderr);
    assert_eq!(flow_names(&all.report()).len(), 2);
    assert_eq!(currencies(&server).await, ["EUR", "USD"]);

    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/price"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let one = run_all(
        dir.path(),
        &[],
        &["--flow", "guest checkout [currency=USD]"],
    )
    .await;
    assert_eq!(one.code, 0, "{}\n{}", one.stdout, one.stderr);
    assert_eq!(flow_names(&one.report()), ["guest checkout [currency=USD]"]);
    assert_eq!(currencies(&server).await, ["USD"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn equal_rows_are_a_located_problem() {
    let server = staging().await;
    let twice = FLOW.replace("\"USD\"", "\"EUR\"");
    let dir = suite(&server.uri(), "", &[("checkout.toml", &twice)]);
    let out = preflight().arg("run").arg(dir.path()).output().unwrap();
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("two rows of `each` are the same: `guest checkout [currency=EUR]`"),
        "{shown}"
    );
    assert!(shown.contains("checkout.toml:2:"), "{shown}");
    assert!(currencies(&server).await.is_empty());

    let bad = FLOW.replace("{ currency = \"USD\" }", "{ \"no such\" = 1 }");
    let dir = suite(&server.uri(), "", &[("checkout.toml", &bad)]);
    let out = preflight().arg("check").arg(dir.path()).output().unwrap();
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("variable name `no such`"), "{shown}");
}
