//! `RedisStore`: sessions in Redis under the same keys, in the same JSON and with the same
//! TTLs as connect-redis, so a Node app (express-session + connect-redis) and a Rust app
//! (Tessera) can share one Redis and one set of users.
//!
//! Compatibility lives in the exact commands, key and TTL rule, so they are all here and
//! nowhere else: `GET` to load, `SET … EX ttl` to save, `EXPIRE` to touch, `DEL` to destroy,
//! `SCAN … MATCH prefix*` for the admin commands. Two deliberate departures, both for
//! safety: a save is `SET … NX` (new session) or `SET … XX` (loaded session), so an ID
//! clash is noticed and a session another request destroyed is not brought back; and every
//! command has a timeout, so a dead Redis costs a request milliseconds, not minutes.
//!
//! One multiplexed connection (redis-rs's `MultiplexedConnection`, opened by `node` so its
//! writes are batched) serves every request; a background task re-opens it when it
//! breaks. The topology is an internal enum, so the command code is the same for a
//! standalone server, a Sentinel-managed master (`redis-sentinel://`: the master the
//! sentinels name, followed through failovers) and a Redis Cluster (`redis-cluster://`:
//! redis-rs's cluster client, with admin SCANs on every master). See [`RedisStore`] for
//! each topology's URL, failover behaviour and a local setup to try it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue,
    IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisError, Value,
};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use super::{SaveMode, SaveOutcome, Store, StoreError, Stored};
use crate::cookie::percent_decode;
use crate::id::SessionId;
use crate::record::{CookieData, DecodeError, Record, Ttl};

mod node;
use node::Node;

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
enum TtlRule {
    /// For sessions whose cookie has no expiry; the cookie's expiry wins otherwise.
    Fixed(Duration),
    /// Always wins.
    Custom(TtlFn),
}

#[derive(Clone)]
struct Options {
    prefix: String,
    ttl: TtlRule,
    disable_ttl: bool,
    disable_touch: bool,
    scan_count: usize,
    serializer: Arc<dyn Serializer>,
    command_timeout: Duration,
    connection_timeout: Duration,
    /// `WAIT replicas timeout` after each save, pipelined with the `SET`.
    wait: Option<WaitForReplicas>,
    /// Credentials for the sentinels themselves (not the data nodes).
    sentinel_auth: Option<(Option<String>, String)>,
}

/// The durability knob: how many replicas must acknowledge a save, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WaitForReplicas {
    replicas: u32,
    timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: DEFAULT_PREFIX.into(),
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

/// A session store in Redis, compatible with connect-redis.
///
/// Cheap to clone: clones share one multiplexed connection.
///
/// # What is stored
///
/// Each session is one string key, `prefix + id`, holding the session's JSON with its
/// `cookie` member first, exactly as connect-redis stores it. With the prefix
/// `myapp:session:`:
///
/// ```text
/// $ redis-cli GET myapp:session:fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q
/// "{\"cookie\":{\"originalMaxAge\":86400000,\"expires\":\"2026-11-29T09:04:54.097Z\",\"secure\":false,\"httpOnly\":true,\"path\":\"/\"},\"views\":3}"
/// $ redis-cli TTL myapp:session:fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q
/// (integer) 86398
/// ```
///
/// # TTL
///
/// connect-redis's rule: a key lives until the cookie's `expires`
/// (`ceil((expires - now) / 1 s)` seconds), and only a session whose cookie has no expiry (a
/// browser-session cookie) gets the `ttl` option (default one day). So with a cookie max
/// age of one day and `ttl` 3600, keys live a day, not an hour. A `ttl` *function*
/// ([`RedisStoreBuilder::ttl_fn`]) always wins, as in connect-redis. A session whose
/// cookie has already expired is deleted rather than written (`DEL`, as connect-redis).
///
/// # Commands
///
/// | operation | command(s) |
/// |-----------|-----------|
/// | load      | `GETEX key EX ttl`: loads and touches in one command, so a request that only reads its session costs one command (`GET key` with `disable_touch`/`disable_ttl`, or before Redis 6.2, or for `reload`) |
/// | save, new session | `SET key json EX ttl NX` (a clash: another ID is chosen) |
/// | save, loaded session | `SET key json EX ttl XX` (gone meanwhile: not written back) |
/// | touch     | `EXPIRE key ttl`, only when the load could not touch (none with `disable_touch` or `disable_ttl`) |
/// | destroy   | `DEL key` |
/// | admin: list, count, clear | `SCAN cursor MATCH prefix* COUNT n` pages (+ `UNLINK` per page to clear) |
/// | admin: inspect | `GET key` + `PTTL key`, pipelined |
///
/// One round trip each on a request; never `KEYS`, and `SCAN` only in admin calls.
///
/// # Failures
///
/// Every command is bounded by the command timeout (default 2 s). While Redis is down a
/// call fails in milliseconds with [`StoreError::Backend`] (or [`StoreError::Timeout`] for
/// an unresponsive server), which the layer answers with 503; the connection is re-opened
/// by itself once Redis is back, with no restart. A command that finds the connection
/// broken, or that times out (a frozen server, or a connection a dropped NAT entry left
/// silently dead), hands the connection to one background task that opens a new one;
/// while that fails, each request has it try again at once (a refused connection costs
/// microseconds), so the first request after Redis is back is served. A value under the
/// prefix that is not a session (not JSON, no `cookie`, a hash…) loads as
/// [`StoreError::Corrupt`], which the layer treats as no session.
///
/// # Runtimes
///
/// The connection is driven by a task spawned on the runtime the store connects in (which
/// must keep running while the store is used), and serves requests on any runtime. On
/// tokio's multi-threaded runtime, while several commands are in flight, that task yields
/// once each time it is woken, so it writes the commands of every request the worker ran
/// in the meantime in one `write` (about twelve under load instead of two or three: half
/// the Redis CPU per request). TLS connections, and TCP options other than `TCP_NODELAY`
/// on a [`Client`] passed to [`RedisStore::builder_from_client`], are opened by redis-rs
/// and written without this batching.
///
/// An application that runs one single-threaded runtime per core (the layout actix-web
/// uses) does best with one store per runtime, each connected inside its own runtime:
/// every connection's task then runs on the thread of the requests it serves, and no
/// command wakes another thread. In `bench/run` that layout served the Redis counter a
/// third or more faster than one store on tokio's multi-threaded runtime (tower-sessions
/// gains as much from it); the README's benchmark section has the numbers.
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), tessera::StoreError> {
/// use std::time::Duration;
/// use tessera::store::redis::RedisStore;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .prefix("myapp:session:")
///     .ttl(Duration::from_secs(3600))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
///
/// # Redis Sentinel
///
/// ```text
/// redis-sentinel://[user:password@]HOST:PORT,HOST:PORT,…/MASTER_NAME[?db=N]
/// ```
///
/// The hosts are the **sentinels** (port 26379 when left out), `MASTER_NAME` the name they
/// monitor (`sentinel monitor MASTER_NAME …`). `user:password` and `db` are for the
/// **data nodes** (master and replicas), not the sentinels; sentinels that require a
/// password get it from `?sentinel_username=…&sentinel_password=…` or
/// [`RedisStoreBuilder::sentinel_auth`]. Percent-encode `@ : / , ? & %` in credentials.
///
/// How the master is found: each sentinel in turn is asked `SENTINEL
/// GET-MASTER-ADDR-BY-NAME`; the store connects to the address it names and checks with
/// `ROLE`, on that very connection, that the server is a master (a sentinel that has not
/// caught up may still name the old one). Writes never go to a replica.
///
/// What happens on a failover: a command that finds the connection broken, gets
/// `READONLY` (the server was demoted) or times out marks the master connection stale, and
/// one background task asks the sentinels again; requests never wait on a lock. A request
/// whose command failed because the connection broke or the server turned read-only is
/// retried once on the new master if it is found within the command timeout. While no
/// master can be found (the sentinels have not promoted a replica yet) every call fails at
/// once with [`StoreError::Backend`] (503), and the task keeps asking with backoff (50 ms
/// doubling to 500 ms); the first request after the promotion is served. Independently,
/// the task asks a sentinel once a second whether the master is still the one in use, so
/// a switchover (`SENTINEL FAILOVER`, where the old master stays up) is followed within a
/// second, not when Sentinel finally demotes the old master (about ten seconds later).
/// Measured here with a SIGKILLed master and `down-after-milliseconds 1000`: requests get
/// 503 for the 2–6 s Sentinel takes to promote the replica, and are served again within
/// half a second of the promotion.
///
/// Try it locally (a master, a replica, three sentinels):
///
/// ```text
/// redis-server --port 6379 --save '' --daemonize yes
/// redis-server --port 6380 --save '' --dbfilename replica.rdb --replicaof 127.0.0.1 6379 --daemonize yes
/// for p in 26379 26380 26381; do
///   printf 'port %s\nsentinel monitor mymaster 127.0.0.1 6379 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n' \
///     $p > sentinel-$p.conf
///   redis-server sentinel-$p.conf --sentinel --daemonize yes
/// done
/// tessera serve --store redis-sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster
/// redis-cli -p 6379 SHUTDOWN NOSAVE   # the sentinels promote 6380; sessions carry on
/// ```
///
/// # Redis Cluster
///
/// ```text
/// redis-cluster://[user:password@]HOST:PORT,HOST:PORT,…
/// ```
///
/// The hosts are seed nodes (any of the cluster's nodes; list several, so the store can
/// start while one is down); the credentials apply to every node. A cluster has only
/// database 0.
///
/// Each session is one key, so every request command has one key and stays in one slot:
/// redis-rs's cluster client routes it to the slot's master and follows `MOVED`/`ASK` and
/// topology changes by itself (a few quick retries, all within the command timeout). The
/// admin calls (`count`, `ids`, `clear`) read `CLUSTER SLOTS` and `SCAN` **every master**
/// over a connection of their own (connect-redis's `all()` fails with `CROSSSLOT` on a
/// cluster; this does not), and `clear` deletes one `UNLINK` per hash slot, never a
/// cross-slot multi-key command. A master that still owns slots but cannot be reached
/// fails the admin call with an error naming it, rather than a short count.
///
/// What happens on a failover: requests for the dead master's slots fail (503, within the
/// command timeout) until the cluster promotes its replica (about `cluster-node-timeout`
/// plus an election), then the client picks up the new slot map by itself; requests for
/// the other masters' slots are served throughout. Measured here with
/// `cluster-node-timeout 2000`: every session served again about 4 s (3.6–5 s) after a
/// master was SIGKILLed, each 503 answered within a few hundred milliseconds.
///
/// Try it locally (three masters with a replica each):
///
/// ```text
/// for p in 7000 7001 7002 7003 7004 7005; do
///   redis-server --port $p --cluster-enabled yes --cluster-config-file nodes-$p.conf \
///     --cluster-node-timeout 2000 --save '' --daemonize yes
/// done
/// redis-cli --cluster create 127.0.0.1:7000 127.0.0.1:7001 127.0.0.1:7002 \
///   127.0.0.1:7003 127.0.0.1:7004 127.0.0.1:7005 --cluster-replicas 1 --cluster-yes
/// tessera serve --store redis-cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002
/// tessera sessions count --store redis-cluster://127.0.0.1:7000
/// ```
///
/// TLS to Sentinel or Cluster (`rediss-sentinel://`, `rediss-cluster://`) is not
/// supported yet.
///
/// # Durability: waiting for replicas
///
/// Redis replicates asynchronously, on every topology: the master acknowledges a save
/// before its replicas have it, so a failover right after a save can lose it (the session
/// comes back one save older, or not at all if it was new).
/// [`RedisStoreBuilder::wait_for_replicas`] (off by default) sends `WAIT numreplicas
/// timeout` after each save, pipelined with the `SET`, so the request waits until that
/// many replicas have the write. It narrows the window to writes no replica has
/// acknowledged yet; it does not close it (a replica that acknowledged can still lose the
/// election, and nothing is fsynced). The price is the replication round trip on every
/// save; a save that too few replicas acknowledge in time still succeeds and is logged.
///
/// ```no_run
/// # async fn run() -> Result<(), tessera::StoreError> {
/// use std::time::Duration;
/// use tessera::store::redis::RedisStore;
///
/// let store = RedisStore::builder("redis-sentinel://10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379/sessions")
///     .wait_for_replicas(1, Duration::from_millis(100))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    options: Options,
    /// Where it connects, without credentials (for errors and logs).
    name: String,
    /// The server refused `GETEX` (Redis before 6.2): load with `GET` and touch apart.
    no_getex: std::sync::atomic::AtomicBool,
}

