//! The end of the request: save, touch or destroy as express-session's rules say, and the
//! `Set-Cookie` to send, if any.
//!
//! Departures from express, each for safety: a session destroyed meanwhile by another
//! request is not written back, and the response then sends no cookie at all (a removal
//! cookie would also delete the fresh cookie a concurrent login just gave the browser); a
//! cookie verified with an older secret is re-signed with the current one.

use super::state::lock;
use super::Session;
use crate::config::{CookieSecure, Unset};
use crate::cookie;
use crate::error::SessionError;
use crate::events::metric::Count;
use crate::record::CookieData;
use crate::store::StoreError;

/// What the layer must do once the handler has answered.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) set_cookie: Option<String>,
    /// The session could not be finished: the response becomes an error (503 for the
    /// store's failures, 500 otherwise), already logged.
    pub(crate) error: Option<SessionError>,
    /// The handler looked at the session, so the response depends on the cookie.
    pub(crate) read: bool,
}

impl Session {
    /// The end of the request: save, touch or destroy as the rules say, and the
    /// `Set-Cookie` to send, if any.
    pub(crate) async fn finish(&self) -> Outcome {
        let read = self.inner.loaded.initialized();
        let finished = self.finish_inner().await;
        if let Err(SessionError::Store(error)) = &finished {
            let (op, timeout) = match error {
                StoreError::Timeout { op, .. } => (*op, true),
                StoreError::Backend { op, .. } => (*op, false),
                _ => ("store", false),
            };
            let id = lock(&self.inner.state).id.clone();
            let id = id.as_ref().or(self.cookie_id());
            self.engine()
                .emit(crate::events::EventKind::StoreError { op, timeout }, id);
        }
        match finished {
            Ok(set_cookie) => Outcome {
                set_cookie,
                error: None,
                read,
            },
            Err(error) => Outcome {
                set_cookie: None,
                error: Some(error),
                read,
            },
        }
    }

    async fn finish_inner(&self) -> Result<Option<String>, SessionError> {
        let engine = self.engine();
        let config = &engine.config;
        if lock(&self.inner.state).broken {
            return Err(SessionError::Broken(
                "regenerate() could not delete the old session",
            ));
        }
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
            (s.id.clone(), s.modified, s.unsaved, expires)
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
                // Destroyed by another request meanwhile (a logout, a revoke, a login's
                // regenerate): stays destroyed, and the browser keeps whatever cookie that
                // request gave it.
                return Ok(None);
            }
        } else if is_stored && from_cookie {
            if !lock(&self.inner.state).touched_on_load {
                engine
                    .call("touch", engine.store.touch(&id, expires))
                    .await?;
                engine.metrics.count(Count::Touched);
            }
            // Extended, by the load or just now: so is its index entry.
            self.index_refresh(&id, expires).await;
        }

        // The ID may have changed if a Create clashed; the cookie member if a merge ran.
        let (id, expires) = {
            let s = lock(&self.inner.state);
            let expires = s.record.as_ref().and_then(|r| r.cookie.expires);
            (s.id.clone().unwrap_or(id), expires)
        };
        let new_id = self.cookie_id() != Some(&id);
        let verified = self.inner.cookie.verified(engine);
        // A cookie that verified with an older secret is re-signed with the current one
        // whenever the session is still stored, so old secrets can be retired sooner
        // (express re-signs only when it sends the cookie anyway).
        let signed_with_old_secret = matches!(verified.id, Some((_, index)) if index > 0);
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
        let header = match &verified.value {
            Some(value) if !new_id => self.cookie_header(value, &record.cookie),
            _ => self.cookie_header(&engine.secrets.sign(&id), &record.cookie),
        };
        Ok(header)
    }

    fn wants_secure(&self, cookie: &CookieData) -> bool {
        match self.engine().config.cookie.secure {
            CookieSecure::Auto => self.inner.secure_request,
            _ => cookie.secure == Some(true),
        }
    }

    fn cookie_header(&self, value: &str, cookie: &CookieData) -> Option<String> {
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
