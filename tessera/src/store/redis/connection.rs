//! Sending one command: the topology behind the store (`Connection`), and the budget every
//! command runs under.
//!
//! The command code is the same for every topology: it hands each command to
//! `Connection`, which sends it on the link (one server, or the sentinels' master) or
//! through the cluster client. Every send is bounded by the command timeout, and a timeout
//! is reported against the connection it happened on: a frozen server, or a connection a
//! dropped NAT entry left silently dead, answers nothing rather than an error.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, Value};

use super::admin::Visit;
use super::cluster::ClusterLink;
use super::link::Link;
use super::Inner;
use crate::store::StoreError;

/// The topology behind the store. Each variant answers single-key commands (which a
/// cluster routes by key) and says which nodes a keyspace scan must visit.
#[derive(Clone)]
pub(super) enum Connection {
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
    pub(super) async fn sweep(
        &self,
        store: &Inner,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        match self {
            Connection::Link(link) => {
                let (mut node, _) = store.timed("scan", link.current()).await?;
                store.sweep_node(&mut node.connection, visit, false).await
            }
            Connection::Cluster(cluster) => cluster.sweep(store, visit).await,
        }
    }
}

impl Inner {
    pub(super) fn error(&self, op: &'static str, e: RedisError) -> StoreError {
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
    pub(super) async fn timed<T>(
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
    pub(super) async fn send(&self, op: &'static str, cmd: &Cmd) -> Result<Value, StoreError> {
        let generation = self.connection.generation();
        let budget = self.options.command_timeout;
        let outcome = tokio::time::timeout(budget, self.connection.request(cmd)).await;
        self.settle_sent(op, budget, generation, outcome)
    }

    pub(super) async fn send_pipeline(
        &self,
        op: &'static str,
        pipe: &Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, StoreError> {
        self.send_pipeline_within(op, pipe, count, self.options.command_timeout)
            .await
    }

    /// [`send`](Self::send) for a pipeline, under `budget`.
    pub(super) async fn send_pipeline_within(
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
    pub(super) fn reply<T: FromRedisValue>(
        &self,
        op: &'static str,
        value: Value,
    ) -> Result<T, StoreError> {
        match value {
            Value::ServerError(e) => Err(self.error(op, e.into())),
            value => redis::from_redis_value(value).map_err(|e| self.error(op, e.into())),
        }
    }
}
