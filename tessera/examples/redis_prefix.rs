//! `RedisStore` with a key prefix: sessions under `myapp:session:<id>`, in the JSON and
//! with the TTL connect-redis uses, so an Express app configured with
//! `new RedisStore({ client, prefix: "myapp:session:" })` and the same secret shares them.
//!
//! Needs a Redis server. Run it, visit the page, then look at the key:
//!
//! ```sh
//! redis-server --port 6379 --save '' --appendonly no &   # if none is running
//! REDIS_URL=redis://127.0.0.1:6379 SESSION_SECRET='a long random string' \
//!     cargo run -p tessera --features redis --example redis_prefix
//! curl -c jar -b jar http://127.0.0.1:3000/
//! redis-cli --scan --pattern 'myapp:session:*'
//! ```
//!
//! `REDIS_URL` defaults to `redis://127.0.0.1:6379`; `redis-sentinel://…` and
//! `redis-cluster://…` URLs work the same way. While Redis is down, requests that need the
//! session get `503 Service Unavailable` and the store reconnects by itself.

use std::time::Duration;

use axum::{routing::get, Router};
use tessera::{RedisStore, Session, SessionConfig, SessionError, SessionLayer};

async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session
        .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(format!("views: {views} (stored under myapp:session:…)\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let secret = std::env::var("SESSION_SECRET").unwrap_or_else(|_| {
        eprintln!("SESSION_SECRET is not set: using a development secret");
        "development secret, not for production".into()
    });

    // `connect` fails at once if Redis is unreachable; `connect_lazy` would start anyway.
    let store = RedisStore::builder(url)
        .prefix("myapp:session:")
        .ttl(Duration::from_secs(3600)) // only for cookies without a max age
        .connect()
        .await?;
    let config = SessionConfig::default()
        .secret(secret)
        .cookie_max_age(Duration::from_secs(24 * 60 * 60));

    let app = Router::new()
        .route("/", get(counter))
        .layer(SessionLayer::new(store, config)?);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