/// The topology behind the store. Each variant answers single-key commands (which a
/// cluster routes by key) and says which nodes a keyspace scan must visit.
#[derive(Clone)]
enum Connection {
    /// One server (`redis://`, `rediss://`, `redis+unix://`), or the master the sentinels
    /// name (`redis-sentinel://`, followed through failovers): one multiplexed connection,
    /// re-opened in the background when it breaks.
    Link(Arc<Link>),
    /// A Redis Cluster: redis-rs's cluster client routes each single-key command to the
    /// master of its slot and follows MOVED/ASK and topology changes.
    Cluster(Box<ClusterLink>),
}

impl Connection {
    async fn request(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        match self {
            // Boxed: the link's retry loop holds a connection and the reply, and every
            // command's future would otherwise carry it inline (see the test of their
            // sizes).
            Connection::Link(link) => Box::pin(link.request(cmd)).await,
            Connection::Cluster(cluster) => {
                cluster.connection.clone().req_packed_command(cmd).await
            }
        }
    }

    async fn request_pipeline(
        &self,
        pipe: &Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, RedisError> {
        match self {
            Connection::Link(link) => Box::pin(link.request_pipeline(pipe, count)).await,
            Connection::Cluster(cluster) => {
                cluster
                    .connection
                    .clone()
                    .req_packed_commands(pipe, 0, count)
                    .await
            }
        }
    }

    /// Which connection a command is about to use, so a timeout can be blamed on it.
    fn generation(&self) -> Option<u64> {
        match self {
            Connection::Link(link) => link.generation(),
            Connection::Cluster(_) => None,
        }
    }

    /// A command on connection `generation` timed out: the server may be frozen or gone,
    /// or the connection silently dead (a dropped NAT entry never closes it).
    fn timed_out(&self, generation: Option<u64>) {
        if let (Connection::Link(link), Some(generation)) = (self, generation) {
            link.report(generation, "a command timed out");
        }
    }

    /// Runs a SCAN sweep over every node that holds keys.
    async fn sweep(&self, store: &Inner, visit: &mut Visit) -> Result<(), StoreError> {
        match self {
            Connection::Link(link) => {
                let (mut node, _) = store.timed("scan", link.current()).await?;
                store.sweep_node(&mut node.connection, visit, false).await
            }
            Connection::Cluster(cluster) => cluster.sweep(store, visit).await,
        }
    }
}

// ----- One server, or the master the sentinels name ----------------------------------

/// Smallest and largest pause between two failed attempts to connect.
const RESOLVE_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_millis(500));

/// How often the resolver asks a sentinel whether the master is still the one we use.
const MASTER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Where a link stands.
#[derive(Clone)]
enum LinkState {
    /// Connected (for Sentinel: to the server the sentinels name, which answered ROLE
    /// with `master`).
    Ready {
        node: Node,
        address: Arc<str>,
        generation: u64,
    },
    /// The connection failed; an attempt to connect again is running. Requests wait for
    /// it (within their command timeout).
    Resolving,
    /// Attempts to connect are failing. See [`Finder::waits_when_down`] for what requests
    /// do meanwhile; the resolver keeps trying with backoff.
    Down { problem: Arc<str> },
}

/// How a link finds the server to write to.
enum Finder {
    /// One server at a fixed address.
    Direct {
        info: ConnectionInfo,
        config: AsyncConnectionConfig,
        timeout: Duration,
    },
    /// The master the sentinels name.
    Sentinel(SentinelResolver),
}

impl Finder {
    /// Connects to the server; answers the connection and its address.
    async fn resolve(&mut self) -> Result<(Node, String), String> {
        match self {
            Finder::Direct {
                info,
                config,
                timeout,
            } => match node::open(info, config, *timeout).await {
                Ok(node) => Ok((node, info.addr().to_string())),
                Err(e) => Err(e.to_string()),
            },
            Finder::Sentinel(resolver) => resolver.resolve().await,
        }
    }

    /// What the link reaches, for logs and errors: the address, or the master's name.
    fn target(&self) -> String {
        match self {
            Finder::Direct { info, .. } => format!("Redis at {}", info.addr()),
            Finder::Sentinel(resolver) => {
                format!("Redis master {:?}", resolver.plan.master_name)
            }
        }
    }

    /// Whether a request finding the link down has the resolver try again at once and
    /// waits for that attempt. A single server is, as far as anyone knows, back as soon
    /// as it accepts a connection, and a refused connection costs microseconds, so the
    /// first request after a restart succeeds. Through Sentinel one attempt asks every
    /// sentinel in turn; during a failover, failing fast is the better answer.
    fn waits_when_down(&self) -> bool {
        matches!(self, Finder::Direct { .. })
    }

    /// What a request is told while no connection can be opened.
    fn down_message(&self) -> &'static str {
        match self {
            Finder::Direct { .. } => "Redis is unreachable (retrying in the background)",
            Finder::Sentinel(_) => "no Redis master available through the sentinels (a failover may be under way; retrying in the background)",
        }
    }
}

/// The shared end of a connection: the current connection, published by one background
/// resolver task that alone opens connections (and talks to the sentinels). A request
/// never takes a lock: it clones the current connection out of a `watch` channel.
struct Link {
    state: watch::Sender<LinkState>,
    /// Wakes the resolver with the generation found broken. Capacity 1: reports made while
    /// one is pending are the same news.
    wake: mpsc::Sender<u64>,
    target: String,
    waits_when_down: bool,
    down_message: &'static str,
}

