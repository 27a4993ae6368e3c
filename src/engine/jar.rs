//! A flow's cookie jar: the cookies its responses set, sent back on its later requests under
//! the rules browsers follow (domain, path, expiry, `Secure`), as `cookie_store` applies them.
//!
//! It is preflight's own rather than reqwest's `cookies` feature: that feature puts a layer in
//! front of every request that parses the request's URL again (about 6 K instructions a
//! request, 7% of a step's CPU), even though preflight hands cookies to each hop itself.

use cookie_store::{CookieStore, StoreAction};
use reqwest::header::HeaderValue;
use std::sync::{Mutex, MutexGuard, PoisonError};
use url::Url;

#[derive(Default)]
pub struct Jar(Mutex<Contents>);

#[derive(Default)]
struct Contents {
    store: CookieStore,
    /// The cookies the jar took from the responses of the current step, every attempt and
    /// redirect hop of it, in order: what its `cookie` captures may take.
    set_by_step: Vec<SetCookie>,
}

/// A cookie a response set and the jar took: where it is kept (domain and path), and what.
struct SetCookie {
    domain: String,
    path: String,
    name: String,
    value: String,
}

impl Jar {
    /// A step begins: the cookies its responses set are counted from here.
    pub fn begin_step(&self) {
        self.contents().set_by_step.clear();
    }

    /// Stores the cookies of a response's `Set-Cookie` headers. One that cannot be parsed, one
    /// for another domain, or one that expires as it is set (a deletion) is not kept, as a
    /// browser would not keep it either.
    pub fn set_cookies<'a>(&self, headers: impl Iterator<Item = &'a HeaderValue>, url: &Url) {
        let mut contents = self.contents();
        let Contents { store, set_by_step } = &mut *contents;
        for value in headers {
            let Some(raw) = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|text| cookie::Cookie::parse(text).ok())
            else {
                continue;
            };
            let Ok(cookie) = cookie_store::Cookie::try_from_raw_cookie(&raw, url) else {
                continue;
            };
            let set = SetCookie {
                domain: String::from(&cookie.domain),
                path: String::from(&cookie.path),
                name: raw.name().to_string(),
                value: raw.value_trimmed().to_string(),
            };
            if let Ok(StoreAction::Inserted | StoreAction::UpdatedExisting) =
                store.insert(cookie.into_owned(), url)
            {
                set_by_step.push(set);
            }
        }
    }

    /// The cookies (name, value) the current step's responses set that the jar still holds as
    /// they were set, in order: one a later `Set-Cookie`, attempt or hop deleted or replaced
    /// is left out.
    pub fn held_from_step(&self) -> Vec<(String, String)> {
        let contents = self.contents();
        contents
            .set_by_step
            .iter()
            .filter(|set| {
                contents
                    .store
                    .get(&set.domain, &set.path, &set.name)
                    .is_some_and(|held| held.value_trimmed() == set.value)
            })
            .map(|set| (set.name.clone(), set.value.clone()))
            .collect()
    }

    /// The `Cookie` header for a request to `url`, when a stored cookie applies to it. The
    /// cookies with longer paths come first, as browsers send them (a server reading the first
    /// of two `sid` cookies gets the one for its path), then by name: the same every run.
    pub fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        let contents = self.contents();
        let mut matching = contents.store.matches(url);
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

    fn contents(&self) -> MutexGuard<'_, Contents> {
        // A panic while the jar was held leaves it as consistent as the store keeps it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
