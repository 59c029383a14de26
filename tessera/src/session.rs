//! The `Session` handle a handler works with, and the engine that decides, at the end of a
//! request, what to write.
//!
//! The record is loaded lazily: the first method that needs the data loads it (one store
//! call), so a route that never looks at its session costs no store I/O. Changes are
//! tracked per key, which is how the engine knows whether to save, and what a later
//! guarded commit will need to write.
//!
//! The end-of-request rules are express-session's (see `finish`), with three deliberate
//! differences, each documented on the method concerned: `destroy` also clears the cookie,
//! a save never resurrects a session destroyed meanwhile, and changing the cookie's
//! lifetime counts as a modification.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::config::{CookieSecure, SessionConfig, Unset};
use crate::cookie;
use crate::error::SessionError;
use crate::id::SessionId;
use crate::record::{to_millis, Data, Record};
use crate::signing::{SecretIndex, Secrets};
use crate::store::{SaveMode, SaveOutcome, Store, StoreError};

/// What the layer shares with every request: the store, the options and the keyed secrets.
pub(crate) struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: SessionConfig,
    pub(crate) secrets: Secrets,
    /// Whether store calls need the engine's timer: false when the store bounds its
    /// own calls within `config.store_timeout` (see `Store::time_bound`).
    own_timer: bool,
}

impl Engine {
    pub(crate) fn new(store: Arc<dyn Store>, config: SessionConfig, secrets: Secrets) -> Self {
        let own_timer = store
            .time_bound()
            .is_none_or(|bound| bound > config.store_timeout);
        Engine {
            store,
            config,
            secrets,
            own_timer,
        }
    }

