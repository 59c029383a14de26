//! The engine every request's [`Session`](crate::Session) shares: the store, the options,
//! the keyed secrets, and the one place store calls are made from.
//!
//! Every loaded record's cookie attributes are checked here, before anything is rendered
//! from them (see [`Engine::checked`]).
//!
//! Every call to the store goes through [`Engine::call`], which bounds it by
//! [`SessionConfig::store_timeout`](crate::SessionConfig::store_timeout), so a slow store
//! costs a request a 503, never a hang. The engine also holds the commit line of each
//! session being written (see [`Lines`]): concurrent requests of one session are written
//! together, and the store's compare-and-set only fails when another process (another
//! instance, a Node app) wrote in between.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::config::{attribute_ok, CookiePrefix, SessionConfig};
use crate::error::SessionError;
use crate::events::metric::Metrics;
use crate::events::{EventKind, SessionEvent};
use crate::id::SessionId;
use crate::record::CookieData;
use crate::session::line::Lines;
use crate::signing::Secrets;
use crate::store::{Loaded, Store, StoreError};

/// What the layer shares with every request.
pub(crate) struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: SessionConfig,
    pub(crate) secrets: Secrets,
    /// Whether store calls need the engine's timer: false when the store bounds its
    /// own calls within `config.store_timeout` (see `Store::time_bound`).
    own_timer: bool,
    /// The cookie name's `__Host-`/`__Secure-` prefix, which stored attributes must obey.
    prefix: Option<CookiePrefix>,
    /// The metrics' handles, labelled with the store's kind (`memory`, `sqlite`, `redis`,
    /// `postgres`, `mysql`, else `other`).
    pub(crate) metrics: Metrics,
    pub(crate) lines: Lines,
    pub(crate) refreshes: Refreshes,
}

impl Engine {
    pub(crate) fn new(store: Arc<dyn Store>, config: SessionConfig, secrets: Secrets) -> Self {
        let own_timer = store
            .time_bound()
            .is_none_or(|bound| bound > config.store_timeout);
        let shown = format!("{store:?}");
        // A static label: a metric's labels are built on every call, recorder or not, and
        // an owned one would be an allocation per store call.
        let store_label = match shown.split("://").next().unwrap_or_default() {
            "memory" => "memory",
            "sqlite" => "sqlite",
            "redis" | "rediss" | "redis-sentinel" | "redis-cluster" => "redis",
            "postgres" | "postgresql" => "postgres",
            "mysql" => "mysql",
            _ => "other",
        };
        Engine {
            prefix: CookiePrefix::of(&config.name),
            metrics: Metrics::register(store_label),
            store,
            config,
            secrets,
            own_timer,
            lines: Lines::default(),
            refreshes: Refreshes::default(),
        }
    }

