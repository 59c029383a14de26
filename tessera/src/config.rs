//! Session options: express-session's options under Rust names, with express-session's
//! recommended defaults.
//!
//! | express-session            | Tessera                               | default         |
//! |----------------------------|---------------------------------------|-----------------|
//! | `name`                     | [`SessionConfig::name`]               | `connect.sid`   |
//! | `secret` (string or array) | [`SessionConfig::secret`] / [`secrets`](SessionConfig::secrets) | required |
//! | `resave`                   | [`SessionConfig::resave`]             | `false`         |
//! | `saveUninitialized`        | [`SessionConfig::save_uninitialized`] | `false`         |
//! | `rolling`                  | [`SessionConfig::rolling`]            | `false`         |
//! | `unset`                    | [`SessionConfig::unset`]              | `keep`          |
//! | `proxy`                    | [`SessionConfig::trust_proxy`]        | `false`         |
//! | `genid`                    | [`SessionConfig::id_generator`]       | 24 random bytes |
//! | `cookie.path`              | [`SessionConfig::cookie_path`]        | `/`             |
//! | `cookie.domain`            | [`SessionConfig::cookie_domain`]      | none            |
//! | `cookie.httpOnly`          | [`SessionConfig::cookie_http_only`]   | `true`          |
//! | `cookie.secure`            | [`SessionConfig::cookie_secure`]      | `false`         |
//! | `cookie.sameSite`          | [`SessionConfig::cookie_same_site`]   | none            |
//! | `cookie.maxAge`            | [`SessionConfig::cookie_max_age`]     | none (browser session) |
//! | `cookie.expires`           | [`SessionConfig::cookie_expires`]     | none            |
//! | `cookie.partitioned`       | [`SessionConfig::cookie_partitioned`] | `false`         |
//! | `cookie.priority`          | [`SessionConfig::cookie_priority`]    | none            |
//! | —                          | [`SessionConfig::always_touch`]       | `false`         |
//! | —                          | [`SessionConfig::store_timeout`]      | 3 s             |
//! | —                          | [`SessionConfig::guarded_commit`]     | `true`          |
//! | —                          | [`SessionConfig::cache_headers`]      | `true`          |
//!
//! express-session itself still defaults `resave` and `saveUninitialized` to `true` (with a
//! deprecation warning); every guide, the article included, sets both to `false`, and so do
//! Tessera's defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::id::IdGenerator;
use crate::record::{to_millis, CookieData};
use crate::signing::SecretError;

/// Whether the cookie carries the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSecure {
    /// Never (express `secure: false`, the default).
    #[default]
    Never,
    /// Always (express `secure: true`). The cookie is not sent on a plain-HTTP request, as
    /// express does; the session is still saved.
    Always,
    /// Secure when the request is: an `https` URI, or `X-Forwarded-Proto: https` from a
    /// trusted proxy (see [`SessionConfig::trust_proxy`]). express `secure: 'auto'`.
    Auto,
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (browsers require `Secure` with it).
    None,
}

/// The cookie's `Priority` attribute (a Chrome extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `Priority=Low`.
    Low,
    /// `Priority=Medium`.
    Medium,
    /// `Priority=High`.
    High,
}

/// What happens when a handler calls [`Session::unset`](crate::Session::unset), the
/// counterpart of express's `req.session = null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unset {
    /// The stored session stays as it was; this request's changes are dropped.
    #[default]
    Keep,
    /// The stored session is deleted at the end of the request.
    Destroy,
}

/// An invalid option, found by [`SessionLayer::new`](crate::SessionLayer::new).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The secrets are missing or empty.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The cookie name is not an HTTP token.
    #[error("cookie name {0:?} is not valid: use letters, digits and !#$%&'*+-.^_`|~")]
    Name(String),
    /// An attribute value would break the `Set-Cookie` header.
    #[error("cookie {attribute} {value:?} is not valid: no `;`, spaces or control characters")]
    Attribute {
        /// Which attribute.
        attribute: &'static str,
        /// The value given.
        value: String,
    },
}