impl Link {
    /// Starts the resolver task for `finder`, with `state` as the starting point.
    fn start(finder: Finder, state: LinkState) -> Arc<Self> {
        let generation = match &state {
            LinkState::Ready { generation, .. } => *generation,
            _ => 0,
        };
        let needs_connection = !matches!(state, LinkState::Ready { .. });
        let (wake, wake_rx) = mpsc::channel(1);
        let link = Arc::new(Link {
            state: watch::Sender::new(state),
            wake,
            target: finder.target(),
            waits_when_down: finder.waits_when_down(),
            down_message: finder.down_message(),
        });
        if needs_connection {
            let _ = link.wake.try_send(generation);
        }
        tokio::spawn(run_resolver(
            Arc::downgrade(&link),
            wake_rx,
            finder,
            generation,
        ));
        link
    }

    fn generation(&self) -> Option<u64> {
        match &*self.state.borrow() {
            LinkState::Ready { generation, .. } => Some(*generation),
            _ => None,
        }
    }

    /// The current connection if there is one: the common case, without subscribing to
    /// the channel.
    fn ready(&self) -> Option<(Node, u64)> {
        match &*self.state.borrow() {
            LinkState::Ready {
                node, generation, ..
            } => Some((node.clone(), *generation)),
            _ => None,
        }
    }

    /// [`current`](Self::current), boxed when it has to wait: every command's future
    /// would otherwise carry the waiting state (see the test of their sizes).
    async fn connection(&self) -> Result<(Node, u64), RedisError> {
        match self.ready() {
            Some(ready) => Ok(ready),
            None => Box::pin(self.current()).await,
        }
    }

    /// The current connection; waits while an attempt to connect runs. While the link is
    /// down it fails at once, or (see [`Finder::waits_when_down`]) has the resolver try
    /// again now and answers what that attempt found.
    async fn current(&self) -> Result<(Node, u64), RedisError> {
        let mut rx = self.state.subscribe();
        let mut nudged = false;
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                LinkState::Ready {
                    node, generation, ..
                } => return Ok((node, generation)),
                LinkState::Down { problem } if nudged || !self.waits_when_down => {
                    return Err(RedisError::from((
                        ErrorKind::Client,
                        self.down_message,
                        format!("{}: {problem}", self.target),
                    )))
                }
                LinkState::Down { .. } => {
                    nudged = true;
                    let _ = self.wake.try_send(0);
                }
                LinkState::Resolving => {}
            }
            if rx.changed().await.is_err() {
                return Err(RedisError::from((
                    ErrorKind::Client,
                    "the Redis connection's resolver has stopped",
                )));
            }
        }
    }

    /// Connection `generation` failed in a way that says the server is gone, moved or
    /// frozen: drop it and have the resolver connect again. Reports about an older
    /// connection are ignored, so a burst of failing requests triggers one reconnect.
    fn report(&self, generation: u64, why: &str) {
        let mut address = None;
        let changed = self.state.send_if_modified(|state| match state {
            LinkState::Ready {
                generation: current,
                address: at,
                ..
            } if *current == generation => {
                address = Some(at.clone());
                *state = LinkState::Resolving;
                true
            }
            _ => false,
        });
        if changed {
            tracing::warn!(
                redis = %self.target,
                address = address.as_deref().unwrap_or_default(),
                "Redis connection lost ({why}); connecting again"
            );
            let _ = self.wake.try_send(generation);
        }
    }

    async fn request(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        let mut retried = false;
        loop {
            let (mut node, generation) = self.connection().await?;
            let in_flight = node::InFlight::begin(&node.in_flight);
            // `ConnectionLike`'s boxed future, not the inline `send_packed_command`: see
            // `connection`.
            let result = node.connection.req_packed_command(cmd).await;
            drop(in_flight);
            let sign = match &result {
                Ok(value) => failover_sign_in(std::slice::from_ref(value)),
                Err(e) => failover_sign(e),
            };
            if !self.retry_after(generation, sign, &mut retried) {
                return result;
            }
        }
    }

    async fn request_pipeline(
        &self,
        pipe: &Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, RedisError> {
        let mut retried = false;
        loop {
            let (mut node, generation) = self.connection().await?;
            let in_flight = node::InFlight::begin(&node.in_flight);
            let result = node.connection.req_packed_commands(pipe, 0, count).await;
            drop(in_flight);
            let sign = match &result {
                Ok(values) => failover_sign_in(values),
                Err(e) => failover_sign(e),
            };
            if !self.retry_after(generation, sign, &mut retried) {
                return result;
            }
        }
    }

    /// After a send on connection `generation` whose outcome showed `sign`: reports the
    /// connection, and answers whether to send once more (once per request, and only for
    /// a sign worth a retry). Both request loops share it; each keeps its own send, which
    /// stays inline on the hot path.
    fn retry_after(&self, generation: u64, sign: Option<FailoverSign>, retried: &mut bool) -> bool {
        let Some(sign) = sign else { return false };
        self.report(generation, sign.why());
        if *retried || !sign.retry() {
            return false;
        }
        *retried = true;
        true
    }
}

/// Why a link's connection is no longer trusted.
#[derive(Debug, Clone, Copy)]
enum FailoverSign {
    /// The connection broke (Redis restarted, a proxy dropped it, the master died): the
    /// command most likely never ran. Worth one retry on the fresh connection, which is
    /// what serves the first request after Redis is back.
    Dropped,
    /// The server is a replica now (READONLY): the command was refused. Worth one retry.
    ReadOnly,
    /// No answer in time: the command may have run, and the budget is spent. No retry.
    Timeout,
}

impl FailoverSign {
    fn retry(self) -> bool {
        !matches!(self, FailoverSign::Timeout)
    }

    fn why(self) -> &'static str {
        match self {
            FailoverSign::Dropped => "the connection broke",
            FailoverSign::ReadOnly => "the server answered READONLY: it is a replica now",
            FailoverSign::Timeout => "a command timed out",
        }
    }
}

fn failover_sign(e: &RedisError) -> Option<FailoverSign> {
    if e.code() == Some("READONLY") {
        Some(FailoverSign::ReadOnly)
    } else if e.is_timeout() {
        Some(FailoverSign::Timeout)
    } else if e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error() {
        Some(FailoverSign::Dropped)
    } else {
        None
    }
}

fn failover_sign_in(values: &[Value]) -> Option<FailoverSign> {
    values.iter().find_map(|v| match v {
        Value::ServerError(e) if e.code() == "READONLY" => Some(FailoverSign::ReadOnly),
        _ => None,
    })
}

/// What the resolver needs to find the master: the parsed `redis-sentinel://` URL.
#[derive(Clone)]
struct SentinelPlan {
    /// Sentinel addresses; the one that last named a usable master goes first.
    sentinels: Vec<(String, u16)>,
    master_name: String,
    /// Database and credentials for the data nodes (master and replicas).
    data: RedisConnectionInfo,
    /// Credentials for the sentinels.
    sentinel_auth: RedisConnectionInfo,
}

/// Finds the master: asks each sentinel in turn for the master's address, connects to it
/// and checks with ROLE that it is a master (a sentinel that has not caught up with a
/// failover may still name the old one). Every step is bounded by the connection and
/// command timeouts, so a dead or frozen sentinel costs one timeout, never a hang.
struct SentinelResolver {
    plan: SentinelPlan,
    config: AsyncConnectionConfig,
    /// Bounds opening the master connection (connecting and the handshake).
    connect_timeout: Duration,
    /// The connection to the sentinel polled every [`MASTER_CHECK_INTERVAL`].
    watch: Option<((String, u16), MultiplexedConnection)>,
}

