//! Errors a handler can meet when it uses its `Session`, and how each becomes a response.

use crate::store::StoreError;

/// An error from a [`Session`](crate::Session) method.
///
/// With the `axum` feature it is also a response: store failures become
/// `503 Service Unavailable`, everything else `500 Internal Server Error`; each is logged
/// with its cause when it is turned into a response.
#[derive(Debug, thiserror::Error)]
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
    /// `reload` found no stored session (never saved, destroyed or expired).
    #[error("the session is not in the store (never saved, destroyed or expired)")]
    NotFound,
    /// The session was destroyed or unset earlier in this request.
    #[error("the session was destroyed earlier in this request")]
    Destroyed,
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
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for SessionError {
    fn into_response(self) -> axum_core::response::Response {
        use http::StatusCode;
        let status = if self.is_store() {
            tracing::warn!(error = %self, "session store failed; answering 503");
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            tracing::error!(error = %self, "session error; answering 500");
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let body = if self.is_store() {
            "Session store unavailable, try again shortly."
        } else {
            "Session error."
        };
        (status, body).into_response()
    }
}
