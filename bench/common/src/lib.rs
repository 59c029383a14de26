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