impl SentinelResolver {
    async fn resolve(&mut self) -> Result<(Node, String), String> {
        let mut problems = Vec::new();
        let mut tried: Vec<(String, u16)> = Vec::new();
        for i in 0..self.plan.sentinels.len() {
            let (host, port) = self.plan.sentinels[i].clone();
            let named = match self.ask(&host, port).await {
                Ok(Some(named)) => named,
                Ok(None) => {
                    problems.push(format!(
                        "sentinel {host}:{port} monitors no master named {:?}",
                        self.plan.master_name
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(format!("sentinel {host}:{port}: {e}"));
                    continue;
                }
            };
            if tried.contains(&named) {
                continue;
            }
            tried.push(named.clone());
            let (master_host, master_port) = &named;
            match self.open_master(master_host, *master_port).await {
                Ok(connection) => {
                    self.plan.sentinels[..=i].rotate_right(1);
                    return Ok((connection, format!("{master_host}:{master_port}")));
                }
                Err(e) => problems.push(format!(
                    "master {master_host}:{master_port} named by sentinel {host}:{port}: {e}"
                )),
            }
        }
        Err(problems.join("; "))
    }

    /// The master address the first sentinel that answers names (`host:port`), through a
    /// kept connection. `None` when no sentinel answers now. A sentinel that fails is
    /// moved to the end of the list.
    async fn named_master(&mut self) -> Option<String> {
        for _ in 0..self.plan.sentinels.len() {
            let (host, port) = self.plan.sentinels.first()?.clone();
            let connection = match &self.watch {
                Some((at, connection)) if *at == (host.clone(), port) => Ok(connection.clone()),
                _ => match node_info(&host, port, &self.plan.sentinel_auth) {
                    Ok(info) => match Client::open(info) {
                        Ok(client) => {
                            client
                                .get_multiplexed_async_connection_with_config(&self.config)
                                .await
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
            };
            let answer = match connection {
                Ok(mut connection) => {
                    let answer: Result<Option<(String, u16)>, RedisError> = redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(&self.plan.master_name)
                        .query_async(&mut connection)
                        .await;
                    if answer.is_ok() {
                        self.watch = Some(((host.clone(), port), connection));
                    }
                    answer
                }
                Err(e) => Err(e),
            };
            match answer {
                Ok(named) => return named.map(|(h, p)| format!("{h}:{p}")),
                Err(e) => {
                    tracing::debug!(sentinel = %format!("{host}:{port}"), error = %e, "sentinel did not answer");
                    self.watch = None;
                    self.plan.sentinels.rotate_left(1);
                }
            }
        }
        None
    }

    async fn ask(&self, host: &str, port: u16) -> Result<Option<(String, u16)>, RedisError> {
        let info = node_info(host, port, &self.plan.sentinel_auth)?;
        let mut sentinel = Client::open(info)?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.plan.master_name)
            .query_async(&mut sentinel)
            .await
    }

    async fn open_master(&self, host: &str, port: u16) -> Result<Node, RedisError> {
        let info = node_info(host, port, &self.plan.data)?;
        let mut node = node::open(&info, &self.config, self.connect_timeout).await?;
        // Never write to a replica: check on the very connection requests will use.
        let role: redis::Role = redis::cmd("ROLE").query_async(&mut node.connection).await?;
        if matches!(role, redis::Role::Primary { .. }) {
            Ok(node)
        } else {
            Err(RedisError::from((
                ErrorKind::Client,
                "not a master yet",
                format!("it answers ROLE with {role:?}"),
            )))
        }
    }
}

/// The resolver task: sleeps until a request reports the connection broken, then
/// connects again (through Sentinel: asks the sentinels for the master) until it succeeds,
/// pausing with backoff between attempts; a request that finds the link down may cut a
/// pause short. It stops when the store is dropped.
async fn run_resolver(
    link: Weak<Link>,
    mut wake: mpsc::Receiver<u64>,
    mut finder: Finder,
    mut generation: u64,
) {
    loop {
        let polls_sentinels = matches!(finder, Finder::Sentinel(_));
        tokio::select! {
            woken = wake.recv() => {
                let Some(reported) = woken else { return };
                let Some(shared) = link.upgrade() else { return };
                // A report about a connection already replaced: nothing to do.
                if matches!(&*shared.state.borrow(), LinkState::Ready { generation: g, .. } if *g != reported)
                {
                    continue;
                }
            }
            _ = tokio::time::sleep(MASTER_CHECK_INTERVAL), if polls_sentinels => {
                // A switchover leaves the old master up, and a master for a while: compare
                // what the sentinels say with where we write, so a new master is followed
                // within a second even if no command fails.
                let Finder::Sentinel(resolver) = &mut finder else { continue };
                let Some((address, current)) = link.upgrade().and_then(|shared| {
                    match &*shared.state.borrow() {
                        LinkState::Ready { address, generation, .. } => Some((address.clone(), *generation)),
                        _ => None,
                    }
                }) else {
                    continue;
                };
                match resolver.named_master().await {
                    Some(named) if *named != *address => {
                        let Some(shared) = link.upgrade() else { return };
                        shared.report(current, &format!("the sentinels now name {named} as master"));
                    }
                    _ => continue,
                }
            }
        }
        let mut backoff = RESOLVE_BACKOFF.0;
        loop {
            let found = finder.resolve().await;
            let Some(shared) = link.upgrade() else { return };
            match found {
                Ok((node, address)) => {
                    generation += 1;
                    tracing::info!(redis = %shared.target, %address, "connected to Redis");
                    shared.state.send_replace(LinkState::Ready {
                        node,
                        address: address.into(),
                        generation,
                    });
                    break;
                }
                Err(problem) => {
                    let first = !matches!(&*shared.state.borrow(), LinkState::Down { .. });
                    if first {
                        tracing::warn!(
                            redis = %shared.target,
                            %problem,
                            "{}; requests answer 503 meanwhile",
                            shared.down_message
                        );
                    }
                    shared.state.send_replace(LinkState::Down {
                        problem: problem.into(),
                    });
                }
            }
            drop(shared);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                woken = wake.recv() => if woken.is_none() { return },
            }
            backoff = (backoff * 2).min(RESOLVE_BACKOFF.1);
        }
        // Reports queued while resolving were about the connection just replaced.
        while wake.try_recv().is_ok() {}
    }
}

/// The connection info of one node: its address, with `redis` (credentials, database).
fn node_info(
    host: &str,
    port: u16,
    redis: &RedisConnectionInfo,
) -> Result<ConnectionInfo, RedisError> {
    Ok(ConnectionAddr::Tcp(host.to_owned(), port)
        .into_connection_info()?
        .set_redis_settings(redis.clone()))
}

// ----- Cluster ------------------------------------------------------------------------

/// A Redis Cluster: the cluster client for requests, and what the admin sweep needs to
/// open its own connection to each master.
#[derive(Clone)]
struct ClusterLink {
    connection: ClusterConnection,
    /// Credentials for every node.
    auth: RedisConnectionInfo,
    /// A seed's host, for a `CLUSTER SLOTS` entry that leaves the IP empty (it means "the
    /// node you asked").
    seed_host: String,
    config: AsyncConnectionConfig,
}

impl ClusterLink {
    /// The masters that serve slots now, as `CLUSTER SLOTS` says.
    async fn masters(&self, store: &Inner) -> Result<BTreeSet<(String, u16)>, StoreError> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let reply = store
            .timed(
                "scan",
                self.connection
                    .clone()
                    .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random)),
            )
            .await?;
        let ranges: Vec<Vec<Value>> = store.reply("scan", reply)?;
        let mut masters = BTreeSet::new();
        for range in ranges {
            // [start, end, [ip, port, id, …] of the master, then one entry per replica]
            let Some(master) = range.into_iter().nth(2) else {
                continue;
            };
            let (host, port): (String, u16) = match master {
                Value::Array(fields) => {
                    let mut fields = fields.into_iter();
                    match (fields.next(), fields.next()) {
                        (Some(host), Some(port)) => {
                            (store.reply("scan", host)?, store.reply("scan", port)?)
                        }
                        _ => continue,
                    }
                }
                _ => continue,
            };
            let host = if host.is_empty() {
                self.seed_host.clone()
            } else {
                host
            };
            masters.insert((host, port));
        }
        if masters.is_empty() {
            return Err(StoreError::backend(
                &store.name,
                "scan",
                "CLUSTER SLOTS names no master: is the cluster created (redis-cli --cluster create)?",
            ));
        }
        Ok(masters)
    }

    /// SCANs every master, each through a connection of its own (SCAN has no key, so the
    /// cluster client cannot route it). A master that cannot be reached fails the whole
    /// call: a partial count or list would be a wrong answer.
    async fn sweep(&self, store: &Inner, visit: &mut Visit) -> Result<(), StoreError> {
        let deleting = matches!(visit, Visit::Delete { .. });
        for (host, port) in self.masters(store).await? {
            let explain = |e: StoreError| {
                let cause = match e {
                    StoreError::Backend { source, .. } => source.to_string(),
                    StoreError::Timeout { after, .. } => format!("no answer within {after:?}"),
                    other => other.to_string(),
                };
                StoreError::backend(
                    &store.name,
                    if deleting { "clear" } else { "scan" },
                    format!(
                        "cluster master {host}:{port} could not be scanned ({cause}); the cluster still gives it slots, so the \
                         answer would be incomplete{}. Wait until the cluster has promoted its replica \
                         (CLUSTER INFO says cluster_state:ok) or bring the node back, then retry",
                        if deleting {
                            " (sessions on the masters scanned before it are already deleted)"
                        } else {
                            ""
                        }
                    ),
                )
            };
            let info =
                node_info(&host, port, &self.auth).map_err(|e| explain(store.error("scan", e)))?;
            let mut node = store
                .timed("scan", async {
                    Client::open(info)?
                        .get_multiplexed_async_connection_with_config(&self.config)
                        .await
                })
                .await
                .map_err(explain)?;
            store
                .sweep_node(&mut node, visit, true)
                .await
                .map_err(explain)?;
        }
        Ok(())
    }
}

/// What a SCAN sweep does with each page of keys.
enum Visit {
    Collect(HashSet<Vec<u8>>),
    Delete { deleted: u64, unlink: bool },
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
    target: Target,
    options: Options,
}

