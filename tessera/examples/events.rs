//! Session events as an audit log: every login (a new session, then `regenerate()`), visit
//! and logout is written to stdout as one JSON object a line. Events carry each session's
//! handle, a keyed digest of its ID, never the ID itself (a bearer credential).
//!
//! ```sh
//! SESSION_SECRET='a long random string' cargo run -p tessera --example events
//! curl -c jar -b jar http://127.0.0.1:3000/            # {"event":"created",…}
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/login   # {"event":"regenerated",…} {"event":"created",…}
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/logout  # {"event":"destroyed",…}
//! ```

use std::io::Write;

use axum::routing::{get, post};
use axum::Router;
use tessera::{MemoryStore, Session, SessionConfig, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let views: u64 = session
        .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(format!("{views} visits\n"))
}

async fn login(session: Session) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.insert("user", "alice").await?;
    Ok("logged in\n")
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("logged out\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SessionConfig::default()
        .secret(std::env::var("SESSION_SECRET")?)
        // Runs on the request's task: a line to stdout is quick enough; a slow sink
        // would take a channel to a task of its own.
        .on_event(|event| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", event.to_json());
        });
    let app = Router::new()
        .route("/", get(visit))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(MemoryStore::new(), config)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
