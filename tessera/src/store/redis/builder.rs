//! Building a store: connect-redis's options under Rust names, their defaults, and how
//! `connect` and `connect_lazy` turn a URL or a client into a running store.
//!
//! The defaults are connect-redis's, so a store with none of them set reads and writes
//! what a Node app on connect-redis's defaults does. What belongs to one topology (reading
//! its URL, opening its connections) lives with that topology, in `url`, `link`,
//! `sentinel` and `cluster`; this file holds what every store shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, Client};

use super::connection::Connection;
use super::link::{Finder, Link, LinkState};
use super::url::Plan;
use super::{Inner, RedisStore};
use crate::record::{DecodeError, Record};
use crate::store::StoreError;

/// connect-redis's default key prefix.
pub const DEFAULT_PREFIX: &str = "sess:";
/// connect-redis's default TTL for sessions whose cookie has no expiry: one day.
pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);
/// connect-redis's default `COUNT` hint for `SCAN`.
pub const DEFAULT_SCAN_COUNT: usize = 100;
/// How long one Redis command may take by default before it fails with
/// [`StoreError::Timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one attempt to open a connection may take by default.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// Turns records into the bytes stored in Redis and back (connect-redis's `serializer`
/// option). The default, [`JsonSerializer`], writes what connect-redis's default
/// `JSON.stringify` writes; change it only if every app sharing the keys changes too.
pub trait Serializer: Send + Sync + 'static {
    /// The bytes to store for `record`.
    fn serialize(&self, record: &Record) -> Vec<u8>;
    /// The record stored as `bytes`. A serializer with its own error type can build a
    /// [`DecodeError`] with `serde::de::Error::custom`.
    fn deserialize(&self, bytes: &[u8]) -> Result<Record, DecodeError>;
}

/// The JSON of express-session and connect-redis ([`Record::to_json`] and
/// [`Record::from_json`]): the default [`Serializer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl Serializer for JsonSerializer {
    fn serialize(&self, record: &Record) -> Vec<u8> {
        record.to_json()
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Record, DecodeError> {
        Record::from_json(bytes)
    }
}

type TtlFn = Arc<dyn Fn(&Record) -> Duration + Send + Sync>;

/// connect-redis's `ttl` option: a number, or a function of the session.
#[derive(Clone)]
pub(super) enum TtlRule {
    /// For sessions whose cookie has no expiry; the cookie's expiry wins otherwise.
    Fixed(Duration),
    /// Always wins.
    Custom(TtlFn),
}

/// Everything the builder sets; the store keeps it as it was at `connect`.
#[derive(Clone)]
pub(super) struct Options {
    pub(super) prefix: String,
    pub(super) index_prefix: String,
    pub(super) ttl: TtlRule,
    pub(super) disable_ttl: bool,
    pub(super) disable_touch: bool,
    pub(super) scan_count: usize,
    pub(super) serializer: Arc<dyn Serializer>,
    pub(super) command_timeout: Duration,
    pub(super) connection_timeout: Duration,
    /// `WAIT replicas timeout` after each save, pipelined with the `SET`.
    pub(super) wait: Option<WaitForReplicas>,
    /// Credentials for the sentinels themselves (not the data nodes).
    pub(super) sentinel_auth: Option<(Option<String>, String)>,
}

/// The durability knob: how many replicas must acknowledge a save, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WaitForReplicas {
    pub(super) replicas: u32,
    pub(super) timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: DEFAULT_PREFIX.into(),
            index_prefix: super::index::DEFAULT_INDEX_PREFIX.into(),
            ttl: TtlRule::Fixed(DEFAULT_TTL),
            disable_ttl: false,
            disable_touch: false,
            scan_count: DEFAULT_SCAN_COUNT,
            serializer: Arc::new(JsonSerializer),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            wait: None,
            sentinel_auth: None,
        }
    }
}

/// Builds a [`RedisStore`]: connect-redis's options under Rust names.
///
/// | connect-redis | here | default |
/// |---------------|------|---------|
/// | `prefix`      | [`prefix`](Self::prefix) | `sess:` |
/// | `ttl` (number) | [`ttl`](Self::ttl) | one day |
/// | `ttl` (function) | [`ttl_fn`](Self::ttl_fn) | — |
/// | `disableTTL`  | [`disable_ttl`](Self::disable_ttl) | `false` |
/// | `disableTouch` | [`disable_touch`](Self::disable_touch) | `false` |
/// | `scanCount`   | [`scan_count`](Self::scan_count) | 100 |
/// | `serializer`  | [`serializer`](Self::serializer) | JSON |
/// | —             | [`command_timeout`](Self::command_timeout) | 2 s |
/// | —             | [`connection_timeout`](Self::connection_timeout) | 1 s |
/// | —             | [`wait_for_replicas`](Self::wait_for_replicas) | off |
/// | —             | [`sentinel_auth`](Self::sentinel_auth) | none |
#[must_use]
pub struct RedisStoreBuilder {
    pub(super) target: Target,
    pub(super) options: Options,
}

