//! The demo's sign-in routes, for curl and scripts: `POST /login`, `GET /sessions` and
//! `POST /logout-everywhere`, on the per-user index over the session key `user`.
//!
//! `POST /login` answers a browser's form (`Accept: text/html`) with a redirect to the
//! account page and a notice (see `account`), anyone else in plain text.
//!
//! `POST /login` regenerates the session first (a login must never carry on under an ID
//! the browser had before: session fixation), then stores the user, so the index files
//! the new session under them. `remember=on` gives a persistent cookie of 30 days;
//! without it the cookie lasts as long as the browser session, and the session as long as
//! the idle timeout allows.

use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;
use tessera::{Session, SessionError};

use crate::account;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The session key that names the user (the demo's index key).
pub const USER_KEY: &str = "user";

/// How long "remember me" keeps a session.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30 * 86_400);

/// The routes, to be mounted inside the session layer.
pub fn routes() -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/sessions", get(sessions))
        .route("/logout-everywhere", post(logout_everywhere))
}

/// The login form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// The user name.
    #[serde(default)]
    pub user: String,
    /// `on` when "remember me" is ticked.
    #[serde(default)]
    pub remember: Option<String>,
}

/// A user name the demo accepts: 1 to 64 characters, none of them control characters.
pub fn valid_user(name: &str) -> Option<&str> {
    let name = name.trim();
    let ok = (1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control);
    ok.then_some(name)
}

/// Logs `form.user` in on `session`: regenerate, the cookie's lifetime, the user, the
/// device note. Answers the user name as stored.
pub async fn log_in(
    session: &Session,
    headers: &HeaderMap,
    form: &LoginForm,
) -> Result<Option<String>, SessionError> {
    let Some(user) = valid_user(&form.user) else {
        return Ok(None);
    };
    session.regenerate().await?;
    let remember = form.remember.as_deref() == Some("on");
    session
        .set_max_age(remember.then_some(REMEMBER_FOR))
        .await?;
    session.insert(USER_KEY, user).await?;
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown device");
    session.set_device(agent).await?;
    Ok(Some(user.to_owned()))
}

async fn login(
    session: Session,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, SessionError> {
    // A browser's form (Accept: text/html) goes back to the account page with a notice;
    // curl and scripts get plain text.
    let html = account::wants_html(&headers);
    let Ok(Form(form)) = form else {
        return match html {
            true => account::sign_in_refused(&session).await,
            false => Ok(bad_form()),
        };
    };
    let remember = form.remember.as_deref() == Some("on");
    Ok(match log_in(&session, &headers, &form).await? {
        Some(user) if html => account::signed_in(&session, &user, remember).await?,
        Some(user) => format!("Logged in as {user}.").into_response(),
        None if html => account::sign_in_refused(&session).await?,
        None => bad_form(),
    })
}

fn bad_form() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "Send a form field `user` of 1 to 64 characters (and `remember=on` to stay logged in).",
    )
        .into_response()
}

fn not_logged_in() -> Response {
    (StatusCode::UNAUTHORIZED, "Not logged in.").into_response()
}

fn time_text(at: Option<OffsetDateTime>) -> serde_json::Value {
    at.and_then(|t| t.format(&Rfc3339).ok()).into()
}

async fn sessions(session: Session) -> Result<Response, SessionError> {
    if session.get::<String>(USER_KEY).await?.is_none() {
        return Ok(not_logged_in());
    }
    let list: Vec<serde_json::Value> = session
        .user_sessions()
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "handle": s.handle.as_str(),
                "current": s.current,
                "created": time_text(s.created),
                "last_active": time_text(s.last_active),
                "expires": time_text(s.expires),
                "device": s.device,
            })
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

async fn logout_everywhere(session: Session) -> Result<Response, SessionError> {
    if session.get::<String>(USER_KEY).await?.is_none() {
        return Ok(not_logged_in());
    }
    let ended = session.revoke_all(false).await?;
    Ok(format!("Signed out of {ended} sessions.").into_response())
}
