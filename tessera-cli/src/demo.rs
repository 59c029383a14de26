//! `tessera serve`: the demo app of the article, configured like it.
//!
//! `GET /` counts visits in the session; `GET /logout` destroys it. Options come from flags
//! or the environment variables an Express deployment of the article would use.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use clap::{Args, ValueEnum};
use tessera::{CookieSecure, Session, SessionConfig, SessionError, SessionLayer};

use crate::stores::{self, StoreOptions};

/// Options of `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Session store URL: memory, sqlite://PATH, redis://HOST:PORT, redis-sentinel://…, redis-cluster://…, postgres://USER:PASSWORD@HOST:PORT/DB, mysql://USER:PASSWORD@HOST:PORT/DB
    #[arg(long, env = "SESSION_STORE", default_value = stores::DEFAULT_STORE)]
    store: String,
    /// Secrets, comma-separated; the first signs. Generated and kept next to the store's
    /// data when not given.
    #[arg(long, env = "SESSION_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Key prefix in the store.
    #[arg(long, env = "SESSION_PREFIX", default_value = "myapp:session:")]
    prefix: String,
    /// Store TTL in seconds for sessions whose cookie has no expiry.
    #[arg(long, env = "SESSION_TTL", default_value_t = 3600)]
    ttl: u64,
    /// Cookie max age in seconds (0: a browser-session cookie).
    #[arg(long, env = "COOKIE_MAX_AGE", default_value_t = 86_400)]
    cookie_max_age: u64,
    /// Cookie Secure attribute.
    #[arg(long, env = "COOKIE_SECURE", value_enum, default_value_t = SecureArg::False)]
    cookie_secure: SecureArg,
    /// Cookie name.
    #[arg(long, env = "COOKIE_NAME", default_value = "connect.sid")]
    cookie_name: String,
    /// Trust X-Forwarded-Proto from a proxy in front (for --cookie-secure auto).
    #[arg(long, env = "TRUST_PROXY")]
    trust_proxy: bool,
    /// Send the cookie with a fresh expiry on every response.
    #[arg(long, env = "SESSION_ROLLING")]
    rolling: bool,
    /// Milliseconds a store call may take before the request answers 503.
    #[arg(long, env = "STORE_TIMEOUT_MS", default_value_t = 3000)]
    store_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SecureArg {
    False,
    True,
    Auto,
}

/// Errors that stop `tessera serve` before it serves.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the demo until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let options = StoreOptions {
        prefix: args.prefix.clone(),
        ttl: Duration::from_secs(args.ttl),
    };
    let store = stores::open(&args.store, &options).await.map_err(|e| {
        ServeError(format!(
            "cannot open store {}: {e}",
            stores::redacted(&args.store)
        ))
    })?;
    let secrets = match &args.secret {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => vec![demo_secret(&stores::data_dir(&args.store))?],
    };
    let mut config = SessionConfig::default()
        .secrets(&secrets)
        .name(args.cookie_name.clone())
        .cookie_secure(match args.cookie_secure {
            SecureArg::False => CookieSecure::Never,
            SecureArg::True => CookieSecure::Always,
            SecureArg::Auto => CookieSecure::Auto,
        })
        .trust_proxy(args.trust_proxy)
        .rolling(args.rolling)
        .store_timeout(Duration::from_millis(args.store_timeout_ms));
    if args.cookie_max_age > 0 {
        config = config.cookie_max_age(Duration::from_secs(args.cookie_max_age));
    }
    let layer = SessionLayer::from_arc(store, config)?;

    let app = Router::new()
        .route("/", get(counter))
        .route("/logout", get(logout))
        .route("/health", get(|| async { "ok" }))
        .layer(layer);

    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| {
            ServeError(format!(
                "bad --host/--port {}:{}: {e}",
                args.host, args.port
            ))
        })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    tracing::info!(store = %stores::redacted(&args.store), "listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shut down");
    Ok(())
}

/// The article's counter, as a read-modify-write: concurrent visits of one session (two
/// tabs, a page and its XHRs, two instances) all count, each re-applied on the count the
/// other stored.
async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session
        .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(if views == 1 {
        "Welcome to the session demo! Visit again to see the view count increase.".into()
    } else {
        format!("You have visited this page {views} times.")
    })
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("Logged out successfully!")
}

/// The demo's secret when none is given: read from `<dir>/secret`, or generated there
/// (mode 0600) so a restart keeps sessions valid. Two instances started at once in one
/// folder agree on one secret: the file is created exclusively, and the loser reads it.
fn demo_secret(dir: &Path) -> Result<String, BoxError> {
    let path = dir.join("secret");
    for attempt in 0..50 {
        match std::fs::read_to_string(&path) {
            Ok(secret) if !secret.trim().is_empty() => {
                tracing::info!(path = %path.display(), "using the demo secret kept in this file; pass --secret or SESSION_SECRET in production");
                return Ok(secret.trim().to_owned());
            }
            // Being written by another instance right now, or left empty by a crash.
            Ok(_) if attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            Ok(_) => {
                return Err(ServeError(format!(
                    "the demo secret file {} is empty: delete it and start again",
                    path.display()
                ))
                .into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ServeError(format!(
                    "cannot read the demo secret {}: {e}",
                    path.display()
                ))
                .into())
            }
        }
        let secret = generate_secret()?;
        std::fs::create_dir_all(dir)
            .map_err(|e| ServeError(format!("cannot create {}: {e}", dir.display())))?;
        match write_private(&path, &secret) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated a demo secret and saved it; pass --secret or SESSION_SECRET in production");
                return Ok(secret);
            }
            // Another instance won the race: read its secret on the next turn.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(ServeError(format!(
                    "cannot write the demo secret {}: {e}",
                    path.display()
                ))
                .into())
            }
        }
    }
    Err(ServeError(format!(
        "cannot settle on a demo secret in {}",
        path.display()
    ))
    .into())
}

/// 64 characters from 48 random bytes.
fn generate_secret() -> Result<String, BoxError> {
    let mut secret = String::with_capacity(64);
    for _ in 0..2 {
        let part = tessera::SessionId::generate()
            .map_err(|e| ServeError(format!("cannot generate a secret: {e}")))?;
        secret.push_str(part.as_str());
    }
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
