//! Real Redis topologies and a real load balancer for the high-availability tests:
//! a Sentinel setup (master, replica, three sentinels), a Redis Cluster (masters with
//! replicas, slots assigned by `redis-cli --cluster create`), and nginx in front of app
//! instances. Each waits until it is really ready, and everything is killed on drop.
//!
//! Facts learned the hard way: a fresh replica waits `repl-diskless-sync-delay` (5 s by
//! default) before its first sync, so replicas start with it at 0 and we wait for
//! `master_link_status:up`; sentinels need a writable config file each; a cluster node's
//! bus port is its port + 10000 (hence `free_port` checks that one is free too).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{free_port, redis_cli, wait_until, Process, RedisServer, TempDir};

fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let info = redis_cli(port, &["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// Starts a replica of `master` and waits until its link is up.
pub fn start_replica(master: u16, extra: &[&str]) -> RedisServer {
    let master = master.to_string();
    let mut args = vec![
        "--replicaof",
        "127.0.0.1",
        master.as_str(),
        "--repl-diskless-sync-delay",
        "0",
    ];
    args.extend_from_slice(extra);
    let replica = RedisServer::start_with(&args);
    wait_until("replica link up", Duration::from_secs(20), || {
        info_field(replica.port, "replication", "master_link_status").as_deref() == Some("up")
    });
    replica
}

/// Waits until the replica on `replica` has every write its master has acknowledged.
pub fn wait_replica_caught_up(master: u16, replica: u16) {
    wait_until("replica caught up", Duration::from_secs(20), || {
        let m = info_field(master, "replication", "master_repl_offset");
        let r = info_field(replica, "replication", "master_repl_offset");
        m.is_some() && m == r
    });
}

/// A master, one replica and three sentinels monitoring it as `mymaster`.
#[derive(Debug)]
pub struct SentinelSetup {
    /// The initial master.
    pub master: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    /// The sentinels' ports.
    pub sentinel_ports: Vec<u16>,
    sentinels: Vec<Process>,
    /// Sentinel configs and logs.
    dir: TempDir,
}

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "mymaster";

impl SentinelSetup {
    /// Starts the whole setup and waits until the sentinels know the master, the replica
    /// and each other. Failure detection is tuned short (`down-after-milliseconds` 1000).
    pub fn start() -> Self {
        let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
        let replica = start_replica(master.port, &[]);
        let dir = TempDir::new().expect("temp dir for sentinels");
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for n in 0..3 {
            let port = free_port();
            let conf: PathBuf = dir.path().join(format!("sentinel-{n}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n\
                     logfile {dir}/sentinel-{n}.log\n",
                    dir = dir.path().display(),
                    master = master.port
                ),
            )
            .expect("write sentinel config");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server --sentinel");
            sentinels.push(Process::new(format!("sentinel:{port}"), child));
            sentinel_ports.push(port);
        }
        for &port in &sentinel_ports {
            wait_until(
                "sentinel knows master, replica and peers",
                Duration::from_secs(30),
                || {
                    let replicas = redis_cli(port, &["SENTINEL", "REPLICAS", MASTER_NAME]);
                    let peers = redis_cli(port, &["SENTINEL", "SENTINELS", MASTER_NAME]);
                    replicas.contains(&replica.port.to_string())
                        && peers.matches("127.0.0.1").count() >= 2
                },
            );
        }
        SentinelSetup {
            master,
            replica,
            sentinel_ports,
            sentinels,
            dir,
        }
    }

    /// The port the sentinels currently name as master (the first live sentinel's answer:
    /// one may have been killed with [`kill_sentinel`](Self::kill_sentinel)).
    pub fn master_port(&self) -> u16 {
        self.sentinel_ports
            .iter()
            .find_map(|&port| {
                redis_cli(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
                    .lines()
                    .nth(1)
                    .and_then(|p| p.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// `redis-sentinel://127.0.0.1:A,127.0.0.1:B,127.0.0.1:C/mymaster`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// Waits until the sentinels have promoted another server than `old_master`.
    pub fn wait_failover(&self, old_master: u16) {
        wait_until("sentinel failover", Duration::from_secs(60), || {
            let now = self.master_port();
            now != 0
                && now != old_master
                && info_field(now, "replication", "role").as_deref() == Some("master")
        });
    }

    /// The end of each sentinel's log (for a failure message: why no failover happened,
    /// e.g. `+tilt` on a starved machine or `-failover-abort-…`).
    pub fn sentinel_logs(&self) -> String {
        (0..self.sentinel_ports.len())
            .map(|n| {
                let log =
                    std::fs::read_to_string(self.dir.path().join(format!("sentinel-{n}.log")))
                        .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                format!(
                    "--- sentinel {} ---\n{}\n",
                    self.sentinel_ports[n],
                    lines[lines.len().saturating_sub(25)..].join("\n")
                )
            })
            .collect()
    }

    /// Kills one sentinel (to show the others still answer).
    pub fn kill_sentinel(&mut self, n: usize) {
        self.sentinels[n].kill();
    }
}

/// A Redis Cluster: `masters` masters with `replicas` replicas each, on free ports.
#[derive(Debug)]
pub struct Cluster {
    /// Every node, masters first as created.
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts the nodes, creates the cluster with `redis-cli --cluster create`, and waits
    /// until every node reports `cluster_state:ok` and every replica is linked.
    pub fn start(masters: usize, replicas: usize) -> Self {
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--repl-diskless-sync-delay",
                    "0",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        cluster.wait_ok(&[]);
        for node in &cluster.nodes {
            wait_until("cluster roles settled", Duration::from_secs(30), || {
                let nodes = redis_cli(node.port, &["CLUSTER", "NODES"]);
                let replicas_seen = nodes
                    .lines()
                    .filter(|l| {
                        l.split_whitespace()
                            .nth(2)
                            .is_some_and(|f| f.split(',').any(|f| f == "slave"))
                    })
                    .count();
                replicas_seen == masters * replicas
                    && cluster.master_ports(node.port).len() == masters
            });
        }
        cluster
    }

    /// Waits until every live node (not in `dead`) says `cluster_state:ok`, knows all
    /// slots, and has its replicas linked.
    pub fn wait_ok(&self, dead: &[u16]) {
        for node in self.nodes.iter().filter(|n| !dead.contains(&n.port)) {
            wait_until("cluster_state:ok", Duration::from_secs(60), || {
                let info = redis_cli(node.port, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            // A replica must be linked to its master, unless it is being promoted in
            // place of a dead one (then its role turns to master).
            wait_until(
                "cluster replica linked or promoted",
                Duration::from_secs(60),
                || {
                    info_field(node.port, "replication", "role").as_deref() == Some("master")
                        || info_field(node.port, "replication", "master_link_status").as_deref()
                            == Some("up")
                },
            );
        }
    }

    /// Ports of the nodes that are masters now (asked of a live node).
    pub fn master_ports(&self, ask: u16) -> Vec<u16> {
        redis_cli(ask, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                let flags = fields.get(2)?;
                // A master that serves slots: a fresh replica shows as a slot-less master
                // until the cluster's gossip has settled.
                let serving = flags.split(',').any(|f| f == "master")
                    && !flags.contains("fail")
                    && fields.len() > 8;
                serving.then(|| fields[1])
            })
            .filter_map(|addr| addr.split('@').next()?.rsplit(':').next()?.parse().ok())
            .collect()
    }

    /// `redis-cluster://127.0.0.1:A,127.0.0.1:B,…` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    /// The node with this port.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }
}

/// nginx, round robin over `upstreams`, on a free port of 127.0.0.1. It runs as a single
/// process (`master_process off`): a SIGKILL on drop would otherwise leave its worker
/// behind, still listening.
#[derive(Debug)]
pub struct Nginx {
    /// Where it listens.
    pub port: u16,
    process: Process,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx in the foreground with its own prefix and config in a temp dir. A
    /// failed upstream is skipped for the request (`proxy_next_upstream error timeout`).
    pub fn start(upstreams: &[SocketAddr]) -> Self {
        let bin = ["nginx", "/usr/sbin/nginx"]
            .into_iter()
            .find(|b| Command::new(b).arg("-v").output().is_ok())
            .expect("nginx is not installed: the README's test command installs it (apt-get install nginx)");
        let dir = TempDir::new().expect("temp dir for nginx");
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        let conf = format!(
            "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream app {{\n{servers}  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://app;\n\
                 proxy_next_upstream error timeout http_502;\n      proxy_connect_timeout 1s;\n\
                 proxy_set_header Host $host;\n      proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}\n",
            d = dir.path().display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let process = Process::new("nginx", child);
        let nginx = Nginx { port, process, dir };
        wait_until("nginx listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        nginx
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Stops nginx.
    pub fn stop(&mut self) {
        self.process.kill();
    }
}
