//! Private SQL servers for the SQL stores' tests: a PostgreSQL and a MariaDB of the test's
//! own, each in a temporary folder on a free port, created from scratch (`initdb`,
//! `mariadb-install-db`), stopped and deleted when the guard drops.
//!
//! Never the machine's own servers (5432, 3306): a test owns its data and may kill its
//! server. Facts learned on this machine:
//! - PostgreSQL refuses to run as root, so as root the servers run as the `postgres` system
//!   user, in a folder it owns. The binaries are in `/usr/lib/postgresql/VERSION/bin/`,
//!   not on `PATH`.
//! - `mariadb-install-db` and `mariadbd` read the system's configuration (and fail on it)
//!   unless given `--no-defaults` first.
//! - The postmaster is stopped with SIGQUIT (immediate shutdown: it ends its backends
//!   too); after a SIGKILL its backends linger a moment and a restart on the same data
//!   can refuse to start.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, wait_until, Process};

/// The database the servers are created with, which the URLs name.
pub const DATABASE: &str = "tessera";

/// Who runs a server: as root, the `postgres` system user (PostgreSQL refuses root);
/// else the current user.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn is_root() -> bool {
    id(&["-u"]) == Some(0)
}

fn postgres_user() -> Option<RunAs> {
    if !is_root() {
        return None;
    }
    let uid = id(&["-u", "postgres"]).expect(
        "as root, PostgreSQL runs as the `postgres` user, which does not exist: install \
         PostgreSQL (apt-get install postgresql; scripts/test does it)",
    );
    let gid = id(&["-g", "postgres"]).expect("the postgres user's group");
    Some(RunAs { uid, gid })
}

/// The newest `/usr/lib/postgresql/*/bin` with an `initdb`.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no /usr/lib/postgresql/*/bin/initdb: install PostgreSQL (apt-get install \
             postgresql; scripts/test does it)"
        )
    })
}

/// Runs `cmd` to completion; its output, or a panic with its stderr.
fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start it: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// A PostgreSQL server of the test's own, with a database [`DATABASE`], user `postgres`,
/// no password (trust), `fsync` off (the kernel keeps what a killed server wrote; only a
/// machine crash would lose it). `synchronous_commit` stays on: with it off, a commit
/// is reported before its WAL is written, and a killed server loses it.
#[derive(Debug)]
pub struct PostgresServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    run_as: Option<RunAs>,
    process: Option<Process>,
    // Last: deleted once the server has stopped.
    dir: TempDir,
}

impl PostgresServer {
    /// Creates a cluster in a temporary folder and starts it on a free port (tried again
    /// on another port if one is taken meanwhile).
    pub fn start() -> Self {
        let bin = postgres_bin();
        let run_as = postgres_user();
        let dir = tempfile::tempdir().expect("temp dir for PostgreSQL");
        if let Some(user) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
                .expect("give the temp dir to the postgres user");
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .arg("-D")
            .arg(dir.path().join("data"))
            .current_dir(dir.path());
        run(as_user(initdb, run_as), "initdb");
        let mut server = PostgresServer {
            port: 0,
            bin,
            run_as,
            process: None,
            dir,
        };
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match server.spawn(port) {
                Ok(()) => {
                    server.port = port;
                    server.psql_on("postgres", &format!("CREATE DATABASE {DATABASE}"));
                    return server;
                }
                Err(log) => last = log,
            }
        }
        panic!("postgres exited at start-up on five free ports; its last log:\n{last}");
    }

    /// Starts the postmaster on `port`; ready when its `postmaster.pid` says so (the file
    /// is this server's own: a server of another test on the port would not write it).
    fn spawn(&mut self, port: u16) -> Result<(), String> {
        let log_path = self.dir.path().join(format!("postgres-{port}.log"));
        let log = File::create(&log_path).expect("create the postgres log");
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log);
        let child = as_user(cmd, self.run_as)
            .spawn()
            .unwrap_or_else(|e| panic!("start postgres: {e}"));
        let mut process = Process::new(format!("postgres:{port}"), child);
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let ours = process.pid().to_string();
        let mut exited = false;
        wait_until(
            &format!("postgres on port {port}"),
            Duration::from_secs(30),
            || {
                exited = !process.is_running();
                exited
                    || std::fs::read_to_string(&pid_file).is_ok_and(|text| {
                        let lines: Vec<&str> = text.lines().collect();
                        lines.first() == Some(&ours.as_str())
                            && lines.get(7).map(|s| s.trim()) == Some("ready")
                    })
            },
        );
        if exited {
            return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        self.process = Some(process);
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:PORT/tessera`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// Runs SQL with `psql` on [`DATABASE`]; its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on(DATABASE, sql)
    }

    /// Runs SQL with `psql` on `database`.
    pub fn psql_on(&self, database: &str, sql: &str) -> String {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
        ])
        .arg("postgres")
        .args(["-p", &self.port.to_string(), "-d", database, "-c", sql]);
        run(cmd, &format!("psql -c {sql:?}"))
    }

    /// Stops the server at once (immediate shutdown: no checkpoint, every backend ended),
    /// as a crash would; its data stays for [`PostgresServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop_with("QUIT", Duration::from_secs(10));
        }
    }

    /// Starts the server again on its port, on its data (after crash recovery).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(port).unwrap_or_else(|log| {
            panic!("postgres did not restart on port {port}; its log:\n{log}")
        });
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `cmd`, run as `user` when given.
fn as_user(mut cmd: Command, user: Option<RunAs>) -> Command {
    if let Some(user) = user {
        cmd.uid(user.uid).gid(user.gid);
        cmd.env("HOME", "/var/lib/postgresql");
    }
    cmd
}

