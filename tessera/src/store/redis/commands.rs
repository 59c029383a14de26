//! The commands a request sends, where compatibility with connect-redis lives: the key
//! (`prefix + id`), the TTL rule, and `GET`/`GETEX` to load, `SET … EX ttl NX|XX` to save
//! (a loaded session through the guarded commit's script, `guarded`, by default),
//! `EXPIRE` to touch, `DEL` to destroy.
//!
//! A Node app and this store share sessions only while all of these agree, so they are
//! kept together here. Every request boxes the futures of these calls, so the code here
//! also keeps their state small (see the test of their sizes).

use std::time::Duration;

use async_trait::async_trait;
use redis::{Cmd, Value};
use time::OffsetDateTime;

use super::builder::{TtlRule, WaitForReplicas};
use super::{Inner, RedisStore};
use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::record::{CookieData, DecodeError, Record, Ttl};
use crate::store::{
    Loaded, SaveMode, SaveOutcome, Store, StoreError, Stored, Version, Walked, Walker,
};

/// A duration as connect-redis's whole seconds, rounded up; zero means expired.
fn ttl_of(duration: Duration) -> Ttl {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    match secs {
        0 => Ttl::Expired,
        s => Ttl::Seconds(s),
    }
}

/// A key under the prefix that holds a hash, a list… rather than a string: not a session.
pub(super) fn is_wrongtype(e: &redis::ServerError) -> bool {
    e.code() == "WRONGTYPE"
}

impl Inner {
    /// A command with room for its arguments (`data`: their total length in bytes), so
    /// building it does not grow its buffers: each reallocation takes the allocator's
    /// lock, which the runtime's other threads contend for while they free replies.
    pub(super) fn command(name: &'static str, args: usize, data: usize) -> Cmd {
        let mut cmd = Cmd::with_capacity(args, name.len() + data);
        cmd.arg(name);
        cmd
    }

