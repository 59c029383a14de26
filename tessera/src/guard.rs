//! The store as the session engine sees it: every loaded record's cookie attributes are
//! checked as the configured ones are, before anything is rendered from them.
//!
//! A stored session carries its own cookie `path` and `domain` (express renders the
//! stored ones, and so do we: a session keeps the cookie it was given). Anything that can
//! write the store — another app on the same Redis, a hand-edited SQLite row, a bug —
//! could otherwise put `/; Domain=evil.example; SameSite=None` there and have it copied
//! into `Set-Cookie` as extra attributes. A stored attribute that would not pass
//! [`SessionConfig`]'s own validation (or that the cookie name's `__Host-` prefix forbids)
//! is replaced by the configured value, and logged.
//!
//! Only loads are wrapped; every other call is handed to the store's own future
//! unchanged, so the guard costs one small allocation per load and nothing else.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::config::{attribute_ok, CookiePrefix, SessionConfig};
use crate::id::SessionId;
use crate::record::{CookieData, Record};
use crate::store::{SaveMode, SaveOutcome, Store, StoreError, Stored};

/// The future every `Store` method returns (async-trait's shape).
type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store whose loaded records have their cookie attributes checked.
pub(crate) struct Guarded {
    inner: Arc<dyn Store>,
    path: String,
    domain: Option<String>,
    prefix: Option<CookiePrefix>,
}

impl Guarded {
    pub(crate) fn new(inner: Arc<dyn Store>, config: &SessionConfig) -> Self {
        Guarded {
            inner,
            path: config.cookie.path.clone(),
            domain: config.cookie.domain.clone(),
            prefix: CookiePrefix::of(&config.name),
        }
    }

    /// Replaces each stored attribute that is not a valid one by the configured value.
    fn check(&self, id: &SessionId, cookie: &mut CookieData) {
        let host_prefix = self.prefix == Some(CookiePrefix::Host);
        // A missing path is replaced too, as express's `Cookie` gives every loaded cookie
        // a path.
        let path_ok = cookie
            .path
            .as_deref()
            .is_some_and(|p| attribute_ok(p) && (!host_prefix || p == "/"));
        if !path_ok {
            // Lengths only: the value is whatever the writer chose, and may be large.
            tracing::warn!(session = ?id, stored_len = cookie.path.as_ref().map(String::len), "stored cookie path is not a valid attribute; using the configured one");
            cookie.path = Some(self.path.clone());
        }
        // No stored domain is a host-only cookie: valid, and kept (a session created
        // before a domain was configured keeps its cookie).
        let domain_ok = match cookie.domain.as_deref() {
            None => true,
            Some(d) => attribute_ok(d) && !host_prefix,
        };
        if !domain_ok {
            tracing::warn!(session = ?id, stored_len = cookie.domain.as_ref().map(String::len), "stored cookie domain is not a valid attribute; using the configured one");
            cookie.domain = self.domain.clone();
        }
        // A prefixed name requires Secure (`SessionLayer::new` refuses any other setting),
        // and with `CookieSecure::Always` the stored flag is what is sent: a stored
        // `secure: false` (a session from an app without the prefix) would make the
        // browser drop the cookie.
        if self.prefix.is_some() && cookie.secure != Some(true) {
            cookie.secure = Some(true);
        }
    }

    fn checked(&self, id: &SessionId, mut record: Record) -> Record {
        self.check(id, &mut record.cookie);
        record
    }
}

impl fmt::Debug for Guarded {
    // The store's own name: it is what errors and logs show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[async_trait]
impl Store for Guarded {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>, StoreError> {
        let loaded = self.inner.load(id).await?;
        Ok(loaded.map(|record| self.checked(id, record)))
    }

    async fn load_and_touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<Option<(Record, bool)>, StoreError> {
        let loaded = self.inner.load_and_touch(id, expires).await?;
        Ok(loaded.map(|(record, touched)| (self.checked(id, record), touched)))
    }

    // The rest is the store's own future, unwrapped: spelled out with async-trait's
    // signatures so no second box is made per call.
    fn save<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        id: &'life1 SessionId,
        record: &'life2 Record,
        mode: SaveMode,
    ) -> StoreFuture<'async_trait, SaveOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.save(id, record, mode)
    }

    fn destroy<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 SessionId,
    ) -> StoreFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.destroy(id)
    }

    fn touch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 SessionId,
        expires: Option<OffsetDateTime>,
    ) -> StoreFuture<'async_trait, bool>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.touch(id, expires)
    }

    fn ids<'life0, 'async_trait>(&'life0 self) -> StoreFuture<'async_trait, Vec<String>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.ids()
    }

    fn count<'life0, 'async_trait>(&'life0 self) -> StoreFuture<'async_trait, u64>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.count()
    }

    fn inspect<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<Stored>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.inspect(id)
    }

    fn clear<'life0, 'async_trait>(&'life0 self) -> StoreFuture<'async_trait, u64>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.clear()
    }

    fn time_bound(&self) -> Option<Duration> {
        self.inner.time_bound()
    }
}
