//! A flow's cookie jar: the cookies its responses set, sent back on its later requests under
//! the rules browsers follow (domain, path, expiry, `Secure`), as `cookie_store` applies them.
//!
//! It is preflight's own rather than reqwest's `cookies` feature: that feature puts a layer in
//! front of every request that parses the request's URL again (about 6 K instructions a
//! request, 7% of a step's CPU), even though preflight hands cookies to each hop itself.

use cookie_store::StoreAction;
use reqwest::header::HeaderValue;
use std::sync::{Mutex, PoisonError};
use url::Url;

#[derive(Default)]
pub struct Jar(Mutex<cookie_store::CookieStore>);

impl Jar {
    /// Stores the cookies of a response's `Set-Cookie` headers and returns those it now holds
    /// from them (name, value), for `cookie` captures: one that cannot be parsed, one for
    /// another domain, or one that expires as it is set (a deletion) is not among them, as a
    /// browser would not hold it either.
    pub fn set_cookies<'a>(
        &self,
        headers: impl Iterator<Item = &'a HeaderValue>,
        url: &Url,
    ) -> Vec<(String, String)> {
        let mut store = self.store();
        headers
            .filter_map(|value| {
                let text = std::str::from_utf8(value.as_bytes()).ok()?;
                let cookie = cookie::Cookie::parse(text).ok()?;
                match store.insert_raw(&cookie, url) {
                    Ok(StoreAction::Inserted | StoreAction::UpdatedExisting) => Some((
                        cookie.name().to_string(),
                        cookie.value_trimmed().to_string(),
                    )),
                    Ok(StoreAction::ExpiredExisting) | Err(_) => None,
                }
            })
            .collect()
    }

    /// Keeps, of `cookies` (name, value), only those the jar still holds: one that a later
    /// `Set-Cookie` deleted or replaced is dropped.
    pub fn retain_held(&self, cookies: &mut Vec<(String, String)>) {
        let store = self.store();
        cookies.retain(|(name, value)| {
            store
                .iter_unexpired()
                .any(|c| c.name() == name && c.value_trimmed() == value)
        });
    }

    /// The `Cookie` header for a request to `url`, when a stored cookie applies to it. The
    /// cookies with longer paths come first, as browsers send them (a server reading the first
    /// of two `sid` cookies gets the one for its path), then by name: the same every run.
    pub fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        let store = self.store();
        let mut matching = store.matches(url);
        if matching.is_empty() {
            return None;
        }
        matching.sort_by(|a, b| {
            let path_len = |c: &cookie_store::Cookie| c.path.as_ref().len();
            path_len(b)
                .cmp(&path_len(a))
                .then_with(|| a.name_value().cmp(&b.name_value()))
        });
        let pairs: Vec<String> = matching
            .iter()
            .map(|c| {
                let (name, value) = c.name_value();
                format!("{name}={value}")
            })
            .collect();
        HeaderValue::from_str(&pairs.join("; ")).ok()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, cookie_store::CookieStore> {
        // A panic while the store was held leaves it as consistent as the store keeps it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
