//! The `Store` trait every session backend implements, and the backends themselves, one
//! file each behind a cargo feature.
//!
//! The trait is small on purpose: what one request needs (load, save, destroy, touch; one
//! round trip each) plus what an operator needs (`tessera sessions`: list, count, inspect,
//! clear). The session engine decides *when* to call what; a store only knows *how*.
//!
//! Every store passes the same conformance suite (`tests/it/store_suite.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::record::{DecodeError, Record};
pub use admin::{Listed, Page, Walked, Walker};

pub mod admin;
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

pub use memory::{MemoryStore, DEFAULT_MAX_SESSIONS};
#[cfg(feature = "mysql")]
pub use mysql::{MySqlOptions, MySqlStore};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisStore, RedisStoreBuilder};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{SqliteOptions, SqliteStore};

/// How a save must treat a record that is (or is not) already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode<'a> {
    /// A new session: write only if no record has this ID (Redis `SET … NX`). A clash
    /// answers [`SaveOutcome::Conflict`] and the engine retries with a fresh ID.
    Create,
    /// A session loaded from the store: write only if the record still exists, so a
    /// session destroyed by another request meanwhile answers [`SaveOutcome::Gone`] and
    /// stays destroyed (no resurrection).
    ///
    /// With `expected` (the guarded commit, the default), write only if the stored record
    /// is still the one of that [`Version`]; otherwise answer [`SaveOutcome::Changed`] and
    /// write nothing. The check and the write are one atomic step of the store. Without it
    /// (`None`), the last writer wins, as with connect-redis.
    Update {
        /// The version the request loaded (or last wrote).
        expected: Option<&'a Version>,
    },
}

/// What a save did.
///
/// Non-exhaustive: a store returns one of these, and code that matches one (a wrapping
/// store, a test) needs a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Written; the version of what is stored now.
    Saved(Version),
    /// [`SaveMode::Create`] found a record with this ID; nothing written.
    Conflict,
    /// [`SaveMode::Update`] with an expected version found another record stored (another
    /// request, instance or Node app wrote it meanwhile); nothing written.
    Changed,
    /// [`SaveMode::Update`] found no record (destroyed or expired meanwhile), or the record
    /// has already expired by its own cookie; nothing written.
    Gone,
}

/// Which stored state of a session a [`Record`] was read from (or written as): what the
/// guarded commit compares.
///
/// Opaque to the engine; each store picks what identifies a stored state for it. Stores
/// whose data other programs share (Redis, SQL) use the stored bytes themselves, so
/// nothing extra is stored and a write by a Node app is detected like any other; a store
/// private to this process may use a counter.
#[derive(Clone, PartialEq, Eq)]
pub struct Version(VersionRepr);

#[derive(Clone, PartialEq, Eq)]
enum VersionRepr {
    Counter(u64),
    Bytes(Arc<[u8]>),
}

impl Version {
    /// A version that is a counter the store bumps on every write.
    pub fn counter(n: u64) -> Self {
        Version(VersionRepr::Counter(n))
    }

    /// A version that is the stored value itself.
    pub fn bytes(stored: impl Into<Arc<[u8]>>) -> Self {
        Version(VersionRepr::Bytes(stored.into()))
    }

    /// The counter, for a version made by [`Version::counter`].
    pub fn as_counter(&self) -> Option<u64> {
        match self.0 {
            VersionRepr::Counter(n) => Some(n),
            VersionRepr::Bytes(_) => None,
        }
    }

    /// The stored value, for a version made by [`Version::bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            VersionRepr::Counter(_) => None,
            VersionRepr::Bytes(bytes) => Some(bytes),
        }
    }
}

impl fmt::Debug for Version {
    // Never the bytes: they are a session's data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            VersionRepr::Counter(n) => write!(f, "Version::counter({n})"),
            VersionRepr::Bytes(b) => write!(f, "Version::bytes({} bytes)", b.len()),
        }
    }
}

/// What [`Store::load`] found: the record and the version it was read from.
#[derive(Debug)]
pub struct Loaded {
    /// The session.
    pub record: Record,
    /// The stored state it was read from, for [`SaveMode::Update`]'s `expected`.
    pub version: Version,
    /// Whether the load also extended the record's life ([`Store::load_and_touch`]).
    pub touched: bool,
}

