//! TLS settings (`insecure`, `ca_cert`, `client_cert`, `client_key`; files
//! the suite names must exist and parse, errors show their whole cause chain) and HTTP/2 over
//! TLS, against real rustls servers on 127.0.0.1 with certificates made by the test.

mod hermetic;
mod support;

use preflight::engine::{self, RunOptions};
use preflight::redact::Redactor;
use preflight::verdict::{Verdict, judge};
use std::sync::Arc;
use support::{Outcome, Pki, Server, Suite, preflight, run, settings};

/// A suite against `server` with `extra` settings, the server CA at `certs/ca.pem`, the client
/// CA at `certs/client-ca.pem` and the client certificate and key at `certs/client.pem` and
/// `certs/client-key.pem` (whether they are used is up to `extra`).
fn suite(pki: &Pki, server: &Server, extra: &str, expect_body: Option<&str>) -> Suite {
    let suite = Suite::new(&settings(&server.url, extra), expect_body);
    suite
        .write("certs/ca.pem", pki.ca_pem())
        .write("certs/client-ca.pem", pki.client_ca_pem())
        .write("certs/client.pem", &pki.client.cert_pem)
        .write("certs/client-key.pem", &pki.client.key_pem);
    suite
}

#[track_caller]
fn assert_passed(outcome: &Outcome) {
    assert_eq!(
        (outcome.code, outcome.verdict()),
        (0, "pass"),
        "the gate should pass: {outcome:#?}"
    );
}

#[track_caller]
fn assert_failed(outcome: &Outcome) {
    assert_eq!(
        (outcome.code, outcome.verdict()),
        (1, "fail"),
        "the gate should fail: {outcome:#?}"
    );
}

/// Exit 2, the problem shown with its place in `preflight.toml`, and no report written.
#[track_caller]
fn assert_invalid(outcome: &Outcome, message: &str, key_line: usize) {
    let output = outcome.output();
    assert_eq!(outcome.code, 2, "the suite should be invalid: {outcome:#?}");
    assert!(
        output.contains(message),
        "the problem should say `{message}`: {output}"
    );
    assert!(
        output.contains(&format!("preflight.toml:{key_line}:")),
        "the problem should point at preflight.toml line {key_line}: {output}"
    );
    assert!(
        outcome.report.is_none(),
        "no report on an invalid suite: {outcome:#?}"
    );
}

// ----- server authentication -----

#[tokio::test]
async fn an_untrusted_server_certificate_fails_the_gate_and_names_the_cause() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "", None);

    let outcome = run(&suite, preflight()).await;

    assert_failed(&outcome);
    let error = outcome.probe_error();
    assert!(
        error.starts_with("tls handshake failed: "),
        "the documented wording, got `{error}`"
    );
    assert!(
        error.contains("UnknownIssuer") && error.to_lowercase().contains("certificate"),
        "the step error should show the certificate cause, got `{error}`"
    );
    assert!(
        error != "request failed" && !error.ends_with("request failed"),
        "a generic message hides the cause: `{error}`"
    );
    assert!(
        outcome.stdout.contains("UnknownIssuer"),
        "the terminal summary should show the cause too: {outcome:#?}"
    );
    assert!(
        server.log.requests().is_empty(),
        "no request may reach an untrusted server: {:?}",
        server.log.requests()
    );
}

/// In process, through the library: the verdict itself. (This reads the test process's own
/// proxy variables; the binary tests run with them removed.)
#[tokio::test]
async fn an_untrusted_server_certificate_fails_the_verdict_in_process() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "", None);

    let plan = Arc::new(suite.load());
    let redactor = Arc::new(Redactor::new(plan.secrets.values()));
    let result = engine::run(plan.clone(), redactor, RunOptions::default()).await;
    let verdict = judge(&result, &plan.settings.gate);

    assert!(
        matches!(verdict, Verdict::Failed(_)),
        "verdict should be Failed, got {verdict:?}"
    );
    let step = &result.flows[0].steps[0];
    let error = step.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("invalid peer certificate") && error.contains("UnknownIssuer"),
        "the step error should carry the rustls cause, got {step:#?}"
    );
}

