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
//! One multiplexed connection (redis-rs's `ConnectionManager`) serves every request and
//! reconnects by itself. The topology is an internal enum so that Sentinel and Cluster can
//! be added beside the standalone server without touching the command code.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue, Pipeline, RedisError, Value};
use time::OffsetDateTime;

use super::{SaveMode, SaveOutcome, Store, StoreError, Stored};
use crate::id::SessionId;
use crate::record::{CookieData, DecodeError, Record, Ttl};

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
/// | load      | `GET key` |
/// | save, new session | `SET key json EX ttl NX` (a clash: another ID is chosen) |
/// | save, loaded session | `SET key json EX ttl XX` (gone meanwhile: not written back) |
/// | touch     | `EXPIRE key ttl` (none with `disable_touch` or `disable_ttl`) |
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
/// by itself once Redis is back, with no restart. A value under the prefix that is not a
/// session (not JSON, no `cookie`, a hash…) loads as [`StoreError::Corrupt`], which the
/// layer treats as no session.
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
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    options: Options,
    /// Where it connects, without credentials (for errors and logs).
    name: String,
}

/// The topology behind the store. Each variant answers single-key commands (which a
/// cluster routes by key) and says which nodes a keyspace scan must visit.
#[derive(Clone)]
enum Connection {
    /// One server, through a `ConnectionManager`: one multiplexed connection, re-opened
    /// with backoff when it breaks.
    Standalone(ConnectionManager),
    // Sentinel and Cluster come here: a Sentinel-resolved `ConnectionManager` and a
    // `cluster_async::ClusterConnection` answer `request`/`request_pipeline` the same way
    // (every request-path command has one key, so a cluster routes it). A cluster's
    // `sweep` runs `sweep_node` on every master, and must delete a page's keys per slot
    // (a multi-key UNLINK across slots fails with CROSSSLOT). `inspect`'s GET + PTTL
    // pipeline has one key, so it routes to one node.
}

impl Connection {
    async fn request(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        match self {
            Connection::Standalone(manager) => manager.clone().req_packed_command(cmd).await,
        }
    }

    async fn request_pipeline(
        &self,
        pipe: &Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, RedisError> {
        match self {
            Connection::Standalone(manager) => {
                manager.clone().req_packed_commands(pipe, 0, count).await
            }
        }
    }

    /// Runs a SCAN sweep over every node that holds keys.
    async fn sweep(&self, store: &Inner, visit: &mut Visit) -> Result<(), StoreError> {
        match self {
            Connection::Standalone(manager) => store.sweep_node(&mut manager.clone(), visit).await,
        }
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
    /// `rediss://…` for TLS (needs the `redis-tls` cargo feature). Nothing is checked or
    /// opened until [`RedisStoreBuilder::connect`].
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

    /// Connects now, so a wrong URL or an unreachable server is reported at start-up.
    ///
    /// # Errors
    /// [`StoreError::Config`] for a bad URL (or `rediss://` without the `redis-tls`
    /// feature), [`StoreError::Backend`] when the server cannot be reached or refuses us.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let (client, name) = self.client()?;
        let config = self.manager_config();
        let budget = self.options.connection_timeout * 2 + Duration::from_secs(1);
        let manager = match tokio::time::timeout(
            budget,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(manager)) => manager,
            Ok(Err(e)) => {
                return Err(StoreError::backend(
                    &name,
                    "connect",
                    format!("cannot connect to Redis: {e}; check that it is running and reachable at this address (or use connect_lazy to start without it)"),
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
        Ok(self.finish(Connection::Standalone(manager), name))
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
        let (client, name) = self.client()?;
        let manager = ConnectionManager::new_lazy_with_config(client, self.manager_config())
            .map_err(|e| StoreError::Config(format!("Redis connection {name}: {e}")))?;
        Ok(self.finish(Connection::Standalone(manager), name))
    }

    fn finish(self, connection: Connection, name: String) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                connection,
                options: self.options,
                name,
            }),
        }
    }

