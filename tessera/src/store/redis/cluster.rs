//! Redis Cluster: redis-rs's cluster client for requests, and the admin sweep over every
//! master.
//!
//! Each request command has one key, so the cluster client routes it to the master of its
//! slot and follows `MOVED`/`ASK` and topology changes by itself, in a few quick retries
//! that fit the command timeout. `SCAN` has no key, so the client cannot route it: an
//! admin call reads `CLUSTER SLOTS` and scans each master over a connection of its own.

use std::collections::BTreeSet;

use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncConnectionConfig, Client, RedisConnectionInfo, Value};

use super::admin::Visit;
use super::builder::RedisStoreBuilder;
use super::connection::Connection;
use super::node::node_info;
use super::url::ClusterPlan;
use super::Inner;
use crate::store::StoreError;

/// Retries of the cluster client per command (MOVED, ASK, TRYAGAIN, a failed node).
const CLUSTER_RETRIES: u32 = 4;
/// The cluster client's pause between retries, in milliseconds: (minimum, maximum).
const CLUSTER_RETRY_WAIT: (u64, u64) = (20, 400);

/// A Redis Cluster: the cluster client for requests, and what the admin sweep needs to
/// open its own connection to each master.
#[derive(Clone)]
pub(super) struct ClusterLink {
    pub(super) connection: ClusterConnection,
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
    pub(super) async fn sweep(
        &self,
        store: &Inner,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let deleting = visit.delete;
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
            if visit.stopped() {
                break;
            }
        }
        Ok(())
    }
}

// The builder's side of a cluster: the client's timeouts and retries, kept with the
// cluster code they tune.
impl RedisStoreBuilder {
    pub(super) fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig::new()
            .set_connection_timeout(self.options.connection_timeout)
            .set_response_timeout(self.response_timeout())
    }

    /// The cluster client: a few quick retries (MOVED, ASK, TRYAGAIN, a node being
    /// replaced), all within the command timeout, so a request on a failed master's slots
    /// answers 503 in time and the client picks up the new topology by itself.
    pub(super) fn cluster_client(
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

    pub(super) fn cluster_connection(
        &self,
        plan: ClusterPlan,
        connection: ClusterConnection,
    ) -> Connection {
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
}