    /// Runs one store call under the configured timeout.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        use std::task::Poll;
        // A store that answers on the first poll (MemoryStore always does) needs no timer:
        // arming one costs more than the call itself. A store that bounds its own calls
        // (`Store::time_bound`) needs none either. Otherwise the timer is boxed when it is
        // armed: kept inline, it would add its size to every request's future for the
        // calls that never need it.
        let started = std::time::Instant::now();
        let mut fut = std::pin::pin!(fut);
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let result = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = fut.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if timer.is_none() && self.own_timer {
                timer = Some(Box::pin(tokio::time::sleep(self.config.store_timeout)));
            }
            match timer.as_mut().map(|t| t.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(StoreError::Timeout {
                    store: format!("{:?}", self.store),
                    op,
                    after: self.config.store_timeout,
                })),
                _ => Poll::Pending,
            }
        })
        .await;
        self.metrics.store_call(op, started.elapsed());
        if let Err(error) = &result {
            self.metrics.store_error(op, error);
        }
        result
    }

    /// Tells the subscriber, if any, that `kind` happened to the session `id`.
    pub(crate) fn emit(&self, kind: EventKind, id: Option<&SessionId>) {
        self.emit_for(kind, id, None);
    }

    /// [`emit`](Self::emit), naming the session's user.
    pub(crate) fn emit_for(&self, kind: EventKind, id: Option<&SessionId>, user: Option<String>) {
        if let Some(subscriber) = &self.config.subscriber {
            let event = SessionEvent {
                kind,
                handle: id.map(|id| self.secrets.handle(id)),
                user,
                at: OffsetDateTime::now_utc(),
            };
            (subscriber.0)(&event);
        }
    }

    pub(crate) fn new_id(&self) -> Result<SessionId, SessionError> {
        match &self.config.id_generator {
            None => SessionId::generate().map_err(|e| SessionError::Id(e.to_string())),
            Some(generate) => generate()
                .and_then(|s| SessionId::parse(&s))
                .ok_or_else(|| {
                    SessionError::Id(
                        "the custom ID generator returned no ID or an ill-formed one".into(),
                    )
                }),
        }
    }

    /// Loads `id`, treating a corrupt record as no session (logged).
    pub(crate) async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError> {
        let loaded = Self::forgive_corrupt(self.call("load", self.store.load(id)).await)?;
        Ok(loaded.map(|loaded| self.checked(loaded)))
    }

    /// Loads `id` and extends its life as the end-of-request touch would, in one round
    /// trip where the store can. `Loaded::touched` then says whether that touch already
    /// counts: the store touched it, and with the expiry the session's own max age gives (a
    /// session whose max age differs from the configured one is touched again at the end).
    pub(crate) async fn load_and_touch(
        &self,
        id: &SessionId,
    ) -> Result<Option<Loaded>, StoreError> {
        let max_age = self.config.cookie.max_age;
        let expires = match (max_age, self.config.cookie.expires) {
            (Some(d), _) => OffsetDateTime::now_utc()
                .checked_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX)),
            (None, fixed) => fixed,
        };
        let loaded = Self::forgive_corrupt(
            self.call("load", self.store.load_and_touch(id, expires))
                .await,
        )?;
        Ok(loaded.map(|loaded| {
            let mut loaded = self.checked(loaded);
            let own = loaded.record.cookie.original_max_age;
            let same_lifetime = match max_age {
                Some(d) => own == i64::try_from(d.as_millis()).ok(),
                None => self.config.cookie.expires.is_none() && own.is_none(),
            };
            loaded.touched &= same_lifetime;
            loaded
        }))
    }

    /// A loaded record with each stored cookie attribute that is not a valid one replaced
    /// by the configured value (logged).
    ///
    /// A stored session carries its own cookie `path` and `domain` (express renders the
    /// stored ones, and so do we: a session keeps the cookie it was given). Anything that
    /// can write the store (another app on the same Redis, a hand-edited SQLite row, a bug)
    /// could otherwise put `/; Domain=evil.example; SameSite=None` there and have it copied
    /// into `Set-Cookie` as extra attributes. The check is [`SessionConfig`]'s own
    /// validation, plus what the cookie name's `__Host-` prefix forbids.
    fn checked(&self, mut loaded: Loaded) -> Loaded {
        self.check_cookie(&mut loaded.record.cookie);
        loaded
    }

    pub(crate) fn check_cookie(&self, cookie: &mut CookieData) {
        let host_prefix = self.prefix == Some(CookiePrefix::Host);
        // A missing path is replaced too, as express's `Cookie` gives every loaded cookie
        // a path.
        let path_ok = cookie
            .path
            .as_deref()
            .is_some_and(|p| attribute_ok(p) && (!host_prefix || p == "/"));
        if !path_ok {
            // Lengths only: the value is whatever the writer chose, and may be large.
            tracing::warn!(
                stored_len = cookie.path.as_ref().map(String::len),
                "stored cookie path is not a valid attribute; using the configured one"
            );
            cookie.path = Some(self.config.cookie.path.clone());
        }
        // No stored domain is a host-only cookie: valid, and kept (a session created
        // before a domain was configured keeps its cookie).
        let domain_ok = match cookie.domain.as_deref() {
            None => true,
            Some(d) => attribute_ok(d) && !host_prefix,
        };
        if !domain_ok {
            tracing::warn!(
                stored_len = cookie.domain.as_ref().map(String::len),
                "stored cookie domain is not a valid attribute; using the configured one"
            );
            cookie.domain = self.config.cookie.domain.clone();
        }
        // A prefixed name requires Secure (`SessionLayer::new` refuses any other setting),
        // and with `CookieSecure::Always` the stored flag is what is sent: a stored
        // `secure: false` (a session from an app without the prefix) would make the
        // browser drop the cookie.
        if self.prefix.is_some() && cookie.secure != Some(true) {
            cookie.secure = Some(true);
        }
    }

    fn forgive_corrupt<T>(result: Result<Option<T>, StoreError>) -> Result<Option<T>, StoreError> {
        match result {
            Err(StoreError::Corrupt { id: _, source }) => {
                // The ID is a credential: the log names the cause, not the session.
                tracing::warn!(error = %source, "corrupt session in the store; starting a new session");
                Ok(None)
            }
            other => other,
        }
    }
}

/// When this process last refreshed the index entries of sessions, so that a session in
/// steady use does not cost an index write per request (see
/// [`IndexExpiry::Recorded`](crate::store::IndexExpiry::Recorded)).
///
/// A fixed table of slots chosen by a hash of the session ID: bounded whatever the number
/// of sessions. Two sessions sharing a slot only cost extra refreshes, never a missed one:
/// a refresh is skipped only for the very session the slot remembers.
pub(crate) struct Refreshes {
    slots: Mutex<Box<[(u64, i64)]>>,
}

const REFRESH_SLOTS: usize = 4096;

impl Default for Refreshes {
    fn default() -> Self {
        Refreshes {
            slots: Mutex::new(vec![(0, 0); REFRESH_SLOTS].into_boxed_slice()),
        }
    }
}

impl Refreshes {
    fn hash(id: &SessionId) -> u64 {
        use std::hash::BuildHasher;
        // Never 0, which marks an empty slot.
        rustc_hash::FxBuildHasher.hash_one(id.as_str()) | 1
    }

    /// Whether the entry of `id` was refreshed to within `margin_ms` of `expires_ms`.
    pub(crate) fn recent(&self, id: &SessionId, expires_ms: i64, margin_ms: i64) -> bool {
        let hash = Self::hash(id);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let (held, at) = slots[(hash as usize) % REFRESH_SLOTS];
        held == hash && expires_ms.saturating_sub(at) < margin_ms
    }

    /// The entry of `id` was just refreshed to `expires_ms`.
    pub(crate) fn record(&self, id: &SessionId, expires_ms: i64) {
        let hash = Self::hash(id);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots[(hash as usize) % REFRESH_SLOTS] = (hash, expires_ms);
    }
}
