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
pub const DEFAULT_STORE: &str = "memory";

/// Opens the store `url` names.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split("://").next().unwrap_or(url);
    match scheme {
        "memory" => Ok(Arc::new(MemoryStore::with_default_ttl(options.ttl))),
        _ => Err(StoreError::Config(format!(
            "unknown store URL {url:?}: use memory, sqlite://PATH, redis://HOST:PORT, \
             redis-sentinel://HOST:PORT,…/MASTER or redis-cluster://HOST:PORT,…"
        ))),
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