/// Every option of the session layer. Build with [`SessionConfig::default`] and the
/// chained setters, then hand it to [`SessionLayer::new`](crate::SessionLayer::new).
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) name: String,
    pub(crate) secrets: Vec<Vec<u8>>,
    pub(crate) resave: bool,
    pub(crate) save_uninitialized: bool,
    pub(crate) rolling: bool,
    pub(crate) unset: Unset,
    pub(crate) trust_proxy: bool,
    pub(crate) always_touch: bool,
    pub(crate) store_timeout: Duration,
    pub(crate) guarded_commit: bool,
    pub(crate) cache_headers: bool,
    pub(crate) id_generator: Option<IdGenerator>,
    pub(crate) cookie: CookieConfig,
}

#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) http_only: bool,
    pub(crate) secure: CookieSecure,
    pub(crate) same_site: Option<SameSite>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) expires: Option<OffsetDateTime>,
    pub(crate) partitioned: bool,
    pub(crate) priority: Option<Priority>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            name: "connect.sid".into(),
            secrets: Vec::new(),
            resave: false,
            save_uninitialized: false,
            rolling: false,
            unset: Unset::Keep,
            trust_proxy: false,
            always_touch: false,
            store_timeout: Duration::from_secs(3),
            guarded_commit: true,
            cache_headers: true,
            id_generator: None,
            cookie: CookieConfig {
                path: "/".into(),
                domain: None,
                http_only: true,
                secure: CookieSecure::Never,
                same_site: None,
                max_age: None,
                expires: None,
                partitioned: false,
                priority: None,
            },
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("name", &self.name)
            .field(
                "secrets",
                &format_args!("{} configured", self.secrets.len()),
            )
            .field("resave", &self.resave)
            .field("save_uninitialized", &self.save_uninitialized)
            .field("rolling", &self.rolling)
            .field("unset", &self.unset)
            .field("trust_proxy", &self.trust_proxy)
            .field("always_touch", &self.always_touch)
            .field("store_timeout", &self.store_timeout)
            .field("guarded_commit", &self.guarded_commit)
            .field("cache_headers", &self.cache_headers)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl SessionConfig {
    /// The cookie name (express `name`, default `connect.sid`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a secret. The first secret added signs new cookies; every secret verifies
    /// incoming ones. To rotate, put the new secret first and keep the old one after it
    /// until the old cookies have expired.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(secret.as_ref().to_vec());
        self
    }

    /// Sets all secrets at once (express `secret: [new, old]`).
    pub fn secrets<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.secrets = secrets.into_iter().map(|s| s.as_ref().to_vec()).collect();
        self
    }

    /// Save the session at the end of every request that loaded it, even unmodified
    /// (express `resave`, default `false`). Only useful with stores that cannot touch.
    pub fn resave(mut self, yes: bool) -> Self {
        self.resave = yes;
        self
    }

    /// Store new sessions and send their cookie even when the handler put nothing in them
    /// (express `saveUninitialized`, default `false`).
    pub fn save_uninitialized(mut self, yes: bool) -> Self {
        self.save_uninitialized = yes;
        self
    }

    /// Send the cookie, with a fresh expiry, on every response (express `rolling`, default
    /// `false`). The stored session's TTL is extended with it.
    pub fn rolling(mut self, yes: bool) -> Self {
        self.rolling = yes;
        self
    }

    /// What [`Session::unset`](crate::Session::unset) does (express `unset`).
    pub fn unset(mut self, unset: Unset) -> Self {
        self.unset = unset;
        self
    }

    /// Trust the first `X-Forwarded-Proto` header to say whether the request came over TLS
    /// (express `proxy: true`; Express's `trust proxy` setting). Only enable behind a proxy
    /// that sets it: a client could otherwise claim `https` itself.
    pub fn trust_proxy(mut self, yes: bool) -> Self {
        self.trust_proxy = yes;
        self
    }

    /// Extend the stored session's life on every request that carries a valid cookie, even
    /// when the handler never looks at the session (strict idle expiry). Costs one store
    /// call per such request; off by default, so untouched routes do no store I/O.
    pub fn always_touch(mut self, yes: bool) -> Self {
        self.always_touch = yes;
        self
    }

    /// How long one store call may take before the request fails with 503 (default 3 s).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// Whether saving a loaded session is a guarded commit (default `true`): the store
    /// writes only if the record is still the one this request loaded, and otherwise this
    /// request's changes are merged, per key, into what the other writer stored. With
    /// `false` the last writer wins, as with express-session and connect-redis: concurrent
    /// requests of one session can undo each other's changes. A destroyed session is never
    /// brought back either way.
    pub fn guarded_commit(mut self, yes: bool) -> Self {
        self.guarded_commit = yes;
        self
    }

    /// Whether responses that depend on the session are kept out of shared caches (default
    /// `true`): `Vary: Cookie` when the handler read the session, and `Cache-Control:
    /// private` (keeping a stricter value the application set) when the response sets the
    /// session cookie. Turn it off only when something else in front sets these headers.
    pub fn cache_headers(mut self, yes: bool) -> Self {
        self.cache_headers = yes;
        self
    }

    /// Replaces the ID generator (express `genid`). It must return IDs of 1 to 128
    /// characters of `[A-Za-z0-9_-]`; `None` or an ill-formed ID fails the request.
    pub fn id_generator(
        mut self,
        generator: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.id_generator = Some(Arc::new(generator));
        self
    }

    /// Cookie `Path` (default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// Cookie `Domain` (default none: the request's host only).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// Cookie `HttpOnly` (default `true`).
    pub fn cookie_http_only(mut self, yes: bool) -> Self {
        self.cookie.http_only = yes;
        self
    }

    /// Cookie `Secure` (default [`CookieSecure::Never`]).
    pub fn cookie_secure(mut self, secure: CookieSecure) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// Cookie `SameSite` (default none).
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = Some(same_site);
        self
    }

    /// Cookie lifetime (express `cookie.maxAge`, in a `Duration` rather than milliseconds).
    /// It sets the cookie's `Expires` and the stored session's TTL. Default none: a
    /// browser-session cookie, stored for the store's default TTL.
    pub fn cookie_max_age(mut self, max_age: Duration) -> Self {
        self.cookie.max_age = Some(max_age);
        self
    }

    /// A fixed expiry for every cookie (express `cookie.expires`; `max_age` is usually what
    /// you want).
    pub fn cookie_expires(mut self, at: OffsetDateTime) -> Self {
        self.cookie.expires = Some(at);
        self
    }

    /// Cookie `Partitioned` (CHIPS; default `false`).
    pub fn cookie_partitioned(mut self, yes: bool) -> Self {
        self.cookie.partitioned = yes;
        self
    }

    /// Cookie `Priority` (default none).
    pub fn cookie_priority(mut self, priority: Priority) -> Self {
        self.cookie.priority = Some(priority);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let is_token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !is_token(&self.name) {
            return Err(ConfigError::Name(self.name.clone()));
        }
        let attr_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b > 0x20 && b < 0x7f && b != b';');
        if !attr_ok(&self.cookie.path) {
            return Err(ConfigError::Attribute {
                attribute: "path",
                value: self.cookie.path.clone(),
            });
        }
        if let Some(domain) = &self.cookie.domain {
            if !attr_ok(domain) {
                return Err(ConfigError::Attribute {
                    attribute: "domain",
                    value: domain.clone(),
                });
            }
        }
        Ok(())
    }

    /// The cookie member of a new session, as express's `new Cookie(options)` makes it.
    pub(crate) fn new_cookie(&self, secure_request: bool) -> CookieData {
        let c = &self.cookie;
        let now = OffsetDateTime::now_utc();
        let (original_max_age, expires) = match (c.max_age, c.expires) {
            (Some(max_age), _) => {
                let ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
                (
                    Some(ms),
                    now.checked_add(time::Duration::milliseconds(ms))
                        .map(to_millis),
                )
            }
            (None, Some(at)) => (
                Some((at - now).whole_milliseconds() as i64),
                Some(to_millis(at)),
            ),
            (None, None) => (None, None),
        };
        CookieData {
            original_max_age,
            partitioned: c.partitioned.then_some(true),
            priority: c.priority.map(|p| {
                match p {
                    Priority::Low => "low",
                    Priority::Medium => "medium",
                    Priority::High => "high",
                }
                .to_owned()
            }),
            expires,
            secure: Some(match c.secure {
                CookieSecure::Never => false,
                CookieSecure::Always => true,
                CookieSecure::Auto => secure_request,
            }),
            http_only: Some(c.http_only),
            domain: c.domain.clone(),
            path: Some(c.path.clone()),
            same_site: c.same_site.map(|s| {
                Value::String(
                    match s {
                        SameSite::Strict => "strict",
                        SameSite::Lax => "lax",
                        SameSite::None => "none",
                    }
                    .into(),
                )
            }),
            extra: Default::default(),
        }
    }
}
