//! `MemoryStore`: sessions in a `HashMap`, for tests and development.
//!
//! Expiry follows mini-redis's `db.rs`: an index of deadlines in a `BTreeMap`, and a
//! background task that sleeps until the earliest deadline, purges, and is woken through a
//! `Notify` when an earlier deadline arrives. Unlike mini-redis, extending a session (every
//! request does) leaves the index alone: an entry is indexed no later than its deadline, and
//! the purge re-files one whose deadline moved on when its old one comes up. That keeps the
//! request path to a hash lookup. Expired sessions are also purged on every
//! write, so even without a runtime for the task (a store built outside tokio) nothing
//! leaks — unlike express-session's MemoryStore, which prunes a session only when read.
//! A drop guard stops the task when the last clone of the store is dropped.
//!
//! Bounded both ways: a purge removes at most a batch of entries per hold of the lock (the
//! task takes the next batch after letting requests in), and the store holds at most
//! [`DEFAULT_MAX_SESSIONS`] sessions (see [`MemoryStore::with_max_sessions`]): a new one
//! beyond that evicts the session whose expiry comes first, so a flood of new sessions
//! costs memory up to the cap and no more.
//!
//! Nothing survives a restart; use `SqliteStore` or `RedisStore` for that.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    Listed, Loaded, Page, SaveMode, SaveOutcome, Store, StoreError, Stored, Version, Walked, Walker,
};
use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::record::{Record, Ttl};

/// How many sessions a [`MemoryStore`] holds by default (about 50 MB of typical sessions).
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// How many expired entries one hold of the lock purges in the background task.
const PURGE_BATCH: usize = 1024;

/// How many expired entries a write purges on its way (the task does the rest).
const WRITE_PURGE: usize = 16;

/// An in-process session store with expiry. Clones share the same sessions.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    default_ttl: Duration,
    max_sessions: usize,
}

#[derive(Default)]
struct State {
    entries: HashMap<SessionId, Entry, IdHasher>,
    /// Every entry under `(indexed, seq)`; see `Entry::indexed`.
    deadlines: BTreeMap<(Instant, u64), SessionId>,
    /// Makes index keys unique when two entries share a deadline, and numbers the
    /// versions of stored records (each write takes the next one).
    next_seq: u64,
    /// Sessions evicted because the store was full.
    evictions: u64,
    /// The per-user index: (indexed key, user) to the user's session IDs and expiries.
    users: HashMap<(String, String), HashMap<SessionId, Option<OffsetDateTime>>>,
    shutdown: bool,
}

struct Entry {
    record: Record,
    deadline: Instant,
    /// The deadline the index files this entry under: never later than `deadline`, so the
    /// purge looks at the entry in time, and then re-files it if it was extended.
    indexed: Instant,
    seq: u64,
    /// Which write stored `record`: the guarded commit's version.
    version: u64,
}

/// The map's hasher: FxHash (rustc-hash 2, rustc's own). A request looks its session up
/// several times (load, touch, save), and std's SipHash was 3% of a counter request's
/// instructions. SipHash resists keys chosen to collide; that does not matter here, because
/// the IDs that reach a store are ones the application's generator made or ones a correctly
/// signed cookie carried, never bytes a client picked. rustc-hash 2's hash spreads IDs that
/// differ only in a few characters (a custom generator's `user-000123`) over the buckets
/// the map picks by the low bits (the test below holds it to that).
type IdHasher = rustc_hash::FxBuildHasher;

struct DropGuard(Arc<Shared>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.lock().shutdown = true;
        self.0.wake.notify_one();
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory")
    }
}

impl MemoryStore {
    /// An empty store whose sessions without a cookie expiry live one day (connect-redis's
    /// default TTL).
    pub fn new() -> Self {
        Self::with_default_ttl(Duration::from_secs(86_400))
    }

