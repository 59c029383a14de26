//! The demo's account pages: sign in (with "remember me"), see your sessions, sign them
//! out. Server-rendered HTML forms, no JavaScript.
//!
//! What it shows of the library: `regenerate` on login, `set_max_age` for "remember me",
//! [`tessera::flash`] for the notice after each form (POST-redirect-GET: every form answers
//! `303 See Other` to `GET /account`, so a reload never submits it twice), and, in the
//! demo's router, [`tessera::cross_origin`] in front of every POST route.
//!
//! The sign-in form posts to `POST /login` (in `login`), which is negotiated on `Accept`:
//! a browser (`Accept` naming `text/html`, see [`wants_html`]) is redirected here with a
//! flash ([`signed_in`], [`sign_in_refused`]); any other client (curl, scripts) gets
//! `200 Logged in as NAME.` as plain text, as before there was an account page.
//!
//! The list of sessions is the per-user index's (`Session::user_sessions`): each row has a
//! handle, never a session ID, and its "Sign out" button posts that handle to
//! `/account/revoke`.
//!
//! The HTML is written here with one escaping helper, [`escape`], applied to everything
//! that did not come from this file: user names, user agents, flash texts.

use std::collections::HashMap;

use axum::extract::Form;
use axum::http::header::{ACCEPT, CACHE_CONTROL, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tessera::flash::{self, Flash, Level};
use tessera::signing::SessionHandle;
use tessera::{Session, SessionError};
use time::OffsetDateTime;

use crate::login::USER_KEY as USER;

/// The account routes: `GET /account`, `POST /account/logout` (this device),
/// `POST /account/revoke` (one session, by handle), `POST /account/revoke-all`.
pub fn routes() -> Router {
    Router::new()
        .route("/account", get(account))
        .route("/account/logout", post(logout))
        .route("/account/revoke", post(revoke))
        .route("/account/revoke-all", post(revoke_all))
}

/// One row of the sessions table, as plain data (filled from the session index).
#[derive(Debug, Clone, Default)]
pub struct SessionRow {
    /// The session's handle (a keyed digest of its ID, never the ID), for the sign-out form.
    pub handle: String,
    /// What the user agent said when the session was created.
    pub device: Option<String>,
    /// When it was created (or last regenerated).
    pub created: Option<OffsetDateTime>,
    /// When it was last used.
    pub last_active: Option<OffsetDateTime>,
    /// Whether it is the session of the request showing the page.
    pub current: bool,
}

/// `GET /account`: the sign-in form, or who is signed in and their sessions.
async fn account(session: Session) -> Result<Response, SessionError> {
    let flashes = flash::take(&session).await?;
    let page = match session.get::<String>(USER).await? {
        None => login_page(&flashes),
        Some(user) => {
            let sessions: Vec<SessionRow> = session
                .user_sessions()
                .await?
                .into_iter()
                .map(|s| SessionRow {
                    handle: s.handle.to_string(),
                    device: s.device,
                    created: s.created,
                    last_active: s.last_active,
                    current: s.current,
                })
                .collect();
            account_page(&user, &sessions, &flashes)
        }
    };
    // Never cached, not even for the back button: it lists live sessions.
    let mut response = Html(page).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// After `POST /login` signed `user` in, for a browser: the notice, and back to the
/// account page.
pub async fn signed_in(
    session: &Session,
    user: &str,
    remember: bool,
) -> Result<Response, SessionError> {
    let how = if remember {
        "for 30 days on this device"
    } else {
        "until you close the browser"
    };
    flash::push(
        session,
        Level::Success,
        format!("Signed in as {user}, {how}."),
    )
    .await?;
    Ok(see_other("/account"))
}

/// After `POST /login` refused the form, for a browser: why, and back to the form.
pub async fn sign_in_refused(session: &Session) -> Result<Response, SessionError> {
    flash::push(
        session,
        Level::Error,
        "A user name is 1 to 64 characters, none of them control characters.",
    )
    .await?;
    Ok(see_other("/account"))
}

/// `POST /account/logout`: ends this session, and starts an empty one that carries the
/// notice to the next page.
async fn logout(session: Session) -> Result<Response, SessionError> {
    if session.get::<String>(USER).await?.is_none() {
        return Ok(see_other("/account"));
    }
    session.regenerate().await?;
    flash::push(&session, Level::Info, "You are signed out on this device.").await?;
    Ok(see_other("/account"))
}

/// `POST /account/revoke`, form field `session` (a handle from the list): ends that session
/// of the signed-in user. A handle of someone else's session ends nothing.
async fn revoke(
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, SessionError> {
    if session.get::<String>(USER).await?.is_none() {
        return Ok(see_other("/account"));
    }
    let handle = form
        .get("session")
        .and_then(|h| h.parse::<SessionHandle>().ok());
    let (level, text) = match handle {
        None => (Level::Error, "That is not a session of yours."),
        Some(handle) => match session.revoke(&handle).await? {
            true => (Level::Success, "That session is signed out."),
            false => (Level::Info, "That session had already ended."),
        },
    };
    // Revoking the current session destroys it: then the notice starts a new session.
    if matches!(session.get_value(USER).await, Err(SessionError::Destroyed)) {
        session.regenerate().await?;
    }
    flash::push(&session, level, text).await?;
    Ok(see_other("/account"))
}

/// `POST /account/revoke-all`: ends every session of the signed-in user, this one included,
/// and starts an empty one that carries the notice.
async fn revoke_all(session: Session) -> Result<Response, SessionError> {
    if session.get::<String>(USER).await?.is_none() {
        return Ok(see_other("/account"));
    }
    let ended = session.revoke_all(false).await?;
    session.regenerate().await?;
    let text = match ended {
        1 => "Signed out of 1 session, this one.".to_owned(),
        n => format!("Signed out everywhere: {n} sessions, this one included."),
    };
    flash::push(&session, Level::Info, text).await?;
    Ok(see_other("/account"))
}

/// Whether the client asked for HTML: an `Accept` media range `text/html` or
/// `application/xhtml+xml` (browsers' form submissions send both). `*/*` alone (curl's
/// default) is not a request for HTML.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim();
            // `;q=0` refuses the type.
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (!refused).then_some(media)
        })
        .any(|media| {
            media.eq_ignore_ascii_case("text/html")
                || media.eq_ignore_ascii_case("application/xhtml+xml")
        })
}

