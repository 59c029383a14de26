//! Real servers for Tessera's tests: `redis-server` processes on free ports and the
//! `tessera` binary, each waited for until ready and killed when its guard drops (also
//! when a test fails and unwinds).
//!
//! Nothing here is mocked: a test that needs Redis gets its own `redis-server`; a missing
//! `redis-server` binary fails the test with a message saying how to install it, never a
//! silent skip.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// A free TCP port on 127.0.0.1 whose port + 10000 is free too (a Redis Cluster node
/// listens there for its bus).
pub fn free_port() -> u16 {
    loop {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        if port < 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Waits until `check` answers true, or panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs `redis-cli -p PORT ARGS…` and returns its stdout, trimmed.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli (install Redis: apt-get install redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    name: String,
}

impl Process {
    /// Wraps a spawned child.
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        Process {
            child: Some(child),
            name: name.into(),
        }
    }

    /// The OS process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL now and wait for the process to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait up to `timeout` for a clean exit; SIGKILL after that. Returns
    /// whether it exited by itself with status 0.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        self.stop_with("TERM", timeout)
    }

    /// Sends `signal` (`TERM`, `QUIT`, `INT`, …), then waits up to `timeout` for the
    /// process to exit; SIGKILL after that. Returns whether it exited by itself with status 0.
    pub fn stop_with(&mut self, signal: &str, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    eprintln!(
                        "{} did not exit within {timeout:?} of SIG{signal}; killed",
                        self.name
                    );
                    return false;
                }
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` of the test's own, on a free port, persisting nothing.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory (config files, logs).
    pub dir: TempDir,
    process: Process,
}

impl RedisServer {
    /// Starts a standalone server and waits until it answers on its port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments (`["--replicaof", "127.0.0.1", "6380"]`, …).
    ///
    /// A free port can be taken by another process between choosing it and the server
    /// binding it (tests run in parallel); a server that exits at start-up is tried again
    /// on another port.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::spawn_on(free_port(), extra) {
                Ok(server) => return server,
                Err(log) => last = log,
            }
        }
        panic!("redis-server exited at start-up on five free ports; its last log:\n{last}");
    }

    /// Starts a server on a given port (to restart one where it was).
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        Self::spawn_on(port, extra).unwrap_or_else(|log| {
            panic!("redis-server on port {port} exited at start-up; its log:\n{log}")
        })
    }

    /// Starts a server and waits until it answers on its port; its log when it exits first.
    fn spawn_on(port: u16, extra: &[&str]) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let log = dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "start redis-server: it must be on PATH (the README's test command installs it)",
            );
        let mut process = Process::new(format!("redis-server:{port}"), child);
        // Ready when the server on the port is this one (by process ID): a PONG could come
        // from another test's server that took the port first.
        let ours = format!("process_id:{}", process.pid());
        let mut exited = false;
        wait_until(
            &format!("redis-server on port {port}"),
            Duration::from_secs(10),
            || {
                exited = !process.is_running();
                exited
                    || redis_cli(port, &["INFO", "server"])
                        .lines()
                        .any(|line| line.trim() == ours)
            },
        );
        if exited {
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        Ok(RedisServer { port, dir, process })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs a command with redis-cli against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// SIGKILL the server (its data is gone: it persists nothing).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The underlying process.
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// A running `tessera` binary (`tessera serve …`), its address read from its log.
#[derive(Debug)]
pub struct TesseraServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process.
    pub process: Process,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl TesseraServer {
    /// Starts `bin serve --port 0 ARGS…` in `cwd` with `env`, and waits for its
    /// "listening on http://…" line.
    pub fn start(bin: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(["--port", "0"])
            .args(args)
            .current_dir(cwd);
        clean_env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
                let mut log = log_writer.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let process = Process::new("tessera", child);
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr.parse().expect("tessera logged a socket address"),
            Err(_) => panic!(
                "tessera did not start listening; its log:\n{}",
                log.lock().unwrap()
            ),
        };
        TesseraServer { addr, process, log }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A reqwest client with its own cookie jar, like one browser.
/// The article's text for a first visit of the counter.
pub const WELCOME: &str =
    "Welcome to the session demo! Visit again to see the view count increase.";

/// The view count a body of the article's counter reports (the demo's `/`, and the Node
/// peer's).
pub fn counter_views(body: &str) -> u64 {
    if body == WELCOME {
        return 1;
    }
    body.strip_prefix("You have visited this page ")
        .and_then(|rest| rest.strip_suffix(" times."))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a counter page: {body:?}"))
}

/// Clears the environment variables `tessera` reads (so a developer's own settings do not
/// leak into a test) and logs at `info`.
pub fn clean_env(cmd: &mut Command) {
    for var in [
        "PORT",
        "SESSION_STORE",
        "SESSION_SECRET",
        "SESSION_SECRETS",
        "SESSION_PREFIX",
        "SESSION_TTL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build an HTTP client")
}

/// The workspace root (for `interop/`, `bench/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The packages `interop/app.js` loads; a missing one means `npm ci` has not run.
const INTEROP_PACKAGES: &[&str] = &[
    "express",
    "express-session",
    "connect-redis",
    "connect-redis-9",
    "ioredis",
    "redis",
    "connect-pg-simple",
    "express-mysql-session",
];

/// The Node peer: `node app.js` in `interop/` (the article's express-session +
/// connect-redis app), on a free port, its address read from its stdout.
#[derive(Debug)]
pub struct NodeApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process.
    pub process: Process,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl NodeApp {
    /// Starts `node app.js` in `interop/` with `PORT=0` and `env` (`STORE`, `CLIENT`,
    /// `REDIS_URL`, `DATABASE_URL`, `SESSION_SECRET`, …; see the top of `interop/app.js`),
    /// and waits for its
    /// "listening on http://…" line.
    ///
    /// Panics, saying what to do, when `interop/node_modules` is missing (run `npm ci` in
    /// `interop/`) or `node` is not installed: never a silent skip.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = workspace_root().join("interop");
        if let Some(missing) = INTEROP_PACKAGES.iter().find(|p| {
            !dir.join("node_modules")
                .join(p)
                .join("package.json")
                .is_file()
        }) {
            panic!(
                "the Node peer's packages are not installed ({missing} is missing from {}): \
                 run `npm ci` in interop/ (scripts/test does it by itself)",
                dir.join("node_modules").display()
            );
        }
        let mut cmd = Command::new("node");
        cmd.arg("app.js").current_dir(&dir);
        for var in [
            "STORE",
            "CLIENT",
            "REDIS_URL",
            "DATABASE_URL",
            "SESSION_TABLE",
            "SESSION_SCHEMA",
            "CREATE_TABLE",
            "REDIS_HOST",
            "REDIS_PORT",
            "SESSION_SECRET",
            "SESSION_PREFIX",
            "SESSION_TTL",
            "COOKIE_MAX_AGE",
            "COOKIE_NAME",
            "COOKIE_SAME_SITE",
            "HOST",
            "NODE_ENV",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PORT", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start node: {e} (install Node.js 20 or later: the README's test command does)"
                )
            });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(rest.trim().to_owned());
                }
                append_line(&stdout_log, &line);
            }
        });
        let stderr_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                append_line(&stderr_log, &line);
            }
        });
        let mut process = Process::new("node interop/app.js", child);
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr.parse().expect("the Node app printed a socket address"),
            Err(_) => {
                // Stdout closed (it exited) or it never listened: show why.
                let start = Instant::now();
                while process.is_running() && start.elapsed() < Duration::from_secs(2) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the Node app (interop/app.js) did not start listening; its output:\n{}",
                    log.lock().unwrap_or_else(|p| p.into_inner())
                )
            }
        };
        NodeApp { addr, process, log }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything it printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn append_line(log: &std::sync::Mutex<String>, line: &str) {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.push_str(line);
    log.push('\n');
}

pub mod sql;
pub mod topology;

pub use sql::{MariaDbServer, PostgresServer};

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that cannot bind its port says why, from its own log, instead of the
    /// caller waiting out the timeout and reporting only that it never answered.
    #[test]
    fn a_server_that_cannot_start_reports_its_log() {
        // The port is taken the way parallel tests take each other's: by a redis-server,
        // which answers PING too.
        let first = RedisServer::start();
        let port = first.port;
        let panic = std::panic::catch_unwind(|| RedisServer::start_on(port, &[])).unwrap_err();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("exited at start-up"), "{message}");
        assert!(message.contains(&port.to_string()), "{message}");
    }

    #[test]
    fn start_with_answers_ping() {
        let server = RedisServer::start_with(&[]);
        assert_eq!(server.cli(&["PING"]), "PONG");
    }
}