    /// The reconnect policy. A broken connection is re-opened on the next command, with
    /// one quick retry, so a command while Redis is down fails in milliseconds instead of
    /// waiting out a long backoff; each later command tries again, so the store recovers
    /// as soon as Redis is back.
    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.options.connection_timeout))
            .set_response_timeout(Some(self.options.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
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
            "{} is not a Redis URL: use redis://[user:password@]host:port[/db], or rediss://… for TLS",
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

/// Whether an error means the connection was broken (Redis restarted, a proxy dropped
/// it, or an earlier reconnect failed), so the command most likely never ran and is worth
/// one retry on the fresh connection the manager opens on such an error. This is what makes
/// the first request after Redis comes back succeed. While Redis is down the retry costs
/// one refused connect: milliseconds.
fn is_stale_connection(e: &RedisError) -> bool {
    e.is_connection_dropped()
}

fn is_wrongtype(e: &redis::ServerError) -> bool {
    e.code() == "WRONGTYPE"
}

impl Inner {
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
        match tokio::time::timeout(self.options.command_timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(op, e)),
            Err(_) => Err(StoreError::Timeout {
                store: self.name.clone(),
                op,
                after: self.options.command_timeout,
            }),
        }
    }

    /// Sends one command (retried once on a connection found broken), under the timeout.
    /// A server error comes back as `Value::ServerError` for the caller to judge.
    async fn send(&self, op: &'static str, cmd: &Cmd) -> Result<Value, StoreError> {
        self.timed(op, async {
            match self.connection.request(cmd).await {
                Err(e) if is_stale_connection(&e) => {
                    tracing::debug!(store = %self.name, error = %e, "Redis connection was broken; retrying once on a new one");
                    self.connection.request(cmd).await
                }
                other => other,
            }
        })
        .await
    }

    async fn send_pipeline(
        &self,
        op: &'static str,
        pipe: &Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, StoreError> {
        self.timed(op, async {
            match self.connection.request_pipeline(pipe, count).await {
                Err(e) if is_stale_connection(&e) => {
                    self.connection.request_pipeline(pipe, count).await
                }
                other => other,
            }
        })
        .await
    }

    /// A reply as `T`, a server error as [`StoreError::Backend`].
    fn reply<T: FromRedisValue>(&self, op: &'static str, value: Value) -> Result<T, StoreError> {
        match value {
            Value::ServerError(e) => Err(self.error(op, e.into())),
            value => redis::from_redis_value(value).map_err(|e| self.error(op, e.into())),
        }
    }

    async fn del(&self, op: &'static str, key: &[u8]) -> Result<i64, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        let reply = self.send(op, &cmd).await?;
        self.reply(op, reply)
    }

    /// One node's keys under the prefix, page by page.
    async fn sweep_node<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        visit: &mut Visit,
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
                    let mut cmd = redis::cmd(if *unlink { "UNLINK" } else { "DEL" });
                    cmd.arg(&keys);
                    let reply = self.timed("clear", conn.req_packed_command(&cmd)).await?;
                    let n = match reply {
                        // Redis before 4.0 has no UNLINK.
                        Value::ServerError(e)
                            if *unlink
                                && e.details().is_some_and(|d| d.contains("unknown command")) =>
                        {
                            *unlink = false;
                            let mut cmd = redis::cmd("DEL");
                            cmd.arg(&keys);
                            self.timed("clear", cmd.query_async::<u64>(conn)).await?
                        }
                        other => self.reply::<u64>("clear", other)?,
                    };
                    *deleted += n;
                }
                Visit::Delete { .. } => {}
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
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

#[async_trait]
impl Store for RedisStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>, StoreError> {
        let inner = &*self.inner;
        let mut cmd = redis::cmd("GET");
        cmd.arg(inner.key(id.as_str()));
        let bytes = match inner.send("load", &cmd).await? {
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
            other => inner.reply::<Vec<u8>>("load", other)?,
        };
        inner
            .options
            .serializer
            .deserialize(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                id: id.clone(),
                source,
            })
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
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(inner.options.serializer.serialize(record));
        if !inner.options.disable_ttl {
            cmd.arg("EX").arg(ttl);
        }
        cmd.arg(match mode {
            SaveMode::Create => "NX",
            SaveMode::Update => "XX",
        });
        match inner.send("save", &cmd).await? {
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
                let mut cmd = redis::cmd("EXPIRE");
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