    /// An empty store with the given TTL for sessions whose cookie has no expiry.
    pub fn with_default_ttl(default_ttl: Duration) -> Self {
        Self::with_limits(default_ttl, DEFAULT_MAX_SESSIONS)
    }

    /// An empty store holding at most `max_sessions` sessions (at least one; default
    /// [`DEFAULT_MAX_SESSIONS`]). When it is full, saving a new session evicts the one whose
    /// expiry comes first (logged), rather than refusing the new one.
    pub fn with_max_sessions(max_sessions: usize) -> Self {
        Self::with_limits(Duration::from_secs(86_400), max_sessions)
    }

    fn with_limits(default_ttl: Duration, max_sessions: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            default_ttl,
            max_sessions: max_sessions.max(1),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(purge_task(shared.clone()));
        }
        MemoryStore {
            _guard: Arc::new(DropGuard(shared.clone())),
            shared,
        }
    }

    /// How many sessions are held, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When an entry kept for `ttl` from `now` expires (`now` is passed in: a request
    /// already read the clock once).
    fn deadline(&self, ttl: Ttl, now: Instant) -> Option<Instant> {
        match ttl {
            Ttl::Seconds(s) => now.checked_add(Duration::from_secs(s)),
            Ttl::Expired => None,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Removes entries whose deadline has passed, and re-files the extended ones whose
    /// index deadline came up, at most `limit` of them; answers the next index deadline
    /// (`now` or earlier when the limit left some to do).
    fn purge(&mut self, now: Instant, limit: usize) -> Option<Instant> {
        for _ in 0..limit {
            let first = self.deadlines.first_entry()?;
            if first.key().0 > now {
                return Some(first.key().0);
            }
            let id = first.remove();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.deadline <= now {
                self.entries.remove(&id);
            } else {
                entry.indexed = entry.deadline;
                self.deadlines.insert((entry.deadline, entry.seq), id);
            }
        }
        self.deadlines.first_key_value().map(|((at, _), _)| *at)
    }

    /// Makes room for one more entry: evicts the entry indexed first (its expiry comes
    /// first, or came first before it was extended).
    fn evict_one(&mut self) {
        if let Some((_, id)) = self.deadlines.pop_first() {
            self.entries.remove(&id);
        }
    }

    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.deadlines.remove(&(entry.indexed, entry.seq));
        Some(entry)
    }

    /// Adds an entry; answers whether its deadline is now the earliest (the purge task
    /// must be woken to sleep less).
    fn insert(&mut self, id: &SessionId, record: Record, deadline: Instant) -> (bool, u64) {
        let earliest = self
            .deadlines
            .first_key_value()
            .is_none_or(|((first, _), _)| deadline < *first);
        let seq = self.next_seq();
        self.deadlines.insert((deadline, seq), id.clone());
        self.entries.insert(
            id.clone(),
            Entry {
                record,
                deadline,
                indexed: deadline,
                seq,
                version: seq,
            },
        );
        (earliest, seq)
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Moves a live entry's deadline; false when there is no live entry. A later deadline
    /// leaves the index as it is; an earlier one re-files the entry.
    fn extend(&mut self, id: &SessionId, deadline: Instant, now: Instant) -> bool {
        let Some(entry) = self.entries.get_mut(id).filter(|e| e.deadline > now) else {
            return false;
        };
        entry.deadline = deadline;
        if deadline < entry.indexed {
            let key = (entry.indexed, entry.seq);
            entry.indexed = deadline;
            let seq = entry.seq;
            if let Some(id) = self.deadlines.remove(&key) {
                self.deadlines.insert((deadline, seq), id);
            }
        }
        true
    }

    fn live(&self, id: &SessionId, now: Instant) -> Option<&Entry> {
        self.entries.get(id).filter(|e| e.deadline > now)
    }
}

async fn purge_task(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut state = shared.lock();
            if state.shutdown {
                return;
            }
            let now = Instant::now();
            (state.purge(now, PURGE_BATCH), now)
        };
        match next {
            // More expired entries than one batch: let requests take the lock, then go on.
            (Some(at), now) if at <= now => tokio::task::yield_now().await,
            (Some(at), _) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shared.wake.notified() => {}
                }
            }
            (None, _) => shared.wake.notified().await,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError> {
        let state = self.shared.lock();
        Ok(state
            .live(id, Instant::now())
            .map(|e| Loaded::new(e.record.clone(), Version::counter(e.version))))
    }

    async fn load_and_touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<Option<Loaded>, StoreError> {
        let now = Instant::now();
        let deadline = self.deadline(Ttl::from_expiry(expires, self.shared.default_ttl), now);
        let mut state = self.shared.lock();
        let Some(entry) = state.live(id, now) else {
            return Ok(None);
        };
        let mut loaded = Loaded::new(entry.record.clone(), Version::counter(entry.version));
        loaded.touched = deadline.is_some_and(|deadline| state.extend(id, deadline, now));
        Ok(Some(loaded))
    }

    async fn save(
        &self,
        id: &SessionId,
        record: &Record,
        mode: SaveMode<'_>,
    ) -> Result<SaveOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.shared.lock();
        state.purge(now, WRITE_PURGE);
        let stored = state.live(id, now).map(|e| e.version);
        let exists = stored.is_some();
        match (mode, stored) {
            (SaveMode::Create, Some(_)) => return Ok(SaveOutcome::Conflict),
            (SaveMode::Update { .. }, None) => return Ok(SaveOutcome::Gone),
            // The guarded commit: checked and written under the one lock.
            (SaveMode::Update { expected: Some(v) }, Some(stored))
                if v.as_counter() != Some(stored) =>
            {
                return Ok(SaveOutcome::Changed)
            }
            _ => {}
        }
        let Some(deadline) = self.deadline(record.ttl(self.shared.default_ttl), now) else {
            state.remove(id);
            return Ok(SaveOutcome::Gone);
        };
        let (earliest, version) = if exists {
            let first = state
                .deadlines
                .first_key_value()
                .map(|((first, _), _)| *first);
            let version = state.next_seq();
            // An update writes over the stored record in place, reusing its allocations.
            if let Some(entry) = state.entries.get_mut(id) {
                entry.record.clone_from(record);
                entry.version = version;
            }
            state.extend(id, deadline, now);
            (first.is_none_or(|first| deadline < first), version)
        } else {
            // A stale (expired, not yet purged) entry may hold this ID.
            state.remove(id);
            if state.entries.len() >= self.shared.max_sessions {
                state.evict_one();
                state.evictions += 1;
                // Logged at 1, 2, 4, 8, … evictions: seen, without flooding the log.
                if state.evictions.is_power_of_two() {
                    tracing::warn!(
                        max_sessions = self.shared.max_sessions,
                        evictions = state.evictions,
                        "MemoryStore is full; evicting the sessions that expire first"
                    );
                }
            }
            state.insert(id, record.clone(), deadline)
        };
        drop(state);
        if earliest {
            self.shared.wake.notify_one();
        }
        Ok(SaveOutcome::Saved(Version::counter(version)))
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError> {
        self.shared.lock().remove(id);
        Ok(())
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let deadline = self.deadline(Ttl::from_expiry(expires, self.shared.default_ttl), now);
        let mut state = self.shared.lock();
        match deadline {
            Some(deadline) => Ok(state.extend(id, deadline, now)),
            // Touched to an expiry already past: the session is over.
            None => {
                state.remove(id);
                Ok(false)
            }
        }
    }

    /// Pages of [`PAGE_SIZE`](super::admin::PAGE_SIZE) sessions, each read under one
    /// hold of the lock; the IDs to visit are taken first (the sessions themselves are
    /// already in this process's memory).
    async fn walk(&self, delete: bool, walker: &mut dyn Walker) -> Result<Walked, StoreError> {
        let ids: Vec<SessionId> = self.shared.lock().entries.keys().cloned().collect();
        let mut walked = Walked::default();
        for chunk in ids.chunks(super::admin::PAGE_SIZE) {
            let now = Instant::now();
            let page = {
                let state = self.shared.lock();
                let sessions = chunk
                    .iter()
                    .filter_map(|id| {
                        let entry = state.live(id, now)?;
                        Some(Listed {
                            id: id.clone(),
                            bytes: entry.record.to_json().len(),
                            ttl: Some(entry.deadline.saturating_duration_since(now)),
                            record: entry.record.clone(),
                        })
                    })
                    .collect();
                Page {
                    sessions,
                    foreign: 0,
                }
            };
            let go_on = walker.page(&page);
            let mut deleted = 0;
            if delete {
                let mut state = self.shared.lock();
                for listed in &page.sessions {
                    deleted += u64::from(state.remove(&listed.id).is_some());
                }
            }
            if !walked.add(&page, deleted, go_on) {
                break;
            }
        }
        Ok(walked)
    }

    /// The index is a map beside the sessions. Adding prunes the user's entries whose
    /// session is no longer held, so a user's map never outgrows their live sessions by
    /// more than the ones since their last login.
    async fn index_add(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        // As the session's own deadline: the cookie's expiry, else the default TTL.
        let expires = expires.or_else(|| {
            OffsetDateTime::now_utc()
                .checked_add(time::Duration::try_from(self.shared.default_ttl).ok()?)
        });
        let mut state = self.shared.lock();
        let State { users, entries, .. } = &mut *state;
        let mine = users.entry((key.to_owned(), user.to_owned())).or_default();
        mine.retain(|held, _| entries.contains_key(held));
        mine.insert(id.clone(), expires);
        Ok(())
    }

    fn default_ttl(&self) -> Option<Duration> {
        Some(self.shared.default_ttl)
    }

    async fn index_remove(&self, key: &str, user: &str, id: &SessionId) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        let user = (key.to_owned(), user.to_owned());
        if let Some(mine) = state.users.get_mut(&user) {
            mine.remove(id);
            if mine.is_empty() {
                state.users.remove(&user);
            }
        }
        Ok(())
    }

    async fn index_entries(&self, key: &str, user: &str) -> Result<Vec<IndexEntry>, StoreError> {
        let state = self.shared.lock();
        let user = (key.to_owned(), user.to_owned());
        Ok(state
            .users
            .get(&user)
            .map(|mine| {
                mine.iter()
                    .map(|(id, expires)| IndexEntry {
                        id: id.clone(),
                        expires: *expires,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let Some(id) = SessionId::parse(id) else {
            return Ok(None);
        };
        let now = Instant::now();
        let state = self.shared.lock();
        Ok(state.live(&id, now).map(|e| Stored {
            value: e.record.to_json(),
            ttl: Some(e.deadline.saturating_duration_since(now)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// The map picks a bucket by the hash's low bits: IDs that differ in one character (a
    /// custom generator's sequence) must still spread over the buckets, not pile up in a
    /// few and turn each lookup into a scan.
    #[test]
    fn ids_that_differ_in_one_character_spread_over_the_buckets() {
        let hasher = IdHasher::default();
        for shape in ["user-{}", "{}", "session-{}-of-the-day"] {
            let buckets: std::collections::HashSet<u64> = (0..1024)
                .map(|n| {
                    let id = shape.replace("{}", &format!("{n:06}"));
                    hasher.hash_one(SessionId::parse(&id).unwrap()) & 1023
                })
                .collect();
            // 1024 keys thrown at random into 1024 buckets fill about 647 of them.
            assert!(
                buckets.len() > 550,
                "{shape}: {} of 1024 buckets used",
                buckets.len()
            );
        }
    }
}
