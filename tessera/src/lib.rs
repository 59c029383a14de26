//! Sessions for tower and axum, wire-compatible with express-session and connect-redis.
//!
//! Tessera is the express-session + connect-redis system rebuilt in Rust: a tower
//! [`SessionLayer`] that signs its session cookie exactly as express-session does, a typed
//! [`Session`] for handlers, and stores behind one [`Store`] trait — [`MemoryStore`] for
//! tests, [`SqliteStore`] (embedded, persistent) and [`RedisStore`] (standalone, Sentinel,
//! Cluster; the same keys and JSON as connect-redis). A Rust service and a Node service
//! with the same secret and store share their users' sessions.
//!
//! # Example
//!
//! The article's view counter, on axum:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::{routing::get, Router};
//! use tessera::{MemoryStore, Session, SessionConfig, SessionError, SessionLayer};
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
//!     session.insert("views", views).await?;
//!     Ok(if views == 1 {
//!         "Welcome to the session demo! Visit again to see the view count increase.".into()
//!     } else {
//!         format!("You have visited this page {views} times.")
//!     })
//! }
//!
//! async fn logout(session: Session) -> Result<&'static str, SessionError> {
//!     session.destroy().await?;
//!     Ok("Logged out successfully!")
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = SessionConfig::default()
//!         .secret(std::env::var("SESSION_SECRET")?)
//!         .cookie_max_age(Duration::from_secs(24 * 60 * 60));
//!     let sessions = SessionLayer::new(MemoryStore::new(), config)?;
//!
//!     let app = Router::new()
//!         .route("/", get(counter))
//!         .route("/logout", get(logout))
//!         .layer(sessions);
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Rules
//!
//! - A request without a valid cookie gets a new, empty session. A tampered, unsigned,
//!   malformed, oversized or unknown cookie counts as no cookie: never an error response,
//!   and no store lookup for an ID that is not well formed. With several cookies of our
//!   name, the first one that verifies is used.
//! - The session is loaded on first use: a handler that never touches it costs no store
//!   I/O (unless [`SessionConfig::rolling`] or [`SessionConfig::always_touch`] asks for it).
//! - At the end of the request the session is saved if modified (or always, with
//!   `resave`); a new session is saved and given a cookie only if modified (or with
//!   `save_uninitialized`); an unmodified stored session is touched (TTL extended).
//! - A session destroyed by another request meanwhile is not written back.
//! - When the store fails or times out, the request gets `503 Service Unavailable` and the
//!   cause is logged.
//!
//! For any tower service, the `Session` is in the request's extensions:
//! `req.extensions().get::<tessera::Session>()`.
//!
//! # Cargo features
//!
//! Only `axum` is on by default; every store but [`MemoryStore`] is opt-in, so an
//! application builds only the backends it uses.
//!
//! | feature     | default | what it brings |
//! |-------------|:-------:|----------------|
//! | `axum`      | yes     | `Session` as an axum extractor ([`MissingSessionLayer`] its rejection) and [`SessionError`] as a response; depends on `axum-core` only |
//! | `sqlite`    |         | [`SqliteStore`]: the embedded, persistent store (rusqlite with SQLite's C source bundled) |
//! | `redis`     |         | [`RedisStore`]: standalone, Sentinel and Cluster, connect-redis's keys and JSON (redis-rs) |
//! | `redis-tls` |         | `rediss://` URLs (Redis over TLS: rustls with the ring provider); turns on `redis` |
//!
//! Without `axum` the layer still works with any tower service: take the `Session` from
//! the request's extensions.
//!
//! # Beside sessions
//!
//! Two small helpers for the pages a session serves: [`cross_origin`], a tower layer that
//! refuses state-changing requests a browser says come from another origin (Go's
//! `CrossOriginProtection`), with an optional per-session synchronizer token; and
//! [`flash`], one-shot messages kept in the session across a POST-redirect-GET.
//!
//! # Examples
//!
//! The repository's `tessera/examples/` has small complete programs: `counter` (the example
//! above), `login` (`regenerate` on login, `destroy` on logout), `redis_prefix`
//! (`RedisStore` with a key prefix) and `tower_service` (the layer around a plain tower
//! service, no axum).

#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
pub mod config;
mod cookie;
pub mod cross_origin;
mod engine;
mod error;
pub mod events;
pub mod flash;
// Entry points to private parsers for the fuzz targets in `fuzz/` (cargo-fuzz builds with
// `--cfg fuzzing`); not part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod index;
mod js_number;
mod layer;
pub mod record;
mod session;
pub mod signing;
pub mod store;

pub use config::{ConfigError, CookieSecure, Priority, SameSite, SessionConfig, Unset};
pub use error::SessionError;
pub use events::{EventKind, SessionEvent};
pub use id::{IdError, SessionId};
pub use index::{UserIndex, UserSession};
pub use layer::{SecureConnection, SessionLayer, SessionService};
pub use record::Record;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use session::MissingSessionLayer;
pub use session::Session;
pub use store::{Loaded, MemoryStore, SaveMode, SaveOutcome, Store, StoreError, Stored, Version};
#[cfg(feature = "mysql")]
pub use store::{MySqlOptions, MySqlStore};
#[cfg(feature = "postgres")]
pub use store::{PostgresOptions, PostgresStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisStore, RedisStoreBuilder};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::{SqliteOptions, SqliteStore};

// The README's Rust examples are doctests too, so the README cannot drift from the API.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
