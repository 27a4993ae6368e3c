//! The one HTTP client: redirects, cookies per flow, the body limit and the timeout.
//!
//! Redirects are followed here rather than by reqwest so that each hop goes through the
//! flow's own cookie jar while every flow shares one connection pool, and so that credentials
//! are dropped on a cross-origin hop.

use super::jar::Jar;
use crate::suite::TlsSettings;
pub use crate::tls::{error_chain, install_crypto_provider};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use std::error::Error as StdError;
use std::time::{Duration, Instant};
use url::Url;

/// At most this many redirects are followed; the next one fails the step.
pub const MAX_REDIRECTS: usize = 10;

/// A request ready to send: templates rendered, URL built.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    /// Headers whose value holds a secret: like credentials, they never cross origins.
    pub secret_headers: Vec<header::HeaderName>,
    /// The body holds a secret (rendered from a `secret.` placeholder or a secret capture, or
    /// holding a value the redactor knows): a redirect that would resend it to another origin
    /// (307, 308, and 301/302 after a method other than POST) fails the step instead.
    pub secret_body: bool,
}

/// What came back, after redirects, with the body read whole (within the limit).
#[derive(Debug)]
pub struct Exchange {
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub latency: Duration,
}

/// Why a request could not complete. Each message carries the whole cause chain.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("connect failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (certificate, protocol, client certificate refused): the
    /// server never saw an HTTP request it could act on.
    #[error("tls handshake failed: {0}")]
    Tls(String),
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("response body over the {limit}-byte limit (max_body)")]
    BodyTooLarge { limit: u64 },
    #[error("too many redirects (more than {MAX_REDIRECTS})")]
    TooManyRedirects,
    #[error("invalid redirect: {0}")]
    BadRedirect(String),
    /// A redirect that would resend a body holding a secret to another origin: not followed.
    #[error("redirect not followed: {0}")]
    RefusedRedirect(String),
    #[error("request failed: {0}")]
    Other(String),
    /// The run was stopped (deadline, signal) while the request was in flight.
    #[error("{0}")]
    Stopped(String),
}

/// Options of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_body: u64,
    pub follow_redirects: bool,
}

#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// The client of a run. Proxies come from `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`
    /// (reqwest's system proxy); HTTP/2 is used when a TLS server offers it.
    pub fn new(tls: &TlsSettings) -> Result<Http, String> {
        crate::tls::client(tls)
            .map(|client| Http { client })
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }

    /// Sends `request` and reads the whole response, within `limits.timeout`.
    pub async fn exchange(
        &self,
        request: Request,
        jar: &Jar,
        limits: Limits,
    ) -> Result<Exchange, RequestError> {
        let started = Instant::now();
        match tokio::time::timeout(limits.timeout, self.follow(request, jar, limits, started)).await
        {
            Ok(result) => result,
            Err(_) => Err(RequestError::Timeout(limits.timeout)),
        }
    }

    async fn follow(
        &self,
        mut request: Request,
        jar: &Jar,
        limits: Limits,
        started: Instant,
    ) -> Result<Exchange, RequestError> {
        let mut hops = 0;
        loop {
            let mut headers = request.headers.clone();
            if let Some(jar_cookies) = jar.cookies(&request.url) {
                let merged = match headers.get(header::COOKIE).and_then(|v| v.to_str().ok()) {
                    Some(own) => HeaderValue::from_str(&format!(
                        "{own}; {}",
                        jar_cookies.to_str().unwrap_or_default()
                    ))
                    .unwrap_or(jar_cookies),
                    None => jar_cookies,
                };
                headers.insert(header::COOKIE, merged);
            }
            let mut builder = self
                .client
                .request(request.method.clone(), request.url.clone())
                .headers(headers);
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            let mut response = builder.send().await.map_err(|e| match classify(e) {
                // The first hop was sent already: for retries this is not "nothing was sent",
                // whether the next hop's connection or its TLS handshake failed.
                RequestError::Connect(chain) if hops > 0 => {
                    RequestError::Other(format!("redirect target: connect failed: {chain}"))
                }
                RequestError::Tls(chain) if hops > 0 => {
                    RequestError::Other(format!("redirect target: tls handshake failed: {chain}"))
                }
                other => other,
            })?;
            jar.set_cookies(
                response.headers().get_all(header::SET_COOKIE).iter(),
                &request.url,
            );

            let status = response.status();
            let location = response.headers().get(header::LOCATION).cloned();
            if limits.follow_redirects
                && status.is_redirection()
                && let Some(location) = location
            {
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(RequestError::TooManyRedirects);
                }
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|l| request.url.join(l).ok())
                    .ok_or_else(|| {
                        // As text, not `{:?}`: its `\u{308}` and `\xE4` escapes would
                        // split a secret where the masking cannot find it. Reporters
                        // escape control characters themselves.
                        let shown = String::from_utf8_lossy(location.as_bytes());
                        RequestError::BadRedirect(format!("bad Location `{shown}`"))
                    })?;
                request = redirected(request, next, status)?;
                continue;
            }
            let body = read_limited(&mut response, limits.max_body).await?;
            return Ok(Exchange {
                url: request.url,
                status,
                headers: response.headers().clone(),
                body,
                latency: started.elapsed(),
            });
        }
    }
}

