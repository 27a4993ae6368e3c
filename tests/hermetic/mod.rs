//! The environment variables that change how the real binary runs. Tests that start it remove
//! them, so that the machine running the tests (a proxy, a colour setting, a base URL, a CI job
//! summary) can never change an outcome.

pub const CLEARED_ENV: &[&str] = &[
    "PREFLIGHT_BASE_URL",
    "PREFLIGHT_TEST_SECRET",
    "PREFLIGHT_TEST_UNSET_VAR",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "GITHUB_STEP_SUMMARY",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "RUST_LOG",
    "CI_NODE_INDEX",
    "CI_NODE_TOTAL",
    "BUILDKITE_PARALLEL_JOB",
    "BUILDKITE_PARALLEL_JOB_COUNT",
    "CIRCLE_NODE_INDEX",
    "CIRCLE_NODE_TOTAL",
    "JOB_COMPLETION_INDEX",
];
