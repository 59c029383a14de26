//! What every bench server shares: the command line (`--port N`, or `PORT`), the secret,
//! the cookie lifetime, and the routes' bodies.

use std::time::Duration;

/// Cookie max age for every server: one day.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The signing secret every server uses (a benchmark, not a deployment).
pub const SECRET: &str = "bench-secret-bench-secret-bench-secret-bench-secret-bench-secret!";

/// `--name value` from the command line, else the environment variable `env`.
pub fn arg(name: &str, env: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == format!("--{name}") {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(&format!("--{name}=")) {
            return Some(v.to_owned());
        }
    }
    std::env::var(env).ok().filter(|v| !v.is_empty())
}

/// The port to listen on (`--port` or `PORT`, default 3000).
pub fn port() -> u16 {
    arg("port", "PORT")
        .map(|p| p.parse().expect("--port must be a number"))
        .unwrap_or(3000)
}

/// The Redis URL (`--redis` or `REDIS_URL`, default `redis://127.0.0.1:6379`).
pub fn redis_url() -> String {
    arg("redis", "REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// The listen address on loopback.
pub fn addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port()))
}

/// Printed once the server listens; `bench/run` waits for the port instead, so this is
/// for people running a server by hand.
pub fn announce(what: &str) {
    println!("{what} listening on http://{}", addr());
}

/// Whether the command line asks for `--per-core`: one single-threaded runtime per CPU
/// ([`serve_per_core`]) instead of tokio's multi-threaded runtime.
pub fn per_core() -> bool {
    std::env::args().any(|a| a == "--per-core")
}

/// An error from any thread of [`serve_per_core`].
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves the router `make` builds on one current-thread tokio runtime per CPU: the
/// layout actix-web uses (one single-threaded worker per core), for axum. `make` runs
/// once per runtime, inside it, so what it spawns (a Redis connection's driver task)
/// lives on that runtime and a request never wakes a task on another thread. One thread
/// accepts on the port and hands the connections to the runtimes in turn, as actix-web's
/// acceptor does, so each runtime serves an equal share of wrk's connections (with
/// `SO_REUSEPORT` the kernel hashes them, and 32 connections split unevenly).
///
/// Runs until the process is killed; exits the process with status 1 if a runtime cannot
/// start or `make` fails (Redis down).
pub fn serve_per_core<F, Fut>(make: F) -> Result<(), Error>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<axum::Router, Error>>,
{
    let listener = std::net::TcpListener::bind(addr())?;
    let local = listener.local_addr()?;
    let make = std::sync::Arc::new(make);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut runtimes = Vec::with_capacity(cores);
    for core in 0..cores {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        runtimes.push(tx);
        let make = make.clone();
        std::thread::Builder::new()
            .name(format!("runtime-{core}"))
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::from)
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let app = make().await?;
                            axum::serve(Handoff { rx, local }, app).await?;
                            Ok::<_, Error>(())
                        })
                    });
                if let Err(e) = served {
                    eprintln!("runtime {core}: {e}");
                    std::process::exit(1);
                }
            })?;
    }
    announce(&format!("{cores} runtimes, one per core"));
    for (stream, next) in listener.incoming().zip((0..cores).cycle()) {
        match stream.and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            Ok(s) => {
                if runtimes[next].send(s).is_err() {
                    return Err(format!("runtime {next} stopped").into());
                }
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    Ok(())
}

/// The connections the acceptor hands to one runtime, as an axum listener.
struct Handoff {
    rx: tokio::sync::mpsc::UnboundedReceiver<std::net::TcpStream>,
    local: std::net::SocketAddr,
}

impl axum::serve::Listener for Handoff {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some(stream) = self.rx.recv().await else {
                // The acceptor is gone: nothing more will come.
                return std::future::pending().await;
            };
            let peer = stream.peer_addr();
            match (tokio::net::TcpStream::from_std(stream), peer) {
                (Ok(io), Ok(peer)) => return (io, peer),
                (Err(e), _) | (_, Err(e)) => eprintln!("handing off a connection: {e}"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