    /// Runs one store call under the configured timeout.
    async fn call<T>(
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
        let mut fut = std::pin::pin!(fut);
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        std::future::poll_fn(|cx| {
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
        .await
    }

    fn new_id(&self) -> Result<SessionId, SessionError> {
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
    async fn load(&self, id: &SessionId) -> Result<Option<Record>, StoreError> {
        Self::forgive_corrupt(self.call("load", self.store.load(id)).await)
    }

    /// Loads `id` and extends its life as the end-of-request touch would, in one round
    /// trip where the store can. Answers the record and whether that touch already counts:
    /// the store touched it, and with the expiry the session's own max age gives (a session
    /// whose max age differs from the configured one is touched again at the end).
    async fn load_and_touch(&self, id: &SessionId) -> Result<Option<(Record, bool)>, StoreError> {
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
        Ok(loaded.map(|(record, touched)| {
            let own = record.cookie.original_max_age;
            let same_lifetime = match max_age {
                Some(d) => own == i64::try_from(d.as_millis()).ok(),
                None => self.config.cookie.expires.is_none() && own.is_none(),
            };
            (record, touched && same_lifetime)
        }))
    }

    fn forgive_corrupt<T>(result: Result<Option<T>, StoreError>) -> Result<Option<T>, StoreError> {
        match result {
            Err(StoreError::Corrupt { id, source }) => {
                tracing::warn!(session = ?id, error = %source, "corrupt session in the store; starting a new session");
                Ok(None)
            }
            other => other,
        }
    }
}

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
    /// The request's `Cookie` headers, parsed and verified only when first needed: a
    /// route that never looks at its session costs no parsing and no HMAC.
    cookies: RawCookies,
    verified: OnceLock<Verified>,
    /// Whether the request came over TLS (for `secure: auto`).
    secure_request: bool,
    loaded: OnceCell<()>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The current ID; set when the session is loaded or first needed.
    id: Option<SessionId>,
    /// Shared with a save in flight rather than copied for it; changed copy-on-write.
    record: Option<Arc<Record>>,
    /// The ID the store holds this session's record under, if any.
    stored_as: Option<SessionId>,
    /// Whether a key, the cookie or the whole data changed since the last save. Which
    /// keys does not matter: a save writes the whole record.
    unsaved: bool,
    /// Whether anything changed since the request began (express's `isModified`, which also
    /// counts a new ID).
    modified: bool,
    /// `destroy()` was called; the ID destroyed, if one was stored.
    destroyed: bool,
    unset: bool,
    /// The load already extended the stored session's life as the end-of-request touch
    /// would (one round trip instead of two).
    touched_on_load: bool,
}

/// The `Cookie` header values of a request, as the layer found them (a cheap reference
/// count each, no copy of the bytes).
pub(crate) enum RawCookies {
    None,
    One(HeaderValue),
    Many(Vec<HeaderValue>),
}

impl RawCookies {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut all = headers.get_all(COOKIE).iter();
        match (all.next(), all.next()) {
            (None, _) => RawCookies::None,
            (Some(one), None) => RawCookies::One(one.clone()),
            (Some(first), Some(second)) => {
                let mut many = vec![first.clone(), second.clone()];
                many.extend(all.cloned());
                RawCookies::Many(many)
            }
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, HeaderValue> {
        match self {
            RawCookies::None => [].iter(),
            RawCookies::One(value) => std::slice::from_ref(value).iter(),
            RawCookies::Many(values) => values.iter(),
        }
    }
}

/// What the request's cookie turned out to hold.
struct Verified {
    /// The ID from the first cookie of our name that verified, and which secret verified
    /// it: a stray duplicate (another path or domain, or garbage planted by a subdomain)
    /// cannot knock the user out.
    id: Option<(SessionId, SecretIndex)>,
    /// The verified cookie value, kept to be sent back as it is (no second HMAC) while the
    /// ID and the signing secret stay the same.
    value: Option<String>,
}

/// What the layer must do once the handler has answered.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) set_cookie: Option<String>,
    pub(crate) error: Option<StoreError>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding this lock cannot leave the state half-updated in a way that
    // matters more than losing the request, so a poisoned lock is used as it is.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Session {
    pub(crate) fn new(engine: Arc<Engine>, cookies: RawCookies, secure_request: bool) -> Self {
        Session {
            inner: Arc::new(Inner {
                engine,
                cookies,
                verified: OnceLock::new(),
                secure_request,
                loaded: OnceCell::new(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The request's cookie, parsed and verified on the first call.
    fn verified(&self) -> &Verified {
        self.inner.verified.get_or_init(|| {
            let engine = &self.inner.engine;
            let found = cookie::values(self.inner.cookies.iter(), &engine.config.name)
                .find_map(|v| engine.secrets.unsign(&v).map(|(id, index)| (id, index, v)));
            match found {
                Some((id, index, value)) => Verified {
                    id: Some((id, index)),
                    value: (index == 0).then_some(value),
                },
                None => Verified {
                    id: None,
                    value: None,
                },
            }
        })
    }

    fn cookie_id(&self) -> Option<&SessionId> {
        self.verified().id.as_ref().map(|(id, _)| id)
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
                let fresh = match &stored {
                    Some(_) => None,
                    None => Some(self.engine().new_id()?),
                };
                let mut state = lock(&self.inner.state);
                match stored {
                    Some((id, (record, touched))) => {
                        state.id = Some(id.clone());
                        state.stored_as = Some(id);
                        state.record = Some(Arc::new(record));
                        state.touched_on_load = touched;
                    }
                    None => {
                        state.id = fresh;
                        state.record = Some(Arc::new(Record::new(
                            self.engine().config.new_cookie(self.inner.secure_request),
                        )));
                    }
                }
                Ok::<(), SessionError>(())
            })
            .await
            .map(|_| ())
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
        if key == "cookie" {
            return Err(SessionError::Serialize {
                key: key.to_owned(),
                source: serde::ser::Error::custom("`cookie` is reserved for the session cookie"),
            });
        }
        self.with_state(|s| {
            if s.data().get(key) != Some(&value) {
                s.data_mut().insert(key.to_owned(), value);
                s.changed();
            }
        })
        .await
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
                s.changed();
            }
            old
        })
        .await
    }

    /// Removes every key. The session itself (ID, cookie) stays.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.with_state(|s| {
            if !s.data().is_empty() {
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
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let old = lock(&self.inner.state).stored_as.take();
        if let Some(old) = &old {
            self.engine()
                .call("destroy", self.engine().store.destroy(old))
                .await?;
        }
        let id = self.engine().new_id()?;
        let cookie = self.engine().config.new_cookie(self.inner.secure_request);
        let mut state = lock(&self.inner.state);
        state.id = Some(id);
        state.record = Some(Arc::new(Record::new(cookie)));
        state.stored_as = None;
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
        }
        let mut state = lock(&self.inner.state);
        state.destroyed = true;
        state.stored_as = None;
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
        let record = self
            .engine()
            .load(&id)
            .await?
            .ok_or(SessionError::NotFound)?;
        let mut state = lock(&self.inner.state);
        state.record = Some(Arc::new(record));
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
                    Some((at - OffsetDateTime::now_utc()).whole_milliseconds() as i64);
            }
            s.changed();
        })
        .await
    }

    /// Drops the session from this request, the counterpart of express's
    /// `req.session = null`: this request's changes are not saved and no cookie is sent.
    /// With [`Unset::Destroy`] the stored session is also deleted at the end of the request.
    pub fn unset(&self) {
        lock(&self.inner.state).unset = true;
    }

    /// Writes the record (Create or Update), retrying a Create that clashes with a fresh
    /// ID. `None` when an Update found the session gone.
    async fn persist(&self) -> Result<Option<()>, SessionError> {
        for _ in 0..3 {
            let (id, record, mode) = {
                let state = lock(&self.inner.state);
                let (Some(id), Some(record)) = (state.id.clone(), state.record.clone()) else {
                    return Ok(None);
                };
                let mode = if state.stored_as.as_ref() == Some(&id) {
                    SaveMode::Update
                } else {
                    SaveMode::Create
                };
                (id, record, mode)
            };
            let outcome = self
                .engine()
                .call("save", self.engine().store.save(&id, &record, mode))
                .await?;
            let mut state = lock(&self.inner.state);
            match outcome {
                SaveOutcome::Saved => {
                    state.stored_as = Some(id);
                    state.unsaved = false;
                    return Ok(Some(()));
                }
                SaveOutcome::Gone => {
                    tracing::info!(session = ?id, "session was destroyed or expired by another request; not saving it again");
                    state.stored_as = None;
                    return Ok(None);
                }
                SaveOutcome::Conflict => {
                    tracing::warn!(session = ?id, "new session ID already in the store; choosing another");
                    drop(state);
                    let fresh = self.engine().new_id()?;
                    lock(&self.inner.state).id = Some(fresh);
                }
            }
        }
        Err(SessionError::Id(
            "three generated IDs in a row were already taken".into(),
        ))
    }

    /// The end of the request: save, touch or destroy as the rules say, and the
    /// `Set-Cookie` to send, if any.
    pub(crate) async fn finish(&self) -> Outcome {
        match self.finish_inner().await {
            Ok(set_cookie) => Outcome {
                set_cookie,
                error: None,
            },
            Err(SessionError::Store(error)) => Outcome {
                set_cookie: None,
                error: Some(error),
            },
            Err(other) => {
                tracing::error!(error = %other, "session could not be finished");
                Outcome::default()
            }
        }
    }

    async fn finish_inner(&self) -> Result<Option<String>, SessionError> {
        let engine = self.engine();
        let config = &engine.config;
        if !self.inner.loaded.initialized() {
            let (destroyed, unset) = {
                let s = lock(&self.inner.state);
                (s.destroyed, s.unset)
            };
            if destroyed {
                return Ok(self.removal_cookie());
            }
            if unset {
                if config.unset == Unset::Destroy {
                    if let Some(id) = self.cookie_id() {
                        engine.call("destroy", engine.store.destroy(id)).await?;
                    }
                }
                return Ok(None);
            }
            // rolling, always_touch and resave act on stored sessions the handler never
            // looked at; they need the stored record (its own max age and cookie
            // attributes, which may differ from the defaults), so it is loaded.
            // save_uninitialized does the same for a request without a session.
            let acts_on_stored = config.rolling || config.always_touch || config.resave;
            // By default there is nothing to do: no I/O, and the cookie's signature is
            // never even checked.
            if !acts_on_stored && !config.save_uninitialized {
                return Ok(None);
            }
            let load = match self.cookie_id() {
                Some(_) => acts_on_stored,
                None => config.save_uninitialized,
            };
            if !load {
                return Ok(None);
            }
            // Boxed: the load's state would otherwise be part of every request's future,
            // and this path is only for the options above.
            Box::pin(self.ensure_loaded()).await?;
        }

        let (destroyed, unset, stored_as) = {
            let s = lock(&self.inner.state);
            (s.destroyed, s.unset, s.stored_as.clone())
        };
        if destroyed {
            return Ok(self.removal_cookie());
        }
        if unset {
            if config.unset == Unset::Destroy {
                if let Some(id) = stored_as {
                    engine.call("destroy", engine.store.destroy(&id)).await?;
                }
            }
            return Ok(None);
        }

        // express touches the cookie once per request, before deciding anything.
        let (id, modified, unsaved, expires) = {
            let mut s = lock(&self.inner.state);
            s.reset_expiry();
            let expires = s.record.as_ref().and_then(|r| r.cookie.expires);
            let unsaved = s.unsaved;
            (s.id.clone(), s.modified, unsaved, expires)
        };
        let Some(id) = id else { return Ok(None) };
        let from_cookie = self.cookie_id() == Some(&id);
        let is_stored = stored_as.as_ref() == Some(&id);

        let should_save = if !is_stored && !config.save_uninitialized && !modified {
            false
        } else {
            !is_stored || unsaved || config.resave
        };
        if should_save {
            if self.persist().await?.is_none() {
                // Destroyed by another request meanwhile: make the browser forget it too.
                return Ok(self.removal_cookie());
            }
        } else if is_stored && from_cookie && !lock(&self.inner.state).touched_on_load {
            engine
                .call("touch", engine.store.touch(&id, expires))
                .await?;
        }

        // The ID may have changed if a Create clashed.
        let id = lock(&self.inner.state).id.clone().unwrap_or(id);
        let new_id = self.cookie_id() != Some(&id);
        // A cookie that verified with an older secret is re-signed with the current one
        // whenever the session is still stored, so old secrets can be retired sooner
        // (express re-signs only when it sends the cookie anyway).
        let signed_with_old_secret = matches!(self.verified().id, Some((_, index)) if index > 0);
        let send = if new_id {
            config.save_uninitialized || modified
        } else {
            config.rolling || (expires.is_some() && modified) || signed_with_old_secret
        };
        if !send {
            return Ok(None);
        }
        let Some(record) = lock(&self.inner.state).record.clone() else {
            return Ok(None);
        };
        let header = match &self.verified().value {
            Some(value) if !new_id => self.cookie_header(value, &record.cookie),
            _ => self.cookie_header(&engine.secrets.sign(&id), &record.cookie),
        };
        Ok(header)
    }

    fn wants_secure(&self, cookie: &crate::record::CookieData) -> bool {
        match self.engine().config.cookie.secure {
            CookieSecure::Auto => self.inner.secure_request,
            _ => cookie.secure == Some(true),
        }
    }

    fn cookie_header(&self, value: &str, cookie: &crate::record::CookieData) -> Option<String> {
        let secure = self.wants_secure(cookie);
        if secure && !self.inner.secure_request {
            // As express: a Secure cookie is not sent over plain HTTP (the session is saved).
            tracing::debug!("not sending a Secure session cookie over plain HTTP");
            return None;
        }
        Some(cookie::set_cookie(
            &self.engine().config.name,
            value,
            cookie,
            secure,
        ))
    }

    /// A removal cookie, sent only when the browser may hold one of ours.
    fn removal_cookie(&self) -> Option<String> {
        self.cookie_id()?;
        let config = &self.engine().config;
        let cookie = lock(&self.inner.state)
            .record
            .as_ref()
            .map(|r| r.cookie.clone())
            .unwrap_or_else(|| config.new_cookie(self.inner.secure_request));
        let secure = self.wants_secure(&cookie) && self.inner.secure_request;
        Some(cookie::removal(&config.name, &cookie, secure))
    }
}

