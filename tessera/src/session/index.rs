//! The session's side of the per-user index and of the absolute timeout: keeping the
//! store's index in step with each write, and the user-facing calls (list, revoke).
//!
//! The order of calls is what keeps the index a superset of the user's sessions: an entry
//! is added before the session is first written under that user (a failure there fails
//! the request, and nothing is written) and again after (see `index_after_write`), and
//! dropped only after the session was written under another user or deleted (a failure
//! there is logged: a stale entry is pruned by the next listing, which checks every entry
//! against the store). A write or touch of a session already filed under its user
//! refreshes the entry's expiry with one call after it.

use std::time::Duration;

use time::OffsetDateTime;

use super::state::lock;
use super::Session;
use crate::error::SessionError;
use crate::events::metric::Count;
use crate::events::EventKind;
use crate::id::SessionId;
use crate::index::{self, UserSession, RESERVED_KEY};
use crate::record::Record;
use crate::signing::SessionHandle;
use crate::store::IndexExpiry;

/// What [`Session::mine`] finds.
struct Mine {
    user: String,
    current: Option<SessionId>,
    sessions: Vec<crate::index::IndexedSession>,
}

impl Session {
    /// The sessions of the logged-in user (the value of the key given to
    /// [`SessionConfig::index_by`](crate::SessionConfig::index_by)), newest first, this
    /// one marked [`current`](UserSession::current). Empty when nobody is logged in.
    ///
    /// Each entry has a handle, never the session ID: the list is safe to show the user.
    ///
    /// # Errors
    /// [`SessionError::NoIndex`] without `index_by`; a store error as usual.
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>, SessionError> {
        let engine = self.engine();
        let Some(Mine {
            current, sessions, ..
        }) = self.mine().await?
        else {
            return Ok(Vec::new());
        };
        Ok(sessions
            .into_iter()
            .map(|s| {
                // Each request extends a session to now plus its lifetime: its cookie's
                // max age, or for a browser-session cookie the store's default TTL.
                let lifetime = match s.record.cookie.original_max_age {
                    Some(ms) => u64::try_from(ms).ok().map(Duration::from_millis),
                    None => engine.store.default_ttl(),
                };
                let last_active = match (s.expires, lifetime) {
                    (Some(at), Some(lifetime)) => time::Duration::try_from(lifetime)
                        .ok()
                        .and_then(|d| at.checked_sub(d)),
                    _ => None,
                };
                UserSession {
                    handle: engine.secrets.handle(&s.id),
                    created: index::created_at(&s.record),
                    last_active,
                    expires: s.expires,
                    device: index::device_of(&s.record),
                    current: current.as_ref() == Some(&s.id),
                }
            })
            .collect())
    }

    /// Ends the logged-in user's session whose handle is `handle` (from
    /// [`user_sessions`](Self::user_sessions)); answers whether there was one. A handle
    /// of another user's session ends nothing. Revoking the current session is
    /// [`destroy`](Self::destroy).
    pub async fn revoke(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let engine = self.engine();
        let Some(Mine {
            user,
            current,
            sessions,
        }) = self.mine().await?
        else {
            return Ok(false);
        };
        let Some(target) = sessions
            .into_iter()
            .find(|s| engine.secrets.handle(&s.id) == *handle)
        else {
            return Ok(false);
        };
        if current.as_ref() == Some(&target.id) {
            self.destroy().await?;
            return Ok(true);
        }
        self.end_other(&user, &target.id).await?;
        Ok(true)
    }

    /// Ends every session of the logged-in user, or all but this one with `keep_current`
    /// ("sign out everywhere else"); answers how many were ended. Without `keep_current`
    /// the current session is destroyed too, as by [`destroy`](Self::destroy).
    pub async fn revoke_all(&self, keep_current: bool) -> Result<u64, SessionError> {
        let Some(Mine {
            user,
            current,
            sessions,
        }) = self.mine().await?
        else {
            return Ok(0);
        };
        let mut ended = 0;
        for session in sessions {
            if current.as_ref() == Some(&session.id) {
                continue;
            }
            self.end_other(&user, &session.id).await?;
            ended += 1;
        }
        if !keep_current {
            // Also when this session was never stored: the request ends logged out.
            ended += u64::from(current.is_some());
            self.destroy().await?;
        }
        Ok(ended)
    }

