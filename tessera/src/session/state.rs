//! What one request holds of its session: the record as the handler sees it, where it is
//! stored, and this request's changes, kept per top-level key.
//!
//! The per-key log is what makes the guarded commit merge rather than overwrite: when the
//! store says the record changed since it was loaded, the commit takes the fresh record and
//! re-applies only what this request did to it (see [`Changes::apply_onto`]). Keys this request
//! set or removed take its value, `update` closures re-run on the fresh value, and every
//! other key keeps what the other writer stored.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use time::OffsetDateTime;

use crate::error::SessionError;
use crate::id::SessionId;
use crate::record::{to_millis, Data, Record};
use crate::store::Version;

/// A read-modify-write of one key, kept to be run again on a fresh value.
pub(crate) type UpdateFn = Arc<dyn Fn(Option<&Value>) -> Result<Value, SessionError> + Send + Sync>;

#[derive(Debug, Default)]
pub(crate) struct State {
    /// The current ID; set when the session is loaded or first needed.
    pub(crate) id: Option<SessionId>,
    /// Shared with a save in flight rather than copied for it; changed copy-on-write.
    pub(crate) record: Option<Arc<Record>>,
    /// The ID the store holds this session's record under, if any.
    pub(crate) stored_as: Option<SessionId>,
    /// The stored state `record` was loaded from (or last saved as): what the guarded
    /// commit expects to find.
    pub(crate) version: Option<Version>,
    /// Whether a key, the cookie or the whole data changed since the last save.
    pub(crate) unsaved: bool,
    /// Whether anything changed since the request began (express's `isModified`, which also
    /// counts a new ID).
    pub(crate) modified: bool,
    /// This request's changes since the last save, for a merge on conflict.
    pub(crate) changes: Changes,
    /// `destroy()` was called.
    pub(crate) destroyed: bool,
    pub(crate) unset: bool,
    /// `regenerate()` could not delete the old record: the request must fail rather than
    /// go on under an ID an attacker may have planted.
    pub(crate) broken: bool,
    /// The user the stored record is filed under in the per-user index (its user as
    /// loaded, or as last written).
    pub(crate) indexed_as: Option<String>,
    /// The load already extended the stored session's life as the end-of-request touch
    /// would (one round trip instead of two).
    pub(crate) touched_on_load: bool,
}

/// What this request did to each top-level key, in the order it first touched them.
#[derive(Default)]
pub(crate) struct Changes {
    keys: Vec<(String, Change)>,
    /// The handler changed the cookie's lifetime: its cookie member wins over the fresh one.
    pub(crate) cookie: bool,
}

enum Change {
    /// Set, removed or cleared: the key ends as this request left it, whatever is stored.
    Ours,
    /// Only `update`d: the closures, in order, re-run on the stored value.
    Derived(Vec<UpdateFn>),
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Changes {
    fn find(&mut self, key: &str) -> Option<&mut Change> {
        self.keys
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, change)| change)
    }

    /// `key` was set or removed: it ends as this request left it.
    pub(crate) fn ours(&mut self, key: &str) {
        match self.find(key) {
            Some(change) => *change = Change::Ours,
            None => self.keys.push((key.to_owned(), Change::Ours)),
        }
    }

    /// `key` was updated by `f`.
    pub(crate) fn derived(&mut self, key: &str, f: UpdateFn) {
        match self.find(key) {
            // Set earlier in this request: the update started from this request's value,
            // so the key's end value does not depend on the stored one.
            Some(Change::Ours) => {}
            Some(Change::Derived(fns)) => fns.push(f),
            None => self.keys.push((key.to_owned(), Change::Derived(vec![f]))),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.cookie = false;
    }

    /// Re-applies this request's changes (its record is `ours`) on `fresh`, a record
    /// another writer stored since, or the record of requests committed before it.
    ///
    /// Every new value is worked out before `fresh` is touched: when an `update` closure
    /// fails (the fresh value does not have its type), `fresh` is left as it was and the
    /// error is this request's alone.
    pub(crate) fn apply_onto(&self, ours: &Record, fresh: &mut Record) -> Result<(), SessionError> {
        let mut values = Vec::with_capacity(self.keys.len());
        for (key, change) in &self.keys {
            let value = match change {
                Change::Ours => ours.data.get(key).cloned(),
                Change::Derived(fns) => {
                    let mut value = fresh.data.get(key).cloned();
                    for f in fns {
                        value = Some(f(value.as_ref())?);
                    }
                    // No closure leaves a key absent: `fns` is never empty.
                    value
                }
            };
            values.push((key, value));
        }
        if self.cookie {
            fresh.cookie.clone_from(&ours.cookie);
        }
        for (key, value) in values {
            match value {
                Some(value) => {
                    fresh.data.insert(key.clone(), value);
                }
                None => {
                    // `shift_remove` keeps the order of the other keys.
                    fresh.data.shift_remove(key);
                }
            }
        }
        fresh.absorb_shelter(ours);
        Ok(())
    }
}

