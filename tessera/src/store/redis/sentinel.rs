//! Finding the master through Redis Sentinel: ask each sentinel in turn which server is
//! the master, connect to it, and check with `ROLE` that it is one.
//!
//! A sentinel that has not caught up with a failover may still name the old master, hence
//! the check, made on the very connection requests will use. The link's resolver calls
//! `resolve` on every reconnect, and `named_master` once a second, so a switchover that
//! breaks no connection (`SENTINEL FAILOVER`) is followed too.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisConnectionInfo, RedisError};

use super::builder::RedisStoreBuilder;
use super::node::{self, node_info, Node};

/// What the resolver needs to find the master: the parsed `redis-sentinel://` URL.
#[derive(Clone)]
pub(crate) struct SentinelPlan {
    /// Sentinel addresses; the one that last named a usable master goes first.
    pub(super) sentinels: Vec<(String, u16)>,
    pub(super) master_name: String,
    /// Database and credentials for the data nodes (master and replicas).
    pub(super) data: RedisConnectionInfo,
    /// Credentials for the sentinels.
    pub(super) sentinel_auth: RedisConnectionInfo,
}

/// Finds the master: asks each sentinel in turn for the master's address, connects to it
/// and checks with ROLE that it is a master (a sentinel that has not caught up with a
/// failover may still name the old one). Every step is bounded by the connection and
/// command timeouts, so a dead or frozen sentinel costs one timeout, never a hang.
pub(super) struct SentinelResolver {
    pub(super) plan: SentinelPlan,
    config: AsyncConnectionConfig,
    /// Bounds opening the master connection (connecting and the handshake).
    connect_timeout: Duration,
    /// The connection to the sentinel polled every
    /// [`MASTER_CHECK_INTERVAL`](super::link::MASTER_CHECK_INTERVAL).
    watch: Option<((String, u16), MultiplexedConnection)>,
}

impl SentinelResolver {
    pub(super) async fn resolve(&mut self) -> Result<(Node, String), String> {
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
    pub(super) async fn named_master(&mut self) -> Option<String> {
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

// The builder's side of a Sentinel link, kept with the resolver it sets up.
impl RedisStoreBuilder {
    pub(super) fn sentinel_resolver(&self, plan: SentinelPlan) -> SentinelResolver {
        SentinelResolver {
            plan,
            config: self.node_config(),
            connect_timeout: self.options.connection_timeout,
            watch: None,
        }
    }
}
