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

/// Options that apply to whichever store the URL names (each uses what it understands).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Key prefix (Redis).
    pub prefix: String,
    /// TTL for sessions whose cookie has no expiry.
    pub ttl: Duration,
}

/// The default store of `tessera serve`.
pub const DEFAULT_STORE: &str = "sqlite://.tessera/sessions.db";

/// Opens the store `url` names.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
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
            redacted(url)
        ))),
    }
}

/// `sqlite://PATH`: PATH relative to the working directory (`sqlite:///abs/path` for an
/// absolute one); its folder is created if missing.
async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let path = std::path::Path::new(url.strip_prefix("sqlite://").unwrap_or_default());
    if path.as_os_str().is_empty() {
        return Err(StoreError::Config(format!(
            "store URL {url:?} names no file: use sqlite://PATH, e.g. sqlite://.tessera/sessions.db"
        )));
    }
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(folder).await.map_err(|e| {
            StoreError::Config(format!(
                "cannot create the folder {} for the session database: {e}; \
                 create it yourself or choose another path",
                folder.display()
            ))
        })?;
    }
    let options = SqliteOptions {
        default_ttl: options.ttl,
        ..SqliteOptions::default()
    };
    Ok(Arc::new(SqliteStore::open(path, options).await?))
}

/// `url` with the password of its user info (`scheme://user:PASSWORD@host…`) replaced by
/// `***`, for logs and messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
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
    use super::redacted;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redacted("postgres://ada:pa:ss@db:5432/app?table=s"),
            "postgres://ada:***@db:5432/app?table=s"
        );
        assert_eq!(
            redacted("redis-sentinel://:pw@h1:26379,h2:26379/mymaster"),
            "redis-sentinel://:***@h1:26379,h2:26379/mymaster"
        );
        assert_eq!(redacted("mysql://ada@db/app"), "mysql://ada@db/app");
        assert_eq!(redacted("sqlite://.tessera/s.db"), "sqlite://.tessera/s.db");
        assert_eq!(redacted("memory"), "memory");
    }
}