enum Target {
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

impl RedisStore {
    /// A builder for the server at `url`: `redis://[user:password@]host:port[/db]`, or
    /// `rediss://…` for TLS (needs the `redis-tls` cargo feature); or a Sentinel-managed
    /// master, `redis-sentinel://[user:password@]HOST:PORT,…/MASTER_NAME[?db=N]`; or a
    /// cluster, `redis-cluster://[user:password@]HOST:PORT,…` (see the topology sections
    /// of [`RedisStore`]). Nothing is checked or opened until
    /// [`RedisStoreBuilder::connect`].
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            target: Target::Url(url.into()),
            options: Options::default(),
        }
    }

    /// A builder for an already configured `redis::Client` (custom TLS certificates, a
    /// Unix socket, …).
    pub fn builder_from_client(client: Client) -> RedisStoreBuilder {
        RedisStoreBuilder {
            target: Target::Client(Box::new(client)),
            options: Options::default(),
        }
    }

    /// Connects to `url` with connect-redis's defaults (prefix `sess:`, TTL one day).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.options.prefix
    }

    /// The Redis key of session `id`: prefix + id.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.inner.options.prefix)
    }
}

impl RedisStoreBuilder {
    /// The key prefix (connect-redis `prefix`, default `sess:`). Keys are `prefix + id`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = prefix.into();
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
    fn response_timeout(&self) -> Duration {
        self.options.command_timeout + self.options.wait.map_or(Duration::ZERO, |w| w.timeout)
    }

    /// Timeouts of every connection this store opens itself (Sentinel masters, sentinels,
    /// cluster nodes for admin scans).
    fn node_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.connection_timeout))
            .set_response_timeout(Some(self.response_timeout()))
    }

    fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig::new()
            .set_connection_timeout(self.options.connection_timeout)
            .set_response_timeout(self.response_timeout())
    }

    /// The cluster client: a few quick retries (MOVED, ASK, TRYAGAIN, a node being
    /// replaced), all within the command timeout, so a request on a failed master's slots
    /// answers 503 in time and the client picks up the new topology by itself.
    fn cluster_client(
        &self,
        plan: &ClusterPlan,
        name: &str,
    ) -> Result<redis::cluster::ClusterClient, StoreError> {
        let seeds = plan
            .seeds
            .iter()
            .map(|(host, port)| node_info(host, *port, &plan.auth))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Config(format!("Redis Cluster {name}: {e}")))?;
        ClusterClientBuilder::new(seeds)
            .connection_timeout(self.options.connection_timeout)
            .response_timeout(self.response_timeout())
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_RETRY_WAIT.0)
            .max_retry_wait(CLUSTER_RETRY_WAIT.1)
            .build()
            .map_err(|e| StoreError::Config(format!("Redis Cluster {name}: {e}")))
    }

    fn cluster_connection(&self, plan: ClusterPlan, connection: ClusterConnection) -> Connection {
        let seed_host = plan
            .seeds
            .first()
            .map(|(host, _)| host.clone())
            .unwrap_or_default();
        Connection::Cluster(Box::new(ClusterLink {
            connection,
            auth: plan.auth,
            seed_host,
            config: self.node_config(),
        }))
    }

    /// What the target names: one server, a Sentinel-managed master, or a cluster.
    fn plan(&self) -> Result<Plan, StoreError> {
        let Target::Url(url) = &self.target else {
            let (client, name) = self.client()?;
            return Ok(Plan::Standalone(client, name));
        };
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "redis-sentinel" | "valkey-sentinel" => {
                let parsed = MultiHostUrl::parse(url, 26_379, SENTINEL_URL)?;
                let name = parsed.name(scheme);
                let mut data = RedisConnectionInfo::default();
                let mut sentinel_auth = RedisConnectionInfo::default().set_skip_set_lib_name();
                if let Some((user, password)) = &self.options.sentinel_auth {
                    if let Some(user) = user {
                        sentinel_auth = sentinel_auth.set_username(user);
                    }
                    sentinel_auth = sentinel_auth.set_password(password);
                }
                for (key, value) in &parsed.query {
                    match key.as_str() {
                        "db" => {
                            let db = value.parse::<i64>().ok().filter(|db| *db >= 0).ok_or_else(|| {
                                StoreError::Config(format!(
                                    "{}: db must be a database number, not {value:?}; expected {SENTINEL_URL}",
                                    redact(url)
                                ))
                            })?;
                            data = data.set_db(db);
                        }
                        "sentinel_username" => sentinel_auth = sentinel_auth.set_username(value),
                        "sentinel_password" => sentinel_auth = sentinel_auth.set_password(value),
                        other => {
                            return Err(StoreError::Config(format!(
                                "{}: unknown option {other:?}; a Sentinel URL takes db, sentinel_username and sentinel_password: {SENTINEL_URL}",
                                redact(url)
                            )))
                        }
                    }
                }
                if let Some(user) = &parsed.username {
                    data = data.set_username(user);
                }
                if let Some(password) = &parsed.password {
                    data = data.set_password(password);
                }
                if parsed.path.is_empty() || parsed.path.contains('/') {
                    return Err(StoreError::Config(format!(
                        "{} names no master: put the master name the sentinels monitor after the addresses, as in {SENTINEL_URL}",
                        redact(url)
                    )));
                }
                Ok(Plan::Sentinel(
                    SentinelPlan {
                        sentinels: parsed.hosts,
                        master_name: parsed.path,
                        data,
                        sentinel_auth,
                    },
                    name,
                ))
            }
            "redis-cluster" | "valkey-cluster" => {
                let parsed = MultiHostUrl::parse(url, 6_379, CLUSTER_URL)?;
                if !parsed.path.is_empty() || !parsed.query.is_empty() {
                    return Err(StoreError::Config(format!(
                        "{}: a cluster URL has no database or options (a cluster has only database 0); expected {CLUSTER_URL}",
                        redact(url)
                    )));
                }
                let mut auth = RedisConnectionInfo::default();
                if let Some(user) = &parsed.username {
                    auth = auth.set_username(user);
                }
                if let Some(password) = &parsed.password {
                    auth = auth.set_password(password);
                }
                let name = parsed.name(scheme);
                Ok(Plan::Cluster(
                    ClusterPlan {
                        seeds: parsed.hosts,
                        auth,
                    },
                    name,
                ))
            }
            "rediss-sentinel" | "rediss-cluster" | "valkeys-sentinel" | "valkeys-cluster" => {
                Err(StoreError::Config(format!(
                    "{}: TLS to Sentinel or Cluster is not supported yet; use {SENTINEL_URL} or {CLUSTER_URL} on a trusted network",
                    redact(url)
                )))
            }
            _ => {
                let (client, name) = self.client()?;
                Ok(Plan::Standalone(client, name))
            }
        }
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

    /// How a standalone store connects: no response timeout in the client, because every
    /// command is already bounded by the store's own budget (`send`), and a second timer
    /// per command costs measurable CPU (a timer wheel entry armed and cleared on every
    /// request).
    fn direct_finder(&self, client: &Client) -> Finder {
        Finder::Direct {
            info: client.get_connection_info().clone(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.options.connection_timeout))
                .set_response_timeout(None),
            timeout: self.options.connection_timeout,
        }
    }

    fn sentinel_resolver(&self, plan: SentinelPlan) -> SentinelResolver {
        SentinelResolver {
            plan,
            config: self.node_config(),
            connect_timeout: self.options.connection_timeout,
            watch: None,
        }
    }

    fn client(&self) -> Result<(Client, String), StoreError> {
        let client = match &self.target {
            Target::Client(client) => Client::clone(client),
            Target::Url(url) => {
                check_url(url)?;
                Client::open(url.as_str()).map_err(|e| {
                    StoreError::Config(format!(
                        "Redis URL {}: {e}; expected redis://[user:password@]host:port[/db] or rediss://… for TLS",
                        redact(url)
                    ))
                })?
            }
        };
        let info = client.get_connection_info();
        let scheme = match info.addr() {
            redis::ConnectionAddr::TcpTls { .. } => "rediss",
            redis::ConnectionAddr::Unix(_) => "redis+unix",
            _ => "redis",
        };
        let name = format!("{scheme}://{}/{}", info.addr(), info.redis_settings().db());
        Ok((client, name))
    }
}

/// The shape of a Sentinel URL, for error messages.
const SENTINEL_URL: &str =
    "redis-sentinel://[user:password@]HOST:PORT,HOST:PORT,…/MASTER_NAME[?db=N]";
/// The shape of a Cluster URL, for error messages.
const CLUSTER_URL: &str = "redis-cluster://[user:password@]HOST:PORT,HOST:PORT,…";
/// Retries of the cluster client per command (MOVED, ASK, TRYAGAIN, a failed node).
const CLUSTER_RETRIES: u32 = 4;
/// The cluster client's pause between retries, in milliseconds: (minimum, maximum).
const CLUSTER_RETRY_WAIT: (u64, u64) = (20, 400);

/// Where a builder's target points.
enum Plan {
    Standalone(Client, String),
    Sentinel(SentinelPlan, String),
    Cluster(ClusterPlan, String),
}

/// The parsed `redis-cluster://` URL.
struct ClusterPlan {
    seeds: Vec<(String, u16)>,
    auth: RedisConnectionInfo,
}

/// A URL with several hosts: `scheme://[user:password@]host:port,host:port,…[/path][?query]`.
/// Credentials, path and query values are percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MultiHostUrl {
    hosts: Vec<(String, u16)>,
    username: Option<String>,
    password: Option<String>,
    path: String,
    query: Vec<(String, String)>,
}

