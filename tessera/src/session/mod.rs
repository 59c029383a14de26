//! The `Session` handle a handler works with.
//!
//! The record is loaded lazily: the first method that needs the data loads it (one store
//! call), so a route that never looks at its session costs no store I/O. Changes are
//! tracked per top-level key (`state`), which is how the end of the request knows whether
//! to save, and how the guarded commit (`commit`) merges this request's changes into a
//! record another request stored meanwhile instead of overwriting it.
//!
//! The end-of-request rules are express-session's (`finish`), with deliberate
//! differences, each documented on the method concerned: `destroy` also clears the cookie,
//! a save never resurrects a session destroyed meanwhile, concurrent saves merge per key,
//! and changing the cookie's lifetime counts as a modification.

mod commit;
mod cookies;
#[cfg(feature = "axum")]
mod extract;
mod finish;
mod index;
pub(crate) mod line;
mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::engine::Engine;
use crate::error::SessionError;
use crate::events::metric::Count;
use crate::events::EventKind;
use crate::id::SessionId;
use crate::index::RESERVED_KEY;
use crate::record::{to_millis, Data, Record};

pub(crate) use cookies::RawCookies;
use cookies::RequestCookie;
#[cfg(feature = "axum")]
pub use extract::MissingSessionLayer;
use state::{lock, State, UpdateFn};

/// The session of the current request.
///
/// Get it in an axum handler as an extractor, or from the request's extensions in any
/// tower service behind [`SessionLayer`](crate::SessionLayer). Cloning is cheap and every
/// clone is the same session.
///
/// Methods that need the data are `async`: the first one loads the session from the store.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    cookie: RequestCookie,
    /// Whether the request came over TLS (for `secure: auto`).
    secure_request: bool,
    loaded: OnceCell<()>,
    state: Mutex<State>,
}