/// The request for the next hop: method and body as browsers do, credentials dropped when
/// the origin changes (the jar applies its own domain rules to cookies). A body holding a
/// secret is never resent to another origin: such a hop is an error, before anything is sent.
fn redirected(
    mut request: Request,
    next: Url,
    status: StatusCode,
) -> Result<Request, RequestError> {
    let cross_origin = next.origin() != request.url.origin();
    if cross_origin {
        for name in [
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]
        .iter()
        .chain(&request.secret_headers)
        {
            request.headers.remove(name);
        }
    }
    let to_get = status == StatusCode::SEE_OTHER
        || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
            && request.method == Method::POST);
    if to_get && request.method != Method::HEAD {
        request.method = Method::GET;
        request.body = None;
        request.headers.remove(header::CONTENT_TYPE);
        request.headers.remove(header::CONTENT_LENGTH);
    }
    // What keeps the body (307, 308, and 301/302 after a method other than POST) would send
    // it to the new origin as it is.
    if cross_origin && request.secret_body && request.body.is_some() {
        // The caller masks the text by value; a password in the URL is `***` here already.
        return Err(RequestError::RefusedRedirect(format!(
            "{} to `{}` changes the origin (scheme, host or port), and the request body \
             holds a secret, which is never resent to another origin",
            status.as_u16(),
            crate::redact::shown_url(&next)
        )));
    }
    request.url = next;
    Ok(request)
}

/// Reads the body chunk by chunk and stops as soon as it is over the limit, so a huge
/// response is never buffered whole.
async fn read_limited(
    response: &mut reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, RequestError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(RequestError::BodyTooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(RequestError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(error: reqwest::Error) -> RequestError {
    // The URL may hold secrets; the caller shows its own masked form of it.
    let error = error.without_url();
    let chain = error_chain(&error);
    if is_tls(&error) {
        RequestError::Tls(chain)
    } else if error.is_connect() {
        RequestError::Connect(chain)
    } else if never_sent(&error) {
        // Nothing reached the server, as with a connection that could not be made: a POST may
        // be tried again.
        RequestError::Connect(format!(
            "the connection was closed or reset before the request was sent ({chain})"
        ))
    } else {
        RequestError::Other(chain)
    }
}

/// Whether hyper gave the request back without writing any of it (a new connection closed or
/// reset before it was ready, or closed with the request still queued): hyper's "canceled".
fn never_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Whether rustls is somewhere in the cause chain: a certificate or handshake problem.
fn is_tls(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        // rustls errors travel inside (nested) io::Errors, whose `source()` skips what they wrap.
        let mut inner: &(dyn StdError + 'static) = e;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if e.is::<rustls::Error>() || inner.is::<rustls::Error>() {
            return true;
        }
        current = e.source();
    }
    false
}