impl State {
    fn data(&self) -> &Data {
        static EMPTY: std::sync::OnceLock<Data> = std::sync::OnceLock::new();
        match &self.record {
            Some(r) => &r.data,
            None => EMPTY.get_or_init(Data::new),
        }
    }

    fn data_mut(&mut self) -> &mut Data {
        let record = self
            .record
            .get_or_insert_with(|| Arc::new(Record::new(Default::default())));
        &mut Arc::make_mut(record).data
    }

    /// The record to change; copied first only if a save still holds it.
    fn record_mut(&mut self) -> Option<&mut Record> {
        self.record.as_mut().map(Arc::make_mut)
    }

    fn changed(&mut self) {
        self.unsaved = true;
        self.modified = true;
    }

    /// express's `Session#touch` / `Cookie#resetMaxAge`: expires = now + originalMaxAge.
    fn reset_expiry(&mut self) {
        if let Some(record) = self.record_mut() {
            if let Some(ms) = record.cookie.original_max_age {
                record.cookie.expires = OffsetDateTime::now_utc()
                    .checked_add(time::Duration::milliseconds(ms))
                    .map(to_millis);
            }
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            // Only what is known already: formatting must not verify the cookie.
            .field(
                "cookie_id",
                &self.inner.verified.get().and_then(|v| v.id.as_ref()),
            )
            .field("loaded", &self.inner.loaded.initialized())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::FromRequestParts;
    use http::request::Parts;
    use http::StatusCode;

    use super::Session;

    /// The rejection when `Session` is extracted on a route without
    /// [`SessionLayer`](crate::SessionLayer): a programming error, answered with 500.
    #[derive(Debug, Clone, Copy)]
    pub struct MissingSessionLayer;

    impl axum_core::response::IntoResponse for MissingSessionLayer {
        fn into_response(self) -> axum_core::response::Response {
            tracing::error!("`Session` extracted on a route without `SessionLayer`; add the layer to the router");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Session extractor used without SessionLayer.",
            )
                .into_response()
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for Session {
        type Rejection = MissingSessionLayer;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<Session>()
                .cloned()
                .ok_or(MissingSessionLayer)
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::MissingSessionLayer;
