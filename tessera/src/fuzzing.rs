//! Thin wrappers around private parsers and renderers, for the fuzz targets in `fuzz/`.
//!
//! Compiled only with `--cfg fuzzing` (cargo-fuzz sets it), so none of this is part of the
//! library's API. Each wrapper calls exactly what the layer calls on a request, so a
//! failure found here is a failure of the layer.

use std::sync::Arc;

use http::HeaderValue;

use crate::config::SessionConfig;
use crate::engine::Engine;
use crate::record::CookieData;
use crate::signing::Secrets;
#[cfg(feature = "redis")]
use crate::store::redis::url::{self, Plan};
use crate::store::MemoryStore;
#[cfg(feature = "redis")]
use crate::RedisStore;

/// Every value of cookie `name` in these `Cookie` header values, as the layer reads them.
/// A value that `http` would not accept as a header value is left out: a request cannot
/// carry it.
pub fn cookie_values(headers: &[&[u8]], name: &str) -> Vec<String> {
    let headers: Vec<HeaderValue> = headers
        .iter()
        .filter_map(|h| HeaderValue::from_bytes(h).ok())
        .collect();
    crate::cookie::values(headers.iter(), name).collect()
}

/// The `Set-Cookie` value the layer sends for `name=value` with these attributes.
pub fn set_cookie(name: &str, value: &str, cookie: &CookieData, secure: bool) -> String {
    crate::cookie::set_cookie(name, value, cookie, secure)
}

/// The `Set-Cookie` value the layer sends to remove the cookie.
pub fn removal(name: &str, cookie: &CookieData, secure: bool) -> String {
    crate::cookie::removal(name, cookie, secure)
}

/// What the engine does to the cookie member of every record it loads from a store, for a
/// layer with the default configuration and cookie name `name` (whose `__Host-` or
/// `__Secure-` prefix matters): invalid stored attributes are replaced.
pub fn check_stored_cookie(name: &str, cookie: &mut CookieData) {
    // A fixed, non-empty secret: `Secrets::new` only refuses empty lists and secrets.
    let Ok(secrets) = Secrets::new(["fuzzing"]) else {
        return;
    };
    let config = SessionConfig::default().name(name);
    let engine = Engine::new(Arc::new(MemoryStore::new()), config, secrets);
    engine.check_cookie(cookie);
}

#[cfg(feature = "redis")]
/// The Redis store URL read as `RedisStore::connect` reads it (without connecting): the
/// name the store would log itself under, or the error message it would return.
pub fn redis_url(url: &str) -> Result<String, String> {
    match RedisStore::builder(url).plan() {
        Ok(Plan::Standalone(_, name) | Plan::Sentinel(_, name) | Plan::Cluster(_, name)) => {
            Ok(name)
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(feature = "redis")]
/// `url` as the store's messages show it, credentials hidden.
pub fn redact(url: &str) -> String {
    url::redact(url)
}
