//! Opening one connection to one Redis server, with its driver task spawned so that it
//! writes in batches.
//!
//! redis-rs multiplexes every request over one connection through a driver task: requests
//! queue their commands on a channel, and the driver writes whatever is queued, then
//! flushes. On tokio's multi-threaded runtime a request's send wakes the driver into the
//! worker's LIFO slot, so the driver runs right after each request task and writes one
//! or two commands per `write` (measured: 2.6 commands per Redis read under load). Every
//! syscall is paid twice over, by us and by Redis, and Redis's share is the larger.
//!
//! So we open the stream and spawn the driver ourselves, and let the driver yield once
//! each time it is woken: tokio runs a yielded task only after the worker's other ready
//! tasks (or its next look at I/O), so by then every request that ran meanwhile has queued
//! its command, and one `write` carries them all (12 commands per Redis read; Redis CPU
//! per request halved; +10% requests per second on the counter, +18% on reads). The yield
//! costs a trip through the scheduler (callgrind: 13k instructions per request on a lone
//! connection), so the driver yields only while more than one command is in flight: one
//! request at a time has nothing to batch. On a current-thread runtime the driver already
//! runs after the other tasks, and is spawned as it is.
//!
//! TLS, and TCP options beyond `TCP_NODELAY`, stay with redis-rs's own connection setup
//! (without the batching): it owns that code, and redis-rs offers no way to hand over a
//! stream it opened.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError,
};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;

/// One open connection. Clones share it; the driver stops when the last clone is dropped.
#[derive(Clone)]
pub(super) struct Node {
    pub(super) connection: MultiplexedConnection,
    /// Set when we spawned the driver (redis-rs keeps its own handle otherwise).
    _driver: Option<Arc<AbortOnDrop>>,
    /// Commands sent on this connection and not yet answered (or given up on); see
    /// [`InFlight`].
    pub(super) in_flight: Arc<AtomicUsize>,
}

/// Counts one command as in flight on a connection until dropped (answered, failed or
/// cancelled by a timeout). It borrows the count rather than sharing it: two atomic
/// operations per command, not four.
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub(super) fn begin(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to the server `info` names, within `timeout` (connecting and the handshake:
/// AUTH, SELECT, HELLO as `info` asks).
pub(super) async fn open(
    info: &ConnectionInfo,
    config: &AsyncConnectionConfig,
    timeout: Duration,
) -> Result<Node, RedisError> {
    // The store is polled by tokio (its timers need it), but a clear error beats a panic.
    let Ok(runtime) = Handle::try_current() else {
        return Err(RedisError::from((
            ErrorKind::Client,
            "the Redis store needs a tokio runtime",
        )));
    };
    let attempt = async {
        match info.addr() {
            ConnectionAddr::Tcp(host, port) if plain_tcp(info.tcp_settings()) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(info.tcp_settings().nodelay())?;
                batched(&runtime, info, stream, config).await
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                batched(&runtime, info, stream, config).await
            }
            _ => {
                let connection = Client::open(info.clone())?
                    .get_multiplexed_async_connection_with_config(config)
                    .await?;
                Ok(Node {
                    connection,
                    _driver: None,
                    in_flight: Arc::default(),
                })
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from((
            ErrorKind::Io,
            "connecting to Redis timed out",
            format!("no connection and handshake within {timeout:?}"),
        ))),
    }
}

/// Whether the TCP settings ask for nothing but (at most) `TCP_NODELAY`, which we can set
/// on a stream we open. `TcpSettings` has no equality, and its linger time no getter, so
/// its debug form is compared with the default's.
fn plain_tcp(settings: &TcpSettings) -> bool {
    let default = TcpSettings::default().set_nodelay(settings.nodelay());
    format!("{settings:?}") == format!("{default:?}")
}

async fn batched<S>(
    runtime: &Handle,
    info: &ConnectionInfo,
    stream: S,
    config: &AsyncConnectionConfig,
) -> Result<Node, RedisError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (connection, driver) =
        MultiplexedConnection::new_with_config(info.redis_settings(), stream, config.clone())
            .await?;
    let in_flight = Arc::<AtomicUsize>::default();
    let task = match runtime.runtime_flavor() {
        RuntimeFlavor::CurrentThread => runtime.spawn(driver),
        _ => runtime.spawn(yielding(driver, in_flight.clone())),
    };
    Ok(Node {
        connection,
        _driver: Some(Arc::new(AbortOnDrop(task))),
        in_flight,
    })
}

/// Polls `driver` only after yielding once per wake-up while several commands are in
/// flight, so that it finds every command queued by the tasks the worker runs in the
/// meantime.
async fn yielding(driver: impl Future<Output = ()>, in_flight: Arc<AtomicUsize>) {
    let mut driver = pin!(driver);
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if !yielded && in_flight.load(Ordering::Relaxed) > 1 {
            yielded = true;
            // `yield_now` registers the task to be woken after the worker's other ready
            // tasks; its first poll is always pending.
            if pin!(tokio::task::yield_now()).poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        yielded = false;
        driver.as_mut().poll(cx)
    })
    .await
}

/// The connection info of one node: its address, with `redis` (credentials, database).
pub(super) fn node_info(
    host: &str,
    port: u16,
    redis: &RedisConnectionInfo,
) -> Result<ConnectionInfo, RedisError> {
    Ok(ConnectionAddr::Tcp(host.to_owned(), port)
        .into_connection_info()?
        .set_redis_settings(redis.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings we cannot apply to a stream we open send the connection through redis-rs.
    #[test]
    fn only_nodelay_counts_as_plain_tcp() {
        assert!(plain_tcp(&TcpSettings::default()));
        assert!(plain_tcp(&TcpSettings::default().set_nodelay(true)));
        assert!(!plain_tcp(
            &TcpSettings::default().set_linger_time(Duration::from_secs(1))
        ));
        #[cfg(target_os = "linux")]
        assert!(!plain_tcp(
            &TcpSettings::default()
                .set_nodelay(true)
                .set_user_timeout(Duration::from_secs(5))
        ));
    }
}
