//! `RedisStore`: sessions in Redis under the same keys, in the same JSON and with the same
//! TTLs as connect-redis, so a Node app (express-session + connect-redis) and a Rust app
//! (Tessera) can share one Redis and one set of users.
//!
//! Compatibility lives in the exact commands, key and TTL rule, so they are all in
//! `commands` and nowhere else: `GET` to load, `SET … EX ttl` to save, `EXPIRE` to touch,
//! `DEL` to destroy (and `SCAN … MATCH prefix*` for the admin commands, in `admin`). Three
//! deliberate departures, all for safety: a new session is saved with `SET … NX`, so an ID
//! clash is noticed; a loaded one with the guarded commit (`guarded`: a script that writes
//! only over the value this request loaded, so concurrent requests merge instead of
//! overwriting each other, and a destroyed session is not brought back); and every command
//! has a timeout, so a dead Redis costs a request milliseconds, not minutes.
//!
//! One multiplexed connection (redis-rs's `MultiplexedConnection`, opened by `node` so its
//! writes are batched) serves every request; a background task re-opens it when it
//! breaks. The topology is an internal enum, so the command code is the same for a
//! standalone server, a Sentinel-managed master (`redis-sentinel://`: the master the
//! sentinels name, followed through failovers) and a Redis Cluster (`redis-cluster://`:
//! redis-rs's cluster client, with admin SCANs on every master). See [`RedisStore`] for
//! each topology's URL, failover behaviour and a local setup to try it.
//!
//! One concept a file:
//! - `builder`: the options, their defaults, and how a store connects;
//! - `url`: which topology a URL names, parsed into the plan the builder connects by;
//! - `commands`: a request's commands, with the key and TTL rule;
//! - `guarded`: the guarded commit's compare-and-set script;
//! - `admin`: the admin calls and their SCAN sweeps;
//! - `connection`: the topology behind the store, and the budget every command runs under;
//! - `link`: one server or the sentinels' master, re-connected by a background task;
//! - `sentinel`: finding the master through the sentinels;
//! - `cluster`: the cluster client, and the masters an admin sweep visits;
//! - `node`: opening one connection, with a driver that writes in batches.

use std::fmt;
use std::sync::Arc;

use redis::Client;

use crate::store::StoreError;

mod admin;
mod builder;
mod cluster;
mod commands;
mod connection;
mod guarded;
mod index;
mod link;
mod node;
mod sentinel;
pub(crate) mod url;

pub use builder::{
    JsonSerializer, RedisStoreBuilder, Serializer, DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECTION_TIMEOUT, DEFAULT_PREFIX, DEFAULT_SCAN_COUNT, DEFAULT_TTL,
};
pub use index::DEFAULT_INDEX_PREFIX;

use builder::{Options, Target};
use connection::Connection;

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
/// | save, loaded session | the guarded commit: `EVALSHA` of a script that `GET`s the key and `SET`s `json EX ttl` only if it still holds the value this request loaded (`EVAL` once after `NOSCRIPT`); with `guarded_commit(false)`, `SET key json EX ttl XX`. Gone meanwhile: not written back |
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
/// gains as much from it); `docs/benchmarks.md` in the repository has the numbers.
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

/// What every clone of a store shares; each file of this module adds the methods of its
/// concept (`commands`, `admin`, `connection`).
struct Inner {
    connection: Connection,
    options: Options,
    /// Where it connects, without credentials (for errors and logs).
    name: String,
    /// The server refused `GETEX` (Redis before 6.2): load with `GET` and touch apart.
    no_getex: std::sync::atomic::AtomicBool,
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

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.name)
    }
}
