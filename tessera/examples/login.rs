//! Login and logout: `regenerate()` on login (a new session ID, so an ID planted before
//! login is worthless: no session fixation), the user's name under one key, a counter
//! kept with `Session::update`, and `destroy()` on logout.
//!
//! ```sh
//! SESSION_SECRET='a long random string' cargo run -p tessera --example login
//! curl -c jar -b jar http://127.0.0.1:3000/                        # not logged in
//! curl -c jar -b jar -X POST 'http://127.0.0.1:3000/login?user=alice'
//! curl -c jar -b jar http://127.0.0.1:3000/                        # hello alice, 1 page
//! curl -c jar -b jar http://127.0.0.1:3000/                        # 2 pages
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/logout
//! ```
//!
//! A real application checks a password before `regenerate()`; this one believes anyone.

use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tessera::{MemoryStore, Session, SessionConfig, SessionError, SessionLayer};

/// The session key that says who is logged in.
const USER: &str = "user";

async fn home(session: Session) -> Result<String, SessionError> {
    let Some(user) = session.get::<String>(USER).await? else {
        return Ok("Not logged in. POST /login?user=NAME to log in.\n".into());
    };
    // A read-modify-write that concurrent requests cannot undo: if two tabs load pages at
    // once, both views are counted.
    let pages: u64 = session
        .update("pages", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(format!(
        "Hello {user}! Pages seen since you logged in: {pages}.\n"
    ))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

async fn login(
    session: Session,
    Query(login): Query<Login>,
) -> Result<(StatusCode, String), SessionError> {
    if login.user.is_empty() {
        return Ok((StatusCode::BAD_REQUEST, "user must not be empty\n".into()));
    }
    // New ID, empty data, the old record deleted: whatever the browser had before login
    // (perhaps planted by someone else) no longer names this session.
    session.regenerate().await?;
    session.insert(USER, &login.user).await?;
    Ok((StatusCode::OK, format!("Logged in as {}.\n", login.user)))
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    // Deletes the record now and sends a cookie that makes the browser forget it.
    session.destroy().await?;
    Ok("Logged out.\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("SESSION_SECRET").unwrap_or_else(|_| {
        eprintln!("SESSION_SECRET is not set: using a development secret");
        "development secret, not for production".into()
    });
    let config = SessionConfig::default()
        .secret(secret)
        .cookie_max_age(Duration::from_secs(8 * 60 * 60));

    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(MemoryStore::new(), config)?);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
