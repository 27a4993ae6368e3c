//! TLS material and the reqwest client built from it: the small layer below `suite` and
//! `engine`. The suite loader builds a client with each certificate or key it reads, so that
//! whatever rustls would reject at run time is an invalid suite (exit 2), not a failed run;
//! the engine builds the one client of a run with the same function.
//!
//! The system's root certificates are read at the first TLS handshake, not when the client is
//! built: reading them costs about 5 ms (hundreds of files), which a run against plain
//! `http://` never needs, and whether a run reaches `https://` is not always known before it
//! (a URL can come from a capture, a redirect or an `https://` proxy). Every handshake still
//! verifies the server against them: it waits until they are read, and fails when they cannot
//! be.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};

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
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("preflight/", env!("CARGO_PKG_VERSION")));
    let builder = if tls.insecure {
        // Nothing is verified: reqwest's own set-up, which reads no roots either.
        let mut builder = builder.tls_danger_accept_invalid_certs(true);
        if let Some(pem) = &tls.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(failed)?;
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(pem) = &tls.identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem).map_err(failed)?);
        }
        builder
    } else {
        builder.tls_backend_preconfigured(verified_config(tls)?)
    };
    builder.build().map_err(failed)
}

/// The rustls configuration reqwest would build (TLS 1.2 and 1.3, ALPN `h2` then
/// `http/1.1`, SNI), but with [`LazyRoots`] as the verifier. `ca_cert` and the identity are
/// checked here, so that a file rustls rejects is still found when the suite is loaded.
fn verified_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, String> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let extra_roots = match &tls.ca_cert {
        Some(pem) => CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("invalid certificate encoding: {e}"))?,
        None => Vec::new(),
    };
    // What the verifier will do with them at the first handshake, done now.
    let mut store = rustls::RootCertStore::empty();
    for cert in &extra_roots {
        store.add(cert.clone()).map_err(|e| e.to_string())?;
    }
    let verifier = Arc::new(LazyRoots {
        extra_roots,
        provider: provider.clone(),
        verifier: OnceLock::new(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.identity {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("invalid client certificate: {e}"))?;
            if certs.is_empty() {
                return Err("no certificate in the client certificate file".into());
            }
            let key = PrivateKeyDer::from_pem_slice(pem)
                .map_err(|e| format!("no usable private key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies servers as reqwest does (the platform verifier: the system's roots plus
/// `ca_cert`), building that verifier at the first handshake. A failure to read the roots is
/// kept, and fails that handshake and every later one.
#[derive(Debug)]
struct LazyRoots {
    extra_roots: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyRoots {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new_with_extra_roots(
                    self.extra_roots.iter().cloned(),
                    self.provider.clone(),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    /// Asked for every ClientHello, before any certificate is seen: the provider's schemes,
    /// which is what the platform verifier answers too, without reading the roots.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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
