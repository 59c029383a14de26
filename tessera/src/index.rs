//! The per-user session index, and the reserved `_tessera` member of a stored session.
//!
//! OWASP asks that a user can see their sessions and end them ("sign out everywhere", a
//! password change, an admin locking an account). The application names the top-level
//! session key that holds the user ([`SessionConfig::index_by`](crate::SessionConfig::index_by));
//! whenever Tessera saves a session with that key set, changed or removed, the store's index
//! follows ([`Store::index_add`], [`Store::index_remove`]).
//!
//! The index is a hint, never trusted alone: a listing loads every session it names and
//! keeps only those that still exist and still belong to the user, pruning the others on
//! the way. So a session that expired, or was deleted behind the index's back (a Node
//! app's logout, a `DEL`, `tessera sessions destroy`), never appears, and no keyspace
//! notifications are needed. An entry is added *before* its session is written, so the
//! index always holds at least every session of the user: "revoke all" misses none.
//!
//! Where each store keeps it:
//!
//! | store | index |
//! |---|---|
//! | `MemoryStore` | a map beside the sessions |
//! | `SqliteStore` | a side table, its rows deleted with their session by a trigger |
//! | `RedisStore` | a sorted set per user outside the session prefix (`tessera-index:userId:alice`; on a Cluster in another slot, written by its own command) |
//! | `PostgresStore`, `MySqlStore` | a query on the stored JSON: nothing kept beside it |
//!
//! The reserved member `_tessera` is an object Tessera keeps in the stored JSON beside the
//! application's keys: `{"created": <ms since the epoch>, "device": "…"}`. express-session
//! keeps unknown top-level keys when it saves, so the creation time (which the absolute
//! timeout counts from) survives a Node app saving the session.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::id::SessionId;
use crate::record::{Data, Record};
use crate::signing::SessionHandle;
use crate::store::{Store, StoreError};

/// The top-level key of the stored JSON that Tessera reserves for itself.
pub const RESERVED_KEY: &str = "_tessera";

/// What a store's index holds for one session of a user: its ID and when its session
/// expires (`None` when the store does not say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The session.
    pub id: SessionId,
    /// When the session expires, as the index last heard.
    pub expires: Option<OffsetDateTime>,
}

/// A session of a user, as an operator sees it: it carries the session ID, a bearer
/// credential, so it is for admin tools only (`tessera sessions user`). What a user is
/// shown is a [`UserSession`].
#[derive(Debug)]
pub struct IndexedSession {
    /// The session ID.
    pub id: SessionId,
    /// The stored session.
    pub record: Record,
    /// When it expires, as the index last heard.
    pub expires: Option<OffsetDateTime>,
}

/// A session of the logged-in user, safe to show them: a handle instead of the ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// The session's handle (a keyed digest of its ID), which
    /// [`Session::revoke`](crate::Session::revoke) accepts.
    pub handle: SessionHandle,
    /// When the session was created (or last regenerated), when known.
    pub created: Option<OffsetDateTime>,
    /// When it was last active (as the index last heard): its expiry less its lifetime
    /// (the cookie's max age, else the store's default TTL), when both are known.
    pub last_active: Option<OffsetDateTime>,
    /// When it expires, when known.
    pub expires: Option<OffsetDateTime>,
    /// The device note the application stored with [`Session::set_device`](crate::Session::set_device).
    pub device: Option<String>,
    /// Whether this is the session of the current request.
    pub current: bool,
}

/// A key name the index cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index key {0:?} is not usable: use 1 to 64 letters, digits, `_`, `-` or `$`, and not `cookie` or `_tessera`")]
pub struct IndexKeyError(pub String);

/// The per-user index over one key of the session data.
///
/// The layer uses it for [`SessionConfig::index_by`](crate::SessionConfig::index_by); admin
/// tools use it directly on a store.
#[derive(Debug, Clone)]
pub struct UserIndex {
    key: Arc<str>,
}

impl UserIndex {
    /// An index over the top-level key `key`. The key's value names the user: a JSON
    /// string, or a number (compared as its decimal text).
    ///
    /// The name is restricted (letters, digits, `_`, `-`, `$`) because SQL stores put it in
    /// a JSON path.
    pub fn new(key: impl Into<String>) -> Result<Self, IndexKeyError> {
        let key = key.into();
        let usable = (1..=64).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-$".contains(&b))
            && key != "cookie"
            && key != RESERVED_KEY;
        if !usable {
            return Err(IndexKeyError(key));
        }
        Ok(UserIndex { key: key.into() })
    }

    /// The indexed key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The user a record belongs to, if any.
    pub fn user_of(&self, record: &Record) -> Option<String> {
        user_in(&record.data, &self.key)
    }

