//! axum + tower-sessions 0.14 + tower-sessions-redis-store 0.16 (fred), set up as the
//! store's README and example do: a fred `Pool` of 6 connections, `SessionManagerLayer`
//! with an inactivity expiry (here one day, like every other server's cookie max age).
//! `Secure` is off because the benchmark speaks plain HTTP on loopback (the same for every
//! server).
//!
//! `--per-core` serves on one single-threaded runtime per CPU, each with this same setup
//! (its own fred pool), as `bench-tessera redis --per-core` does.

use axum::{http::StatusCode, routing::get, Router};
use time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::{fred::prelude::*, RedisStore};

fn internal(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn counter(session: Session) -> Result<String, (StatusCode, String)> {
    let views: u64 = session.get("views").await.map_err(internal)?.unwrap_or(0) + 1;
    session.insert("views", views).await.map_err(internal)?;
    Ok(format!("views {views}"))
}

async fn read(session: Session) -> Result<String, (StatusCode, String)> {
    let views: u64 = session.get("views").await.map_err(internal)?.unwrap_or(0);
    Ok(format!("views {views}"))
}

async fn untouched() -> &'static str {
    "ok"
}

/// The store, the layer and the routes, as the store's README sets them up.
async fn app() -> Result<Router, bench_common::Error> {
    let config = Config::from_url(&bench_common::redis_url())?;
    let pool = Pool::new(config, None, None, None, 6)?;
    let _connection = pool.connect();
    pool.wait_for_connect().await?;

    let layer = SessionManagerLayer::new(RedisStore::new(pool))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::seconds(
            bench_common::MAX_AGE.as_secs() as i64,
        )));
    Ok(Router::new()
        .route("/counter", get(counter))
        .route("/read", get(read))
        .route("/untouched", get(untouched))
        .layer(layer))
}

fn main() -> Result<(), bench_common::Error> {
    if bench_common::per_core() {
        return bench_common::serve_per_core(app);
    }
    // tokio's default runtime, what `#[tokio::main]` builds.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let app = app().await?;
            let listener = tokio::net::TcpListener::bind(bench_common::addr()).await?;
            bench_common::announce("tower-sessions (redis)");
            axum::serve(listener, app).await?;
            Ok(())
        })
}