/// What the builder was given: a URL, read only at `connect` (see `url`), or a client
/// the application configured itself.
pub(super) enum Target {
    Url(String),
    Client(Box<Client>),
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.options.prefix)
            .field("scan_count", &self.options.scan_count)
            .field("disable_ttl", &self.options.disable_ttl)
            .field("disable_touch", &self.options.disable_touch)
            .field("command_timeout", &self.options.command_timeout)
            .field("connection_timeout", &self.options.connection_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The key prefix (connect-redis `prefix`, default `sess:`). Keys are `prefix + id`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = prefix.into();
        self
    }

    /// The prefix of the per-user index's keys (default `tessera-index:`), used with
    /// [`SessionConfig::index_by`](crate::SessionConfig::index_by). An index key is
    /// `index_prefix + indexed key + ":" + user`; it must not fall under the session
    /// prefix (a login then fails with [`StoreError::Config`]), so that nothing that scans
    /// the sessions meets it.
    pub fn index_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.index_prefix = prefix.into();
        self
    }

    /// How long to keep sessions whose cookie has no expiry (connect-redis `ttl`, default
    /// one day). Sessions whose cookie expires live until it does, whatever this says.
    /// As in connect-redis, zero means the default (one day); a fraction of a second is
    /// rounded up.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = TtlRule::Fixed(if ttl.is_zero() { DEFAULT_TTL } else { ttl });
        self
    }

    /// Computes every session's TTL from its record (connect-redis `ttl` as a function).
    /// It replaces the cookie rule entirely; zero deletes the session instead of saving it.
    ///
    /// A touch does not have the record: there the function gets a record holding only the
    /// cookie's new expiry and no data.
    pub fn ttl_fn(mut self, ttl: impl Fn(&Record) -> Duration + Send + Sync + 'static) -> Self {
        self.options.ttl = TtlRule::Custom(Arc::new(ttl));
        self
    }

    /// Store sessions without an expiry (connect-redis `disableTTL`): `SET` without `EX`,
    /// and no touch. Sessions then stay until destroyed; the cookie still expires.
    pub fn disable_ttl(mut self, yes: bool) -> Self {
        self.options.disable_ttl = yes;
        self
    }

    /// Never touch (connect-redis `disableTouch`): an unmodified session's TTL is not
    /// extended, so it expires when it was last saved to expire. Touch then sends no
    /// command and answers that the session exists.
    pub fn disable_touch(mut self, yes: bool) -> Self {
        self.options.disable_touch = yes;
        self
    }

    /// The `COUNT` hint of each `SCAN` page in admin calls (connect-redis `scanCount`,
    /// default 100).
    pub fn scan_count(mut self, count: usize) -> Self {
        self.options.scan_count = count.max(1);
        self
    }

    /// How records become bytes (connect-redis `serializer`, default JSON).
    pub fn serializer(mut self, serializer: impl Serializer) -> Self {
        self.options.serializer = Arc::new(serializer);
        self
    }

    /// How long one command may take, waiting for a connection included (default 2 s).
    /// Keep it below the layer's `store_timeout` so the error names the Redis command.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.options.command_timeout = timeout;
        self
    }

    /// How long one attempt to open a connection may take (default 1 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.options.connection_timeout = timeout;
        self
    }

    /// After each save, wait until `replicas` replicas have acknowledged it, or `timeout`
    /// has passed (Redis `WAIT replicas timeout`, pipelined with the `SET`: still one round
    /// trip, but it lasts until the replicas answer). Off by default.
    ///
    /// Redis replicates asynchronously: a master that dies right after acknowledging a
    /// save may take it with it, and the replica promoted in its place then serves the
    /// session as it was one save earlier. `WAIT` narrows that window to the writes not yet
    /// acknowledged by `replicas` replicas; it does not close it (a replica that
    /// acknowledged can still lose the failover election to one that did not, and `WAIT`
    /// does not make anything durable on disk). A save that fewer replicas acknowledge in
    /// time still succeeds (it is on the master) and is logged as a warning. Every save
    /// then costs the replication round trip; keep `timeout` well under the layer's store
    /// timeout. The save's command timeout is extended by `timeout`.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.options.wait = (replicas > 0).then_some(WaitForReplicas { replicas, timeout });
        self
    }

    /// Credentials for the sentinels themselves, when they require a password
    /// (`requirepass` / ACL in the sentinel config). The `user:password@` of a
    /// `redis-sentinel://` URL is for the master and replicas; this is for the sentinels.
    /// The URL can carry them too: `?sentinel_username=…&sentinel_password=…`.
    pub fn sentinel_auth(mut self, username: Option<&str>, password: &str) -> Self {
        self.options.sentinel_auth = Some((username.map(str::to_owned), password.to_owned()));
        self
    }

    /// Connects now, so a wrong URL or an unreachable server is reported at start-up.
    /// For `redis-sentinel://` it asks the sentinels for the master and connects to it;
    /// for `redis-cluster://` it reads the slot map from the seeds and connects to the
    /// nodes.
    ///
    /// # Errors
    /// [`StoreError::Config`] for a bad URL (or `rediss://` without the `redis-tls`
    /// feature), [`StoreError::Backend`] when the server cannot be reached or refuses us.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let budget = self.options.connection_timeout * 2 + Duration::from_secs(1);
        match self.plan()? {
            Plan::Standalone(client, name) => {
                let mut finder = self.direct_finder(&client);
                let (node, address) = match tokio::time::timeout(budget, finder.resolve()).await
                {
                    Ok(Ok(found)) => found,
                    Ok(Err(problem)) => {
                        return Err(StoreError::backend(
                            &name,
                            "connect",
                            format!("cannot connect to Redis: {problem}; check that it is running and reachable at this address (or use connect_lazy to start without it)"),
                        ))
                    }
                    Err(_) => {
                        return Err(StoreError::Timeout {
                            store: name,
                            op: "connect",
                            after: budget,
                        })
                    }
                };
                let link = Link::start(
                    finder,
                    LinkState::Ready {
                        node,
                        address: address.into(),
                        generation: 1,
                    },
                );
                Ok(self.finish(Connection::Link(link), name))
            }
            Plan::Sentinel(plan, name) => {
                let mut resolver = self.sentinel_resolver(plan);
                // Each sentinel and the master it names cost at most a connection timeout
                // and a command timeout each.
                let sentinels = resolver.plan.sentinels.len() as u32;
                let budget = (self.options.connection_timeout + self.options.command_timeout)
                    * 2
                    * sentinels;
                let (node, address) =
                    match tokio::time::timeout(budget, resolver.resolve()).await {
                        Ok(Ok(found)) => found,
                        Ok(Err(problem)) => {
                            return Err(StoreError::backend(
                                &name,
                                "connect",
                                format!("cannot find the master through the sentinels: {problem}; check the sentinel addresses and the master name (SENTINEL MASTERS on a sentinel lists them), or use connect_lazy to start without it"),
                            ))
                        }
                        Err(_) => {
                            return Err(StoreError::Timeout {
                                store: name,
                                op: "connect",
                                after: budget,
                            })
                        }
                    };
                tracing::debug!(store = %name, %address, "connected to the Redis master named by the sentinels");
                let link = Link::start(
                    Finder::Sentinel(resolver),
                    LinkState::Ready {
                        node,
                        address: address.into(),
                        generation: 1,
                    },
                );
                Ok(self.finish(Connection::Link(link), name))
            }
            Plan::Cluster(plan, name) => {
                // Reading the slot map and connecting to every node takes a few steps.
                let budget = budget + self.options.command_timeout;
                let client = self.cluster_client(&plan, &name)?;
                let connection = match tokio::time::timeout(
                    budget,
                    client.get_async_connection_with_config(self.cluster_config()),
                )
                .await
                {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(e)) => {
                        return Err(StoreError::backend(
                            &name,
                            "connect",
                            format!("cannot connect to the Redis Cluster: {e}; check that the seed nodes are running, reachable and part of a cluster with all slots assigned (CLUSTER INFO: cluster_state:ok), or use connect_lazy to start without it"),
                        ))
                    }
                    Err(_) => {
                        return Err(StoreError::Timeout {
                            store: name,
                            op: "connect",
                            after: budget,
                        })
                    }
                };
                let connection = self.cluster_connection(plan, connection);
                Ok(self.finish(connection, name))
            }
        }
    }

    /// Builds the store without connecting: the first command connects. For apps that must
    /// start while Redis is still down (their requests get 503 until it is up). Must be
    /// called inside a tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Config`] for a bad URL or outside a tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisStore, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Config(
                "RedisStore::connect_lazy must be called inside a tokio runtime".into(),
            ));
        }
        match self.plan()? {
            Plan::Standalone(client, name) => {
                let link = Link::start(self.direct_finder(&client), LinkState::Resolving);
                Ok(self.finish(Connection::Link(link), name))
            }
            Plan::Sentinel(plan, name) => {
                let finder = Finder::Sentinel(self.sentinel_resolver(plan));
                let link = Link::start(finder, LinkState::Resolving);
                Ok(self.finish(Connection::Link(link), name))
            }
            Plan::Cluster(plan, name) => {
                let client = self.cluster_client(&plan, &name)?;
                let connection =
                    client.get_pending_async_connection_with_config(self.cluster_config());
                let connection = self.cluster_connection(plan, connection);
                Ok(self.finish(connection, name))
            }
        }
    }

    /// How long a connection waits for one reply: the command timeout, plus the WAIT
    /// timeout when saves wait for replicas (the store bounds each call by its own budget
    /// on top of this).
    pub(super) fn response_timeout(&self) -> Duration {
        self.options.command_timeout + self.options.wait.map_or(Duration::ZERO, |w| w.timeout)
    }

    /// Timeouts of every connection this store opens itself (Sentinel masters, sentinels,
    /// cluster nodes for admin scans).
    pub(super) fn node_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.connection_timeout))
            .set_response_timeout(Some(self.response_timeout()))
    }

    fn finish(self, connection: Connection, name: String) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                connection,
                options: self.options,
                name,
                no_getex: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }
}
