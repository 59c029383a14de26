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
//! | —                          | [`SessionConfig::behind_tls`]         | `false`         |
//! | `genid`                    | [`SessionConfig::id_generator`]       | 24 random bytes |
//! | `cookie.path`              | [`SessionConfig::cookie_path`]        | `/`             |
//! | `cookie.domain`            | [`SessionConfig::cookie_domain`]      | none            |
//! | `cookie.httpOnly`          | [`SessionConfig::cookie_http_only`]   | `true`          |
//! | `cookie.secure`            | [`SessionConfig::cookie_secure`]      | `false`         |
//! | `cookie.sameSite`          | [`SessionConfig::cookie_same_site`] / [`cookie_without_same_site`](SessionConfig::cookie_without_same_site) | `Lax` (express: none) |
//! | `cookie.maxAge`            | [`SessionConfig::cookie_max_age`]     | none (browser session) |
//! | `cookie.expires`           | [`SessionConfig::cookie_expires`]     | none            |
//! | `cookie.partitioned`       | [`SessionConfig::cookie_partitioned`] | `false`         |
//! | `cookie.priority`          | [`SessionConfig::cookie_priority`]    | none            |
//! | —                          | [`SessionConfig::always_touch`]       | `false`         |
//! | —                          | [`SessionConfig::store_timeout`]      | 3 s             |
//! | —                          | [`SessionConfig::guarded_commit`]     | `true`          |
//! | —                          | [`SessionConfig::cache_headers`]      | `true`          |
//! | —                          | [`SessionConfig::max_record_bytes`]   | 64 KiB          |
//! | —                          | [`SessionConfig::on_event`]           | none            |
//!
//! express-session itself still defaults `resave` and `saveUninitialized` to `true` (with a
//! deprecation warning); every guide, the article included, sets both to `false`, and so do
//! Tessera's defaults.
//!
//! One default is deliberately safer than express's: the cookie is `SameSite=Lax`, so
//! browsers do not send it on cross-site subrequests and form posts (the base of CSRF),
//! whatever their own default is (Chrome's is Lax, Firefox's and Safari's are none). For
//! express's exact cookie (no `SameSite` attribute, e.g. while an Express app that does
//! not set `sameSite` shares the sessions), use
//! [`cookie_without_same_site`](SessionConfig::cookie_without_same_site).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::id::IdGenerator;
use crate::record::{to_millis, utc, CookieData};
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
    /// Secure when the request is: it came over TLS, as the application tells the layer
    /// ([`SessionConfig::behind_tls`] or the [`SecureConnection`](crate::SecureConnection)
    /// request extension), or a trusted proxy says `X-Forwarded-Proto: https` (see
    /// [`SessionConfig::trust_proxy`]). express `secure: 'auto'`.
    Auto,
}

/// The cookie's `SameSite` attribute (default [`Lax`](SameSite::Lax)). `None` here is the
/// attribute `SameSite=None`; to send no attribute at all, as express does by default, use
/// [`SessionConfig::cookie_without_same_site`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`: the default.
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
    /// The cookie name's `__Host-` or `__Secure-` prefix asks for attributes the
    /// configuration does not give; browsers would drop every such cookie.
    #[error(
        "cookie name {name:?} starts with {prefix}, which browsers accept only {requires}: {fix}"
    )]
    Prefix {
        /// The cookie name.
        name: String,
        /// `__Host-` or `__Secure-`.
        prefix: &'static str,
        /// What the prefix requires.
        requires: &'static str,
        /// What to change.
        fix: &'static str,
    },
    /// The key given to [`SessionConfig::index_by`] cannot be indexed.
    #[error(transparent)]
    Index(#[from] crate::index::IndexKeyError),
    /// An attribute value would break the `Set-Cookie` header.
    #[error("cookie {attribute} {value:?} is not valid: no `;`, spaces or control characters")]
    Attribute {
        /// Which attribute.
        attribute: &'static str,
        /// The value given.
        value: String,
    },
}

/// A cookie name prefix that browsers enforce (RFC 6265bis §4.1.3, matched regardless of
/// case, as browsers do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookiePrefix {
    /// `__Host-`: Secure, `Path=/`, no Domain.
    Host,
    /// `__Secure-`: Secure.
    Secure,
}