impl Loaded {
    /// A record read from `version`, not touched.
    pub fn new(record: Record, version: Version) -> Self {
        Loaded {
            record,
            version,
            touched: false,
        }
    }
}

/// A stored value as the admin commands see it: raw, so a corrupt value can be shown too.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The stored bytes (JSON for the stores Tessera ships).
    pub value: Vec<u8>,
    /// Time left before the store drops it, `None` when it never expires.
    pub ttl: Option<Duration>,
}

/// A failed store call. The layer answers `503 Service Unavailable` for these and logs them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer in time.
    #[error("session store `{store}` did not answer `{op}` within {after:?}; check that it is up and reachable, or raise the timeout")]
    Timeout {
        /// Which store.
        store: String,
        /// Which operation.
        op: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The store could not be reached or refused the operation.
    #[error("session store `{store}` failed on `{op}`: {source}")]
    Backend {
        /// Which store.
        store: String,
        /// Which operation.
        op: &'static str,
        /// What the backend said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value that is not a session (corrupt, foreign, or written by something
    /// else under our prefix). The engine treats it as no session and logs it.
    #[error("stored session {id:?} is unreadable: {source}")]
    Corrupt {
        /// The key's session ID.
        id: SessionId,
        /// Why it could not be decoded.
        #[source]
        source: DecodeError,
    },
    /// The store's configuration is invalid (bad URL, unusable path, …).
    #[error("session store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// A [`StoreError::Backend`] from any error.
    pub fn backend(
        store: impl fmt::Display,
        op: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            store: store.to_string(),
            op,
            source: source.into(),
        }
    }
}