impl MultiHostUrl {
    fn parse(url: &str, default_port: u16, shape: &str) -> Result<Self, StoreError> {
        let bad =
            |why: &str| StoreError::Config(format!("{}: {why}; expected {shape}", redact(url)));
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or_else(|| bad("not a URL"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, query),
            None => (rest, ""),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user =
                    percent_decode(user).ok_or_else(|| bad("bad %-escape in the user name"))?;
                let password = password
                    .map(|p| percent_decode(p).ok_or_else(|| bad("bad %-escape in the password")))
                    .transpose()?;
                (
                    (!user.is_empty()).then_some(user),
                    password.filter(|p| !p.is_empty()),
                )
            }
        };
        let mut parsed_hosts = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            if host.is_empty() {
                return Err(bad("an empty host in the host list"));
            }
            let (name, port) = if let Some(v6) = host.strip_prefix('[') {
                let (name, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("unclosed [ in an IPv6 host"))?;
                match after.strip_prefix(':') {
                    Some(port) => (name, Some(port)),
                    None if after.is_empty() => (name, None),
                    None => return Err(bad("junk after an IPv6 host")),
                }
            } else {
                match host.rsplit_once(':') {
                    Some((name, port)) => (name, Some(port)),
                    None => (host, None),
                }
            };
            let port = match port {
                None => default_port,
                Some(port) => port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad(&format!("{port:?} is not a port")))?,
            };
            if name.is_empty() {
                return Err(bad("a host without a name"));
            }
            parsed_hosts.push((name.to_owned(), port));
        }
        let path = percent_decode(path.trim_end_matches('/'))
            .ok_or_else(|| bad("bad %-escape in the path"))?;
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| bad("bad %-escape in an option"))?;
            pairs.push((key.to_owned(), value));
        }
        Ok(MultiHostUrl {
            hosts: parsed_hosts,
            username,
            password,
            path,
            query: pairs,
        })
    }

    /// The URL without credentials or options (for errors and logs).
    fn name(&self, scheme: &str) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            })
            .collect();
        let db = self
            .query
            .iter()
            .find(|(k, _)| k == "db")
            .map(|(_, db)| format!("?db={db}"))
            .unwrap_or_default();
        if self.path.is_empty() {
            format!("{scheme}://{}", hosts.join(","))
        } else {
            format!("{scheme}://{}/{}{db}", hosts.join(","), self.path)
        }
    }
}

/// Refuses what redis-rs would refuse less clearly.
fn check_url(url: &str) -> Result<(), StoreError> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    match scheme {
        "redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix" => Ok(()),
        "rediss" | "valkeys" if cfg!(feature = "redis-tls") => Ok(()),
        "rediss" | "valkeys" => Err(StoreError::Config(format!(
            "{} asks for TLS, but this build has no Redis TLS support: enable the `redis-tls` cargo feature of tessera",
            redact(url)
        ))),
        _ => Err(StoreError::Config(format!(
            "{} is not a Redis URL: use redis://[user:password@]host:port[/db] (rediss://… for TLS), {SENTINEL_URL} or {CLUSTER_URL}",
            redact(url)
        ))),
    }
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// The prefix as a SCAN pattern: glob characters escaped, then `*`.
fn scan_pattern(prefix: &str) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(prefix.len() + 1);
    for &b in prefix.as_bytes() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(b);
    }
    pattern.push(b'*');
    pattern
}

/// A duration as connect-redis's whole seconds, rounded up; zero means expired.
fn ttl_of(duration: Duration) -> Ttl {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    match secs {
        0 => Ttl::Expired,
        s => Ttl::Seconds(s),
    }
}

fn is_wrongtype(e: &redis::ServerError) -> bool {
    e.code() == "WRONGTYPE"
}

impl Inner {
    /// A command with room for its arguments (`data`: their total length in bytes), so
    /// building it does not grow its buffers: each reallocation takes the allocator's
    /// lock, which the runtime's other threads contend for while they free replies.
    fn command(name: &'static str, args: usize, data: usize) -> Cmd {
        let mut cmd = Cmd::with_capacity(args, name.len() + data);
        cmd.arg(name);
        cmd
    }

    fn key(&self, id: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.options.prefix.len() + id.len());
        key.extend_from_slice(self.options.prefix.as_bytes());
        key.extend_from_slice(id.as_bytes());
        key
    }

    fn ttl_for(&self, record: &Record) -> Ttl {
        match &self.options.ttl {
            TtlRule::Fixed(default) => record.ttl(*default),
            TtlRule::Custom(f) => ttl_of(f(record)),
        }
    }

    fn ttl_for_touch(&self, expires: Option<OffsetDateTime>) -> Ttl {
        match &self.options.ttl {
            TtlRule::Fixed(default) => Ttl::from_expiry(expires, *default),
            TtlRule::Custom(f) => ttl_of(f(&Record::new(CookieData {
                expires,
                ..CookieData::default()
            }))),
        }
    }

    fn error(&self, op: &'static str, e: RedisError) -> StoreError {
        if e.is_timeout() {
            StoreError::Timeout {
                store: self.name.clone(),
                op,
                after: self.options.command_timeout,
            }
        } else {
            StoreError::backend(&self.name, op, e)
        }
    }

    /// Bounds `fut` by the command timeout.
    async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        self.timed_within(op, self.options.command_timeout, fut)
            .await
    }

    async fn timed_within<T>(
        &self,
        op: &'static str,
        budget: Duration,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let outcome = tokio::time::timeout(budget, fut).await;
        self.settle(op, budget, outcome)
    }

    /// A command's outcome under a budget, as the store reports it: a Redis error as
    /// [`StoreError::Backend`], the budget running out as [`StoreError::Timeout`].
    fn settle<T>(
        &self,
        op: &'static str,
        budget: Duration,
        outcome: Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(op, e)),
            Err(_) => Err(StoreError::Timeout {
                store: self.name.clone(),
                op,
                after: budget,
            }),
        }
    }

    /// Sends one command (retried once on a connection found broken), under the timeout.
    /// A server error comes back as `Value::ServerError` for the caller to judge.
    ///
    /// The timeout is awaited here, not through [`timed`](Self::timed): an `async fn` that
    /// takes a future as its argument keeps that future twice in its state, and this
    /// state ends up in the future the `Store` trait boxes on every request, where a box
    /// over about 1 KiB misses malloc's per-thread cache and takes an arena lock.
    async fn send(&self, op: &'static str, cmd: &Cmd) -> Result<Value, StoreError> {
        let generation = self.connection.generation();
        let budget = self.options.command_timeout;
        let outcome = tokio::time::timeout(budget, self.connection.request(cmd)).await;
        self.settle_sent(op, budget, generation, outcome)
    }

    async fn send_pipeline(
        &self,
        op: &'static str,
        pipe: &Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, StoreError> {
        self.send_pipeline_within(op, pipe, count, self.options.command_timeout)
            .await
    }

    /// [`send`](Self::send) for a pipeline, under `budget`.
    async fn send_pipeline_within(
        &self,
        op: &'static str,
        pipe: &Pipeline,
        count: usize,
        budget: Duration,
    ) -> Result<Vec<Value>, StoreError> {
        let generation = self.connection.generation();
        let outcome =
            tokio::time::timeout(budget, self.connection.request_pipeline(pipe, count)).await;
        self.settle_sent(op, budget, generation, outcome)
    }

    /// [`settle`](Self::settle) for what `send` sent on the connection of `generation`: a
    /// timeout is also reported against that connection.
    fn settle_sent<T>(
        &self,
        op: &'static str,
        budget: Duration,
        generation: Option<u64>,
        outcome: Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        let result = self.settle(op, budget, outcome);
        if matches!(result, Err(StoreError::Timeout { .. })) {
            self.connection.timed_out(generation);
        }
        result
    }

    /// A reply as `T`, a server error as [`StoreError::Backend`].
    fn reply<T: FromRedisValue>(&self, op: &'static str, value: Value) -> Result<T, StoreError> {
        match value {
            Value::ServerError(e) => Err(self.error(op, e.into())),
            value => redis::from_redis_value(value).map_err(|e| self.error(op, e.into())),
        }
    }

    /// `SET …` and `WAIT replicas timeout` in one pipeline, on one connection (a cluster
    /// routes the pipeline by the SET's key, so WAIT runs on that key's master). Answers
    /// the SET's reply.
    async fn save_and_wait(&self, set: Cmd, wait: WaitForReplicas) -> Result<Value, StoreError> {
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = redis::pipe();
        pipe.add_command(set)
            .cmd("WAIT")
            .arg(wait.replicas)
            .arg(timeout_ms);
        let budget = self.options.command_timeout + wait.timeout;
        let mut replies = self
            .send_pipeline_within("save", &pipe, 2, budget)
            .await?
            .into_iter();
        let (Some(set), Some(acked)) = (replies.next(), replies.next()) else {
            return Err(StoreError::backend(
                &self.name,
                "save",
                "Redis answered a SET + WAIT pipeline with fewer than two replies",
            ));
        };
        if !matches!(set, Value::Nil | Value::ServerError(_)) {
            match acked {
                Value::Int(n) if n >= i64::from(wait.replicas) => {}
                Value::Int(n) => tracing::warn!(
                    store = %self.name,
                    acknowledged = n,
                    wanted = wait.replicas,
                    timeout = ?wait.timeout,
                    "a session save reached fewer replicas than asked within the WAIT timeout; it is on the master, but a failover now could lose it"
                ),
                other => tracing::warn!(
                    store = %self.name,
                    reply = ?other,
                    "WAIT after a session save failed; the save is on the master"
                ),
            }
        }
        Ok(set)
    }

    async fn del(&self, op: &'static str, key: &[u8]) -> Result<i64, StoreError> {
        let mut cmd = Self::command("DEL", 2, key.len());
        cmd.arg(key);
        let reply = self.send(op, &cmd).await?;
        self.reply(op, reply)
    }

    /// One node's keys under the prefix, page by page. On a cluster node (`per_slot`) a
    /// page's keys are deleted with one command per hash slot: a multi-key command across
    /// slots fails with CROSSSLOT.
    async fn sweep_node<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        visit: &mut Visit,
        per_slot: bool,
    ) -> Result<(), StoreError> {
        let pattern = scan_pattern(&self.options.prefix);
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(self.options.scan_count);
            let (next, keys): (u64, Vec<Vec<u8>>) =
                self.timed("scan", scan.query_async(conn)).await?;
            match visit {
                Visit::Collect(all) => all.extend(keys),
                Visit::Delete { deleted, unlink } if !keys.is_empty() => {
                    *deleted += self.delete_page(conn, &keys, unlink, per_slot).await?;
                }
                Visit::Delete { .. } => {}
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    /// Deletes one SCAN page: one `UNLINK` for the page, or one per slot (pipelined).
    async fn delete_page<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        keys: &[Vec<u8>],
        unlink: &mut bool,
        per_slot: bool,
    ) -> Result<u64, StoreError> {
        let groups: Vec<Vec<&[u8]>> = if per_slot {
            let mut by_slot: HashMap<Slot, Vec<&[u8]>> = HashMap::new();
            for key in keys {
                by_slot.entry(Slot::for_key(key)).or_default().push(key);
            }
            by_slot.into_values().collect()
        } else {
            vec![keys.iter().map(Vec::as_slice).collect()]
        };
        loop {
            let mut pipe = redis::pipe();
            for group in &groups {
                pipe.cmd(if *unlink { "UNLINK" } else { "DEL" }).arg(group);
            }
            let replies = self
                .timed("clear", conn.req_packed_commands(&pipe, 0, groups.len()))
                .await?;
            // Redis before 4.0 has no UNLINK.
            let no_unlink = replies.iter().any(|r| {
                matches!(r, Value::ServerError(e)
                    if e.details().is_some_and(|d| d.contains("unknown command")))
            });
            if *unlink && no_unlink {
                *unlink = false;
                continue;
            }
            let mut deleted = 0;
            for reply in replies {
                deleted += self.reply::<u64>("clear", reply)?;
            }
            return Ok(deleted);
        }
    }

    async fn collect_keys(&self) -> Result<HashSet<Vec<u8>>, StoreError> {
        let mut visit = Visit::Collect(HashSet::new());
        self.connection.sweep(self, &mut visit).await?;
        match visit {
            Visit::Collect(keys) => Ok(keys),
            Visit::Delete { .. } => Ok(HashSet::new()),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.name)
    }
}