impl CookiePrefix {
    pub(crate) fn of(name: &str) -> Option<Self> {
        let starts = |prefix: &str| {
            name.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        if starts("__Host-") {
            Some(CookiePrefix::Host)
        } else if starts("__Secure-") {
            Some(CookiePrefix::Secure)
        } else {
            None
        }
    }
}

/// Whether `value` can stand as a cookie attribute's value in `Set-Cookie`: not empty,
/// visible ASCII only (no spaces, no control characters) and no `;`, which would start
/// another attribute. Configured and stored attributes are held to the same rule.
pub(crate) fn attribute_ok(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b > 0x20 && b < 0x7f && b != b';')
}

/// The default of [`SessionConfig::max_record_bytes`]: 64 KiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

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
    pub(crate) behind_tls: bool,
    pub(crate) always_touch: bool,
    pub(crate) store_timeout: Duration,
    pub(crate) guarded_commit: bool,
    pub(crate) cache_headers: bool,
    pub(crate) max_record_bytes: Option<usize>,
    pub(crate) subscriber: Option<crate::events::Subscriber>,
    pub(crate) id_generator: Option<IdGenerator>,
    pub(crate) absolute_timeout: Option<Duration>,
    /// The indexed key as given; checked by `validate`, which makes `index`.
    pub(crate) index_key: Option<String>,
    pub(crate) index: Option<crate::index::UserIndex>,
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
            behind_tls: false,
            always_touch: false,
            store_timeout: Duration::from_secs(3),
            guarded_commit: true,
            cache_headers: true,
            max_record_bytes: Some(DEFAULT_MAX_RECORD_BYTES),
            subscriber: None,
            id_generator: None,
            absolute_timeout: None,
            index_key: None,
            index: None,
            cookie: CookieConfig {
                path: "/".into(),
                domain: None,
                http_only: true,
                secure: CookieSecure::Never,
                same_site: Some(SameSite::Lax),
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
            .field("behind_tls", &self.behind_tls)
            .field("always_touch", &self.always_touch)
            .field("store_timeout", &self.store_timeout)
            .field("guarded_commit", &self.guarded_commit)
            .field("cache_headers", &self.cache_headers)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("subscriber", &self.subscriber.is_some())
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl SessionConfig {
    /// The cookie name (express `name`, default `connect.sid`).
    ///
    /// A name starting with `__Host-` (Secure, `Path=/`, no Domain: the cookie cannot be
    /// set or shadowed by a subdomain) or `__Secure-` (Secure) gets the browser's checks
    /// for that prefix; [`SessionLayer::new`](crate::SessionLayer::new) refuses a
    /// configuration that does not meet them, as every cookie would be dropped.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a secret. The first secret added signs new cookies; every secret verifies
    /// incoming ones. To rotate, put the new secret first and keep the old one after it
    /// until the old cookies have expired. Use at least 32 random bytes: anyone who can
    /// guess a secret can sign cookies for any session ID.
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

    /// Every request this layer sees came over TLS (default `false`): set it when the
    /// server only accepts TLS connections, or only ever gets requests from a
    /// TLS-terminating proxy on a private link. For a server that takes both, have its
    /// TLS acceptor insert [`SecureConnection`](crate::SecureConnection) into the requests
    /// of TLS connections instead.
    ///
    /// Nothing the client sends decides it: neither an absolute-form target
    /// (`GET https://host/ HTTP/1.1`) nor an HTTP/2 `:scheme` over a plain connection makes
    /// a request secure, and `X-Forwarded-Proto` counts only with
    /// [`trust_proxy`](Self::trust_proxy).
    pub fn behind_tls(mut self, yes: bool) -> Self {
        self.behind_tls = yes;
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
    /// request's changes are merged, per key, into what the other writer stored. Requests
    /// of one session that commit at once in this process are written together, in one
    /// compare-and-set (a group commit). With `false` the last writer wins, as with
    /// express-session and connect-redis: concurrent requests of one session can undo each
    /// other's changes. A destroyed session is never brought back either way.
    ///
    /// What the guard costs, and what it guarantees with a Node app on the same store:
    /// `docs/concurrency.md` in the repository.
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

    /// The largest stored session a change may make, in bytes of its JSON (default
    /// [`DEFAULT_MAX_RECORD_BYTES`], 64 KiB; `None`: no limit). An `insert` or `update`
    /// that would make the session larger fails with
    /// [`SessionError::TooLarge`](crate::SessionError::TooLarge) and changes nothing: a
    /// session is read and written on every request, so large data belongs elsewhere. A
    /// session already larger (written by a Node app, say) may still be changed in ways that
    /// do not grow it.
    pub fn max_record_bytes(mut self, limit: Option<usize>) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// Calls `subscriber` with every [`SessionEvent`](crate::SessionEvent) (created,
    /// regenerated, destroyed, conflict, store error), for an audit log. It runs on the
    /// request's task: keep it quick (send to a channel, write a line); it never sees a
    /// session ID, only the session's handle.
    pub fn on_event(
        mut self,
        subscriber: impl Fn(&crate::SessionEvent) + Send + Sync + 'static,
    ) -> Self {
        self.subscriber = Some(crate::events::Subscriber(Arc::new(subscriber)));
        self
    }

    /// Ends every session this long after it was created, or last regenerated (a login
    /// starts a new session), however active it is: OWASP's absolute timeout. Off by
    /// default.
    ///
    /// The idle timeout is the store's TTL, extended on every request (with
    /// [`rolling`](Self::rolling), the cookie's too): a session unused for that long
    /// expires. The absolute timeout caps a session that is never idle. A session past it
    /// is deleted when it is next loaded, and the request goes on with a new, empty one.
    ///
    /// The creation time is stored in the session as `_tessera.created` (milliseconds since
    /// the epoch), which express-session keeps when a Node app saves the session. A session
    /// that lacks it (one a Node app created) is given the current time when Tessera first
    /// loads it, and saved with it.
    pub fn absolute_timeout(mut self, limit: Duration) -> Self {
        self.absolute_timeout = Some(limit);
        self
    }

    /// Keeps a per-user index over the top-level key `key` (for example `"userId"`): its
    /// value (a string or a number) names the user. Then
    /// [`Session::user_sessions`](crate::Session::user_sessions) lists the logged-in user's
    /// sessions, [`Session::revoke`](crate::Session::revoke) and
    /// [`Session::revoke_all`](crate::Session::revoke_all) end them, and admin tools use
    /// [`UserIndex`](crate::UserIndex). See [`crate::index`] for how the index stays right
    /// under expiry and foreign deletes.
    ///
    /// A session that names a user is stamped with its creation time (`_tessera.created`,
    /// the login's time) for the listing; an anonymous session is stored exactly as
    /// express-session stores it.
    ///
    /// The key is checked by [`SessionLayer::new`](crate::SessionLayer::new): letters,
    /// digits, `_`, `-` and `$`. Every store Tessera ships keeps an index; a store that
    /// does not makes a login fail with 503.
    pub fn index_by(mut self, key: impl Into<String>) -> Self {
        self.index_key = Some(key.into());
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

    /// Cookie `SameSite` (default [`SameSite::Lax`]; express sends none). Browsers refuse
    /// `SameSite=None` without `Secure`.
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = Some(same_site);
        self
    }

    /// No `SameSite` attribute at all, as express-session sends by default
    /// (`sameSite: false`): the browser's own default applies. Use it for exact parity
    /// with an Express app that shares the sessions and does not set `sameSite`; the
    /// attribute is stored in each session's cookie, so the side that writes last decides
    /// what the browser gets.
    pub fn cookie_without_same_site(mut self) -> Self {
        self.cookie.same_site = None;
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
        if !attribute_ok(&self.cookie.path) {
            return Err(ConfigError::Attribute {
                attribute: "path",
                value: self.cookie.path.clone(),
            });
        }
        if let Some(domain) = &self.cookie.domain {
            if !attribute_ok(domain) {
                return Err(ConfigError::Attribute {
                    attribute: "domain",
                    value: domain.clone(),
                });
            }
        }
        // A prefixed name needs Secure on every cookie sent. `Auto` would send it without
        // Secure on a plain-HTTP request, which the browser drops, so only `Always` does.
        let secure = self.cookie.secure == CookieSecure::Always;
        let prefix_error = |prefix, requires, fix| ConfigError::Prefix {
            name: self.name.clone(),
            prefix,
            requires,
            fix,
        };
        match CookiePrefix::of(&self.name) {
            Some(CookiePrefix::Host)
                if !secure || self.cookie.path != "/" || self.cookie.domain.is_some() =>
            {
                return Err(prefix_error(
                    "__Host-",
                    "with Secure, Path=/ and no Domain",
                    "set cookie_secure(CookieSecure::Always), keep cookie_path at \"/\" and set no cookie_domain",
                ));
            }
            Some(CookiePrefix::Secure) if !secure => {
                return Err(prefix_error(
                    "__Secure-",
                    "with Secure",
                    "set cookie_secure(CookieSecure::Always)",
                ));
            }
            _ => {}
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
                // Within `time`'s ±9999 years the milliseconds fit an i64 many times over.
                Some((at - now).whole_milliseconds() as i64),
                Some(to_millis(utc(at))),
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