/// `303 See Other` to `path`: the browser follows it with a GET.
fn see_other(path: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, path)]).into_response()
}

/// `text` made safe inside HTML text and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page around `body`.
fn page(title: &str, flashes: &[Flash], body: &str) -> String {
    let mut notices = String::new();
    for message in flashes {
        notices.push_str(&format!(
            "<p class=\"flash {level}\" role=\"status\">{text}</p>\n",
            level = message.level,
            text = escape(&message.text)
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · Tessera demo</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <main>\n<h1>{title}</h1>\n{notices}{body}</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5}.flash{padding:.5rem .75rem;border-radius:.25rem;\
background:#eef}.flash.success{background:#e6f4e6}.flash.error{background:#fbe9e9}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;\
border-bottom:1px solid #ddd;vertical-align:top}form.inline{display:inline}";

/// The sign-in form.
pub fn login_page(flashes: &[Flash]) -> String {
    page(
        "Sign in",
        flashes,
        "<form method=\"post\" action=\"/login\" id=\"login\">\n\
         <p><label for=\"user\">User name</label>\n\
         <input id=\"user\" name=\"user\" required maxlength=\"64\" autocomplete=\"username\"></p>\n\
         <p><label><input type=\"checkbox\" name=\"remember\" value=\"on\"> Remember me for 30 days</label></p>\n\
         <p><button type=\"submit\">Sign in</button></p>\n</form>\n",
    )
}

/// Who is signed in, their sessions (a sign-out button on each) and "sign out everywhere".
pub fn account_page(user: &str, sessions: &[SessionRow], flashes: &[Flash]) -> String {
    let mut rows = String::new();
    for row in sessions {
        let device = row.device.as_deref().unwrap_or("unknown device");
        let action = if row.current {
            "<form class=\"inline\" method=\"post\" action=\"/account/logout\">\
             <button type=\"submit\">Sign out</button></form>"
                .to_owned()
        } else {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/account/revoke\">\
                 <input type=\"hidden\" name=\"session\" value=\"{}\">\
                 <button type=\"submit\">Sign out</button></form>",
                escape(&row.handle)
            )
        };
        rows.push_str(&format!(
            "<tr class=\"session{current}\"><td class=\"device\">{device}{marker}</td>\
             <td class=\"created\">{created}</td><td class=\"last-active\">{active}</td>\
             <td>{action}</td></tr>\n",
            current = if row.current { " current" } else { "" },
            device = escape(device),
            marker = if row.current {
                " <strong class=\"this-one\">(this one)</strong>"
            } else {
                ""
            },
            created = when(row.created),
            active = when(row.last_active),
        ));
    }
    let body = format!(
        "<p id=\"signed-in\">Signed in as <strong id=\"user-name\">{user}</strong>.</p>\n\
         <h2>Your sessions</h2>\n<table id=\"sessions\">\n\
         <thead><tr><th>Device</th><th>Signed in</th><th>Last active</th><th></th></tr></thead>\n\
         <tbody>\n{rows}</tbody>\n</table>\n\
         <form method=\"post\" action=\"/account/revoke-all\" id=\"everywhere\">\
         <p><button type=\"submit\">Sign out everywhere</button></p></form>\n",
        user = escape(user),
    );
    page("Your account", flashes, &body)
}

/// A time as `2026-12-01 23:30 UTC`; a dash when unknown.
fn when(at: Option<OffsetDateTime>) -> String {
    match at {
        None => "—".to_owned(),
        Some(at) => {
            let at = at.to_offset(time::UtcOffset::UTC);
            format!(
                "{}-{:02}-{:02} {:02}:{:02} UTC",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn html_is_asked_for_by_browsers_only() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, HeaderValue::from_str(v).unwrap());
            wants_html(&h)
        };
        assert!(accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(accept("TEXT/HTML"));
        assert!(!accept("*/*"));
        assert!(!accept("application/json"));
        assert!(!accept("text/html;q=0, text/plain"));
        assert!(!wants_html(&HeaderMap::new()));
    }

    #[test]
    fn pages_escape_what_users_wrote() {
        let rows = [SessionRow {
            handle: "h\"1".into(),
            device: Some("<img src=x onerror=alert(1)>".into()),
            created: None,
            last_active: Some(OffsetDateTime::UNIX_EPOCH),
            current: false,
        }];
        let flashes = [Flash {
            level: Level::Error,
            text: "<b>bad</b>".into(),
        }];
        let html = account_page("<script>x</script>", &rows, &flashes);
        assert!(!html.contains("<script>x"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>bad"), "{html}");
        assert!(html.contains("value=\"h&quot;1\""), "{html}");
        assert!(html.contains("1970-01-01 00:00 UTC"), "{html}");
    }
}