    /// The logged-in user, this session's stored ID, and the user's sessions as the
    /// index lists them; `None` when nobody is logged in.
    async fn mine(&self) -> Result<Option<Mine>, SessionError> {
        let engine = self.engine();
        let index = engine.config.index.as_ref().ok_or(SessionError::NoIndex)?;
        let (user, current) = self
            .with_state(|s| {
                let user = s.record.as_ref().and_then(|r| index.user_of(r));
                (user, s.stored_as.clone())
            })
            .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        let sessions = engine
            .call("index", index.sessions(&*engine.store, &user))
            .await?;
        Ok(Some(Mine {
            user,
            current,
            sessions,
        }))
    }

    /// Ends `user`'s session `id`, which is not this request's: deleted, dropped from the
    /// index, counted and told as revoked.
    async fn end_other(&self, user: &str, id: &SessionId) -> Result<(), SessionError> {
        let engine = self.engine();
        engine.call("destroy", engine.store.destroy(id)).await?;
        self.forget_indexed(user, id).await;
        engine.metrics.count(Count::Revoked);
        engine.emit_for(EventKind::Revoked, Some(id), Some(user.to_owned()));
        Ok(())
    }

    /// Stores a short note on the device this session is used from (a user agent, an
    /// address), shown in [`user_sessions`](Self::user_sessions). Kept in the reserved
    /// member `_tessera.device`, cut to 200 characters.
    pub async fn set_device(&self, note: impl Into<String>) -> Result<(), SessionError> {
        let note: String = note.into().chars().take(200).collect();
        self.update(RESERVED_KEY, move |current: Option<serde_json::Value>| {
            index::with_field(current.as_ref(), "device", note.clone().into())
        })
        .await
        .map(|_| ())
    }

    /// Before `record` is written under `id`: when it names a user it is not filed under
    /// yet (a login), adds it to that user's entries. A failure fails the write, so no
    /// session is ever stored under a user without its entry.
    pub(super) async fn index_before_write(
        &self,
        id: &SessionId,
        record: &Record,
    ) -> Result<(), SessionError> {
        let engine = self.engine();
        let Some(index) = &engine.config.index else {
            return Ok(());
        };
        let Some(user) = index.user_of(record) else {
            return Ok(());
        };
        if lock(&self.inner.state).indexed_as.as_ref() == Some(&user) {
            return Ok(());
        }
        engine
            .call(
                "index",
                engine
                    .store
                    .index_add(index.key(), &user, id, record.cookie.expires),
            )
            .await?;
        Ok(())
    }

    /// After `record` was written under `id`: adds its entry again, with the expiry just
    /// written (a listing that ran between the first add and the write may have pruned
    /// the entry of a session it could not find yet), and drops the entry of the user it
    /// was filed under before, if that changed. Failures are logged: the entry was added
    /// before the write, and a stale one is pruned by the next listing.
    pub(super) async fn index_after_write(&self, id: &SessionId, record: &Record) {
        let Some(index) = &self.engine().config.index else {
            return;
        };
        let now = index.user_of(record);
        let before = std::mem::replace(&mut lock(&self.inner.state).indexed_as, now.clone());
        let login = now.is_some() && now != before;
        if now.is_some() {
            self.refresh_entry(id, record.cookie.expires, login).await;
        }
        if let Some(before) = before.filter(|b| now.as_ref() != Some(b)) {
            self.forget_indexed(&before, id).await;
        }
    }

    /// The stored session's life was extended to `expires`: so is its index entry's,
    /// unless this process refreshed it recently enough (see `IndexExpiry`).
    pub(super) async fn index_refresh(&self, id: &SessionId, expires: Option<OffsetDateTime>) {
        self.refresh_entry(id, expires, false).await;
    }

