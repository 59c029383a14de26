//! Tessera behind axum: `bench-tessera memory|sqlite|redis [--port N] [--redis URL]
//! [--sqlite PATH] [--per-core]`. Each store with its documented defaults.
//!
//! `--per-core` (Redis only) serves on one single-threaded runtime per CPU, each with its
//! own `RedisStore` (its own connection, whose driver task runs on that runtime): the
//! layout actix-web uses, measured beside tokio's default multi-threaded runtime.
//!
//! Configured as the README shows: a secret, a one-day cookie max age, everything else
//! at its defaults (resave and saveUninitialized off, rolling off).

use axum::{routing::get, Router};
use tessera::store::redis::RedisStore;
use tessera::store::sqlite::{SqliteOptions, SqliteStore};
use tessera::{Session, SessionConfig, SessionError, SessionLayer};

async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(format!("views {views}"))
}

async fn read(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0);
    Ok(format!("views {views}"))
}

async fn untouched() -> &'static str {
    "ok"
}

/// The stores this build can run.
const STORES: &[&str] = &["memory", "sqlite", "redis"];

fn config() -> SessionConfig {
    SessionConfig::default()
        .secret(bench_common::SECRET)
        .cookie_max_age(bench_common::MAX_AGE)
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/counter", get(counter))
        .route("/read", get(read))
        .route("/untouched", get(untouched))
        .layer(layer)
}

fn main() -> Result<(), bench_common::Error> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "memory".into());
    // `bench-tessera --supports STORE`: whether this build has that store (bench/run asks).
    if mode == "--supports" {
        let store = std::env::args().nth(2).unwrap_or_default();
        std::process::exit(if STORES.contains(&store.as_str()) {
            0
        } else {
            1
        });
    }
    if bench_common::per_core() {
        if mode != "redis" {
            return Err(format!("--per-core is for the redis store, not {mode:?}").into());
        }
        return bench_common::serve_per_core(|| async {
            let store = RedisStore::connect(&bench_common::redis_url()).await?;
            Ok(app(SessionLayer::new(store, config())?))
        });
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(mode))
}

/// tokio's default runtime (what `#[tokio::main]` builds), one layer for all its workers.
async fn serve(mode: String) -> Result<(), bench_common::Error> {
    let config = config();
    let layer = match mode.as_str() {
        "memory" => SessionLayer::new(tessera::MemoryStore::new(), config)?,
        // SqliteStore with its defaults (WAL, one writer thread, two readers).
        "sqlite" => {
            let path = bench_common::arg("sqlite", "SQLITE_PATH")
                .unwrap_or_else(|| "bench-sessions.db".into());
            let store = SqliteStore::open(path, SqliteOptions::default()).await?;
            SessionLayer::new(store, config)?
        }
        // RedisStore with connect-redis's defaults (prefix `sess:`, TTL from the cookie).
        "redis" => {
            let store = RedisStore::connect(&bench_common::redis_url()).await?;
            SessionLayer::new(store, config)?
        }
        other => return Err(format!("unknown store {other:?}: memory|sqlite|redis").into()),
    };
    let listener = tokio::net::TcpListener::bind(bench_common::addr()).await?;
    bench_common::announce(&format!("tessera ({mode})"));
    axum::serve(listener, app(layer)).await?;
    Ok(())
}