impl State {
    pub(crate) fn data(&self) -> &Data {
        static EMPTY: OnceLock<Data> = OnceLock::new();
        match &self.record {
            Some(r) => &r.data,
            None => EMPTY.get_or_init(Data::new),
        }
    }

    pub(crate) fn data_mut(&mut self) -> &mut Data {
        let record = self
            .record
            .get_or_insert_with(|| Arc::new(Record::new(Default::default())));
        &mut Arc::make_mut(record).data
    }

    /// The record to change; copied first only if a save still holds it.
    pub(crate) fn record_mut(&mut self) -> Option<&mut Record> {
        self.record.as_mut().map(Arc::make_mut)
    }

    /// Checks the record, just changed under `key` (from `old`), against the size limit.
    /// Serializes the record once per change; a second time only when it is over the limit,
    /// to let a change that does not grow an already large record through.
    pub(crate) fn within_limit(
        &mut self,
        key: &str,
        limit: Option<usize>,
        old: Option<&Value>,
    ) -> Result<(), SessionError> {
        let (Some(limit), Some(record)) = (limit, self.record.as_ref()) else {
            return Ok(());
        };
        let bytes = record.to_json().len();
        if bytes <= limit {
            return Ok(());
        }
        let mut before = (**record).clone();
        match old {
            Some(old) => {
                before.data.insert(key.to_owned(), old.clone());
            }
            None => {
                before.data.shift_remove(key);
            }
        }
        if bytes <= before.to_json().len() {
            return Ok(());
        }
        Err(SessionError::TooLarge {
            key: key.to_owned(),
            bytes,
            limit,
        })
    }

    /// Puts `key` back as it was before a refused change.
    pub(crate) fn restore(&mut self, key: &str, old: Option<Value>) {
        match old {
            Some(old) => {
                self.data_mut().insert(key.to_owned(), old);
            }
            None => {
                self.data_mut().shift_remove(key);
            }
        }
    }

    /// What was written is now the stored state: nothing is left to merge.
    pub(crate) fn saved(&mut self) {
        self.unsaved = false;
        self.changes.clear();
    }

    /// The store no longer holds this session.
    pub(crate) fn gone(&mut self) {
        self.stored_as = None;
        self.version = None;
    }

    pub(crate) fn changed(&mut self) {
        self.unsaved = true;
        self.modified = true;
    }

    /// express's `Session#touch` / `Cookie#resetMaxAge`: expires = now + originalMaxAge.
    pub(crate) fn reset_expiry(&mut self) {
        if let Some(record) = self.record_mut() {
            reset_expiry(record);
        }
    }
}

/// expires = now + originalMaxAge, for a cookie with a max age.
pub(crate) fn reset_expiry(record: &mut Record) {
    if let Some(ms) = record.cookie.original_max_age {
        record.cookie.expires = OffsetDateTime::now_utc()
            .checked_add(time::Duration::milliseconds(ms))
            .map(to_millis);
    }
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding this lock cannot leave the state half-updated in a way that
    // matters more than losing the request, so a poisoned lock is used as it is.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
