//! `tessera serve`: the demo app of the article, configured like it.
//!
//! `GET /` counts visits in the session; `GET /logout` destroys it, as in the article.
//! `POST /login`, `GET /sessions` and `POST /logout-everywhere` (in `login`) sign a user
//! in and out everywhere, on the per-user index over the key `user`; `/account` (in
//! `account`) is the same for a browser, as HTML forms. Every POST route is behind the
//! cross-origin layer. Options come from flags or the environment variables an Express
//! deployment of the article would use.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use clap::{ArgAction, Args, ValueEnum};
use tessera::cross_origin::CrossOriginLayer;
use tessera::{CookieSecure, SameSite, Session, SessionConfig, SessionError, SessionLayer};

use crate::stores::{self, StoreOptions};
use crate::{account, login, redact};

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
    #[arg(long, env = "SESSION_STORE", hide_env_values = true, default_value = stores::DEFAULT_STORE)]
    store: String,
    /// The session secret, used exactly as given: a comma is part of it, as in express's
    /// `secret: 'a,b'`. Repeat the flag to rotate: the first signs, all verify. Use at
    /// least 32 random bytes (shorter ones are warned about). Generated and kept next to
    /// the store's data when no secret is given.
    #[arg(
        long,
        env = "SESSION_SECRET",
        hide_env_values = true,
        action = ArgAction::Append,
        conflicts_with = "secrets"
    )]
    secret: Vec<String>,
    /// Several secrets in one value, for one environment variable during a rotation:
    /// split on commas, spaces around each trimmed, the first signs. An empty item is an
    /// error rather than skipped. (--secret never splits, so a comma inside a secret
    /// cannot silently cut it short.)
    #[arg(long, env = "SESSION_SECRETS", hide_env_values = true)]
    secrets: Option<String>,
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
    /// Cookie SameSite attribute; `unset` sends none, as express-session by default (for
    /// exact parity with an Express app that shares the sessions and sets no sameSite).
    #[arg(long, env = "COOKIE_SAME_SITE", value_enum, default_value_t = SameSiteArg::Lax)]
    cookie_same_site: SameSiteArg,
    /// Cookie name.
    #[arg(long, env = "COOKIE_NAME", default_value = "connect.sid")]
    cookie_name: String,
    /// Trust X-Forwarded-Proto from a proxy in front (for --cookie-secure auto).
    #[arg(long, env = "TRUST_PROXY")]
    trust_proxy: bool,
    /// Send the cookie with a fresh expiry on every response.
    #[arg(long, env = "SESSION_ROLLING")]
    rolling: bool,
    /// Idle timeout: a session unused this many seconds expires. Sets the store TTL and
    /// the cookie's max age to it and turns on --rolling, so each response renews the
    /// browser's cookie too ("remember me" logins keep their 30 days).
    #[arg(long, env = "IDLE_TIMEOUT", conflicts_with_all = ["ttl", "cookie_max_age"])]
    idle_timeout: Option<u64>,
    /// Absolute timeout: a session this many seconds old (since its login) ends, however
    /// active. Off by default.
    #[arg(long, env = "ABSOLUTE_TIMEOUT")]
    absolute_timeout: Option<u64>,
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SameSiteArg {
    Lax,
    Strict,
    None,
    Unset,
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
    if args.idle_timeout == Some(0) || args.absolute_timeout == Some(0) {
        return Err(ServeError(
            "--idle-timeout and --absolute-timeout take a number of seconds above 0".into(),
        )
        .into());
    }
    let options = StoreOptions {
        prefix: args.prefix.clone(),
        ttl: Duration::from_secs(args.idle_timeout.unwrap_or(args.ttl)),
        create: true,
    };
    let store = stores::open(&args.store, &options).await?;
    let secrets = match (&args.secrets, args.secret.is_empty()) {
        (Some(list), _) => split_secrets(list)?,
        (None, false) => {
            for (n, secret) in args.secret.iter().enumerate() {
                if secret.contains(',') {
                    tracing::warn!(
                        "session secret {} contains a comma and is used whole, comma included \
                         (--secret never splits); for several secrets repeat --secret or use --secrets",
                        n + 1
                    );
                }
            }
            args.secret.clone()
        }
        (None, true) => vec![demo_secret(&stores::data_dir(&args.store))?],
    };
    warn_weak_secrets(&secrets);
    let mut config = SessionConfig::default()
        .secrets(&secrets)
        .name(args.cookie_name.clone())
        .cookie_secure(match args.cookie_secure {
            SecureArg::False => CookieSecure::Never,
            SecureArg::True => CookieSecure::Always,
            SecureArg::Auto => CookieSecure::Auto,
        })
        .trust_proxy(args.trust_proxy)
        .rolling(args.rolling || args.idle_timeout.is_some())
        .index_by(login::USER_KEY)
        .store_timeout(Duration::from_millis(args.store_timeout_ms));
    config = match args.cookie_same_site {
        SameSiteArg::Lax => config.cookie_same_site(SameSite::Lax),
        SameSiteArg::Strict => config.cookie_same_site(SameSite::Strict),
        SameSiteArg::None => config.cookie_same_site(SameSite::None),
        SameSiteArg::Unset => config.cookie_without_same_site(),
    };
    match args.idle_timeout {
        Some(idle) => config = config.cookie_max_age(Duration::from_secs(idle)),
        None if args.cookie_max_age > 0 => {
            config = config.cookie_max_age(Duration::from_secs(args.cookie_max_age));
        }
        None => {}
    }
    if let Some(limit) = args.absolute_timeout {
        config = config.absolute_timeout(Duration::from_secs(limit));
    }
    // The library reports through the `metrics` facade; the demo installs the Prometheus
    // exporter and serves its text at /metrics (outside the session layer: scraping it
    // costs no session). Installed before the layer is made, which registers its metrics.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| ServeError(format!("cannot install the metrics recorder: {e}")))?;
    let layer = SessionLayer::from_arc(store, config)?;

    let app = Router::new()
        .route("/", get(counter))
        .route("/logout", get(logout))
        .merge(login::routes())
        .merge(account::routes())
        .layer(layer)
        // Outside the session layer: a refused request costs no session.
        .layer(CrossOriginLayer::new())
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        );

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
    tracing::info!(store = %redact::url(&args.store), "listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shut down");
    Ok(())
}

