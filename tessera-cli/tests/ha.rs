//! High availability, proven with real processes: `tessera serve` on Redis Sentinel and
//! Redis Cluster while masters are SIGKILLed, and two instances behind a real nginx.

use std::path::Path;
use std::time::{Duration, Instant};

use test_support::topology::{wait_replica_caught_up, Cluster, Nginx, SentinelSetup};
use test_support::{browser, RedisServer, TempDir, TesseraServer};

const SECRET: &str = "ha-secret";
const PREFIX: &str = "myapp:session:";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tessera"))
}

fn serve(dir: &TempDir, store: &str) -> TesseraServer {
    TesseraServer::start(
        bin(),
        dir.path(),
        &[
            "--store",
            store,
            "--secret",
            SECRET,
            "--store-timeout-ms",
            "1500",
        ],
        &[],
    )
}

/// `tessera sessions count` on `store`: its output, or a panic with its error output.
fn sessions_count(store: &str) -> String {
    let out = std::process::Command::new(bin())
        .args(["sessions", "count", "--store", store, "--prefix", PREFIX])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn views_in(body: &str) -> Option<u64> {
    if body.starts_with("Welcome") {
        return Some(1);
    }
    body.strip_prefix("You have visited this page ")?
        .strip_suffix(" times.")?
        .parse()
        .ok()
}

fn log_tail(server: &TesseraServer) -> String {
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// What a client saw through a failover.
struct Outage {
    /// The first 200's body.
    body: String,
    /// How many 503s came before it.
    unavailable: usize,
    /// The slowest 503.
    slowest: Duration,
}

/// GETs `/` until it answers 200 or `within` runs out; every other answer must be a 503
/// (never a hang past the client timeout, never a 500), and a quick one: the layer's
/// store timeout is 1.5 s, and 8 s leaves room for a machine shared with benchmarks.
async fn visit_through_failover(
    server: &TesseraServer,
    client: &reqwest::Client,
    url: &str,
    within: Duration,
    diagnose: &dyn Fn() -> String,
) -> Outage {
    let start = Instant::now();
    let mut unavailable = 0;
    let mut slowest = Duration::ZERO;
    loop {
        let sent = Instant::now();
        match client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => {
                return Outage {
                    body: r.text().await.unwrap(),
                    unavailable,
                    slowest,
                }
            }
            Ok(r) => {
                assert_eq!(r.status(), 503, "during a failover only 503 is acceptable");
                unavailable += 1;
                slowest = slowest.max(sent.elapsed());
                assert!(
                    sent.elapsed() < Duration::from_secs(8),
                    "a 503 must come fast, not after {:?}; the server's log ends with:\n{}",
                    sent.elapsed(),
                    log_tail(server)
                );
            }
            Err(e) => panic!(
                "request failed instead of answering 503: {e}; the server's log ends with:\n{}",
                log_tail(server)
            ),
        }
        assert!(
            start.elapsed() < within,
            "no recovery within {within:?} ({unavailable} × 503); the server's log ends with:\n{}\n{}",
            log_tail(server),
            diagnose()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls a sentinel until it names another master than `old`; answers how long it took.
fn watch_promotion(sentinel: u16, old: u16) -> std::thread::JoinHandle<Duration> {
    let start = Instant::now();
    std::thread::spawn(move || loop {
        let answer = test_support::redis_cli(
            sentinel,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"],
        );
        let port = answer
            .lines()
            .nth(1)
            .and_then(|p| p.trim().parse::<u16>().ok());
        if port.is_some_and(|p| p != old) || start.elapsed() > Duration::from_secs(90) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_the_session() {
    let mut setup = SentinelSetup::start();
    let dir = TempDir::new().unwrap();
    let server = serve(&dir, &setup.url());
    let client = browser();
    let url = format!("{}/", server.url());
    for expected in 1..=2 {
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(views_in(&body), Some(expected), "{body}");
    }
    let (old_master, replica) = (setup.master.port, setup.replica.port);
    assert_eq!(setup.master_port(), old_master);
    wait_replica_caught_up(old_master, replica);
    setup.master.kill();
    let killed = Instant::now();
    let promoted = watch_promotion(setup.sentinel_ports[0], old_master);

    let Outage {
        body,
        unavailable,
        slowest,
    } = visit_through_failover(&server, &client, &url, Duration::from_secs(60), &|| {
        setup.sentinel_logs()
    })
    .await;
    let recovered = killed.elapsed();
    let promoted = promoted.join().unwrap();
    assert_eq!(
        body, "You have visited this page 3 times.",
        "the session survived the failover"
    );
    setup.wait_failover(old_master);
    assert_eq!(setup.master_port(), replica);
    assert_eq!(
        setup
            .replica
            .cli(&["--scan", "--pattern", &format!("{PREFIX}*")])
            .lines()
            .count(),
        1,
        "the session lives on the promoted replica"
    );
    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "You have visited this page 4 times.");
    eprintln!(
        "sentinel failover: the sentinels named the new master {promoted:?} after the kill; \
         {unavailable} requests answered 503 (the slowest in {slowest:?}); the app served again \
         {recovered:?} after the kill",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spreads_sessions_and_survives_a_master_failover() {
    let mut cluster = Cluster::start(3, 1);
    let dir = TempDir::new().unwrap();
    let server = serve(&dir, &cluster.url());
    let url = format!("{}/", server.url());
    let browsers: Vec<reqwest::Client> = (0..30).map(|_| browser()).collect();
    for round in 1..=2u64 {
        for b in &browsers {
            let body = b.get(&url).send().await.unwrap().text().await.unwrap();
            assert_eq!(views_in(&body), Some(round), "{body}");
        }
    }
    let masters = cluster.master_ports(cluster.nodes[0].port);
    assert_eq!(masters.len(), 3);
    for &port in &masters {
        let keys = test_support::redis_cli(port, &["DBSIZE"]);
        assert!(
            keys.parse::<u64>().unwrap() > 0,
            "master {port} holds no session"
        );
    }
    assert_eq!(sessions_count(&cluster.url()), "30");

    // Kill one master once its replica has everything; the cluster promotes the replica.
    let victim = masters[0];
    let replica = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|&p| {
            test_support::redis_cli(p, &["INFO", "replication"])
                .contains(&format!("master_port:{victim}"))
        })
        .expect("the victim has a replica");
    wait_replica_caught_up(victim, replica);
    cluster.node(victim).kill();
    let killed = Instant::now();
    let (mut unavailable, mut slowest) = (0, Duration::ZERO);
    for b in &browsers {
        let outage =
            visit_through_failover(&server, b, &url, Duration::from_secs(60), &String::new).await;
        assert_eq!(views_in(&outage.body), Some(3), "{}", outage.body);
        unavailable += outage.unavailable;
        slowest = slowest.max(outage.slowest);
    }
    eprintln!(
        "cluster failover: {unavailable} requests answered 503 (the slowest in {slowest:?}); \
         all 30 sessions served again {:?} after the kill",
        killed.elapsed()
    );
    cluster.wait_ok(&[victim]);
    let live = cluster
        .nodes
        .iter()
        .find(|n| n.port != victim)
        .unwrap()
        .port;
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.port != victim)
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    assert_eq!(
        sessions_count(&format!("redis-cluster://{}", seeds.join(","))),
        "30"
    );
    assert!(
        cluster.master_ports(live).contains(&replica),
        "the replica was promoted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_nginx_share_sessions() {
    let redis = RedisServer::start();
    let dir = TempDir::new().unwrap();
    let a = serve(&dir, &redis.url());
    let mut b = serve(&dir, &redis.url());
    let mut nginx = Nginx::start(&[a.addr, b.addr]);
    let client = browser();
    let url = format!("{}/", nginx.url());
    for expected in 1..=20u64 {
        if expected == 11 {
            // One instance goes away mid-way; nginx sends everything to the other.
            assert!(b.process.terminate(Duration::from_secs(10)));
        }
        let r = client.get(&url).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{body}\n{}", nginx.error_log());
        assert_eq!(views_in(&body), Some(expected), "{body}");
    }
    nginx.stop();
}

/// `tessera sessions …` on `store` with `args`: its output, or a panic with its errors.
fn sessions_cli(store: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .arg("sessions")
        .args(args)
        .args(["--store", store, "--prefix", PREFIX])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Logs a fresh client in as `user` through the demo's form route.
async fn log_in(url: &str, user: &str) -> reqwest::Client {
    let client = browser();
    let reply = client
        .post(format!("{url}/login"))
        .form(&[("user", user)])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    client
}

/// GETs `path` until it answers something other than 503 (the failover's window).
async fn get_through_failover(client: &reqwest::Client, url: &str) -> (u16, String) {
    let start = Instant::now();
    loop {
        let reply = client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(reply) = reply {
            let status = reply.status().as_u16();
            if status != 503 {
                return (status, reply.text().await.unwrap());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no answer but 503 for 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// On a Cluster the index key and the session keys live in different slots, so on
/// different masters: the master holding a user's index key is killed, and once its
/// replica is promoted the listing is still right (the replica had every entry), through
/// the demo and through `tessera sessions user`, and revoking the user ends every session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lists_a_users_sessions_right_after_a_master_failover() {
    let mut cluster = Cluster::start(3, 1);
    let dir = TempDir::new().unwrap();
    let server = serve(&dir, &cluster.url());
    let url = server.url();
    let mut alice = Vec::new();
    for _ in 0..6 {
        alice.push(log_in(&url, "alice").await);
    }
    let bob = log_in(&url, "bob").await;
    let listed = |body: &str| serde_json::from_str::<Vec<serde_json::Value>>(body).unwrap();
    let (_, body) = get_through_failover(&alice[0], &format!("{url}/sessions")).await;
    assert_eq!(listed(&body).len(), 6, "{body}");

    // The index key's master: the one that answers for it rather than redirecting.
    let key = "tessera-index:user:alice";
    let masters = cluster.master_ports(cluster.nodes[0].port);
    let owner = *masters
        .iter()
        .find(|&&port| test_support::redis_cli(port, &["ZCARD", key]) == "6")
        .expect("a master holds alice's index with six entries");
    // The index never sits under the session prefix.
    for &port in &masters {
        let under_prefix = test_support::redis_cli(port, &["KEYS", &format!("{PREFIX}*")]);
        assert!(!under_prefix.contains("tessera-index"), "{under_prefix}");
    }
    let replica = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|&p| {
            test_support::redis_cli(p, &["INFO", "replication"])
                .contains(&format!("master_port:{owner}"))
        })
        .expect("the owner has a replica");
    wait_replica_caught_up(owner, replica);
    cluster.node(owner).kill();
    cluster.wait_ok(&[owner]);

    let (status, body) = get_through_failover(&alice[3], &format!("{url}/sessions")).await;
    assert_eq!(status, 200, "{body}\n{}", log_tail(&server));
    assert_eq!(listed(&body).len(), 6, "{body}");
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.port != owner)
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let store = format!("redis-cluster://{}", seeds.join(","));
    assert_eq!(sessions_cli(&store, &["user", "alice"]).lines().count(), 6);
    assert_eq!(
        sessions_cli(&store, &["revoke-user", "alice"]),
        "revoked 6 sessions of alice"
    );
    for client in &alice {
        let (status, _) = get_through_failover(client, &format!("{url}/sessions")).await;
        assert_eq!(status, 401, "signed out everywhere");
    }
    let (status, body) = get_through_failover(&bob, &format!("{url}/sessions")).await;
    assert_eq!((status, listed(&body).len()), (200, 1), "bob stays");
}
