//! The demo's sign-in flows as a user runs them with curl, through the real binary over
//! real HTTP, on the default SQLite store and on a real redis-server: `POST /login`,
//! `GET /sessions`, `POST /logout-everywhere`, the idle and absolute timeouts, and
//! `tessera sessions user` / `revoke-user`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{browser, RedisServer, TempDir, TesseraServer};

const PREFIX: &str = "myapp:session:";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tessera"))
}

fn serve(dir: &TempDir, store: &str, extra: &[&str]) -> TesseraServer {
    let mut args = vec!["--store", store, "--secret", "sign-in test secret"];
    args.extend_from_slice(extra);
    TesseraServer::start(bin(), dir.path(), &args, &[])
}

fn sqlite(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("sessions.db").display())
}

/// `tessera sessions ARGS --store STORE`: stdout, or a panic with stderr.
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

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(server: &TesseraServer) -> Self {
        Client {
            http: browser(),
            url: server.url(),
        }
    }

    async fn log_in(&self, user: &str, remember: bool) -> reqwest::Response {
        let mut form = vec![("user", user)];
        if remember {
            form.push(("remember", "on"));
        }
        self.http
            .post(format!("{}/login", self.url))
            .header("user-agent", format!("test agent of {user}"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let reply = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (reply.status().as_u16(), reply.text().await.unwrap())
    }

    async fn post(&self, path: &str) -> (u16, String) {
        let reply = self
            .http
            .post(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (reply.status().as_u16(), reply.text().await.unwrap())
    }

    async fn sessions(&self) -> Vec<Value> {
        let (status, body) = self.get("/sessions").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn set_cookie(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("connect.sid="))
        .expect("a session cookie")
}

/// The sign-in flow on one store: two browsers of one user, a listing without IDs, the
/// CLI's view with IDs, "sign out everywhere", and `revoke-user`.
async fn sign_in_flow(store: &str, dir: &TempDir) {
    let server = serve(dir, store, &[]);
    let (laptop, phone, other) = (
        Client::new(&server),
        Client::new(&server),
        Client::new(&server),
    );
    assert_eq!(laptop.get("/sessions").await.0, 401, "nobody logged in");
    let bad = laptop
        .http
        .post(format!("{}/login", laptop.url))
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let reply = laptop.log_in("alice", false).await;
    let cookie = set_cookie(&reply);
    assert!(
        !cookie.contains("Expires="),
        "a browser-session cookie: {cookie}"
    );
    assert_eq!(reply.text().await.unwrap(), "Logged in as alice.");
    let reply = phone.log_in("alice", true).await;
    let cookie = set_cookie(&reply);
    assert!(
        cookie.contains("Expires="),
        "remember me persists: {cookie}"
    );
    other.log_in("bob", false).await;

    let listed = laptop.sessions().await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        listed.iter().filter(|s| s["current"] == true).count(),
        1,
        "{listed:?}"
    );
    assert!(listed
        .iter()
        .all(|s| s["device"] == "test agent of alice" && s["created"].is_string()));
    // An operator sees the IDs; the user's listing never holds them.
    let ids = sessions_cli(store, &["user", "alice"]);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let shown = serde_json::to_string(&listed).unwrap();
    for id in &ids {
        assert!(!shown.contains(id), "the listing shows no session ID");
        assert!(!server.log().contains(id), "no session ID in the log");
    }
    // The counter keeps working for a logged-in user.
    assert!(phone.get("/").await.1.starts_with("Welcome"));

    let (status, body) = phone.post("/logout-everywhere").await;
    assert_eq!((status, body.as_str()), (200, "Signed out of 2 sessions."));
    assert_eq!(
        laptop.get("/sessions").await.0,
        401,
        "signed out on the laptop"
    );
    assert_eq!(phone.get("/sessions").await.0, 401, "and on the phone");
    assert_eq!(other.sessions().await.len(), 1, "bob stays");
    assert_eq!(sessions_cli(store, &["user", "alice"]), "");

    laptop.log_in("alice", false).await;
    phone.log_in("alice", false).await;
    assert_eq!(
        sessions_cli(store, &["revoke-user", "alice"]),
        "revoked 2 sessions of alice"
    );
    assert_eq!(laptop.get("/sessions").await.0, 401);
    // The article's routes are unchanged.
    assert_eq!(laptop.get("/logout").await.1, "Logged out successfully!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_out_everywhere_on_sqlite() {
    let dir = TempDir::new().unwrap();
    sign_in_flow(&sqlite(&dir), &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_out_everywhere_on_redis() {
    let redis = RedisServer::start();
    let dir = TempDir::new().unwrap();
    sign_in_flow(&redis.url(), &dir).await;
    // The index keys never sit under the session prefix.
    let server = serve(&dir, &redis.url(), &[]);
    let client = Client::new(&server);
    client.log_in("carol", false).await;
    let under_prefix = redis.cli(&["KEYS", &format!("{PREFIX}*")]);
    assert!(!under_prefix.is_empty() && !under_prefix.contains("tessera-index"));
    assert_eq!(redis.cli(&["ZCARD", "tessera-index:user:carol"]), "1");
    // Bob's session from the flow and Carol's: the index keys are not counted.
    assert_eq!(sessions_cli(&redis.url(), &["count"]), "2");
}

/// `--idle-timeout`: a session left alone that long is gone; one in use lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_ends_an_unused_session_only() {
    let dir = TempDir::new().unwrap();
    let server = serve(&dir, &sqlite(&dir), &["--idle-timeout", "2"]);
    let (busy, idle) = (Client::new(&server), Client::new(&server));
    busy.log_in("dana", false).await;
    idle.log_in("erin", false).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        assert_eq!(busy.get("/sessions").await.0, 200, "in use: never idle");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(idle.get("/sessions").await.0, 401, "idle for 4 s > 2 s");
}

/// `--absolute-timeout`: a session ends that long after its login, however active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_absolute_timeout_ends_a_busy_session() {
    let dir = TempDir::new().unwrap();
    let server = serve(&dir, &sqlite(&dir), &["--absolute-timeout", "3"]);
    let user = Client::new(&server);
    let started = Instant::now();
    user.log_in("frank", false).await;
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        let sent = started.elapsed();
        statuses.push((sent, user.get("/sessions").await.0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let early = statuses
        .iter()
        .filter(|(at, _)| *at < Duration::from_secs(2));
    assert!(
        early.clone().count() > 0 && early.clone().all(|(_, s)| *s == 200),
        "{statuses:?}"
    );
    let late = statuses
        .iter()
        .filter(|(at, _)| *at > Duration::from_millis(3200));
    assert!(
        late.clone().count() > 0 && late.clone().all(|(_, s)| *s == 401),
        "{statuses:?}"
    );
}

/// Both timeouts at once: the idle one ends the session left alone, the absolute one the
/// session in steady use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_timeouts_together() {
    let dir = TempDir::new().unwrap();
    let server = serve(
        &dir,
        &sqlite(&dir),
        &["--idle-timeout", "2", "--absolute-timeout", "5"],
    );
    let (busy, idle) = (Client::new(&server), Client::new(&server));
    let started = Instant::now();
    busy.log_in("gina", false).await;
    idle.log_in("hugo", false).await;
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_millis(6500) {
        let at = started.elapsed();
        seen.push((at, busy.get("/sessions").await.0));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(idle.get("/sessions").await.0, 401, "idle past 2 s");
    let before: Vec<_> = seen
        .iter()
        .filter(|(at, _)| *at < Duration::from_secs(4))
        .collect();
    let after: Vec<_> = seen
        .iter()
        .filter(|(at, _)| *at > Duration::from_millis(5300))
        .collect();
    assert!(
        !before.is_empty() && before.iter().all(|(_, s)| *s == 200),
        "{seen:?}"
    );
    assert!(
        !after.is_empty() && after.iter().all(|(_, s)| *s == 401),
        "{seen:?}"
    );
}