/// `--secrets a,b`: split on commas, each trimmed; an empty item is an error (a stray
/// comma must not quietly change the list of secrets).
fn split_secrets(list: &str) -> Result<Vec<String>, ServeError> {
    list.split(',')
        .enumerate()
        .map(|(n, item)| match item.trim() {
            "" => Err(ServeError(format!(
                "--secrets item {} is empty: separate the secrets with single commas, \
                 e.g. --secrets NEW,OLD",
                n + 1
            ))),
            secret => Ok(secret.to_owned()),
        })
        .collect()
}

/// The shortest secret not warned about: HMAC-SHA256's own output length, and what
/// `openssl rand -base64 32` gives.
const MIN_SECRET_LEN: usize = 32;

/// Warns, at start, about secrets that are easy to guess or were likely mangled; never
/// prints a secret, only its position and length.
fn warn_weak_secrets(secrets: &[String]) {
    let total = secrets.len();
    for (n, secret) in secrets.iter().enumerate() {
        if secret.len() < MIN_SECRET_LEN {
            tracing::warn!(
                "session secret {} of {total} is {} bytes long, shorter than {MIN_SECRET_LEN} bytes: \
                 anyone who guesses it can forge session cookies; use at least {MIN_SECRET_LEN} \
                 random bytes (e.g. `openssl rand -base64 32`)",
                n + 1,
                secret.len()
            );
        }
        if secret.trim() != secret {
            tracing::warn!(
                "session secret {} of {total} begins or ends with white space, which is kept \
                 as part of it (was a newline read from a file?)",
                n + 1
            );
        }
    }
}

/// The article's counter, as a read-modify-write: concurrent visits of one session (two
/// tabs, a page and its XHRs, two instances) all count, each re-applied on the count the
/// other stored.
async fn counter(session: Session) -> Result<String, SessionError> {
    // A stored value the counter cannot use (a string another app wrote, a negative or
    // fractional number) starts the count afresh: reading it as a u64 would fail every
    // request of the session until it expires. At u64::MAX the count stays there rather
    // than wrapping to 0.
    let views = session
        .update("views", |old: Option<serde_json::Value>| {
            let views = old.as_ref().and_then(view_count).unwrap_or(0);
            serde_json::Value::from(views.saturating_add(1))
        })
        .await?
        .as_u64()
        .unwrap_or(1);
    Ok(if views == 1 {
        "Welcome to the session demo! Visit again to see the view count increase.".into()
    } else {
        format!("You have visited this page {views} times.")
    })
}

/// A stored view count: a whole, non-negative number. JavaScript writes every number as a
/// double, so a whole double counts too, saturating at u64::MAX.
fn view_count(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            // `as` saturates: a count beyond u64::MAX is read as u64::MAX.
            .map(|f| f as u64)
    })
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("Logged out successfully!")
}

/// The demo's secret when none is given: read from `<dir>/secret`, or generated there
/// (mode 0600, in a folder created 0700) so a restart keeps sessions valid. Two instances
/// started at once in one folder agree on one secret: the file is created exclusively,
/// and the loser reads it. A file other users can read or write is refused: whoever reads
/// the secret can sign cookies for any session.
fn demo_secret(dir: &Path) -> Result<String, BoxError> {
    let path = dir.join("secret");
    for attempt in 0..50 {
        match read_private(&path) {
            Ok(Err(exposed)) => return Err(exposed.into()),
            Ok(Ok(secret)) if !secret.trim().is_empty() => {
                tracing::info!(path = %path.display(), "using the demo secret kept in this file; pass --secret or SESSION_SECRET in production");
                return Ok(secret.trim().to_owned());
            }
            // Being written by another instance right now, or left empty by a crash.
            Ok(Ok(_)) if attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            Ok(Ok(_)) => {
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
        stores::create_private_dir(dir)
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

/// The secret file's contents, read from the same open file whose permissions were
/// checked (no window for a swap between the check and the read). The outer error is
/// the file's (missing, unreadable); the inner one a file others may read or write.
fn read_private(path: &Path) -> std::io::Result<Result<String, ServeError>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Ok(Err(ServeError(format!(
                "the demo secret file {path} can be read or written by other users (mode {mode:04o}): \
                 anyone who reads it can sign cookies for any session. Run `chmod 600 {path}` \
                 (or delete it to have a new secret generated), or pass --secret",
                path = path.display()
            ))));
        }
    }
    let mut secret = String::new();
    file.read_to_string(&mut secret)?;
    Ok(Ok(secret))
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