    pub(super) fn key(&self, id: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.options.prefix.len() + id.len());
        key.extend_from_slice(self.options.prefix.as_bytes());
        key.extend_from_slice(id.as_bytes());
        key
    }

    fn ttl_for(&self, record: &Record) -> Ttl {
        match &self.options.ttl {
            TtlRule::Fixed(default) => record.ttl(*default),
            TtlRule::Custom(f) => ttl_of(f(record)),
        }
    }

    /// The TTL a session without its own expiry gets (for the index's grace period).
    pub(super) fn default_ttl(&self) -> Duration {
        match &self.options.ttl {
            TtlRule::Fixed(default) => *default,
            TtlRule::Custom(_) => super::DEFAULT_TTL,
        }
    }

    pub(super) fn ttl_for_touch(&self, expires: Option<OffsetDateTime>) -> Ttl {
        match &self.options.ttl {
            TtlRule::Fixed(default) => Ttl::from_expiry(expires, *default),
            TtlRule::Custom(f) => ttl_of(f(&Record::new(CookieData {
                expires,
                ..CookieData::default()
            }))),
        }
    }

    /// Sends a load command (`GET`, or `GETEX` that also extends the TTL) and decodes the
    /// session it answers.
    async fn load_with(&self, id: &SessionId, cmd: &Cmd) -> Result<Option<Loaded>, StoreError> {
        let bytes = match self.send("load", cmd).await? {
            Value::Nil => return Ok(None),
            Value::BulkString(bytes) => bytes,
            Value::ServerError(e) if is_wrongtype(&e) => {
                return Err(StoreError::Corrupt {
                    id: id.clone(),
                    source: DecodeError::Json(serde::de::Error::custom(
                        "the key holds a Redis value that is not a string (WRONGTYPE)",
                    )),
                })
            }
            other => self.reply::<Vec<u8>>("load", other)?,
        };
        match self.options.serializer.deserialize(&bytes) {
            // The stored bytes are the version: the guarded commit compares them on the
            // server, and nothing extra is stored beside connect-redis's value.
            Ok(record) => Ok(Some(Loaded::new(record, Version::bytes(bytes)))),
            Err(source) => Err(StoreError::Corrupt {
                id: id.clone(),
                source,
            }),
        }
    }

    /// Sends a save (`SET` or the guarded commit's script), followed by `WAIT` when the
    /// store waits for replicas.
    pub(super) async fn send_save(&self, cmd: Cmd) -> Result<Value, StoreError> {
        match self.options.wait {
            None => self.send("save", &cmd).await,
            // Boxed: SET + WAIT's state would double the size of every save's future.
            Some(wait) => Box::pin(self.save_and_wait(cmd, wait)).await,
        }
    }

    /// `SET …` and `WAIT replicas timeout` in one pipeline, on one connection (a cluster
    /// routes the pipeline by the SET's key, so WAIT runs on that key's master). Answers
    /// the SET's reply.
    async fn save_and_wait(&self, set: Cmd, wait: WaitForReplicas) -> Result<Value, StoreError> {
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = redis::pipe();
        pipe.add_command(set)
            .cmd("WAIT")
            .arg(wait.replicas)
            .arg(timeout_ms);
        let budget = self.options.command_timeout + wait.timeout;
        let mut replies = self
            .send_pipeline_within("save", &pipe, 2, budget)
            .await?
            .into_iter();
        let (Some(set), Some(acked)) = (replies.next(), replies.next()) else {
            return Err(StoreError::backend(
                &self.name,
                "save",
                "Redis answered a SET + WAIT pipeline with fewer than two replies",
            ));
        };
        if !matches!(set, Value::Nil | Value::ServerError(_)) {
            match acked {
                Value::Int(n) if n >= i64::from(wait.replicas) => {}
                Value::Int(n) => tracing::warn!(
                    store = %self.name,
                    acknowledged = n,
                    wanted = wait.replicas,
                    timeout = ?wait.timeout,
                    "a session save reached fewer replicas than asked within the WAIT timeout; it is on the master, but a failover now could lose it"
                ),
                other => tracing::warn!(
                    store = %self.name,
                    reply = ?other,
                    "WAIT after a session save failed; the save is on the master"
                ),
            }
        }
        Ok(set)
    }

    async fn del(&self, op: &'static str, key: &[u8]) -> Result<i64, StoreError> {
        let mut cmd = Self::command("DEL", 2, key.len());
        cmd.arg(key);
        let reply = self.send(op, &cmd).await?;
        self.reply(op, reply)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError> {
        let inner = &*self.inner;
        let key = inner.key(id.as_str());
        let mut cmd = Inner::command("GET", 2, key.len());
        cmd.arg(key);
        inner.load_with(id, &cmd).await
    }

    /// `GETEX key EX ttl`: the load and the touch of a read-only request in one command
    /// (connect-redis sends `GET`, then `EXPIRE`). With `disable_touch` or `disable_ttl`, a
    /// plain `GET`; on a server without `GETEX` (before Redis 6.2), `GET` and the engine
    /// touches at the end as before.
    async fn load_and_touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<Option<Loaded>, StoreError> {
        use std::sync::atomic::Ordering;
        let inner = &*self.inner;
        // `GETEX` when the TTL is to be extended and the server has the command; else
        // `GET`, and the engine touches at the end unless touching is off for this store.
        // One load future either way: the state every request boxes stays small.
        let touch_off = inner.options.disable_touch || inner.options.disable_ttl;
        let getex_ttl = match inner.ttl_for_touch(expires) {
            Ttl::Seconds(ttl) if !touch_off && !inner.no_getex.load(Ordering::Relaxed) => Some(ttl),
            _ => None,
        };
        let key = inner.key(id.as_str());
        let cmd = match getex_ttl {
            Some(ttl) => {
                let mut cmd = Inner::command("GETEX", 4, key.len() + 2 + 20);
                cmd.arg(key).arg("EX").arg(ttl);
                cmd
            }
            None => {
                let mut cmd = Inner::command("GET", 2, key.len());
                cmd.arg(key);
                cmd
            }
        };
        let touched = touch_off || getex_ttl.is_some();
        let started = tokio::time::Instant::now();
        // Bound first, matched after: a future awaited in the `match` itself would stay
        // in the state through the arms, beside the fallback's.
        let loaded = inner.load_with(id, &cmd).await;
        match loaded {
            Ok(found) => Ok(found.map(|mut loaded| {
                loaded.touched = touched;
                loaded
            })),
            Err(StoreError::Backend { source, .. })
                if getex_ttl.is_some()
                    && source
                        .to_string()
                        .to_ascii_lowercase()
                        .contains("unknown command") =>
            {
                tracing::info!(store = %inner.name, "the server has no GETEX (Redis < 6.2): loading with GET and touching with EXPIRE");
                inner.no_getex.store(true, Ordering::Relaxed);
                // Within what is left of this call's budget: no call outlasts `time_bound`.
                let left = inner
                    .options
                    .command_timeout
                    .saturating_sub(started.elapsed());
                // Boxed: this path runs once per store, and would otherwise enlarge
                // every load's future.
                match tokio::time::timeout(left, Box::pin(self.load(id))).await {
                    Ok(loaded) => loaded,
                    Err(_) => Err(StoreError::Timeout {
                        store: inner.name.clone(),
                        op: "load",
                        after: inner.options.command_timeout,
                    }),
                }
            }
            Err(other) => Err(other),
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        record: &Record,
        mode: SaveMode<'_>,
    ) -> Result<SaveOutcome, StoreError> {
        let inner = &*self.inner;
        let key = inner.key(id.as_str());
        let Ttl::Seconds(ttl) = inner.ttl_for(record) else {
            // connect-redis deletes a session whose cookie has expired. A new session has
            // nothing to delete (and deleting could only hit a clashing ID's record).
            if matches!(mode, SaveMode::Update { .. }) {
                inner.del("save", &key).await?;
            }
            return Ok(SaveOutcome::Gone);
        };
        let ttl = (!inner.options.disable_ttl).then_some(ttl);
        let value = inner.options.serializer.serialize(record);
        if let SaveMode::Update {
            expected: Some(expected),
        } = mode
        {
            // Boxed: the script's call would otherwise enlarge every save's future.
            return Box::pin(inner.guarded_set(&key, expected, value, ttl)).await;
        }
        let mut cmd = Inner::command("SET", 6, key.len() + value.len() + 2 + 20 + 2);
        cmd.arg(&key).arg(&value);
        if let Some(ttl) = ttl {
            cmd.arg("EX").arg(ttl);
        }
        cmd.arg(match mode {
            SaveMode::Create => "NX",
            SaveMode::Update { .. } => "XX",
        });
        let reply = inner.send_save(cmd).await?;
        match reply {
            Value::Nil => Ok(match mode {
                SaveMode::Create => SaveOutcome::Conflict,
                SaveMode::Update { .. } => SaveOutcome::Gone,
            }),
            other => {
                inner.reply::<()>("save", other)?;
                Ok(SaveOutcome::Saved(Version::bytes(value)))
            }
        }
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError> {
        let inner = &*self.inner;
        inner.del("destroy", &inner.key(id.as_str())).await?;
        Ok(())
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let inner = &*self.inner;
        // As connect-redis: no EXPIRE with disableTouch or disableTTL.
        if inner.options.disable_touch || inner.options.disable_ttl {
            return Ok(true);
        }
        let key = inner.key(id.as_str());
        match inner.ttl_for_touch(expires) {
            Ttl::Seconds(ttl) => {
                let mut cmd = Inner::command("EXPIRE", 3, key.len() + 20);
                cmd.arg(&key).arg(ttl);
                let reply = inner.send("touch", &cmd).await?;
                inner.reply::<bool>("touch", reply)
            }
            Ttl::Expired => {
                inner.del("touch", &key).await?;
                Ok(false)
            }
        }
    }

    // The admin calls (never on a request path) live in `admin`, beside the SCAN sweeps
    // they share.

    async fn walk(&self, delete: bool, walker: &mut dyn Walker) -> Result<Walked, StoreError> {
        self.inner.walk(delete, walker).await
    }

    async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.inspect(id).await
    }

    // The per-user index (a sorted set per user) lives in `index`.

    async fn index_add(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.index_add_entry(key, user, id, expires).await
    }

    fn default_ttl(&self) -> Option<Duration> {
        Some(self.inner.default_ttl())
    }

    async fn index_remove(&self, key: &str, user: &str, id: &SessionId) -> Result<(), StoreError> {
        self.index_remove_entry(key, user, id).await
    }

    async fn index_entries(&self, key: &str, user: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.index_list(key, user).await
    }

    /// Entries are kept a default TTL past their recorded expiry (see `index`).
    fn index_expiry(&self) -> crate::store::IndexExpiry {
        crate::store::IndexExpiry::Recorded {
            grace: self.inner.default_ttl(),
        }
    }

    /// Every request-path call runs under the command timeout (plus the WAIT timeout for
    /// a save that waits for replicas), so the engine need not time it again.
    fn time_bound(&self) -> Option<Duration> {
        let options = &self.inner.options;
        Some(options.command_timeout + options.wait.map_or(Duration::ZERO, |w| w.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request boxes these futures (the `Store` trait is object safe through
    /// `async_trait`); under about 1 KiB, glibc's malloc serves them from its per-thread
    /// cache instead of taking an arena lock (see `layer`'s test of its own future).
    #[tokio::test]
    async fn request_path_futures_stay_under_a_kibibyte() {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .connect_lazy()
            .unwrap();
        let id = SessionId::parse("id").unwrap();
        let record =
            Record::from_json(br#"{"cookie":{"originalMaxAge":null,"expires":null}}"#).unwrap();
        let sizes = [
            ("load", std::mem::size_of_val(&*store.load(&id))),
            (
                "load_and_touch",
                std::mem::size_of_val(&*store.load_and_touch(&id, None)),
            ),
            (
                "save",
                std::mem::size_of_val(&*store.save(
                    &id,
                    &record,
                    SaveMode::Update {
                        expected: Some(&crate::store::Version::bytes(b"{}".to_vec())),
                    },
                )),
            ),
            ("touch", std::mem::size_of_val(&*store.touch(&id, None))),
            ("destroy", std::mem::size_of_val(&*store.destroy(&id))),
        ];
        for (call, size) in sizes {
            assert!(size <= 1000, "{call}'s future is {size} bytes");
        }
    }

    #[test]
    fn ttl_rounds_up_like_connect_redis() {
        assert_eq!(ttl_of(Duration::ZERO), Ttl::Expired);
        assert_eq!(ttl_of(Duration::from_millis(1)), Ttl::Seconds(1));
        assert_eq!(ttl_of(Duration::from_millis(1_500)), Ttl::Seconds(2));
        assert_eq!(ttl_of(Duration::from_secs(60)), Ttl::Seconds(60));
    }
}
