//! The JUnit report agrees with the gate, through the binary: a PASS has no `<failure>` and
//! no `<error>` (a warned non-critical flow and a failed cleanup are visible, not failures),
//! and a failing step is counted once, not again by the `gate` testcase.

mod binary;
mod hermetic;

use binary::{run_all, suite};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs `preflight run` on a suite written from `flows`, returning the exit code and JUnit.
async fn junit_of(server: &MockServer, flows: &[(&str, &str)]) -> (i32, String) {
    let dir = suite(&server.uri(), "", flows);
    let out = run_all(dir.path(), &[], &[]).await;
    (out.code, out.junit)
}

async fn staging() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down"))
        .mount(&server)
        .await;
    server
}

const CRITICAL_OK: &str = "[[step]]\nname = \"ok\"\npath = \"/ok\"\n[[cleanup]]\nname = \"tidy\"\nmethod = \"DELETE\"\npath = \"/carts/1\"\n";
const NONCRITICAL_BROKEN: &str =
    "critical = false\n[[step]]\nname = \"recs\"\npath = \"/broken\"\n";
const CRITICAL_BROKEN: &str = "[[step]]\nname = \"pay\"\npath = \"/broken\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_pass_with_warnings_has_no_failure_in_junit() {
    let server = staging().await;
    let (code, xml) = junit_of(
        &server,
        &[("a.toml", CRITICAL_OK), ("b.toml", NONCRITICAL_BROKEN)],
    )
    .await;
    assert_eq!(code, 0, "{xml}");
    assert!(
        !xml.contains("<failure") && !xml.contains("<error"),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuites name=\"") && xml.contains("failures=\"0\" errors=\"0\""),
        "{xml}"
    );
    // Visible all the same: the warned step and the failed cleanup say what went wrong.
    assert!(
        xml.contains("<testcase name=\"recs\" classname=\"b\""),
        "{xml}"
    );
    assert!(xml.contains("<system-out>warning: request: GET"), "{xml}");
    assert!(xml.contains("<system-out>warning: cleanup failed"), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"b (non-critical)\""),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_is_counted_once() {
    let server = staging().await;
    let (code, xml) = junit_of(&server, &[("c.toml", CRITICAL_BROKEN)]).await;
    assert_eq!(code, 1, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("failures=\"1\" errors=\"0\""), "{xml}");
    assert!(!xml.contains("type=\"gate\""), "{xml}");
}
