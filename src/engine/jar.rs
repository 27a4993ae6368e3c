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

/// A cookie a response set and the jar took: where it is kept (domain and path), and what.
pub struct SetCookie {
    domain: String,
    path: String,
    pub name: String,
    pub value: String,
}

impl Jar {
    /// Stores the cookies of a response's `Set-Cookie` headers and returns those it now holds
    /// from them, for `cookie` captures: one that cannot be parsed, one for another domain,
    /// or one that expires as it is set (a deletion) is not among them, as a browser would
    /// not hold it either.
    pub fn set_cookies<'a>(
        &self,
        headers: impl Iterator<Item = &'a HeaderValue>,
        url: &Url,
    ) -> Vec<SetCookie> {
        let mut store = self.store();
        headers
            .filter_map(|value| {
                let text = std::str::from_utf8(value.as_bytes()).ok()?;
                let raw = cookie::Cookie::parse(text).ok()?;
                let cookie = cookie_store::Cookie::try_from_raw_cookie(&raw, url).ok()?;
                let set = SetCookie {
                    domain: String::from(&cookie.domain),
                    path: String::from(&cookie.path),
                    name: raw.name().to_string(),
                    value: raw.value_trimmed().to_string(),
                };
                match store.insert(cookie.into_owned(), url) {
                    Ok(StoreAction::Inserted | StoreAction::UpdatedExisting) => Some(set),
                    Ok(StoreAction::ExpiredExisting) | Err(_) => None,
                }
            })
            .collect()
    }

    /// Keeps, of `cookies`, only those the jar still holds as they were set: one that a
    /// later `Set-Cookie` deleted or replaced is dropped.
    pub fn retain_held(&self, cookies: &mut Vec<SetCookie>) {
        let store = self.store();
        cookies.retain(|set| {
            store
                .get(&set.domain, &set.path, &set.name)
                .is_some_and(|held| held.value_trimmed() == set.value)
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