/// `mariadbd`, which Debian installs in `/usr/sbin` (not on every user's `PATH`).
fn mariadbd() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/mariadbd");
    if sbin.is_file() {
        sbin
    } else {
        PathBuf::from("mariadbd")
    }
}

/// A MariaDB server of the test's own, with a database [`DATABASE`] and user `root`
/// without a password, on 127.0.0.1 and a socket in its folder.
#[derive(Debug)]
pub struct MariaDbServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    process: Option<Process>,
    // Last: deleted once the server has stopped.
    dir: TempDir,
}

impl MariaDbServer {
    /// Creates the data folder and starts the server on a free port (tried again on
    /// another port if one is taken meanwhile).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for MariaDB");
        // Its own temporary folder: servers installed at once in the shared /tmp have
        // been seen to trip over each other's temporary tables.
        std::fs::create_dir(dir.path().join("tmp")).expect("MariaDB's tmp folder");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--tmpdir={}", dir.path().join("tmp").display()))
            .arg(format!("--user={}", current_user()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=8M",
            ])
            .current_dir(dir.path());
        run(
            install,
            "mariadb-install-db (install MariaDB: apt-get install mariadb-server; scripts/test does it)",
        );
        let mut server = MariaDbServer {
            port: 0,
            process: None,
            dir,
        };
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match server.spawn(port) {
                Ok(()) => {
                    server.port = port;
                    server.sql_on("", &format!("CREATE DATABASE {DATABASE}"));
                    return server;
                }
                Err(log) => last = log,
            }
        }
        panic!("mariadbd exited at start-up on five free ports; its last log:\n{last}");
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    /// Starts `mariadbd` on `port`; ready when it answers on its own socket (so it is this
    /// server, not another test's on the port).
    fn spawn(&mut self, port: u16) -> Result<(), String> {
        let log = self.dir.path().join(format!("mariadb-{port}.log"));
        let dir = self.dir.path();
        let child = Command::new(mariadbd())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .arg(format!("--user={}", current_user()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .args([
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-log-file-size=8M",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=300",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start mariadbd: {e} (install MariaDB: apt-get install mariadb-server)")
            });
        let mut process = Process::new(format!("mariadbd:{port}"), child);
        let mut exited = false;
        wait_until(
            &format!("mariadbd on port {port}"),
            Duration::from_secs(30),
            || {
                exited = !process.is_running();
                exited || self.ping()
            },
        );
        if exited {
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        self.process = Some(process);
        Ok(())
    }

    fn ping(&self) -> bool {
        Command::new("mariadb-admin")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "--connect-timeout=2", "ping"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `mysql://root@127.0.0.1:PORT/tessera`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// Runs SQL on [`DATABASE`] with the `mariadb` client; its tab-separated output
    /// without column names.
    pub fn sql(&self, sql: &str) -> String {
        self.sql_on(DATABASE, sql)
    }

    /// Runs SQL on `database` (none when empty).
    pub fn sql_on(&self, database: &str, sql: &str) -> String {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-N", "-B", "-e", sql]);
        if !database.is_empty() {
            cmd.arg(database);
        }
        run(cmd, &format!("mariadb -e {sql:?}"))
    }

    /// SIGKILL the server, as a crash would; its data stays for [`MariaDbServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on its port, on its data (after crash recovery).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(port).unwrap_or_else(|log| {
            panic!("mariadbd did not restart on port {port}; its log:\n{log}")
        });
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The user name `mariadbd --user` needs (as root it must be told `root` explicitly).
fn current_user() -> String {
    if is_root() {
        return "root".to_owned();
    }
    let out = Command::new("id").arg("-un").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "root".to_owned())
}