#[tokio::test]
async fn ca_cert_makes_the_test_ca_trusted() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(
        &pki,
        &server,
        "ca_cert = \"certs/ca.pem\"\n",
        Some("proto=http/1.1"),
    );

    let outcome = run(&suite, preflight()).await;

    assert_passed(&outcome);
    assert_eq!(server.log.requests(), ["http/1.1 GET /probe"]);
}

#[tokio::test]
async fn ca_cert_of_another_ca_does_not_trust_the_server() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "ca_cert = \"certs/client-ca.pem\"\n", None);

    let outcome = run(&suite, preflight()).await;

    assert_failed(&outcome);
    let error = outcome.probe_error();
    assert!(error.contains("UnknownIssuer"), "got `{error}`");
}

#[tokio::test]
async fn insecure_accepts_an_untrusted_certificate() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "insecure = true\n", Some("proto=http/1.1"));

    let outcome = run(&suite, preflight()).await;

    assert_passed(&outcome);
    assert_eq!(server.log.requests(), ["http/1.1 GET /probe"]);
}

// ----- mutual TLS -----

#[tokio::test]
async fn mutual_tls_without_a_client_certificate_fails_with_the_handshake_cause() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, false)).await;
    let suite = suite(&pki, &server, "ca_cert = \"certs/ca.pem\"\n", None);

    let outcome = run(&suite, preflight()).await;

    assert_failed(&outcome);
    let error = outcome.probe_error();
    assert!(
        error.contains("alert") && error.contains("CertificateRequired"),
        "the step error should show the server's TLS alert, got `{error}`"
    );
    assert!(
        server.log.requests().is_empty(),
        "the server must not answer without a client certificate: {:?}",
        server.log.requests()
    );
    assert!(
        !server.log.refused().is_empty(),
        "the server should have refused the handshake"
    );
}

#[tokio::test]
async fn mutual_tls_with_client_cert_and_key_passes() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, false)).await;
    let suite = suite(
        &pki,
        &server,
        "ca_cert = \"certs/ca.pem\"\nclient_cert = \"certs/client.pem\"\nclient_key = \"certs/client-key.pem\"\n",
        Some("client-cert=present"),
    );

    let outcome = run(&suite, preflight()).await;

    assert_passed(&outcome);
    assert_eq!(server.log.requests(), ["http/1.1 GET /probe"]);
    assert!(
        server.log.refused().is_empty(),
        "{:?}",
        server.log.refused()
    );
}

#[tokio::test]
async fn mutual_tls_with_a_certificate_the_server_does_not_trust_fails() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, false)).await;
    // The server's own certificate: a valid certificate, but not from the client CA.
    let suite = suite(
        &pki,
        &server,
        "ca_cert = \"certs/ca.pem\"\nclient_cert = \"certs/other.pem\"\nclient_key = \"certs/other-key.pem\"\n",
        None,
    );
    suite
        .write("certs/other.pem", &pki.server.cert_pem)
        .write("certs/other-key.pem", &pki.server.key_pem);

    let outcome = run(&suite, preflight()).await;

    assert_failed(&outcome);
    let error = outcome.probe_error();
    assert!(
        error.contains("alert"),
        "the step error should show the server's TLS alert, got `{error}`"
    );
    assert!(server.log.requests().is_empty());
}

// ----- invalid TLS settings (exit 2, nothing is sent) -----

#[tokio::test]
async fn client_cert_without_client_key_is_an_invalid_suite() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, false)).await;
    // settings() writes 3 lines; ca_cert is line 4, client_cert line 5.
    let suite = suite(
        &pki,
        &server,
        "ca_cert = \"certs/ca.pem\"\nclient_cert = \"certs/client.pem\"\n",
        None,
    );

    let outcome = run(&suite, preflight()).await;

    assert_invalid(
        &outcome,
        "mutual TLS needs both `client_cert` and `client_key`",
        5,
    );
    assert!(server.log.requests().is_empty() && server.log.refused().is_empty());
    let checked = support::check(&suite).await;
    assert_eq!(checked.code, 2, "`check` agrees: {checked:#?}");
}

