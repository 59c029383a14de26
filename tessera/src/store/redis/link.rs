//! The link: one connection to one server, or to the master the sentinels name, shared by
//! every request and replaced by one background resolver task when it fails.
//!
//! Requests never take a lock: they clone the current connection out of a `watch`
//! channel, and report a connection they found broken, read-only or frozen. The resolver
//! alone opens connections (and talks to the sentinels), so a burst of failing requests
//! costs one reconnect. The retry rule is here too (`FailoverSign`): a command that most
//! likely never ran (the connection broke, or the server answered `READONLY`) is sent once
//! more on the fresh connection; one that timed out is not, since it may have run and its
//! budget is spent.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisError, Value,
};
use tokio::sync::{mpsc, watch};

use super::builder::RedisStoreBuilder;
use super::node::{self, Node};
use super::sentinel::SentinelResolver;

/// Smallest and largest pause between two failed attempts to connect.
const RESOLVE_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_millis(500));

/// How often the resolver asks a sentinel whether the master is still the one we use.
pub(super) const MASTER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Where a link stands.
#[derive(Clone)]
pub(super) enum LinkState {
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
pub(super) enum Finder {
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
    pub(super) async fn resolve(&mut self) -> Result<(Node, String), String> {
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
pub(super) struct Link {
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
    pub(super) fn start(finder: Finder, state: LinkState) -> Arc<Self> {
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

    pub(super) fn generation(&self) -> Option<u64> {
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
    pub(super) async fn current(&self) -> Result<(Node, u64), RedisError> {
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
    pub(super) fn report(&self, generation: u64, why: &str) {
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

    pub(super) async fn request(&self, cmd: &Cmd) -> Result<Value, RedisError> {
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

    pub(super) async fn request_pipeline(
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

// The builder's side of a standalone link, kept with the link it sets up.
impl RedisStoreBuilder {
    /// How a standalone store connects: no response timeout in the client, because every
    /// command is already bounded by the store's own budget (`send`), and a second timer
    /// per command costs measurable CPU (a timer wheel entry armed and cleared on every
    /// request).
    pub(super) fn direct_finder(&self, client: &Client) -> Finder {
        Finder::Direct {
            info: client.get_connection_info().clone(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.options.connection_timeout))
                .set_response_timeout(None),
            timeout: self.options.connection_timeout,
        }
    }
}