impl Session {
    pub(crate) fn new(engine: Arc<Engine>, cookies: RawCookies, secure_request: bool) -> Self {
        Session {
            inner: Arc::new(Inner {
                engine,
                cookie: RequestCookie::new(cookies),
                secure_request,
                loaded: OnceCell::new(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn cookie_id(&self) -> Option<&SessionId> {
        self.inner
            .cookie
            .verified(&self.inner.engine)
            .id
            .as_ref()
            .map(|(id, _)| id)
    }

    /// Loads the session once per request: from the store when the cookie named one, else
    /// a fresh session (no I/O).
    async fn ensure_loaded(&self) -> Result<(), SessionError> {
        self.inner
            .loaded
            .get_or_try_init(|| async {
                let stored = match self.cookie_id() {
                    Some(id) => self
                        .engine()
                        .load_and_touch(id)
                        .await?
                        .map(|r| (id.clone(), r)),
                    None => None,
                };
                let now = OffsetDateTime::now_utc();
                let stored = match stored {
                    Some((id, loaded)) if self.past_absolute_timeout(&loaded.record, now) => {
                        self.expire_absolute(&id, &loaded.record).await?;
                        None
                    }
                    other => other,
                };
                let fresh = match &stored {
                    Some(_) => None,
                    None => Some(self.engine().new_id()?),
                };
                let config = &self.engine().config;
                let mut state = lock(&self.inner.state);
                match stored {
                    Some((id, loaded)) => {
                        self.engine().metrics.count(Count::Loaded);
                        if loaded.touched {
                            self.engine().metrics.count(Count::Touched);
                        }
                        state.indexed_as = config
                            .index
                            .as_ref()
                            .and_then(|i| i.user_of(&loaded.record));
                        state.id = Some(id.clone());
                        state.stored_as = Some(id);
                        state.record = Some(Arc::new(loaded.record));
                        state.version = Some(loaded.version);
                        state.touched_on_load = loaded.touched;
                        let unstamped = state
                            .record
                            .as_ref()
                            .is_some_and(|r| crate::index::created_at(r).is_none());
                        if index::stamps_created(config) && unstamped {
                            // A session from before the timeout was on, or from a Node
                            // app: its clock starts now, and it is saved with it.
                            let stamp =
                                crate::index::with_created(state.data().get(RESERVED_KEY), now);
                            state.data_mut().insert(RESERVED_KEY.to_owned(), stamp);
                            state.changes.ours(RESERVED_KEY);
                            state.changed();
                        }
                    }
                    None => {
                        state.id = fresh;
                        state.record = Some(Arc::new(self.new_record(now)));
                    }
                }
                Ok::<(), SessionError>(())
            })
            .await
            .map(|_| ())
    }

    /// A new session's record: the configured cookie, and the creation time when the
    /// absolute timeout or the index needs it (not a modification: an untouched new
    /// session is still not saved).
    fn new_record(&self, now: OffsetDateTime) -> Record {
        let config = &self.engine().config;
        let mut record = Record::new(config.new_cookie(self.inner.secure_request));
        if index::stamps_created(config) {
            record.data.insert(
                RESERVED_KEY.to_owned(),
                crate::index::with_created(None, now),
            );
        }
        record
    }

    /// Runs `f` on the loaded state, refusing once the session was destroyed or unset.
    async fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, SessionError> {
        self.ensure_loaded().await?;
        let mut state = lock(&self.inner.state);
        if state.destroyed || state.unset {
            return Err(SessionError::Destroyed);
        }
        Ok(f(&mut state))
    }

    /// The session's ID. For a new session this is the ID it will be stored under if it is
    /// saved; after [`regenerate`](Self::regenerate) it is the new ID.
    ///
    /// The ID is a bearer credential: never log it or show it to users.
    pub async fn id(&self) -> Result<SessionId, SessionError> {
        self.with_state(|s| s.id.clone())
            .await?
            .ok_or(SessionError::NotFound)
    }

    /// The value under `key`, deserialized as `T`; `None` when absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        // Read in place, under the lock: no copy of the stored value first.
        self.with_state(|s| s.data().get(key).map(T::deserialize).transpose())
            .await?
            .map_err(|source| SessionError::Deserialize {
                key: key.to_owned(),
                source,
            })
    }

    /// The raw JSON value under `key`.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.with_state(|s| s.data().get(key).cloned()).await
    }

    /// Stores `value` under `key`. Setting a key to the value it already has is not a
    /// modification (as in express, which compares a hash of the whole session).
    ///
    /// If another request saved this session meanwhile, this key ends with this request's
    /// value (last writer wins per key); keys this request did not touch keep the other
    /// request's. For a value computed from the old one, use [`update`](Self::update).
    ///
    /// The key `cookie` is reserved for the cookie member and refused.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        self.insert_value(key, value).await
    }

    /// Stores a raw JSON value under `key`.
    pub async fn insert_value(&self, key: &str, value: Value) -> Result<(), SessionError> {
        reserved(key)?;
        let limit = self.engine().config.max_record_bytes;
        self.with_state(|s| {
            if s.data().get(key) == Some(&value) {
                return Ok(());
            }
            let old = s.data_mut().insert(key.to_owned(), value);
            if let Err(error) = s.within_limit(key, limit, old.as_ref()) {
                s.restore(key, old);
                return Err(error);
            }
            s.changes.ours(key);
            s.changed();
            Ok(())
        })
        .await?
    }

    /// Replaces the value under `key` with `f(old)` and returns the new value: a
    /// read-modify-write that no concurrent request can undo.
    ///
    /// `f` runs now, on this request's value. If another request saves this session before
    /// this one does, `f` runs again, at the end of the request, on the value that request
    /// stored: 100 concurrent increments make 100. So `f` must be a pure function of its
    /// argument (it may run more than once). The value returned here is the one computed
    /// now; after a merge the stored value may be larger.
    ///
    /// ```no_run
    /// # async fn f(session: tessera::Session) -> Result<(), tessera::SessionError> {
    /// let views: u64 = session.update("views", |n: Option<u64>| n.unwrap_or(0) + 1).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Deserialize`] when the stored value is not a `T` (now, or when `f`
    /// runs again on a fresh value: the request then fails rather than overwrite it).
    pub async fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(Option<T>) -> T + Send + Sync + 'static,
    {
        reserved(key)?;
        let owned_key = key.to_owned();
        let step: UpdateFn = Arc::new(move |old: Option<&Value>| {
            let old = old.map(T::deserialize).transpose().map_err(|source| {
                SessionError::Deserialize {
                    key: owned_key.clone(),
                    source,
                }
            })?;
            serde_json::to_value(f(old)).map_err(|source| SessionError::Serialize {
                key: owned_key.clone(),
                source,
            })
        });
        let limit = self.engine().config.max_record_bytes;
        let value = self
            .with_state(|s| {
                let value = step(s.data().get(key))?;
                if s.data().get(key) != Some(&value) {
                    let old = s.data_mut().insert(key.to_owned(), value.clone());
                    if let Err(error) = s.within_limit(key, limit, old.as_ref()) {
                        s.restore(key, old);
                        return Err(error);
                    }
                    s.changed();
                }
                s.changes.derived(key, step);
                Ok::<Value, SessionError>(value)
            })
            .await??;
        T::deserialize(value).map_err(|source| SessionError::Deserialize {
            key: key.to_owned(),
            source,
        })
    }

    /// Removes `key` and returns its value deserialized as `T`.
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.remove_value(key).await? {
            None => Ok(None),
            Some(value) => serde_json::from_value(value).map(Some).map_err(|source| {
                SessionError::Deserialize {
                    key: key.to_owned(),
                    source,
                }
            }),
        }
    }

    /// Removes `key` and returns its raw value.
    pub async fn remove_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.with_state(|s| {
            let old = s.data_mut().shift_remove(key);
            if old.is_some() {
                s.changes.ours(key);
                s.changed();
            }
            old
        })
        .await
    }