    /// The sessions of `user` that exist now, each checked against the store; index
    /// entries of sessions that are gone or now belong to someone else are pruned.
    pub async fn sessions(
        &self,
        store: &dyn Store,
        user: &str,
    ) -> Result<Vec<IndexedSession>, StoreError> {
        let mut found = Vec::new();
        for entry in store.index_entries(&self.key, user).await? {
            let record = match store.load(&entry.id).await {
                Ok(Some(loaded)) => Some(loaded.record),
                Ok(None) => None,
                // Unreadable: no request can use it either.
                Err(StoreError::Corrupt { .. }) => None,
                Err(other) => return Err(other),
            };
            match record {
                Some(record) if self.user_of(&record).as_deref() == Some(user) => {
                    found.push(IndexedSession {
                        id: entry.id,
                        record,
                        expires: entry.expires,
                    });
                }
                _ => store.index_remove(&self.key, user, &entry.id).await?,
            }
        }
        found.sort_by_key(|s| std::cmp::Reverse(created_at(&s.record)));
        Ok(found)
    }

    /// Deletes every session of `user` (all but `keep`, when given); answers how many were
    /// deleted.
    pub async fn revoke_all(
        &self,
        store: &dyn Store,
        user: &str,
        keep: Option<&SessionId>,
    ) -> Result<u64, StoreError> {
        let mut revoked = 0;
        for session in self.sessions(store, user).await? {
            if Some(&session.id) == keep {
                continue;
            }
            store.destroy(&session.id).await?;
            store.index_remove(&self.key, user, &session.id).await?;
            revoked += 1;
        }
        Ok(revoked)
    }
}

/// The user named by `key` in `data`: a string, or a number as its text.
pub(crate) fn user_in(data: &Data, key: &str) -> Option<String> {
    match data.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The reserved member's field `field`.
fn reserved_field<'a>(record: &'a Record, field: &str) -> Option<&'a Value> {
    record.data.get(RESERVED_KEY)?.get(field)
}

/// When the session was created (or last regenerated), from the reserved member.
pub fn created_at(record: &Record) -> Option<OffsetDateTime> {
    let ms = reserved_field(record, "created")?.as_i64()?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// The device note of the session, from the reserved member.
pub fn device_of(record: &Record) -> Option<String> {
    reserved_field(record, "device")?
        .as_str()
        .map(str::to_owned)
}

/// The reserved member with `created` set to `at`, keeping its other fields.
pub(crate) fn with_created(current: Option<&Value>, at: OffsetDateTime) -> Value {
    with_field(current, "created", Value::from(millis(at)))
}

/// The reserved member with `field` set to `value`, keeping its other fields.
pub(crate) fn with_field(current: Option<&Value>, field: &str, value: Value) -> Value {
    let mut object = match current {
        Some(Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    object.insert(field.to_owned(), value);
    Value::Object(object)
}

/// Milliseconds since the epoch, as JavaScript's `Date.now()`.
pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_names_are_restricted() {
        assert!(UserIndex::new("userId").is_ok());
        assert!(UserIndex::new("user_id-2$").is_ok());
        for bad in [
            "",
            "cookie",
            "_tessera",
            "a.b",
            "a\"b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(UserIndex::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users_are_strings_or_numbers() {
        let mut data = Data::new();
        let index = |data: &Data| user_in(data, "user");
        assert_eq!(index(&data), None);
        data.insert("user".into(), json!("alice"));
        assert_eq!(index(&data).as_deref(), Some("alice"));
        data.insert("user".into(), json!(42));
        assert_eq!(index(&data).as_deref(), Some("42"));
        for other in [
            json!(""),
            json!(null),
            json!(true),
            json!({"id": 1}),
            json!([1]),
        ] {
            data.insert("user".into(), other.clone());
            assert_eq!(index(&data), None, "{other}");
        }
    }

    #[test]
    fn the_reserved_member_keeps_its_other_fields() {
        let at = OffsetDateTime::from_unix_timestamp(1_764_633_600).unwrap();
        let stamped = with_created(Some(&json!({"device": "curl"})), at);
        assert_eq!(
            stamped,
            json!({"device": "curl", "created": 1_764_633_600_000_i64})
        );
        let mut record = Record::new(Default::default());
        record.data.insert(RESERVED_KEY.into(), stamped);
        assert_eq!(created_at(&record), Some(at));
        assert_eq!(device_of(&record).as_deref(), Some("curl"));
        // Anything else there is no creation time, never an error.
        record.data.insert(RESERVED_KEY.into(), json!("junk"));
        assert_eq!(created_at(&record), None);
    }
}
