//! TLS material and the reqwest client built from it: the small layer below `suite` and
//! `engine`. The suite loader builds a client with each certificate or key it reads, so that
//! whatever rustls would reject at run time is an invalid suite (exit 2), not a failed run;
//! the engine builds the one client of a run with the same function.

use std::error::Error as StdError;

/// TLS options, validated at load time (files exist and parse).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub insecure: bool,
    /// Extra trusted roots (PEM bundle).
    pub ca_cert: Option<Vec<u8>>,
    /// Client certificate and key (PEM, concatenated) for mutual TLS.
    pub identity: Option<Vec<u8>>,
}

/// The reqwest client for these TLS settings. Proxies come from `HTTP_PROXY`, `HTTPS_PROXY`
/// and `NO_PROXY` (reqwest's system proxy); redirects are followed by the engine itself.
pub fn client(tls: &TlsSettings) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let failed = |e: reqwest::Error| error_chain(&e);
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("preflight/", env!("CARGO_PKG_VERSION")))
        .tls_danger_accept_invalid_certs(tls.insecure);
    if let Some(pem) = &tls.ca_cert {
        builder =
            builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem).map_err(failed)?);
    }
    if let Some(pem) = &tls.identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem).map_err(failed)?);
    }
    builder.build().map_err(failed)
}

/// The whole cause chain on one line, without reqwest's and hyper's generic wrappers, so the
/// real reason (a refused port, a certificate, a reset) is always visible.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        let generic = text.starts_with("error sending request")
            || text.starts_with("client error (")
            || text == "builder error"
            || text.starts_with("error decoding response body")
            || text.starts_with("request or response body error");
        if !generic && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// rustls needs one process-wide crypto provider; ring builds fast and small.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