#[tokio::test]
async fn client_key_without_client_cert_is_an_invalid_suite() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, false)).await;
    let suite = suite(
        &pki,
        &server,
        "client_key = \"certs/client-key.pem\"\n",
        None,
    );

    let outcome = run(&suite, preflight()).await;

    assert_invalid(
        &outcome,
        "mutual TLS needs both `client_cert` and `client_key`",
        4,
    );
}

#[tokio::test]
async fn a_client_key_that_does_not_parse_is_an_invalid_suite() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, false)).await;
    let suite = suite(
        &pki,
        &server,
        "client_cert = \"certs/client.pem\"\nclient_key = \"certs/bad-key.pem\"\n",
        None,
    );
    suite.write("certs/bad-key.pem", "not a key\n");

    let outcome = run(&suite, preflight()).await;

    assert_eq!(outcome.code, 2, "{outcome:#?}");
    assert!(outcome.output().contains("preflight.toml:"), "{outcome:#?}");
    assert!(server.log.requests().is_empty() && server.log.refused().is_empty());
}

#[tokio::test]
async fn a_client_key_that_does_not_match_the_certificate_is_an_invalid_suite() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, false)).await;
    // Both files parse, but the key is the server's, not the client certificate's.
    let suite = suite(
        &pki,
        &server,
        "ca_cert = \"certs/ca.pem\"\nclient_cert = \"certs/client.pem\"\nclient_key = \"certs/other-key.pem\"\n",
        None,
    );
    suite.write("certs/other-key.pem", &pki.server.key_pem);

    let outcome = run(&suite, preflight()).await;

    // the files must make an identity, or the suite is invalid; the cause is shown.
    assert_invalid(&outcome, "KeyMismatch", 5);
    assert!(server.log.requests().is_empty() && server.log.refused().is_empty());
}

#[tokio::test]
async fn a_ca_cert_that_is_not_pem_is_an_invalid_suite() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "ca_cert = \"certs/garbage.pem\"\n", None);
    suite.write("certs/garbage.pem", "this is not a certificate\n");

    let outcome = run(&suite, preflight()).await;

    assert_invalid(&outcome, "certs/garbage.pem", 4);
    assert!(server.log.requests().is_empty() && server.log.refused().is_empty());
    let checked = support::check(&suite).await;
    assert_eq!(checked.code, 2, "`check` agrees: {checked:#?}");
}

#[tokio::test]
async fn a_ca_cert_pem_with_a_broken_certificate_is_an_invalid_suite() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "ca_cert = \"certs/broken.pem\"\n", None);
    suite.write(
        "certs/broken.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );

    let outcome = run(&suite, preflight()).await;

    // PEM armour around bytes that are no X.509 certificate: the contract says the file must parse.
    assert_invalid(&outcome, "certs/broken.pem", 4);
    assert!(outcome.output().contains("BadEncoding"), "{outcome:#?}");
    assert!(server.log.requests().is_empty() && server.log.refused().is_empty());
}

#[tokio::test]
async fn a_missing_ca_cert_file_is_an_invalid_suite() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "ca_cert = \"certs/missing.pem\"\n", None);

    let outcome = run(&suite, preflight()).await;

    assert_invalid(&outcome, "certs/missing.pem", 4);
    assert!(server.log.requests().is_empty() && server.log.refused().is_empty());
}

// ----- HTTP/2 -----

#[tokio::test]
async fn http2_is_used_when_the_server_offers_it_by_alpn() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, true)).await;
    let suite = suite(
        &pki,
        &server,
        "ca_cert = \"certs/ca.pem\"\n",
        Some("proto=h2"),
    );

    let outcome = run(&suite, preflight()).await;

    assert_passed(&outcome);
    assert_eq!(server.log.requests(), ["h2 GET /probe"]);
}