    /// Refreshes the entry of `id` under its user to `expires`; `always` for the add
    /// after a login's write. A failure is logged only: the entry is there.
    async fn refresh_entry(&self, id: &SessionId, expires: Option<OffsetDateTime>, always: bool) {
        let engine = self.engine();
        let Some(index) = &engine.config.index else {
            return;
        };
        let Some(user) = lock(&self.inner.state).indexed_as.clone() else {
            return;
        };
        let grace = match engine.store.index_expiry() {
            IndexExpiry::FollowsSessions => return,
            IndexExpiry::Recorded { grace } => grace,
        };
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let now = OffsetDateTime::now_utc();
        // A browser-session cookie's session lives the store's default TTL from now.
        let until = expires.map_or_else(
            || index::millis(now).saturating_add(grace_ms),
            index::millis,
        );
        // At most once a minute (the listing's "last active" is that precise), and well
        // within the grace (so the entry outlives its session).
        let margin_ms = (grace_ms / 4).min(60_000);
        if !always && margin_ms > 0 && engine.refreshes.recent(id, until, margin_ms) {
            return;
        }
        let refreshed = engine
            .call(
                "index",
                engine.store.index_add(index.key(), &user, id, expires),
            )
            .await;
        match refreshed {
            Ok(()) => engine.refreshes.record(id, until),
            Err(error) => {
                tracing::warn!(%error, "could not extend a session's entry in the per-user index")
            }
        }
    }

    /// `id` was deleted: drops its index entry (the one it was loaded under).
    pub(super) async fn index_forget(&self, id: &SessionId) {
        let user = lock(&self.inner.state).indexed_as.take();
        if let Some(user) = user {
            self.forget_indexed(&user, id).await;
        }
    }

    async fn forget_indexed(&self, user: &str, id: &SessionId) {
        let engine = self.engine();
        let Some(index) = &engine.config.index else {
            return;
        };
        let removed = engine
            .call("index", engine.store.index_remove(index.key(), user, id))
            .await;
        if let Err(error) = removed {
            tracing::warn!(%error, "could not drop a deleted session from the per-user index; the next listing prunes it");
        }
    }

    /// Whether the loaded `record` is past the absolute timeout.
    pub(super) fn past_absolute_timeout(&self, record: &Record, now: OffsetDateTime) -> bool {
        let Some(limit) = self.engine().config.absolute_timeout else {
            return false;
        };
        let Some(created) = index::created_at(record) else {
            return false;
        };
        let limit = time::Duration::try_from(limit).unwrap_or(time::Duration::MAX);
        created.checked_add(limit).is_none_or(|end| end <= now)
    }

    /// Deletes a loaded session that outlived the absolute timeout.
    pub(super) async fn expire_absolute(
        &self,
        id: &SessionId,
        record: &Record,
    ) -> Result<(), SessionError> {
        let engine = self.engine();
        engine.call("destroy", engine.store.destroy(id)).await?;
        engine.metrics.count(Count::Expired);
        let user = engine.config.index.as_ref().and_then(|i| i.user_of(record));
        if let Some(user) = &user {
            self.forget_indexed(user, id).await;
        }
        engine.emit_for(EventKind::Expired, Some(id), user);
        tracing::info!("session reached the absolute timeout; starting a new one");
        Ok(())
    }
}

/// Whether every session carries the reserved creation time: with an absolute timeout,
/// which counts from it. Without one, only sessions that name a user get it (see
/// `stamp_login`), so an anonymous session stays exactly what express-session stores.
pub(super) fn stamps_created(config: &crate::SessionConfig) -> bool {
    config.absolute_timeout.is_some()
}

impl Session {
    /// Before a write: a session that names a user but has no creation time (it was
    /// created before the login put the user in it) is given one now, for the user's
    /// list of sessions.
    pub(super) fn stamp_login(&self) {
        let Some(index) = &self.engine().config.index else {
            return;
        };
        let mut state = lock(&self.inner.state);
        let unstamped = state
            .record
            .as_ref()
            .is_some_and(|r| index.user_of(r).is_some() && index::created_at(r).is_none());
        if unstamped {
            let stamp =
                index::with_created(state.data().get(RESERVED_KEY), OffsetDateTime::now_utc());
            state.data_mut().insert(RESERVED_KEY.to_owned(), stamp);
            state.changes.ours(RESERVED_KEY);
        }
    }
}
