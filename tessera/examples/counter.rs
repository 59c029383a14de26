//! The view counter on axum with `MemoryStore`: the smallest complete Tessera app.
//!
//! Run it, then open http://127.0.0.1:3000 a few times (or use curl with a cookie jar):
//!
//! ```sh
//! SESSION_SECRET='a long random string' cargo run -p tessera --example counter
//! curl -c jar -b jar http://127.0.0.1:3000/   # again and again: the count goes up
//! curl -c jar -b jar http://127.0.0.1:3000/logout
//! ```
//!
//! Without `SESSION_SECRET` it uses a fixed development secret and says so. Sessions live
//! in memory: a restart forgets them (the `tessera` demo, `cargo run --release`, keeps them
//! in SQLite).

use std::time::Duration;

use axum::{routing::get, Router};
use tessera::{MemoryStore, Session, SessionConfig, SessionError, SessionLayer};

async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(if views == 1 {
        "Welcome to the session demo! Visit again to see the view count increase.\n".into()
    } else {
        format!("You have visited this page {views} times.\n")
    })
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("Logged out successfully!\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("SESSION_SECRET").unwrap_or_else(|_| {
        eprintln!("SESSION_SECRET is not set: using a development secret");
        "development secret, not for production".into()
    });
    let config = SessionConfig::default()
        .secret(secret)
        .cookie_max_age(Duration::from_secs(24 * 60 * 60));
    let sessions = SessionLayer::new(MemoryStore::new(), config)?;

    let app = Router::new()
        .route("/", get(counter))
        .route("/logout", get(logout))
        .layer(sessions);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