impl Inner {
    /// Sends a load command (`GET`, or `GETEX` that also extends the TTL) and decodes the
    /// session it answers.
    async fn load_with(&self, id: &SessionId, cmd: &Cmd) -> Result<Option<Record>, StoreError> {
        let bytes = match self.send("load", cmd).await? {
            Value::Nil => return Ok(None),
            Value::BulkString(bytes) => bytes,
            Value::ServerError(e) if is_wrongtype(&e) => {
                return Err(StoreError::Corrupt {
                    id: id.clone(),
                    source: DecodeError::Json(serde::de::Error::custom(
                        "the key holds a Redis value that is not a string (WRONGTYPE)",
                    )),
                })
            }
            other => self.reply::<Vec<u8>>("load", other)?,
        };
        self.options
            .serializer
            .deserialize(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                id: id.clone(),
                source,
            })
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>, StoreError> {
        let inner = &*self.inner;
        let key = inner.key(id.as_str());
        let mut cmd = Inner::command("GET", 2, key.len());
        cmd.arg(key);
        inner.load_with(id, &cmd).await
    }

    /// `GETEX key EX ttl`: the load and the touch of a read-only request in one command
    /// (connect-redis sends `GET`, then `EXPIRE`). With `disable_touch` or `disable_ttl`, a
    /// plain `GET`; on a server without `GETEX` (before Redis 6.2), `GET` and the engine
    /// touches at the end as before.
    async fn load_and_touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<Option<(Record, bool)>, StoreError> {
        use std::sync::atomic::Ordering;
        let inner = &*self.inner;
        // `GETEX` when the TTL is to be extended and the server has the command; else
        // `GET`, and the engine touches at the end unless touching is off for this store.
        // One load future either way: the state every request boxes stays small.
        let touch_off = inner.options.disable_touch || inner.options.disable_ttl;
        let getex_ttl = match inner.ttl_for_touch(expires) {
            Ttl::Seconds(ttl) if !touch_off && !inner.no_getex.load(Ordering::Relaxed) => Some(ttl),
            _ => None,
        };
        let key = inner.key(id.as_str());
        let cmd = match getex_ttl {
            Some(ttl) => {
                let mut cmd = Inner::command("GETEX", 4, key.len() + 2 + 20);
                cmd.arg(key).arg("EX").arg(ttl);
                cmd
            }
            None => {
                let mut cmd = Inner::command("GET", 2, key.len());
                cmd.arg(key);
                cmd
            }
        };
        let touched = touch_off || getex_ttl.is_some();
        let started = tokio::time::Instant::now();
        // Bound first, matched after: a future awaited in the `match` itself would stay
        // in the state through the arms, beside the fallback's.
        let loaded = inner.load_with(id, &cmd).await;
        match loaded {
            Ok(found) => Ok(found.map(|r| (r, touched))),
            Err(StoreError::Backend { source, .. })
                if getex_ttl.is_some()
                    && source
                        .to_string()
                        .to_ascii_lowercase()
                        .contains("unknown command") =>
            {
                tracing::info!(store = %inner.name, "the server has no GETEX (Redis < 6.2): loading with GET and touching with EXPIRE");
                inner.no_getex.store(true, Ordering::Relaxed);
                // Within what is left of this call's budget: no call outlasts `time_bound`.
                let left = inner
                    .options
                    .command_timeout
                    .saturating_sub(started.elapsed());
                // Boxed: this path runs once per store, and would otherwise enlarge
                // every load's future.
                match tokio::time::timeout(left, Box::pin(self.load(id))).await {
                    Ok(loaded) => Ok(loaded?.map(|r| (r, false))),
                    Err(_) => Err(StoreError::Timeout {
                        store: inner.name.clone(),
                        op: "load",
                        after: inner.options.command_timeout,
                    }),
                }
            }
            Err(other) => Err(other),
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        record: &Record,
        mode: SaveMode,
    ) -> Result<SaveOutcome, StoreError> {
        let inner = &*self.inner;
        let key = inner.key(id.as_str());
        let Ttl::Seconds(ttl) = inner.ttl_for(record) else {
            // connect-redis deletes a session whose cookie has expired. A new session has
            // nothing to delete (and deleting could only hit a clashing ID's record).
            if mode == SaveMode::Update {
                inner.del("save", &key).await?;
            }
            return Ok(SaveOutcome::Gone);
        };
        let value = inner.options.serializer.serialize(record);
        let mut cmd = Inner::command("SET", 6, key.len() + value.len() + 2 + 20 + 2);
        cmd.arg(&key).arg(value);
        if !inner.options.disable_ttl {
            cmd.arg("EX").arg(ttl);
        }
        cmd.arg(match mode {
            SaveMode::Create => "NX",
            SaveMode::Update => "XX",
        });
        let reply = match inner.options.wait {
            None => inner.send("save", &cmd).await?,
            // Boxed: SET + WAIT's state would double the size of every save's future.
            Some(wait) => Box::pin(inner.save_and_wait(cmd, wait)).await?,
        };
        match reply {
            Value::Nil => Ok(match mode {
                SaveMode::Create => SaveOutcome::Conflict,
                SaveMode::Update => SaveOutcome::Gone,
            }),
            other => {
                inner.reply::<()>("save", other)?;
                Ok(SaveOutcome::Saved)
            }
        }
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError> {
        let inner = &*self.inner;
        inner.del("destroy", &inner.key(id.as_str())).await?;
        Ok(())
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let inner = &*self.inner;
        // As connect-redis: no EXPIRE with disableTouch or disableTTL.
        if inner.options.disable_touch || inner.options.disable_ttl {
            return Ok(true);
        }
        let key = inner.key(id.as_str());
        match inner.ttl_for_touch(expires) {
            Ttl::Seconds(ttl) => {
                let mut cmd = Inner::command("EXPIRE", 3, key.len() + 20);
                cmd.arg(&key).arg(ttl);
                let reply = inner.send("touch", &cmd).await?;
                inner.reply::<bool>("touch", reply)
            }
            Ttl::Expired => {
                inner.del("touch", &key).await?;
                Ok(false)
            }
        }
    }

    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let inner = &*self.inner;
        let prefix = inner.options.prefix.len();
        let mut ids: Vec<String> = inner
            .collect_keys()
            .await?
            .into_iter()
            .map(|key| String::from_utf8_lossy(key.get(prefix..).unwrap_or_default()).into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.inner.collect_keys().await?.len() as u64)
    }

    async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let inner = &*self.inner;
        let key = inner.key(id);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        let mut replies = inner.send_pipeline("inspect", &pipe, 2).await?.into_iter();
        let (Some(value), Some(pttl)) = (replies.next(), replies.next()) else {
            return Err(StoreError::backend(
                &inner.name,
                "inspect",
                "Redis answered a GET + PTTL pipeline with fewer than two replies",
            ));
        };
        let ttl = match inner.reply::<i64>("inspect", pttl)? {
            ms if ms >= 0 => Some(Duration::from_millis(ms as u64)),
            _ => None,
        };
        let value = match value {
            Value::Nil => return Ok(None),
            Value::BulkString(bytes) => bytes,
            Value::ServerError(e) if is_wrongtype(&e) => {
                let mut cmd = redis::cmd("TYPE");
                cmd.arg(&key);
                let reply = inner.send("inspect", &cmd).await?;
                let kind: String = inner.reply("inspect", reply)?;
                format!("(not a session: the key holds a Redis {kind}, not a string)").into_bytes()
            }
            other => inner.reply::<Vec<u8>>("inspect", other)?,
        };
        Ok(Some(Stored { value, ttl }))
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        let mut visit = Visit::Delete {
            deleted: 0,
            unlink: true,
        };
        inner.connection.sweep(inner, &mut visit).await?;
        match visit {
            Visit::Delete { deleted, .. } => Ok(deleted),
            Visit::Collect(_) => Ok(0),
        }
    }