    /// Removes every key this request sees. The session itself (ID, cookie) stays. A key
    /// another request adds meanwhile is not this request's to remove, and stays.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.with_state(|s| {
            if !s.data().is_empty() {
                let keys: Vec<String> = s.data().keys().cloned().collect();
                for key in &keys {
                    s.changes.ours(key);
                }
                s.data_mut().clear();
                s.changed();
            }
        })
        .await
    }

    /// A copy of all the session's fields, in insertion order.
    pub async fn data(&self) -> Result<Data, SessionError> {
        self.with_state(|s| s.data().clone()).await
    }

    /// Whether the session has no fields.
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        self.with_state(|s| s.data().is_empty()).await
    }

    /// Gives the session a new ID and empty data, and deletes the old record from the store
    /// (express's `req.session.regenerate`). Call it on login, before storing who logged in:
    /// it stops session fixation.
    ///
    /// # Errors
    /// When the old record cannot be deleted, the error is returned and the request ends
    /// with `503` whatever the handler answers: it never carries on under the old ID.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let old = lock(&self.inner.state).stored_as.clone();
        if let Some(old) = &old {
            let deleted = self
                .engine()
                .call("destroy", self.engine().store.destroy(old))
                .await;
            if let Err(error) = deleted {
                lock(&self.inner.state).broken = true;
                return Err(error.into());
            }
        }
        let id = self.engine().new_id()?;
        self.engine().metrics.count(Count::Regenerated);
        if let Some(old) = &old {
            let old = self.engine().secrets.handle(old);
            self.engine()
                .emit(EventKind::Regenerated { old }, Some(&id));
        }
        if let Some(old) = &old {
            self.index_forget(old).await;
        }
        let record = self.new_record(OffsetDateTime::now_utc());
        let mut state = lock(&self.inner.state);
        state.id = Some(id);
        state.record = Some(Arc::new(record));
        state.stored_as = None;
        state.version = None;
        state.changes.clear();
        state.unsaved = false;
        state.destroyed = false;
        state.unset = false;
        // A new ID is a modification (express compares the ID too): the new session is
        // saved and its cookie sent even if nothing is put in it.
        state.modified = true;
        Ok(())
    }

    /// Deletes the session from the store now, and makes the response clear the cookie.
    ///
    /// express's `req.session.destroy` leaves the cookie in the browser; Tessera sends a
    /// removal `Set-Cookie` (same name, path and domain, expired) so the browser forgets it.
    /// Later calls in this request that need the data answer [`SessionError::Destroyed`].
    pub async fn destroy(&self) -> Result<(), SessionError> {
        // No need to load the record just to delete it: the ID is known.
        let target = if self.inner.loaded.initialized() {
            lock(&self.inner.state).stored_as.clone()
        } else {
            self.cookie_id().cloned()
        };
        if let Some(id) = &target {
            self.engine()
                .call("destroy", self.engine().store.destroy(id))
                .await?;
            self.engine().metrics.count(Count::Destroyed);
            let user = lock(&self.inner.state).indexed_as.clone();
            self.engine().emit_for(EventKind::Destroyed, Some(id), user);
            self.index_forget(id).await;
        }
        let mut state = lock(&self.inner.state);
        state.destroyed = true;
        state.stored_as = None;
        state.version = None;
        Ok(())
    }

    /// Reads the session from the store again, dropping this request's unsaved changes
    /// (express's `req.session.reload`). [`SessionError::NotFound`] when it is no longer
    /// stored.
    pub async fn reload(&self) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let id = lock(&self.inner.state)
            .stored_as
            .clone()
            .ok_or(SessionError::NotFound)?;
        let loaded = self
            .engine()
            .load(&id)
            .await?
            .ok_or(SessionError::NotFound)?;
        let mut state = lock(&self.inner.state);
        state.record = Some(Arc::new(loaded.record));
        state.version = Some(loaded.version);
        state.changes.clear();
        state.unsaved = false;
        Ok(())
    }

    /// Writes the session to the store now (express's `req.session.save`). The end of the
    /// request writes again only if something changes after this.
    pub async fn save(&self) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        if self.persist().await?.is_none() {
            return Err(SessionError::NotFound);
        }
        Ok(())
    }

    /// Resets the cookie's expiry to now plus its max age (express's
    /// `req.session.touch`). The layer does this once per request by itself.
    pub async fn touch(&self) -> Result<(), SessionError> {
        self.with_state(State::reset_expiry).await
    }

    /// The cookie's max age: `None` for a browser-session cookie.
    pub async fn max_age(&self) -> Result<Option<Duration>, SessionError> {
        self.with_state(|s| {
            s.record
                .as_ref()
                .and_then(|r| r.cookie.original_max_age)
                .map(|ms| Duration::from_millis(ms.max(0) as u64))
        })
        .await
    }

    /// Changes this session's cookie lifetime (express's `req.session.cookie.maxAge = …`);
    /// `None` makes it a browser-session cookie. The "remember me" switch.
    ///
    /// Unlike express, this counts as a modification, so the session is saved and the new
    /// cookie sent without the handler having to change a field too.
    pub async fn set_max_age(&self, max_age: Option<Duration>) -> Result<(), SessionError> {
        self.with_state(|s| {
            if let Some(record) = s.record_mut() {
                record.cookie.original_max_age =
                    max_age.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            }
            s.reset_expiry();
            if max_age.is_none() {
                if let Some(record) = s.record_mut() {
                    record.cookie.expires = None;
                }
            }
            s.changes.cookie = true;
            s.changed();
        })
        .await
    }

    /// When the cookie expires: `None` for a browser-session cookie.
    pub async fn expires(&self) -> Result<Option<OffsetDateTime>, SessionError> {
        self.with_state(|s| s.record.as_ref().and_then(|r| r.cookie.expires))
            .await
    }

    /// Sets a fixed expiry for this session's cookie (express's
    /// `req.session.cookie.expires = …`). Counts as a modification, like
    /// [`set_max_age`](Self::set_max_age).
    pub async fn set_expires(&self, at: OffsetDateTime) -> Result<(), SessionError> {
        self.with_state(|s| {
            if let Some(record) = s.record_mut() {
                record.cookie.expires = Some(to_millis(at));
                record.cookie.original_max_age =
                    i64::try_from((at - OffsetDateTime::now_utc()).whole_milliseconds()).ok();
            }
            s.changes.cookie = true;
            s.changed();
        })
        .await
    }

    /// Drops the session from this request, the counterpart of express's
    /// `req.session = null`: this request's changes are not saved and no cookie is sent.
    /// With [`Unset::Destroy`](crate::Unset::Destroy) the stored session is also deleted at
    /// the end of the request.
    pub fn unset(&self) {
        lock(&self.inner.state).unset = true;
    }
}

/// The key `cookie` holds the cookie member of the stored record.
fn reserved(key: &str) -> Result<(), SessionError> {
    if key == "cookie" {
        return Err(SessionError::Serialize {
            key: key.to_owned(),
            source: serde::ser::Error::custom("`cookie` is reserved for the session cookie"),
        });
    }
    Ok(())
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the ID (a credential), and nothing that would verify the cookie.
        f.debug_struct("Session")
            .field(
                "has_cookie",
                &self.inner.cookie.peek().map(|v| v.id.is_some()),
            )
            .field("loaded", &self.inner.loaded.initialized())
            .finish_non_exhaustive()
    }
}
