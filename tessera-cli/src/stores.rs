//! Opens a store from a URL: the one place that maps URL schemes to store types.
//!
//! | URL                                  | store                     |
//! |--------------------------------------|---------------------------|
//! | `memory`                             | `MemoryStore` (lost on exit) |
//! | `sqlite://PATH`                      | `SqliteStore` (embedded, persistent) |
//! | `redis://…`, `rediss://…`            | `RedisStore`, standalone  |
//! | `redis-sentinel://…`                 | `RedisStore`, Sentinel    |
//! | `redis-cluster://…`                  | `RedisStore`, Cluster     |

use std::sync::Arc;
use std::time::Duration;

use tessera::store::mysql::{MySqlOptions, MySqlStore};
use tessera::store::postgres::{PostgresOptions, PostgresStore};
use tessera::store::redis::RedisStore;
use tessera::store::sqlite::{SqliteOptions, SqliteStore};
use tessera::{MemoryStore, Store, StoreError};

use crate::redact;

/// Options that apply to whichever store the URL names (each uses what it understands).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Key prefix (Redis).
    pub prefix: String,
    /// TTL for sessions whose cookie has no expiry.
    pub ttl: Duration,
    /// Whether a missing local store (a SQLite file and its folder) is created: yes for
    /// `tessera serve`, no for the admin commands, which must not make an empty database
    /// out of a mistyped path.
    pub create: bool,
}

/// The default store of `tessera serve`.
pub const DEFAULT_STORE: &str = "sqlite://.tessera/sessions.db";

/// A store that could not be opened: the message names the store by its URL with the
/// credentials hidden (see [`redact`](crate::redact)), and so does the cause.
#[derive(Debug)]
pub struct OpenError(String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

/// Opens the store `url` names.
///
/// # Errors
/// [`OpenError`], with no password of `url` in it: the stores' own messages quote the
/// URL in places, so their text is scrubbed too.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, OpenError> {
    open_store(url, options).await.map_err(|e| {
        OpenError(format!(
            "cannot open store {}: {}",
            redact::url(url),
            redact::scrub(&e.to_string(), url)
        ))
    })
}

async fn open_store(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split("://").next().unwrap_or(url);
    match scheme {
        "memory" => Ok(Arc::new(MemoryStore::with_default_ttl(options.ttl))),
        "sqlite" => open_sqlite(url, options).await,
        // One builder for every topology: the URL scheme picks standalone, Sentinel
        // (`redis-sentinel://[user:password@]HOST:PORT,…/MASTER[?db=N]`) or Cluster
        // (`redis-cluster://[user:password@]HOST:PORT,…`).
        "redis" | "rediss" | "redis-sentinel" | "redis-cluster" => Ok(Arc::new(
            RedisStore::builder(url)
                .prefix(options.prefix.clone())
                .ttl(options.ttl)
                .connect()
                .await?,
        )),
        // connect-pg-simple's table: `postgres://USER:PASSWORD@HOST:PORT/DB?schema=…&table=…`.
        "postgres" | "postgresql" => Ok(Arc::new(
            PostgresStore::connect(
                url,
                PostgresOptions {
                    default_ttl: options.ttl,
                    ..PostgresOptions::default()
                },
            )
            .await?,
        )),
        // express-mysql-session's table: `mysql://USER:PASSWORD@HOST:PORT/DB?table=…`.
        "mysql" => Ok(Arc::new(
            MySqlStore::connect(
                url,
                MySqlOptions {
                    default_ttl: options.ttl,
                    ..MySqlOptions::default()
                },
            )
            .await?,
        )),
        _ => Err(StoreError::Config(format!(
            "unknown store URL {:?}: use memory, sqlite://PATH, redis://HOST:PORT, \
             redis-sentinel://HOST:PORT,…/MASTER, redis-cluster://HOST:PORT,…, \
             postgres://USER:PASSWORD@HOST:PORT/DB or mysql://USER:PASSWORD@HOST:PORT/DB",
            redact::url(url)
        ))),
    }
}

/// `sqlite://PATH`: PATH relative to the working directory (`sqlite:///abs/path` for an
/// absolute one); with `options.create` its folder is created (0700) if missing, else the
/// file must exist.
async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let path = std::path::Path::new(url.strip_prefix("sqlite://").unwrap_or_default());
    if path.as_os_str().is_empty() {
        return Err(StoreError::Config(format!(
            "store URL {url:?} names no file: use sqlite://PATH, e.g. sqlite://.tessera/sessions.db"
        )));
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder.filter(|_| options.create) {
        create_private_dir(folder).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the folder {} for the session database: {e}; \
                 create it yourself or choose another path",
                folder.display()
            ))
        })?;
    }
    let options = SqliteOptions {
        default_ttl: options.ttl,
        create: options.create,
        ..SqliteOptions::default()
    };
    Ok(Arc::new(SqliteStore::open(path, options).await?))
}

/// Creates `dir` and its missing parents, each new one readable by this user only
/// (0700): the folder holds the session database (session IDs are bearer credentials)
/// and the demo's secret. An existing folder is left as it is.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Where a store keeps local files (the demo keeps its generated secret there too).
pub fn data_dir(url: &str) -> std::path::PathBuf {
    match url.strip_prefix("sqlite://") {
        Some(path) => std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| ".".into()),
        None => ".tessera".into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::redact;

    #[test]
    fn sql_passwords_are_hidden() {
        for (url, password) in [
            ("postgres://ada:pa:ss@db:5432/app?table=s", "pa:ss"),
            ("mysql://ada:s3cret@db/app", "s3cret"),
        ] {
            let shown = redact::url(url);
            assert!(!shown.contains(password), "{shown}");
            assert!(shown.contains("ada") && shown.contains("@db"), "{shown}");
        }
    }
}
