//! The real `tessera` binary on a real Redis: the demo flow with the exact keys, values and
//! TTLs connect-redis would leave, several instances sharing sessions, restarts of the app
//! and of Redis, and `tessera sessions …` (on Redis and on the memory store).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::SET_COOKIE;
use serde_json::{json, Value};
use test_support::{browser, RedisServer, TempDir, TesseraServer};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const SECRET: &str = "a test secret";
const PREFIX: &str = "myapp:session:";
const WELCOME: &str = "Welcome to the session demo! Visit again to see the view count increase.";

fn serve(redis_url: &str, cwd: &Path) -> TesseraServer {
    TesseraServer::start(
        Path::new(BIN),
        cwd,
        &["--store", redis_url, "--secret", SECRET],
        &[],
    )
}

/// GET `path`; the status, the body, and the session ID of a Set-Cookie, if any.
async fn visit(
    client: &reqwest::Client,
    server: &TesseraServer,
    path: &str,
) -> (u16, String, Option<String>) {
    let resp = client
        .get(format!("{}{path}", server.url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("connect.sid=s%3A"))
        .and_then(|v| v.split('.').next())
        .map(str::to_owned);
    (status, resp.text().await.unwrap(), id)
}

fn stored(redis: &RedisServer, id: &str) -> Value {
    let raw = redis.cli(&["GET", &format!("{PREFIX}{id}")]);
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{PREFIX}{id} holds {raw:?}: {e}"))
}

fn ttl(redis: &RedisServer, id: &str) -> i64 {
    redis
        .cli(&["TTL", &format!("{PREFIX}{id}")])
        .parse()
        .unwrap()
}

/// Runs `tessera ARGS…` with `stdin`; success, stdout, stderr.
fn tessera(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("SESSION_STORE")
        .env_remove("SESSION_PREFIX")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_flow_on_redis_leaves_what_connect_redis_leaves() {
    let redis = RedisServer::start();
    let dir = TempDir::new().unwrap();
    let app = serve(&redis.url(), dir.path());
    let client = browser();

    let (status, body, id) = visit(&client, &app, "/").await;
    assert_eq!((status, body.as_str()), (200, WELCOME));
    let id = id.expect("a new, modified session gets a cookie");
    assert_eq!(id.len(), 32);
    let value = stored(&redis, &id);
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["cookie", "views"]);
    let cookie_keys: Vec<&String> = value["cookie"].as_object().unwrap().keys().collect();
    assert_eq!(
        cookie_keys,
        [
            "originalMaxAge",
            "expires",
            "secure",
            "httpOnly",
            "path",
            "sameSite"
        ]
    );
    assert_eq!(value["cookie"]["sameSite"], json!("lax"));
    assert_eq!(value["cookie"]["originalMaxAge"], json!(86_400_000));
    assert_eq!(value["cookie"]["secure"], json!(false));
    assert_eq!(value["cookie"]["httpOnly"], json!(true));
    assert_eq!(value["cookie"]["path"], json!("/"));
    let expires = value["cookie"]["expires"].as_str().unwrap();
    assert!(
        expires.len() == 24 && expires.ends_with('Z'),
        "Date#toISOString: {expires}"
    );
    assert_eq!(value["views"], json!(1));
    let t = ttl(&redis, &id);
    assert!(
        (86_390..=86_400).contains(&t),
        "TTL after the first visit: {t}"
    );

    let (_, body, _) = visit(&client, &app, "/").await;
    assert_eq!(body, "You have visited this page 2 times.");
    assert_eq!(stored(&redis, &id)["views"], json!(2));
    let t = ttl(&redis, &id);
    assert!(
        (86_390..=86_400).contains(&t),
        "TTL after the second visit: {t}"
    );

    let (_, body, _) = visit(&client, &app, "/").await;
    assert_eq!(body, "You have visited this page 3 times.");
    assert_eq!(redis.cli(&["DBSIZE"]), "1", "one key per session");

    let (status, body, _) = visit(&client, &app, "/logout").await;
    assert_eq!((status, body.as_str()), (200, "Logged out successfully!"));
    assert_eq!(redis.cli(&["EXISTS", &format!("{PREFIX}{id}")]), "0");
    assert_eq!(redis.cli(&["DBSIZE"]), "0");

    let (_, body, new_id) = visit(&client, &app, "/").await;
    assert_eq!(body, WELCOME);
    assert_ne!(new_id.unwrap(), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_sessions_and_survive_restarts() {
    let redis = RedisServer::start();
    let dir = TempDir::new().unwrap();
    let mut one = serve(&redis.url(), dir.path());
    let two = serve(&redis.url(), dir.path());
    let client = browser();
    // One cookie jar: the cookie is for 127.0.0.1, whatever the port.
    for n in 1..=6u64 {
        let app = if n % 2 == 1 { &one } else { &two };
        let (status, body, _) = visit(&client, app, "/").await;
        assert_eq!(status, 200);
        let expected = if n == 1 {
            WELCOME.to_owned()
        } else {
            format!("You have visited this page {n} times.")
        };
        assert_eq!(body, expected, "request {n} on instance {}", 2 - n % 2);
    }

    assert!(
        one.process.terminate(Duration::from_secs(10)),
        "clean shutdown"
    );
    let restarted = serve(&redis.url(), dir.path());
    let (_, body, _) = visit(&client, &restarted, "/").await;
    assert_eq!(
        body, "You have visited this page 7 times.",
        "a restart keeps sessions"
    );
    let (_, body, _) = visit(&client, &two, "/").await;
    assert_eq!(body, "You have visited this page 8 times.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_503_and_the_app_recovers_when_it_returns() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let dir = TempDir::new().unwrap();
    let mut app = serve(&redis.url(), dir.path());
    let client = browser();
    assert_eq!(visit(&client, &app, "/").await.1, WELCOME);
    assert_eq!(
        visit(&client, &app, "/").await.1,
        "You have visited this page 2 times."
    );

    redis.kill();
    for path in ["/", "/logout"] {
        let started = Instant::now();
        let (status, _, id) = visit(&client, &app, path).await;
        assert_eq!(status, 503, "{path} while Redis is down");
        assert!(id.is_none(), "no cookie on a failed request");
        eprintln!(
            "{path} while Redis is down: 503 after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        visit(&client, &app, "/health").await.0,
        200,
        "still serving"
    );
    assert!(app.process.is_running());
    assert!(
        app.log().contains(&format!("redis://127.0.0.1:{port}")),
        "the cause is logged, naming the store:\n{}",
        app.log()
    );

    let redis = RedisServer::start_on(port, &[]);
    // Redis persisted nothing: the session is gone and a new one starts, at once.
    let (status, body, _) = visit(&client, &app, "/").await;
    assert_eq!((status, body.as_str()), (200, WELCOME));
    assert_eq!(
        visit(&client, &app, "/").await.1,
        "You have visited this page 2 times."
    );
    assert_eq!(redis.cli(&["DBSIZE"]), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_commands_on_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = TempDir::new().unwrap();
    let app = serve(&url, dir.path());
    let mut ids = Vec::new();
    let mut browsers = Vec::new();
    for visits in 1..=3 {
        let client = browser();
        let mut id = None;
        for _ in 0..visits {
            id = visit(&client, &app, "/").await.2.or(id);
        }
        ids.push(id.unwrap());
        browsers.push(client);
    }
    // A key of another app, and a foreign value under our prefix.
    redis.cli(&[
        "SET",
        "otherapp:sess:x",
        r#"{"cookie":{"originalMaxAge":null,"expires":null},"app":"other"}"#,
    ]);
    redis.cli(&["HSET", &format!("{PREFIX}foreign"), "a", "b"]);

    // Only sessions count: the foreign key under the prefix is reported and left alone.
    let (ok, out, err) = tessera(&["sessions", "count", "--store", &url], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3");
    assert!(
        err.contains("skipped 1 keys under the prefix that are not sessions"),
        "{err}"
    );

    let (ok, out, err) = tessera(&["sessions", "list", "--store", &url], "");
    assert!(ok, "{err}");
    let mut listed: Vec<&str> = out.lines().collect();
    listed.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);

    let (ok, out, err) = tessera(
        &[
            "sessions", "list", "--json", "--limit", "2", "--store", &url,
        ],
        "",
    );
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for line in &lines {
        assert!(ids.iter().any(|id| line["id"] == json!(id)), "{line}");
        assert!(line["ttl"].as_u64().unwrap() > 86_000, "{line}");
        assert!(line["bytes"].as_u64().unwrap() > 100, "{line}");
    }

    let (ok, out, err) = tessera(&["sessions", "stats", "--store", &url], "");
    assert!(ok, "{err}");
    assert!(out.contains("sessions: 3\n"), "{out}");
    assert!(out.contains("  < 1 day: 3\n"), "{out}");
    assert!(out.contains("foreign keys skipped: 1\n"), "{out}");

    let (ok, out, err) = tessera(&["sessions", "show", &ids[2], "--store", &url], "");
    assert!(ok, "{err}");
    assert!(out.contains("\"views\": 3"), "{out}");
    assert!(out.contains("\"originalMaxAge\": 86400000"), "{out}");
    let ttl_line = out.lines().find(|l| l.starts_with("ttl: ")).unwrap();
    let secs: u64 = ttl_line[5..].trim_end_matches('s').parse().unwrap();
    assert!((86_390..=86_400).contains(&secs), "{ttl_line}");

    let (ok, out, _) = tessera(&["sessions", "show", "foreign", "--store", &url], "");
    assert!(ok);
    assert!(
        out.contains("hash"),
        "a foreign key is shown for what it is: {out}"
    );

    let (ok, _, err) = tessera(&["sessions", "show", "nosuchsession", "--store", &url], "");
    assert!(!ok);
    assert!(err.contains("no session"), "{err}");

    // Destroy one: its browser starts over.
    let (ok, out, err) = tessera(&["sessions", "destroy", &ids[0], "--store", &url], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("destroyed {}", ids[0]));
    assert_eq!(redis.cli(&["EXISTS", &format!("{PREFIX}{}", ids[0])]), "0");
    assert_eq!(visit(&browsers[0], &app, "/").await.1, WELCOME);
    let (ok, _, err) = tessera(&["sessions", "destroy", &ids[0], "--store", &url], "");
    assert!(!ok && err.contains("no session"), "{err}");

    // Clear asks first.
    let (_, count, _) = tessera(&["sessions", "count", "--store", &url], "");
    assert_eq!(count.trim(), "3");
    let (ok, out, err) = tessera(&["sessions", "clear", "--dry-run", "--store", &url], "");
    assert!(ok, "{err}");
    assert!(out.starts_with("would delete 3 sessions"), "{out}");
    let (ok, _, err) = tessera(&["sessions", "clear", "--store", &url], "no\n");
    assert!(!ok, "not confirmed");
    assert!(err.contains("Delete all 3 sessions"), "{err}");
    assert!(err.contains("nothing deleted"), "{err}");
    assert_eq!(
        tessera(&["sessions", "count", "--store", &url], "")
            .1
            .trim(),
        "3"
    );
    let (ok, out, err) = tessera(&["sessions", "clear", "--store", &url], "yes\n");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deleted 3 sessions");
    assert_eq!(
        redis.cli(&["DBSIZE"]),
        "2",
        "only the other app's key and the foreign key are left"
    );
    assert_eq!(redis.cli(&["EXISTS", "otherapp:sess:x"]), "1");
    assert_eq!(redis.cli(&["EXISTS", &format!("{PREFIX}foreign")]), "1");

    // An empty prefix would take the whole database for sessions: refused unless said.
    let (ok, _, err) = tessera(
        &[
            "sessions", "clear", "--yes", "--prefix", "", "--store", &url,
        ],
        "",
    );
    assert!(!ok && err.contains("--prefix is empty"), "{err}");
    assert_eq!(redis.cli(&["DBSIZE"]), "2", "nothing was deleted");
    let (ok, out, err) = tessera(
        &[
            "sessions",
            "count",
            "--prefix",
            "",
            "--whole-database",
            "--store",
            &url,
        ],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "0", "neither key is a session");

    visit(&browsers[1], &app, "/").await;
    let (ok, out, err) = tessera(&["sessions", "clear", "--yes", "--store", &url], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deleted 1 sessions");

    // The store and prefix can come from the environment, as for `serve`.
    let out = Command::new(BIN)
        .args(["sessions", "count"])
        .env("SESSION_STORE", &url)
        .env("SESSION_PREFIX", "otherapp:sess:")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_commands_fail_clearly_without_redis() {
    let port = test_support::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let (ok, _, err) = tessera(&["sessions", "count", "--store", &url], "");
    assert!(!ok);
    assert!(err.contains("cannot connect to Redis"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    eprintln!("failed after {:?}", started.elapsed());

    let (ok, _, err) = tessera(
        &[
            "sessions",
            "count",
            "--store",
            "rediss://user:hunter2@127.0.0.1:1",
        ],
        "",
    );
    assert!(!ok);
    assert!(!err.contains("hunter2"), "no password in errors: {err}");
    if !cfg!(feature = "redis-tls") {
        assert!(err.contains("redis-tls"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_commands_on_the_memory_store() {
    // A memory store lives in its process: a fresh `tessera sessions` sees none.
    let (ok, out, err) = tessera(&["sessions", "count", "--store", "memory"], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "0");
    let (ok, out, err) = tessera(&["sessions", "list", "--store", "memory"], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "");
    let (ok, _, err) = tessera(&["sessions", "show", "x", "--store", "memory"], "");
    assert!(!ok && err.contains("no session"), "{err}");
    let (ok, out, err) = tessera(&["sessions", "clear", "--yes", "--store", "memory"], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deleted 0 sessions");
}

/// IDs are base64url, so one in 64 starts with `-` (and some with `--`): the commands that
/// take an ID must read it as one, not as an unknown option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_start_with_a_dash_are_ids_not_options() {
    let redis = RedisServer::start();
    let url = redis.url();
    let record = r#"{"cookie":{"originalMaxAge":null,"expires":null,"path":"/"},"views":7}"#;
    for id in [
        "-IsMJTqf6DfqSUQGbWG6EhzTxYN_Ph1",
        "--sMJTqf6DfqSUQGbWG6EhzTxYN_Ph1",
        "-y",
    ] {
        redis.cli(&["SET", &format!("{PREFIX}{id}"), record]);
        let (ok, out, err) = tessera(&["sessions", "show", id, "--store", &url], "");
        assert!(ok, "show {id}: {err}");
        assert!(out.contains("\"views\": 7"), "{out}");
        let (ok, out, err) = tessera(&["sessions", "destroy", id, "--store", &url], "");
        assert!(ok, "destroy {id}: {err}");
        assert_eq!(out.trim(), format!("destroyed {id}"));
    }
    let (ok, out, err) = tessera(&["sessions", "count", "--store", &url], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "0");
}

/// The same commands on the embedded store, while the server that writes it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_commands_on_the_sqlite_store() {
    let dir = TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let app = serve(&url, dir.path());
    let mut ids = Vec::new();
    for visits in 1..=2 {
        let client = browser();
        let mut id = None;
        for _ in 0..visits {
            id = visit(&client, &app, "/").await.2.or(id);
        }
        ids.push(id.unwrap());
    }
    let run = |args: &[&str], stdin: &str| {
        let mut all = vec!["sessions"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--store", &url]);
        tessera(&all, stdin)
    };
    assert_eq!(run(&["count"], "").1.trim(), "2");
    let mut listed: Vec<String> = run(&["list"], "").1.lines().map(str::to_owned).collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let (ok, out, err) = run(&["show", &ids[1]], "");
    assert!(ok, "{err}");
    assert!(out.contains("\"views\": 2"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("ttl: ")), "{out}");
    let (ok, out, err) = run(&["destroy", &ids[0]], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("destroyed {}", ids[0]));
    assert_eq!(run(&["count"], "").1.trim(), "1");
    let (ok, _, _) = run(&["clear"], "\n");
    assert!(!ok, "clear asks first");
    assert_eq!(run(&["count"], "").1.trim(), "1");
    let (ok, out, err) = run(&["clear", "--yes"], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deleted 1 sessions");
    assert_eq!(run(&["count"], "").1.trim(), "0");
}
