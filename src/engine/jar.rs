//! A flow's cookie jar: the cookies its responses set, sent back on its later requests under
//! the rules browsers follow (domain, path, expiry, `Secure`), as `cookie_store` applies them.
//!
//! It is preflight's own rather than reqwest's `cookies` feature: that feature puts a layer in
//! front of every request that parses the request's URL again (about 6 K instructions a
//! request, 7% of a step's CPU), even though preflight hands cookies to each hop itself.

use reqwest::header::HeaderValue;
use std::sync::{Mutex, PoisonError};
use url::Url;

#[derive(Default)]
pub struct Jar(Mutex<cookie_store::CookieStore>);

impl Jar {
    /// Stores the cookies of a response's `Set-Cookie` headers; one that cannot be parsed is
    /// ignored, as a browser ignores it.
    pub fn set_cookies<'a>(&self, headers: impl Iterator<Item = &'a HeaderValue>, url: &Url) {
        let cookies = headers.filter_map(|value| {
            let text = std::str::from_utf8(value.as_bytes()).ok()?;
            cookie::Cookie::parse(text)
                .ok()
                .map(cookie::Cookie::into_owned)
        });
        self.store().store_response_cookies(cookies, url);
    }

    /// The `Cookie` header for a request to `url`, when a stored cookie applies to it.
    pub fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        let pairs: Vec<String> = self
            .store()
            .get_request_values(url)
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        HeaderValue::from_str(&pairs.join("; ")).ok()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, cookie_store::CookieStore> {
        // A panic while the store was held leaves it as consistent as the store keeps it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