/// A session backend.
///
/// Stores keep [`Record`]s under [`SessionId`]s and expire them on their own. The TTL rule
/// is connect-redis's: until the cookie's `expires`, else the store's default TTL; see
/// [`Record::ttl`]. Implementations must be cheap to share (`Arc`) and safe to call from
/// many requests at once.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The record for `id`, or `None` when there is none or it has expired.
    ///
    /// A value that cannot be decoded is [`StoreError::Corrupt`], which the engine treats as
    /// no session.
    async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError>;

    /// Loads `id` and, in the same round trip where the store can, extends its life to the
    /// cookie expiry `expires` as [`Store::touch`] would (Redis: `GETEX`), setting
    /// [`Loaded::touched`] when it did. The engine uses it so that a request that only reads
    /// its session costs one store command instead of a load and a touch.
    ///
    /// The default loads only and answers "not touched".
    async fn load_and_touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<Option<Loaded>, StoreError> {
        let _ = expires;
        self.load(id).await
    }

    /// Writes `record` under `id`, honouring `mode` (see [`SaveMode`]).
    async fn save(
        &self,
        id: &SessionId,
        record: &Record,
        mode: SaveMode<'_>,
    ) -> Result<SaveOutcome, StoreError>;

    /// Deletes the record for `id`; deleting a missing record is not an error.
    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError>;

    /// Extends the life of the record for `id` to the cookie expiry `expires` (or the
    /// default TTL for `None`) without rewriting it. Answers whether the record existed.
    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Walks every stored session page by page (admin use: never called on a request
    /// path), handing each page to `walker`; with `delete`, deletes each page's sessions
    /// once the walker has seen it. Foreign entries (see [`admin`]) are counted, never
    /// listed or deleted. Memory stays bounded by one page.
    async fn walk(&self, delete: bool, walker: &mut dyn Walker) -> Result<Walked, StoreError>;

    /// Every stored session ID, sorted. Holds them all in memory: for tests and small
    /// stores; `tessera sessions` walks instead.
    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        self.walk(false, &mut |page: &Page| {
            ids.extend(page.sessions.iter().map(|s| s.id.to_string()));
            std::ops::ControlFlow::Continue(())
        })
        .await?;
        ids.sort();
        Ok(ids)
    }

    /// How many sessions are stored (admin use).
    async fn count(&self) -> Result<u64, StoreError> {
        let mut no_op = |_: &Page| std::ops::ControlFlow::Continue(());
        Ok(self.walk(false, &mut no_op).await?.sessions)
    }

    /// The raw stored value and remaining TTL for `id` (admin use). Takes a plain string so
    /// any key can be inspected, a foreign one too.
    async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError>;

    /// Deletes every session, and nothing else; answers how many were deleted (admin use).
    async fn clear(&self) -> Result<u64, StoreError> {
        let mut no_op = |_: &Page| std::ops::ControlFlow::Continue(());
        Ok(self.walk(true, &mut no_op).await?.deleted)
    }

    /// Records in the per-user index over `key` that session `id` belongs to `user` and
    /// expires at `expires` (the store's default TTL for `None`); adding an entry that is
    /// there refreshes its expiry. The engine calls it *before* it writes a session with
    /// that user, and again when it extends the session's life, so the index holds every
    /// session of a user (see [`crate::index`]).
    ///
    /// The index lives outside the sessions (Redis: a key per user outside the prefix),
    /// so walks and Node's stores never meet it. A store whose index is derived from the
    /// stored data itself (the SQL stores query the JSON) does nothing here.
    ///
    /// The default fails with [`StoreError::Config`]: a store without an index cannot be
    /// used with [`SessionConfig::index_by`](crate::SessionConfig::index_by).
    async fn index_add(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let _ = (key, user, id, expires);
        Err(no_index(self))
    }

    /// Drops `id` from `user`'s entries in the index over `key`; dropping a missing entry
    /// is not an error.
    async fn index_remove(&self, key: &str, user: &str, id: &SessionId) -> Result<(), StoreError> {
        let _ = (key, user, id);
        Err(no_index(self))
    }

    /// What the index over `key` holds for `user`: a superset of the user's sessions,
    /// which [`UserIndex::sessions`](crate::index::UserIndex::sessions) checks one by one.
    async fn index_entries(&self, key: &str, user: &str) -> Result<Vec<IndexEntry>, StoreError> {
        let _ = (key, user);
        Err(no_index(self))
    }

    /// How long the store keeps a session whose cookie has no expiry (connect-redis's
    /// `ttl`), when it says. The listing of a user's sessions uses it to tell when a
    /// browser-session login was last active.
    fn default_ttl(&self) -> Option<Duration> {
        None
    }

    /// How this store's index entries expire, which tells the engine how often to
    /// refresh them (see [`IndexExpiry`]). The default, `Recorded` with no grace, has the
    /// engine refresh an entry whenever its session's life is extended.
    fn index_expiry(&self) -> IndexExpiry {
        IndexExpiry::Recorded {
            grace: Duration::ZERO,
        }
    }

    /// How long, at most, one call of the request path (`load`, `load_and_touch`, `save`,
    /// `destroy`, `touch`) takes, when the store enforces such a bound itself; the call then
    /// ends with [`StoreError::Timeout`]. `RedisStore` answers its command timeout.
    ///
    /// When the bound is within [`SessionConfig::store_timeout`](crate::SessionConfig::store_timeout),
    /// the engine arms no timer of its own around the call: one timer per store call
    /// instead of two. The default, `None`, keeps the engine's timer.
    fn time_bound(&self) -> Option<Duration> {
        None
    }
}

/// How a store's per-user index entries expire (see [`Store::index_expiry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexExpiry {
    /// Each entry lives exactly as long as its session (a side table with a trigger, or
    /// a query on the sessions themselves): the engine never refreshes entries, and a
    /// listing never drops an entry whose session is not written yet.
    FollowsSessions,
    /// Each entry keeps the expiry it was last given, and stays valid `grace` past it
    /// (RedisStore: its default TTL). The engine refreshes an entry when its session's
    /// expiry has moved on by more than a minute (or a quarter of `grace`, if less) since
    /// this process last did, so a session in steady use costs a refresh a minute, not one
    /// per request, and the listing's "last active" is right to the minute.
    Recorded {
        /// How long past its recorded expiry an entry is still kept.
        grace: Duration,
    },
}

/// The error of a store that keeps no per-user index.
fn no_index(store: &(impl fmt::Debug + ?Sized)) -> StoreError {
    StoreError::Config(format!(
        "session store `{store:?}` keeps no per-user index; `index_by` needs a store that does"
    ))
}