#[tokio::test]
async fn http2_works_with_mutual_tls() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(true, true)).await;
    let suite = suite(
        &pki,
        &server,
        "ca_cert = \"certs/ca.pem\"\nclient_cert = \"certs/client.pem\"\nclient_key = \"certs/client-key.pem\"\n",
        Some("proto=h2 client-cert=present"),
    );

    let outcome = run(&suite, preflight()).await;

    assert_passed(&outcome);
    assert_eq!(server.log.requests(), ["h2 GET /probe"]);
}

// ----- root certificates: read at the first handshake, never skipped -----

/// The machine's root certificates replaced by none at all: `SSL_CERT_FILE` names a file that
/// does not exist and `SSL_CERT_DIR` an empty folder (rustls-native-certs then reads only them).
fn without_system_roots(cmd: &mut assert_cmd::Command, empty: &std::path::Path) {
    cmd.env("SSL_CERT_FILE", empty.join("none.pem"))
        .env("SSL_CERT_DIR", empty);
}

#[tokio::test]
async fn an_https_url_known_only_from_a_capture_is_verified_too() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let pki = Pki::new();
    let untrusted = Server::tls(pki.server_config(false, false)).await;
    // The base URL is plain http: nothing before the run says that it will reach https.
    let start = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/start"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "next": format!("{}/probe", untrusted.url) })),
        )
        .expect(1)
        .mount(&start)
        .await;
    let suite = Suite::new(&settings(&start.uri(), ""), None);
    suite.write(
        "probe.toml",
        "name = \"probe\"\n\n[[step]]\nname = \"start\"\npath = \"/start\"\n\
         [step.expect]\nstatus = 200\n[step.capture]\nnext = \"$.next\"\n\n\
         [[step]]\nname = \"follow\"\nurl = \"{{ next }}\"\n[step.expect]\nstatus = 200\n",
    );

    let outcome = run(&suite, preflight()).await;

    assert_failed(&outcome);
    let report = outcome.report.as_ref().expect("a report");
    let error = report["flows"][0]["steps"][1]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.starts_with("tls handshake failed: ") && error.contains("UnknownIssuer"),
        "the captured https URL is verified like any other, got `{error}`: {report:#}"
    );
    assert!(
        untrusted.log.requests().is_empty(),
        "no request may reach an untrusted server: {:?}",
        untrusted.log.requests()
    );
}

#[tokio::test]
async fn a_plain_http_run_needs_no_root_certificates() {
    let server = Server::plain().await;
    let suite = Suite::new(&settings(&server.url, ""), None);
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = preflight();
    without_system_roots(&mut cmd, empty.path());

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(server.log.requests().len(), 1, "{outcome:#?}");
}

#[tokio::test]
async fn without_root_certificates_an_https_run_fails_closed() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "", None);
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = preflight();
    without_system_roots(&mut cmd, empty.path());

    let outcome = run(&suite, cmd).await;

    assert_failed(&outcome);
    let error = outcome.probe_error();
    assert!(
        error.starts_with("tls handshake failed: ") && error.contains("No CA certificates"),
        "the handshake fails, saying why, got `{error}`"
    );
    assert!(
        server.log.requests().is_empty(),
        "{:?}",
        server.log.requests()
    );
}

#[tokio::test]
async fn ca_cert_alone_is_enough_without_system_roots() {
    let pki = Pki::new();
    let server = Server::tls(pki.server_config(false, false)).await;
    let suite = suite(&pki, &server, "ca_cert = \"certs/ca.pem\"\n", None);
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = preflight();
    without_system_roots(&mut cmd, empty.path());

    let outcome = run(&suite, cmd).await;

    assert_passed(&outcome);
    assert_eq!(server.log.requests().len(), 1, "{outcome:#?}");
}