    /// Every request-path call runs under the command timeout (plus the WAIT timeout for
    /// a save that waits for replicas), so the engine need not time it again.
    fn time_bound(&self) -> Option<Duration> {
        let options = &self.inner.options;
        Some(options.command_timeout + options.wait.map_or(Duration::ZERO, |w| w.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request boxes these futures (the `Store` trait is object safe through
    /// `async_trait`); under about 1 KiB, glibc's malloc serves them from its per-thread
    /// cache instead of taking an arena lock (see `layer`'s test of its own future).
    #[tokio::test]
    async fn request_path_futures_stay_under_a_kibibyte() {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .connect_lazy()
            .unwrap();
        let id = SessionId::parse("id").unwrap();
        let record =
            Record::from_json(br#"{"cookie":{"originalMaxAge":null,"expires":null}}"#).unwrap();
        let sizes = [
            ("load", std::mem::size_of_val(&*store.load(&id))),
            (
                "load_and_touch",
                std::mem::size_of_val(&*store.load_and_touch(&id, None)),
            ),
            (
                "save",
                std::mem::size_of_val(&*store.save(&id, &record, SaveMode::Update)),
            ),
            ("touch", std::mem::size_of_val(&*store.touch(&id, None))),
            ("destroy", std::mem::size_of_val(&*store.destroy(&id))),
        ];
        for (call, size) in sizes {
            assert!(size <= 1000, "{call}'s future is {size} bytes");
        }
    }

    #[test]
    fn scan_pattern_escapes_glob_characters() {
        assert_eq!(scan_pattern("sess:"), b"sess:*");
        assert_eq!(scan_pattern(r"a*b?[c]\d"), br"a\*b\?\[c\]\\d*");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://user:secret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn ttl_rounds_up_like_connect_redis() {
        assert_eq!(ttl_of(Duration::ZERO), Ttl::Expired);
        assert_eq!(ttl_of(Duration::from_millis(1)), Ttl::Seconds(1));
        assert_eq!(ttl_of(Duration::from_millis(1_500)), Ttl::Seconds(2));
        assert_eq!(ttl_of(Duration::from_secs(60)), Ttl::Seconds(60));
    }

    fn hosts(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(h, p)| (h.to_string(), *p)).collect()
    }

    #[test]
    fn multi_host_urls() {
        let url = MultiHostUrl::parse(
            "redis-sentinel://app:p%40ss%3Aw0rd@10.0.0.1:26379,sentinel-b,[::1]:26380/mymaster?db=2&sentinel_password=s%26cret",
            26_379,
            SENTINEL_URL,
        )
        .unwrap();
        assert_eq!(
            url.hosts,
            hosts(&[
                ("10.0.0.1", 26_379),
                ("sentinel-b", 26_379),
                ("::1", 26_380)
            ])
        );
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("p@ss:w0rd"));
        assert_eq!(url.path, "mymaster");
        assert_eq!(
            url.query,
            vec![
                ("db".to_owned(), "2".to_owned()),
                ("sentinel_password".to_owned(), "s&cret".to_owned())
            ]
        );
        assert_eq!(
            url.name("redis-sentinel"),
            "redis-sentinel://10.0.0.1:26379,sentinel-b:26379,[::1]:26380/mymaster?db=2"
        );

        let url =
            MultiHostUrl::parse("redis-cluster://:pw@a:7000,b:7001", 6_379, CLUSTER_URL).unwrap();
        assert_eq!(url.hosts, hosts(&[("a", 7_000), ("b", 7_001)]));
        assert_eq!((url.username, url.password.as_deref()), (None, Some("pw")));
        assert_eq!(url.path, "");

        for bad in [
            "redis-cluster://a:7000,,b:7001",
            "redis-cluster://a:notaport",
            "redis-cluster://a:0",
            "redis-cluster://:7000",
            "redis-cluster://[::1",
            "redis-cluster://u:bad%zz@a:7000",
        ] {
            assert!(
                matches!(
                    MultiHostUrl::parse(bad, 6_379, CLUSTER_URL),
                    Err(StoreError::Config(_))
                ),
                "{bad}"
            );
        }
    }

    fn plan_of(url: &str) -> Result<Plan, StoreError> {
        RedisStore::builder(url).plan()
    }

    #[test]
    fn topology_urls() {
        let Ok(Plan::Sentinel(plan, name)) =
            plan_of("redis-sentinel://u:secret@127.0.0.1:26379,127.0.0.1:26380/mymaster?db=3")
        else {
            panic!("a Sentinel plan");
        };
        assert_eq!(plan.master_name, "mymaster");
        assert_eq!(plan.sentinels.len(), 2);
        assert_eq!(plan.data.db(), 3);
        assert_eq!(plan.data.username(), Some("u"));
        assert_eq!(plan.data.password(), Some("secret"));
        assert_eq!(
            plan.sentinel_auth.password(),
            None,
            "the URL's password is the data nodes'"
        );
        assert!(!name.contains("secret"), "{name}");

        let Ok(Plan::Sentinel(plan, _)) = RedisStore::builder("redis-sentinel://h/m")
            .sentinel_auth(Some("watcher"), "sentinel-pw")
            .plan()
        else {
            panic!("a Sentinel plan");
        };
        assert_eq!(plan.sentinels, hosts(&[("h", 26_379)]));
        assert_eq!(plan.sentinel_auth.username(), Some("watcher"));
        assert_eq!(plan.sentinel_auth.password(), Some("sentinel-pw"));

        let Ok(Plan::Cluster(plan, name)) = plan_of("redis-cluster://u:secret@a:7000,b:7001")
        else {
            panic!("a Cluster plan");
        };
        assert_eq!(plan.seeds, hosts(&[("a", 7_000), ("b", 7_001)]));
        assert_eq!(plan.auth.password(), Some("secret"));
        assert_eq!(name, "redis-cluster://a:7000,b:7001");

        for bad in [
            "redis-sentinel://127.0.0.1:26379",
            "redis-sentinel://127.0.0.1:26379/",
            "redis-sentinel://127.0.0.1:26379/m?db=x",
            "redis-sentinel://127.0.0.1:26379/m?dbx=1",
            "redis-cluster://a:7000/0",
            "redis-cluster://a:7000?db=1",
            "rediss-cluster://u:secret@a:7000",
        ] {
            let Err(StoreError::Config(message)) = plan_of(bad) else {
                panic!("{bad} must be a Config error");
            };
            assert!(!message.contains("secret"), "{message}");
            assert!(
                message.contains("redis-"),
                "says what is expected: {message}"
            );
        }
    }

    #[test]
    fn url_schemes() {
        assert!(check_url("redis://127.0.0.1:6379").is_ok());
        assert!(matches!(
            check_url("http://127.0.0.1"),
            Err(StoreError::Config(_))
        ));
        let tls = check_url("rediss://u:pw@127.0.0.1:6380");
        if cfg!(feature = "redis-tls") {
            assert!(tls.is_ok());
        } else {
            let Err(StoreError::Config(message)) = tls else {
                panic!("rediss:// without redis-tls must be a Config error");
            };
            assert!(message.contains("redis-tls"), "{message}");
            assert!(!message.contains("pw"), "{message}");
        }
    }
}
