//! Tessera behind axum: `bench-tessera memory|sqlite|redis|postgres|mysql [--port N]
//! [--redis URL] [--sqlite PATH] [--database URL] [--per-core] [--no-guard] [--index]`.
//! Each store with its documented defaults.
//!
//! `--no-guard` turns the guarded commit off (`guarded_commit(false)`: last writer wins,
//! as with express-session), so bench/run can show what the guard costs. `--index` keeps
//! the per-user index (`index_by("user")`) that `/login` and `/sessions` exercise; the
//! other routes are measured without it, as the README configures the layer.
//! `--database` is the PostgreSQL or MySQL/MariaDB URL (or `DATABASE_URL`).
//!
//! `--per-core` (Redis only) serves on one single-threaded runtime per CPU, each with its
//! own `RedisStore` (its own connection, whose driver task runs on that runtime): the
//! layout actix-web uses, measured beside tokio's default multi-threaded runtime.
//!
//! Configured as the README shows: a secret, a one-day cookie max age, everything else
//! at its defaults (resave and saveUninitialized off, rolling off).
//!
//! Routes: `/counter` (read and write, with `update`: an increment kept under concurrent
//! saves), `/read` (read only), `/untouched` (never looks at the session), `/login` (a
//! sign-in: `regenerate`, then the user stored; a session that already has a user keeps
//! it, so a repeated login is that user signing in again; new users are `user0` …
//! `user99` in turn) and `/sessions` (the user's sessions, listed through the index).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{routing::get, Router};
use tessera::store::mysql::{MySqlOptions, MySqlStore};
use tessera::store::postgres::{PostgresOptions, PostgresStore};
use tessera::store::redis::RedisStore;
use tessera::store::sqlite::{SqliteOptions, SqliteStore};
use tessera::{Session, SessionConfig, SessionError, SessionLayer};

/// `update`, not `get` then `insert`: under the guarded commit a concurrent save of the
/// same session re-runs the increment on the value stored meanwhile, so none is lost (the
/// contention workload counts them).
async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session
        .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(format!("views {views}"))
}

async fn read(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0);
    Ok(format!("views {views}"))
}

async fn untouched() -> &'static str {
    "ok"
}

/// The users `/login` signs in, in turn.
const USERS: u64 = 100;
static NEXT_USER: AtomicU64 = AtomicU64::new(0);

async fn login(session: Session) -> Result<String, SessionError> {
    let user = match session.get::<String>("user").await? {
        Some(user) => user,
        None => format!("user{}", NEXT_USER.fetch_add(1, Ordering::Relaxed) % USERS),
    };
    session.regenerate().await?;
    session.insert("user", &user).await?;
    Ok(format!("user {user}"))
}

async fn sessions(session: Session) -> Result<String, SessionError> {
    let listed = session.user_sessions().await?;
    Ok(format!("sessions {}", listed.len()))
}

/// The stores this build can run.
const STORES: &[&str] = &["memory", "sqlite", "redis", "postgres", "mysql"];

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn config() -> SessionConfig {
    let config = SessionConfig::default()
        .secret(bench_common::SECRET)
        .cookie_max_age(bench_common::MAX_AGE)
        .guarded_commit(!flag("--no-guard"));
    if flag("--index") {
        config.index_by("user")
    } else {
        config
    }
}

fn database_url() -> Result<String, bench_common::Error> {
    bench_common::arg("database", "DATABASE_URL")
        .ok_or_else(|| "--database URL (or DATABASE_URL) is required for this store".into())
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/counter", get(counter))
        .route("/read", get(read))
        .route("/untouched", get(untouched))
        .route("/login", get(login))
        .route("/sessions", get(sessions))
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
        // connect-pg-simple's table (`session`), express-mysql-session's (`sessions`).
        "postgres" => {
            let store = PostgresStore::connect(&database_url()?, PostgresOptions::default()).await?;
            SessionLayer::new(store, config)?
        }
        "mysql" => {
            let store = MySqlStore::connect(&database_url()?, MySqlOptions::default()).await?;
            SessionLayer::new(store, config)?
        }
        other => {
            return Err(
                format!("unknown store {other:?}: memory|sqlite|redis|postgres|mysql").into(),
            )
        }
    };
    let listener = tokio::net::TcpListener::bind(bench_common::addr()).await?;
    bench_common::announce(&format!("tessera ({mode})"));
    axum::serve(listener, app(layer)).await?;
    Ok(())
}
