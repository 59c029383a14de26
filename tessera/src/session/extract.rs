//! `Session` as an axum extractor, and the rejection when the layer is missing.

use std::fmt;

use axum_core::extract::FromRequestParts;
use http::request::Parts;
use http::StatusCode;

use super::Session;

/// The rejection when `Session` is extracted on a route without
/// [`SessionLayer`](crate::SessionLayer): a programming error, answered with 500.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Debug, Clone, Copy)]
pub struct MissingSessionLayer;

impl fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "`Session` extracted on a route without `SessionLayer`; add the layer to the router",
        )
    }
}

impl std::error::Error for MissingSessionLayer {}

impl axum_core::response::IntoResponse for MissingSessionLayer {
    fn into_response(self) -> axum_core::response::Response {
        tracing::error!("{self}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Session extractor used without SessionLayer.",
        )
            .into_response()
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}
