//! Errors a handler can meet when it uses its `Session`, and how each becomes a response.

use crate::store::StoreError;

/// An error from a [`Session`](crate::Session) method.
///
/// With the `axum` feature it is also a response: store failures become
/// `503 Service Unavailable`, everything else `500 Internal Server Error`; each is logged
/// with its cause when it is turned into a response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed or timed out.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value given to `insert` could not be serialized to JSON.
    #[error("session value for key `{key}` cannot be serialized: {source}")]
    Serialize {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not have the type `get` asked for.
    #[error("session value for key `{key}` does not have the requested type: {source}")]
    Deserialize {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A change would make the stored session larger than
    /// [`SessionConfig::max_record_bytes`](crate::SessionConfig::max_record_bytes); the change
    /// was not made.
    #[error("session value for key `{key}` would make the stored session {bytes} bytes, over the limit of {limit}; keep large data elsewhere and store a reference, or raise SessionConfig::max_record_bytes")]
    TooLarge {
        /// The key.
        key: String,
        /// The stored session's size with the change.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// `reload` found no stored session (never saved, destroyed or expired).
    #[error("the session is not in the store (never saved, destroyed or expired)")]
    NotFound,
    /// The session was destroyed or unset earlier in this request.
    #[error("the session was destroyed earlier in this request")]
    Destroyed,
    /// The guarded commit gave up: the stored session kept changing under this request
    /// (writers outside this process saved it again and again). Nothing of this request was
    /// saved; the layer answers 503 and the client may retry.
    #[error("the session kept changing in the store; gave up after {attempts} attempts to merge this request's changes")]
    Conflict {
        /// How many commits were tried.
        attempts: u32,
    },
    /// An earlier step of this request failed in a way that makes the session unsafe to
    /// go on with (a `regenerate` that could not delete the old record). The layer answers
    /// 503 whatever the handler answered.
    #[error("the session cannot be used any more in this request: {0}")]
    Broken(&'static str),
    /// A per-user index call ([`Session::user_sessions`](crate::Session::user_sessions),
    /// `revoke`, `revoke_all`) without [`SessionConfig::index_by`](crate::SessionConfig::index_by).
    #[error("no per-user index is configured: set SessionConfig::index_by")]
    NoIndex,
    /// The operating system could not supply random bytes for a new ID, or the custom ID
    /// generator returned an ill-formed ID.
    #[error("cannot generate a session ID: {0}")]
    Id(String),
}

impl SessionError {
    /// Whether the cause is the store (the layer answers these with 503).
    pub fn is_store(&self) -> bool {
        matches!(self, SessionError::Store(_))
    }

    /// Whether the client may simply try again later: the store failed, or the guarded
    /// commit or a `regenerate` could not complete. Answered with 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            SessionError::Store(_) | SessionError::Conflict { .. } | SessionError::Broken(_)
        )
    }

    /// The same error for another request written in the same group commit. A commit
    /// fails only with a store's error or [`SessionError::Conflict`] (a request's own
    /// error is that request's alone); a cause that is not kept as a value (a backend's
    /// error) is kept as its message.
    pub(crate) fn again(&self) -> SessionError {
        match self {
            SessionError::Store(StoreError::Timeout { store, op, after }) => {
                SessionError::Store(StoreError::Timeout {
                    store: store.clone(),
                    op,
                    after: *after,
                })
            }
            SessionError::Store(StoreError::Backend { store, op, source }) => {
                SessionError::Store(StoreError::backend(store, op, source.to_string()))
            }
            SessionError::Conflict { attempts } => SessionError::Conflict {
                attempts: *attempts,
            },
            // Kept as a store failure with the same message: still answered 503.
            other => SessionError::Store(StoreError::backend("session", "save", other.to_string())),
        }
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum_core::response::IntoResponse for SessionError {
    fn into_response(self) -> axum_core::response::Response {
        use http::StatusCode;
        let status = if self.is_unavailable() {
            tracing::warn!(error = %self, "session unavailable; answering 503");
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            tracing::error!(error = %self, "session error; answering 500");
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let body = if self.is_unavailable() {
            "Session store unavailable, try again shortly."
        } else {
            "Session error."
        };
        (status, body).into_response()
    }
}
