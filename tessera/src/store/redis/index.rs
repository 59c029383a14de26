//! RedisStore's per-user index: one sorted set per user, outside the session prefix.
//!
//! The key is `index_prefix + indexed key + ":" + user` (by default
//! `tessera-index:userId:alice`), its members the user's session IDs, each scored by the
//! session's expiry in milliseconds. It never sits under the session prefix, so `SCAN
//! prefix*`, connect-redis's `all()`, `length()` and `clear()`, and `tessera sessions` never
//! meet it (the store refuses an index prefix that would overlap the session prefix).
//!
//! An entry is added or refreshed by a script over that one key (`INDEX_ADD`), which also
//! drops entries that expired more than a default TTL ago and keeps the key alive one
//! default TTL past its newest entry: an index never outlives its user's last session by
//! more than that, with no keyspace notifications. On a Cluster the index key and the
//! session keys hash to different slots, so they are written by separate commands: each
//! command is atomic, the pair is not. That is why the index is only a hint: the engine
//! adds an entry before it writes the session and checks every entry against the session
//! keys when it lists (see [`crate::index`]).
//!
//! Only Tessera writes the index: a login made by a Node app on the same Redis is not in
//! it, and a Node app that keeps extending a Tessera login (connect-redis's touch) for
//! longer than a default TTL without the session coming back to Tessera can outlive the
//! entry. Sessions shared that way should log in, and be listed, on the Tessera side.

use std::sync::OnceLock;

use redis::Value;
use time::OffsetDateTime;

use super::{Inner, RedisStore};
use crate::id::SessionId;
use crate::index::{millis, IndexEntry};
use crate::record::Ttl;
use crate::store::StoreError;

/// The default prefix of index keys.
pub const DEFAULT_INDEX_PREFIX: &str = "tessera-index:";

/// Adds or refreshes one entry. `KEYS[1]`: the user's index key. `ARGV`: the session ID,
/// its expiry (the score), the score before which entries are dropped, and how long the
/// key must live at least, in milliseconds (empty: forever, for `disable_ttl`).
const INDEX_ADD: &str = "\
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if ARGV[4] == '' then
  redis.call('PERSIST', KEYS[1])
elseif redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
";

fn script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(INDEX_ADD))
}

impl Inner {
    /// The index key of `user`, refused when it would fall under the session prefix.
    fn index_key(&self, key: &str, user: &str) -> Result<Vec<u8>, StoreError> {
        let fixed = format!("{}{key}:", self.options.index_prefix);
        let prefix = &self.options.prefix;
        if fixed.starts_with(prefix.as_str()) || prefix.starts_with(&fixed) {
            return Err(StoreError::Config(format!(
                "the per-user index keys ({fixed:?}…) would fall under the session prefix {prefix:?}; \
                 give the store a session prefix (connect-redis's default is \"sess:\") or another index prefix"
            )));
        }
        let mut full = fixed.into_bytes();
        full.extend_from_slice(user.as_bytes());
        Ok(full)
    }
}

impl RedisStore {
    pub(super) async fn index_add_entry(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let index_key = inner.index_key(key, user)?;
        let now = millis(OffsetDateTime::now_utc());
        let grace = millis_of(inner.default_ttl());
        let (score, keep, lifetime) = if inner.options.disable_ttl {
            (i64::MAX / 2, i64::MIN / 2, String::new())
        } else {
            let left = match inner.ttl_for_touch(expires) {
                Ttl::Seconds(s) => i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX / 4),
                Ttl::Expired => 0,
            };
            let score = now.saturating_add(left);
            (
                score,
                now.saturating_sub(grace),
                left.saturating_add(grace).max(1).to_string(),
            )
        };
        let (score, keep) = (score.to_string(), keep.to_string());
        let command = |name: &'static str, body: &str| {
            let data = body.len() + index_key.len() + id.as_str().len() + 64;
            let mut cmd = Inner::command(name, 7, data);
            cmd.arg(body)
                .arg(1)
                .arg(&index_key)
                .arg(id.as_str())
                .arg(&score)
                .arg(&keep)
                .arg(&lifetime);
            cmd
        };
        let mut reply = inner
            .send("index", &command("EVALSHA", script().get_hash()))
            .await?;
        if matches!(&reply, Value::ServerError(e) if e.code() == "NOSCRIPT") {
            reply = inner.send("index", &command("EVAL", INDEX_ADD)).await?;
        }
        inner.reply::<i64>("index", reply).map(|_| ())
    }

    pub(super) async fn index_remove_entry(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
    ) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let index_key = inner.index_key(key, user)?;
        let mut cmd = Inner::command("ZREM", 3, index_key.len() + id.as_str().len());
        cmd.arg(&index_key).arg(id.as_str());
        let reply = inner.send("index", &cmd).await?;
        inner.reply::<i64>("index", reply).map(|_| ())
    }

    pub(super) async fn index_list(
        &self,
        key: &str,
        user: &str,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let inner = &*self.inner;
        let index_key = inner.index_key(key, user)?;
        let mut cmd = Inner::command("ZRANGE", 5, index_key.len() + 16);
        cmd.arg(&index_key).arg(0).arg(-1).arg("WITHSCORES");
        let reply = inner.send("index", &cmd).await?;
        let members: Vec<(String, f64)> = inner.reply("index", reply)?;
        Ok(members
            .into_iter()
            .filter_map(|(id, score)| {
                // A member that is not a session ID was not written by Tessera: ignored.
                let id = SessionId::parse(&id)?;
                let expires = (score < (i64::MAX / 4) as f64)
                    .then(|| {
                        OffsetDateTime::from_unix_timestamp_nanos(score as i128 * 1_000_000).ok()
                    })
                    .flatten();
                Some(IndexEntry { id, expires })
            })
            .collect())
    }
}

fn millis_of(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}
