//! `RedisStore` against the conformance suite, plus what only Redis has: foreign and
//! corrupt values under the prefix, wrong key types, the exact commands each request sends,
//! connect-redis's options, and a Redis that dies and comes back. Every standalone test
//! starts its own `redis-server` on a free port. The suite also runs on a Redis Cluster
//! (`cluster`) and through Redis Sentinel (`sentinel`), on one topology shared by the tests
//! that overlap in time, each with its own key prefix.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get as route_get;
use axum::Router;
use serde_json::json;
use tessera::record::Record;
use tessera::store::redis::RedisStore;
use tessera::{
    SaveMode, SaveOutcome, Session, SessionError, SessionId, SessionLayer, Store, StoreError,
};
use test_support::RedisServer;
use tokio::sync::Notify;

use crate::store_suite::{record, Made};
use crate::support::{config, cookie_for, get, routes, serve};

const WELCOME: &str = "Welcome to the session demo! Visit again to see the view count increase.";
const PREFIX: &str = "myapp:session:";

async fn start_redis() -> RedisServer {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
}

async fn store_on(server: &RedisServer) -> RedisStore {
    RedisStore::builder(server.url())
        .prefix(PREFIX)
        .connect()
        .await
        .unwrap()
}

async fn make(default_ttl: Duration) -> Made {
    let server = start_redis().await;
    let store = shared::suite_store(server.url(), PREFIX, default_ttl).await;
    (Box::new(server), Arc::new(store))
}

crate::store_suite!(make);

fn id() -> SessionId {
    SessionId::generate().unwrap()
}

fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

async fn app_on(store: RedisStore) -> std::net::SocketAddr {
    let layer = SessionLayer::new(store, config()).unwrap();
    serve(routes().layer(layer)).await
}

/// Calls per command since the last `CONFIG RESETSTAT`, without the test's own commands.
fn commands(server: &RedisServer) -> BTreeMap<String, u64> {
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| {
            ![
                "info", "config", "client", "command", "hello", "ping", "select",
            ]
            .iter()
            .any(|own| name.starts_with(own))
        })
        .collect()
}

fn expect_commands(server: &RedisServer, expected: &[(&str, u64)], what: &str) {
    let got = commands(server);
    let expected: BTreeMap<String, u64> =
        expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(got, expected, "commands sent for {what}");
    server.cli(&["CONFIG", "RESETSTAT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_request_as_connect_redis() {
    let server = start_redis().await;
    let addr = app_on(store_on(&server).await).await;
    server.cli(&["CONFIG", "RESETSTAT"]);

    let first = get(addr, "/", None).await;
    assert_eq!(first.body, WELCOME);
    let cookie = first.cookie().unwrap();
    expect_commands(&server, &[("set", 1)], "a new visitor on the counter");

    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 2 times."
    );
    // GETEX loads and extends the TTL in one command (connect-redis: GET, then SET). The
    // save is the guarded commit's script; this server does not have it yet, so its SHA
    // is refused once and the script sent in full (its GET and SET count too).
    expect_commands(
        &server,
        &[
            ("eval", 1),
            ("evalsha", 1),
            ("get", 1),
            ("getex", 1),
            ("set", 1),
        ],
        "a returning visitor on the counter, the first guarded commit",
    );
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 3 times."
    );
    expect_commands(
        &server,
        &[("evalsha", 1), ("get", 1), ("getex", 1), ("set", 1)],
        "a returning visitor on the counter: one round trip to load, one to commit",
    );

    // A read-only request: one command, where connect-redis sends GET then EXPIRE; the
    // TTL is extended all the same.
    let key = format!("{PREFIX}{}", first.cookie_id().unwrap());
    server.cli(&["EXPIRE", &key, "100"]);
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert_eq!(get(addr, "/views", Some(&cookie)).await.body, "3");
    expect_commands(&server, &[("getex", 1)], "a read-only route");
    let ttl: u64 = server.cli(&["TTL", &key]).parse().unwrap();
    assert!(ttl > 1000, "the read extended the TTL: {ttl}");
    server.cli(&["CONFIG", "RESETSTAT"]);

    assert_eq!(get(addr, "/untouched", Some(&cookie)).await.body, "ok");
    expect_commands(&server, &[], "a route that never looks at its session");

    assert_eq!(get(addr, "/views", None).await.body, "0");
    expect_commands(&server, &[], "a new visitor on a read-only route");

    assert_eq!(
        get(addr, "/logout", Some(&cookie)).await.body,
        "Logged out successfully!"
    );
    expect_commands(
        &server,
        &[("del", 1)],
        "logout (connect-redis sends GET + DEL)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_what_connect_redis_stores() {
    let server = start_redis().await;
    let addr = app_on(store_on(&server).await).await;
    let first = get(addr, "/", None).await;
    let id = first.cookie_id().unwrap();
    let stored: serde_json::Value = serde_json::from_str(&server.cli(&["GET", &key(&id)])).unwrap();
    assert_eq!(stored["views"], json!(1));
    assert_eq!(stored["cookie"]["originalMaxAge"], json!(86_400_000));
    assert_eq!(stored["cookie"]["httpOnly"], json!(true));
    assert_eq!(stored["cookie"]["path"], json!("/"));
    let order: Vec<&String> = stored.as_object().unwrap().keys().collect();
    assert_eq!(
        order,
        ["cookie", "views"],
        "cookie first, as express writes it"
    );
    let ttl: u64 = server.cli(&["TTL", &key(&id)]).parse().unwrap();
    assert!(
        (86_390..=86_400).contains(&ttl),
        "TTL follows the cookie's one-day max age: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_foreign_values_become_new_sessions() {
    let server = start_redis().await;
    let store = store_on(&server).await;
    let addr = app_on(store.clone()).await;
    let corrupt: [&[u8]; 6] = [
        b"not json",
        b"[1,2,3]",
        br#"{"views":41}"#,
        br#"{"cookie":"yes","views":41}"#,
        br#"{"cookie":{"expires":"tomorrow"},"views":41}"#,
        b"\xff\xfe\x00binary",
    ];
    for value in corrupt {
        let id = id();
        let mut cli = std::process::Command::new("redis-cli");
        cli.args([
            "-p",
            &server.port.to_string(),
            "-x",
            "SET",
            &key(id.as_str()),
        ]);
        let mut child = cli
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), value).unwrap();
        assert!(child.wait().unwrap().success());

        assert!(
            matches!(store.load(&id).await, Err(StoreError::Corrupt { .. })),
            "{:?} must load as Corrupt",
            String::from_utf8_lossy(value)
        );
        let reply = get(addr, "/", Some(&cookie_for(&id))).await;
        assert_eq!(reply.status, 200, "{:?}", String::from_utf8_lossy(value));
        assert_eq!(reply.body, WELCOME, "a corrupt record is no session");
        assert_ne!(
            reply.cookie_id().unwrap(),
            id.as_str(),
            "a fresh ID, not the corrupt one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_another_type_are_corrupt_not_errors() {
    let server = start_redis().await;
    let store = store_on(&server).await;
    let addr = app_on(store.clone()).await;
    let id = id();
    server.cli(&["HSET", &key(id.as_str()), "views", "41"]);
    let Err(StoreError::Corrupt { source, .. }) = store.load(&id).await else {
        panic!("a hash under the prefix must load as Corrupt");
    };
    assert!(source.to_string().contains("WRONGTYPE"), "{source}");
    let reply = get(addr, "/", Some(&cookie_for(&id))).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, WELCOME));
    // The admin view shows it for what it is.
    let shown = store.inspect(id.as_str()).await.unwrap().unwrap();
    let shown = String::from_utf8(shown.value).unwrap();
    assert!(shown.contains("hash"), "{shown}");
    // Not a session: never listed (nor counted, nor cleared).
    assert!(!store.ids().await.unwrap().contains(&id.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_values_round_trip() {
    let server = start_redis().await;
    let store = store_on(&server).await;
    let id = id();
    let mut rec = record(Some(600_000), 7);
    let big: String = "0123456789abcdef".repeat(512 * 1024); // 8 MiB
    rec.data.insert("blob".into(), json!(big));
    assert!(matches!(
        store.save(&id, &rec, SaveMode::Create).await.unwrap(),
        SaveOutcome::Saved(_)
    ));
    let got = store.load(&id).await.unwrap().unwrap().record;
    assert_eq!(got.data["blob"].as_str().map(str::len), Some(big.len()));
    assert_eq!(got.to_json(), rec.to_json());
    let strlen: usize = server.cli(&["STRLEN", &key(id.as_str())]).parse().unwrap();
    assert_eq!(strlen, rec.to_json().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_ttl_stores_without_expiry_and_never_touches() {
    let server = start_redis().await;
    let store = RedisStore::builder(server.url())
        .prefix(PREFIX)
        .disable_ttl(true)
        .connect()
        .await
        .unwrap();
    let id = id();
    store
        .save(&id, &record(Some(600_000), 1), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(server.cli(&["TTL", &key(id.as_str())]), "-1");
    assert_eq!(store.inspect(id.as_str()).await.unwrap().unwrap().ttl, None);
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert!(store.touch(&id, None).await.unwrap());
    expect_commands(&server, &[], "touch with disable_ttl");
    // An expired cookie is still deleted, as connect-redis does.
    assert_eq!(
        store
            .save(
                &id,
                &record(Some(-1), 1),
                SaveMode::Update { expected: None }
            )
            .await
            .unwrap(),
        SaveOutcome::Gone
    );
    assert_eq!(server.cli(&["EXISTS", &key(id.as_str())]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_touch_sends_nothing_and_keeps_the_ttl() {
    let server = start_redis().await;
    let store = RedisStore::builder(server.url())
        .prefix(PREFIX)
        .disable_touch(true)
        .connect()
        .await
        .unwrap();
    let id = id();
    store
        .save(&id, &record(Some(100_000), 1), SaveMode::Create)
        .await
        .unwrap();
    server.cli(&["CONFIG", "RESETSTAT"]);
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(5);
    assert!(store.touch(&id, Some(later)).await.unwrap());
    expect_commands(&server, &[], "touch with disable_touch");
    let ttl: u64 = server.cli(&["TTL", &key(id.as_str())]).parse().unwrap();
    assert!(ttl <= 100, "the TTL was not extended: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_option_only_for_browser_session_cookies_and_ttl_fn_wins() {
    let server = start_redis().await;
    let store = RedisStore::builder(server.url())
        .prefix(PREFIX)
        .ttl(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    let (day, session) = (id(), id());
    store
        .save(&day, &record(Some(86_400_000), 1), SaveMode::Create)
        .await
        .unwrap();
    store
        .save(&session, &record(None, 1), SaveMode::Create)
        .await
        .unwrap();
    let ttl = |id: &SessionId| -> u64 { server.cli(&["TTL", &key(id.as_str())]).parse().unwrap() };
    assert!(
        ttl(&day) > 86_000,
        "the cookie's expiry wins over ttl: {}",
        ttl(&day)
    );
    assert!((3590..=3600).contains(&ttl(&session)), "{}", ttl(&session));

    let custom = RedisStore::builder(server.url())
        .prefix("custom:")
        .ttl_fn(|record: &Record| {
            Duration::from_secs(if record.data.contains_key("admin") {
                60
            } else {
                600
            })
        })
        .connect()
        .await
        .unwrap();
    let mut admin = record(Some(86_400_000), 1);
    admin.data.insert("admin".into(), json!(true));
    let admin_id = id();
    custom
        .save(&admin_id, &admin, SaveMode::Create)
        .await
        .unwrap();
    let admin_ttl: u64 = server
        .cli(&["TTL", &format!("custom:{admin_id}")])
        .parse()
        .unwrap();
    assert!((50..=60).contains(&admin_ttl), "{admin_ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_scan_escapes_glob_characters_in_the_prefix() {
    let server = start_redis().await;
    let store = RedisStore::builder(server.url())
        .prefix("app*[1]:")
        .scan_count(2)
        .connect()
        .await
        .unwrap();
    let ids: Vec<SessionId> = (0..9).map(|_| id()).collect();
    for id in &ids {
        store
            .save(id, &record(Some(600_000), 1), SaveMode::Create)
            .await
            .unwrap();
    }
    // Keys an unescaped `app*[1]:*` would also match.
    server.cli(&["SET", "appX1:foreign", "x"]);
    server.cli(&["SET", "app-other1:foreign", "x"]);
    assert_eq!(store.count().await.unwrap(), 9);
    let mut expected: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    expected.sort();
    assert_eq!(store.ids().await.unwrap(), expected);
    assert_eq!(store.clear().await.unwrap(), 9);
    assert_eq!(server.cli(&["DBSIZE"]), "2", "foreign keys are left alone");
}

/// A handler that loads the session, lets the test destroy it from another request, then
/// changes it: the save must not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_does_not_resurrect_a_session_logged_out_meanwhile() {
    let server = start_redis().await;
    let store = store_on(&server).await;
    let loaded = Arc::new(Notify::new());
    let proceed = Arc::new(Notify::new());
    let slow = {
        let (loaded, proceed) = (loaded.clone(), proceed.clone());
        move |session: Session| async move {
            let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
            loaded.notify_one();
            proceed.notified().await;
            session.insert("views", views).await?;
            Ok::<_, SessionError>(views.to_string())
        }
    };
    let app: Router = routes()
        .route("/slow", route_get(slow))
        .layer(SessionLayer::new(store.clone(), config()).unwrap());
    let addr = serve(app).await;

    let first = get(addr, "/", None).await;
    let (cookie, id) = (first.cookie().unwrap(), first.cookie_id().unwrap());
    let slow_request = tokio::spawn({
        let cookie = cookie.clone();
        async move { get(addr, "/slow", Some(&cookie)).await }
    });
    loaded.notified().await;
    assert_eq!(
        get(addr, "/logout", Some(&cookie)).await.body,
        "Logged out successfully!"
    );
    assert_eq!(server.cli(&["EXISTS", &key(&id)]), "0");
    proceed.notify_one();
    let slow_reply = slow_request.await.unwrap();
    assert_eq!((slow_reply.status, slow_reply.body.as_str()), (200, "2"));
    assert_eq!(
        server.cli(&["EXISTS", &key(&id)]),
        "0",
        "the slow request brought the session back"
    );
    assert_eq!(store.count().await.unwrap(), 0);
    // No cookie at all: a removal cookie would also delete the one a concurrent login's
    // regenerate() may just have given the browser.
    assert!(
        slow_reply.set_cookies.is_empty(),
        "{:?}",
        slow_reply.set_cookies
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_fast_and_recovers_without_restart() {
    let mut server = start_redis().await;
    let port = server.port;
    let store = RedisStore::builder(server.url())
        .prefix(PREFIX)
        .command_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let addr = app_on(store.clone()).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 2 times."
    );

    server.kill();
    for path in ["/", "/views", "/logout"] {
        let started = Instant::now();
        let reply = get(addr, path, Some(&cookie)).await;
        assert_eq!(reply.status, 503, "{path} while Redis is down");
        eprintln!("{path} while Redis is down: 503 in {:?}", started.elapsed());
    }
    assert!(matches!(
        store.load(&id()).await,
        Err(StoreError::Backend { .. } | StoreError::Timeout { .. })
    ));
    assert_eq!(
        get(addr, "/untouched", Some(&cookie)).await.status,
        200,
        "the app is still up"
    );

    let server = tokio::task::spawn_blocking(move || RedisServer::start_on(port, &[]))
        .await
        .unwrap();
    // Redis persisted nothing, so the old session is gone: a new one starts, on the first
    // request after the restart.
    let reply = get(addr, "/", Some(&cookie)).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, WELCOME));
    let cookie = reply.cookie().unwrap();
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 2 times."
    );
    assert_eq!(store.count().await.unwrap(), 1);
    drop(server);
}

/// The store opens its connection and drives it itself: one connection per store, a
/// connection the server drops is replaced on the next command (which is served), and
/// dropping the store closes it rather than leaving its task behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_replaced_when_killed_and_closed_with_the_store() {
    let server = start_redis().await;
    // `CLIENT LIST` shows redis-cli's own connection too.
    let clients = || {
        server
            .cli(&["CLIENT", "LIST", "TYPE", "normal"])
            .lines()
            .count()
    };
    let alone = clients();
    let store = store_on(&server).await;
    let id = id();
    store
        .save(&id, &record(None, 1), SaveMode::Create)
        .await
        .unwrap();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.load(&id).await })
        })
        .collect();
    for request in requests {
        assert!(request.await.unwrap().unwrap().is_some());
    }
    assert_eq!(clients(), alone + 1, "one connection for every request");

    server.cli(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    assert!(
        store.load(&id).await.unwrap().is_some(),
        "the command after the kill is served on a new connection"
    );
    assert_eq!(clients(), alone + 1);

    drop(store);
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients() != alone {
        assert!(
            Instant::now() < deadline,
            "the store's connection outlived it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Unix socket, a password and a database: the handshake (AUTH, SELECT) runs on the
/// connection the store opens itself, and the data lands in that database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_with_password_and_database() {
    let dir = test_support::TempDir::new().unwrap();
    let socket = dir.path().join("redis.sock").to_str().unwrap().to_owned();
    let at = socket.clone();
    let server = tokio::task::spawn_blocking(move || {
        RedisServer::start_with(&["--unixsocket", &at, "--unixsocketperm", "700"])
    })
    .await
    .unwrap();
    // Set once the server is up: its readiness check does not authenticate.
    server.cli(&["CONFIG", "SET", "requirepass", "hunter2"]);
    let store = RedisStore::builder(format!("redis+unix://{socket}?db=2&pass=hunter2"))
        .prefix(PREFIX)
        .connect()
        .await
        .unwrap();
    let id = id();
    store
        .save(&id, &record(None, 7), SaveMode::Create)
        .await
        .unwrap();
    assert!(store.load(&id).await.unwrap().is_some());
    let in_db2 = server.cli(&[
        "-a",
        "hunter2",
        "--no-auth-warning",
        "-n",
        "2",
        "EXISTS",
        &key(id.as_str()),
    ]);
    assert_eq!(in_db2, "1", "the session is in database 2");

    let refused = RedisStore::builder(format!("redis+unix://{socket}?pass=wrong"))
        .connect()
        .await;
    assert!(
        matches!(refused, Err(StoreError::Backend { .. })),
        "a wrong password is refused at connect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_store_starts_without_redis_and_connects_when_it_is_up() {
    let port = test_support::free_port();
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .prefix(PREFIX)
        .connect_lazy()
        .unwrap();
    assert!(matches!(
        store.load(&id()).await,
        Err(StoreError::Backend { .. })
    ));
    assert!(matches!(
        RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .connect()
            .await,
        Err(StoreError::Backend { .. })
    ));
    let _server = tokio::task::spawn_blocking(move || RedisServer::start_on(port, &[]))
        .await
        .unwrap();
    let id = id();
    assert!(matches!(
        store
            .save(&id, &record(None, 1), SaveMode::Create)
            .await
            .unwrap(),
        SaveOutcome::Saved(_)
    ));
}

#[tokio::test]
async fn urls_are_checked() {
    for url in ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://"] {
        assert!(
            matches!(RedisStore::connect(url).await, Err(StoreError::Config(_))),
            "{url}"
        );
    }
    #[cfg(not(feature = "redis-tls"))]
    {
        let Err(StoreError::Config(message)) =
            RedisStore::connect("rediss://user:hunter2@127.0.0.1:6380").await
        else {
            panic!("rediss:// without the redis-tls feature must be a Config error");
        };
        assert!(message.contains("redis-tls"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "the password must not be shown: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresponsive_redis_times_out_and_the_store_carries_on() {
    let mut server = start_redis().await;
    let store = RedisStore::builder(server.url())
        .prefix(PREFIX)
        .command_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let addr = app_on(store.clone()).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let pid = server.process().pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let reply = get(addr, "/", Some(&cookie)).await;
    assert_eq!(reply.status, 503, "a frozen Redis is a 503, not a hang");
    assert!(matches!(
        store.load(&id()).await,
        Err(StoreError::Timeout { op: "load", .. })
    ));
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    // Same process, same data: the session is still there and the connection still works.
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 2 times."
    );
}

/// `rediss://`: TLS to a `redis-server --tls-port` with a certificate from a test CA.
#[cfg(feature = "redis-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_verify_the_server() {
    let certs = test_support::TempDir::new().unwrap();
    let dir = certs.path();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl (apt-get install openssl) to make the test certificates");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tessera test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);

    let tls_port = test_support::free_port().to_string();
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let (cert, tls_key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let server = tokio::task::spawn_blocking(move || {
        RedisServer::start_with(&[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &tls_key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ])
    })
    .await
    .unwrap();
    let tls_port = server
        .cli(&["CONFIG", "GET", "tls-port"])
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let url = format!("rediss://localhost:{tls_port}");

    // The system's roots do not know the test CA: refused.
    assert!(matches!(
        RedisStore::builder(url.as_str()).connect().await,
        Err(StoreError::Backend { .. })
    ));
    // With the test CA as root: connected, and the commands are the usual ones.
    let client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(dir.join("ca.pem")).unwrap()),
        },
    )
    .unwrap();
    let store = RedisStore::builder_from_client(client)
        .prefix(PREFIX)
        .connect()
        .await
        .unwrap();
    assert!(format!("{store:?}").starts_with("rediss://"), "{store:?}");
    let id = id();
    store
        .save(&id, &record(Some(600_000), 5), SaveMode::Create)
        .await
        .unwrap();
    let stored: serde_json::Value =
        serde_json::from_str(&server.cli(&["GET", &key(id.as_str())])).unwrap();
    assert_eq!(stored["views"], json!(5));
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().record.data["views"],
        json!(5)
    );
}

/// `wait_for_replicas`: WAIT goes in the same pipeline as the SET, so when the save
/// returns the replica already has it; without the option no WAIT is sent at all
/// (`one_round_trip_per_request_as_connect_redis`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_replicas_is_pipelined_with_the_save() {
    let (master, replica) = tokio::task::spawn_blocking(|| {
        let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
        let replica = test_support::topology::start_replica(master.port, &[]);
        (master, replica)
    })
    .await
    .unwrap();
    let store = RedisStore::builder(master.url())
        .prefix(PREFIX)
        .wait_for_replicas(1, Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    // After a diskless sync the master starts streaming to the replica (and so can ask it
    // for an acknowledgement) only once the replica's first periodic ACK has arrived, up
    // to a second later. Wait for that with a write of our own, so the timing below is
    // WAIT's own.
    let mut warm_up = redis::Client::open(master.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(None),
        )
        .await
        .unwrap();
    let acked: Result<((), i64), _> = redis::pipe()
        .cmd("SET")
        .arg("warm-up")
        .arg(1)
        .cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut warm_up)
        .await;
    assert!(matches!(acked, Ok(((), 1))), "{acked:?}");
    master.cli(&["CONFIG", "RESETSTAT"]);
    let id = id();
    let started = Instant::now();
    assert!(matches!(
        store
            .save(&id, &record(Some(600_000), 7), SaveMode::Create)
            .await
            .unwrap(),
        SaveOutcome::Saved(_)
    ));
    eprintln!("save + WAIT 1 replica: {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "one replica acknowledged: WAIT returns at once, not at its timeout ({:?})",
        started.elapsed()
    );
    // No polling: WAIT made the save wait for the replica.
    let on_replica: serde_json::Value =
        serde_json::from_str(&replica.cli(&["GET", &key(id.as_str())])).unwrap();
    assert_eq!(on_replica["views"], json!(7));
    let sent = commands(&master);
    assert_eq!(
        (sent.get("set"), sent.get("wait")),
        (Some(&1), Some(&1)),
        "a save with WAIT: {sent:?}"
    );

    // More replicas than exist: the save still succeeds (it is on the master), after the
    // WAIT timeout.
    let greedy = RedisStore::builder(master.url())
        .prefix(PREFIX)
        .wait_for_replicas(2, Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    assert!(matches!(
        greedy
            .save(
                &id,
                &record(Some(600_000), 8),
                SaveMode::Update { expected: None }
            )
            .await
            .unwrap(),
        SaveOutcome::Saved(_)
    ));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Topologies shared by the tests that overlap in time: the first one starts it, the last
/// one to finish stops it (a plain `static` is never dropped, so it would leave the
/// servers running after the test binary exits). Each store gets a prefix of its own.
mod shared {
    use std::sync::{Arc, Mutex, Weak};

    pub async fn topology<T: Send + Sync + 'static>(
        slot: &'static Mutex<Weak<T>>,
        start: fn() -> T,
    ) -> Arc<T> {
        tokio::task::spawn_blocking(move || {
            let mut current = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(running) = current.upgrade() {
                return running;
            }
            let started = Arc::new(start());
            *current = Arc::downgrade(&started);
            started
        })
        .await
        .unwrap()
    }

    pub fn prefix() -> String {
        format!("suite:{}:", tessera::SessionId::generate().unwrap())
    }

    /// The store the conformance suite runs on, whatever the topology behind `url`.
    pub async fn suite_store(
        url: String,
        prefix: &str,
        default_ttl: std::time::Duration,
    ) -> tessera::store::redis::RedisStore {
        tessera::store::redis::RedisStore::builder(url)
            .prefix(prefix)
            .ttl(default_ttl)
            .scan_count(7) // small pages, so the admin checks cross several SCAN pages
            .connect()
            .await
            .unwrap()
    }
}

/// The conformance suite on a Redis Cluster (three masters): every session key lives in
/// its own slot, and the admin calls must SCAN every master and delete per slot.
mod cluster {
    use std::sync::{Arc, Mutex, Weak};
    use std::time::{Duration, Instant};

    use tessera::store::redis::RedisStore;
    use tessera::{SaveMode, Store, StoreError};
    use test_support::topology::Cluster;

    use super::shared;
    use crate::store_suite::{record, Made};

    static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

    async fn make(default_ttl: Duration) -> Made {
        let cluster = shared::topology(&CLUSTER, || Cluster::start(3, 0)).await;
        let store = shared::suite_store(cluster.url(), &shared::prefix(), default_ttl).await;
        (Box::new(cluster), Arc::new(store))
    }

    crate::store_suite!(make);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_spread_over_every_master_and_admin_sees_them_all() {
        let cluster = shared::topology(&CLUSTER, || Cluster::start(3, 0)).await;
        let prefix = shared::prefix();
        let store = RedisStore::builder(cluster.url())
            .prefix(prefix.as_str())
            .connect()
            .await
            .unwrap();
        for n in 0..60 {
            let id = tessera::SessionId::generate().unwrap();
            store
                .save(&id, &record(Some(600_000), n), SaveMode::Create)
                .await
                .unwrap();
        }
        let pattern = format!("{prefix}*");
        for node in &cluster.nodes {
            let keys = node.cli(&["--scan", "--pattern", &pattern]).lines().count();
            assert!(keys > 0, "master {} holds none of the sessions", node.port);
        }
        assert_eq!(store.count().await.unwrap(), 60);
        assert_eq!(store.ids().await.unwrap().len(), 60);
        assert_eq!(store.clear().await.unwrap(), 60);
        assert_eq!(store.count().await.unwrap(), 0);
    }

    /// A master that is down while it still owns slots: the admin calls fail with an
    /// error naming it, instead of a short count or a hang.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admin_calls_name_a_dead_master_instead_of_a_short_answer() {
        let mut cluster = tokio::task::spawn_blocking(|| Cluster::start(3, 0))
            .await
            .unwrap();
        let store = RedisStore::builder(cluster.url())
            .prefix("dead:")
            .command_timeout(Duration::from_millis(800))
            .connect()
            .await
            .unwrap();
        for n in 0..20 {
            let id = tessera::SessionId::generate().unwrap();
            store
                .save(&id, &record(Some(600_000), n), SaveMode::Create)
                .await
                .unwrap();
        }
        assert_eq!(store.count().await.unwrap(), 20);
        let victim = cluster.nodes[1].port;
        cluster.node(victim).kill();
        let started = Instant::now();
        let Err(e) = store.count().await else {
            panic!("count with a dead master must fail, not answer a partial count");
        };
        let message = e.to_string();
        assert!(matches!(e, StoreError::Backend { .. }), "{message}");
        assert!(
            message.contains(&victim.to_string()),
            "names the dead master: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let Err(e) = store.clear().await else {
            panic!("clear with a dead master must fail");
        };
        assert!(e.to_string().contains("already deleted"), "{e}");
    }
}

/// The conformance suite through Redis Sentinel: the store asks the sentinels for the
/// master.
mod sentinel {
    use std::sync::{Arc, Mutex, Weak};
    use std::time::{Duration, Instant};

    use tessera::store::redis::RedisStore;
    use tessera::{SaveMode, SaveOutcome, SessionId, Store, StoreError};
    use test_support::topology::SentinelSetup;

    use super::shared;
    use crate::store_suite::{record, Made};

    static SETUP: Mutex<Weak<SentinelSetup>> = Mutex::new(Weak::new());

    async fn make(default_ttl: Duration) -> Made {
        let setup = shared::topology(&SETUP, SentinelSetup::start).await;
        let store = shared::suite_store(setup.url(), &shared::prefix(), default_ttl).await;
        (Box::new(setup), Arc::new(store))
    }

    crate::store_suite!(make);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn urls_name_the_master_and_its_database() {
        let setup = shared::topology(&SETUP, SentinelSetup::start).await;
        let Err(StoreError::Backend { source, .. }) =
            RedisStore::builder(setup.url().replace("/mymaster", "/nosuchmaster"))
                .connect()
                .await
        else {
            panic!("an unknown master name must fail to connect");
        };
        assert!(source.to_string().contains("nosuchmaster"), "{source}");

        // ?db=3: the data lands in database 3 of the master.
        let store = RedisStore::builder(format!("{}?db=3", setup.url()))
            .prefix("db3:")
            .connect()
            .await
            .unwrap();
        let id = SessionId::generate().unwrap();
        store
            .save(&id, &record(Some(600_000), 1), SaveMode::Create)
            .await
            .unwrap();
        let port = setup.master_port().to_string();
        let got = test_support::redis_cli(
            setup.master_port(),
            &["-n", "3", "EXISTS", &format!("db3:{id}")],
        );
        assert_eq!(got, "1", "on master {port}, database 3");
        assert!(
            format!("{store:?}").starts_with("redis-sentinel://"),
            "{store:?}"
        );

        // A lazy store finds the master on its first command.
        let lazy = RedisStore::builder(setup.url())
            .prefix("lazy:")
            .connect_lazy()
            .unwrap();
        assert!(lazy.load(&id).await.unwrap().is_none());
    }

    /// A switchover (SENTINEL FAILOVER: the old master stays up, and Sentinel demotes it
    /// only some ten seconds later) with the first sentinel dead: the store's
    /// once-a-second check of the sentinels (or a READONLY / dropped connection) makes it
    /// ask the live sentinels and write to the new master; failing calls fail fast.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_a_switchover_and_skips_a_dead_sentinel() {
        let mut setup = tokio::task::spawn_blocking(SentinelSetup::start)
            .await
            .unwrap();
        let store = RedisStore::builder(setup.url())
            .prefix("switch:")
            .command_timeout(Duration::from_millis(800))
            .connect()
            .await
            .unwrap();
        let id = SessionId::generate().unwrap();
        store
            .save(&id, &record(Some(600_000), 1), SaveMode::Create)
            .await
            .unwrap();
        let (old_master, replica) = (setup.master.port, setup.replica.port);
        test_support::topology::wait_replica_caught_up(old_master, replica);
        setup.kill_sentinel(0);
        let answer = test_support::redis_cli(
            setup.sentinel_ports[1],
            &["SENTINEL", "FAILOVER", "mymaster"],
        );
        assert_eq!(answer, "OK");

        let started = Instant::now();
        let mut failures = 0;
        let mut views = 1;
        // Keep writing until a write has landed on the promoted replica.
        loop {
            let attempt = Instant::now();
            match store
                .save(
                    &id,
                    &record(Some(600_000), views + 1),
                    SaveMode::Update { expected: None },
                )
                .await
            {
                Ok(SaveOutcome::Saved(_)) => {
                    views += 1;
                    if test_support::redis_cli(replica, &["ROLE"]).starts_with("master")
                        && test_support::redis_cli(replica, &["GET", &format!("switch:{id}")])
                            .contains(&format!("\"views\":{views}"))
                    {
                        break;
                    }
                }
                Ok(other) => panic!("the session must survive the switchover: {other:?}"),
                Err(e) => {
                    failures += 1;
                    assert!(
                        attempt.elapsed() < Duration::from_millis(1_500),
                        "a failing call must fail fast: {:?} for {e}",
                        attempt.elapsed()
                    );
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(45),
                "no write on the new master after {:?} ({failures} failures)",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "switchover: writes on the new master after {:?}, {failures} failed calls",
            started.elapsed()
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "followed well before Sentinel demotes the old master: {:?}",
            started.elapsed()
        );
        // Never written to the demoted master: it is a replica, and the new master has
        // everything.
        setup.wait_failover(old_master);
        let loaded = store.load(&id).await.unwrap().unwrap().record;
        assert_eq!(loaded.data["views"], serde_json::json!(views));
        assert_eq!(store.count().await.unwrap(), 1);
    }
}

/// The guarded commit's script is called by its SHA; a server that lost its script cache
/// (`SCRIPT FLUSH`, a restart, a failover to a replica that never ran it) gets it again on
/// the way, and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_mid_run_fails_no_request() {
    let server = start_redis().await;
    let addr = app_on(store_on(&server).await).await;
    let cookie = get(addr, "/increment", None).await.cookie().unwrap();
    for round in 0..4 {
        let requests: Vec<_> = (0..25)
            .map(|_| {
                let cookie = cookie.clone();
                tokio::spawn(async move { get(addr, "/increment", Some(&cookie)).await })
            })
            .collect();
        // Flushed while those requests run, and again between rounds.
        server.cli(&["SCRIPT", "FLUSH"]);
        for request in requests {
            let reply = request.await.unwrap();
            assert_eq!(reply.status, 200, "round {round}: {}", reply.body);
        }
    }
    assert_eq!(get(addr, "/views", Some(&cookie)).await.body, "101");
    assert!(
        commands(&server).get("eval").copied().unwrap_or(0) >= 1,
        "the script was sent in full again after a flush"
    );
}

/// Admin walks touch sessions only: a key under the prefix whose suffix is not a session
/// ID, whose value is not a session, or that holds another Redis type is counted as
/// foreign, never listed, counted as a session or deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_walks_skip_and_keep_foreign_keys() {
    let server = start_redis().await;
    let store = store_on(&server).await;
    let sessions: Vec<SessionId> = (0..3).map(|_| id()).collect();
    for (n, id) in sessions.iter().enumerate() {
        store
            .save(id, &record(Some(600_000), n as u64), SaveMode::Create)
            .await
            .unwrap();
    }
    let foreign = [
        key("not a session id!"),
        key(id().as_str()),
        key(id().as_str()),
        key(id().as_str()),
    ];
    server.cli(&["SET", &foreign[0], r#"{"cookie":{},"views":1}"#]);
    server.cli(&["SET", &foreign[1], "cached page, not a session"]);
    server.cli(&["HSET", &foreign[2], "field", "value"]);
    server.cli(&["SET", &foreign[3], r#"{"views":41}"#]);
    assert_eq!(store.count().await.unwrap(), 3);
    let mut expected: Vec<String> = sessions.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(store.ids().await.unwrap(), expected);
    let mut no_op = |_: &tessera::store::Page| std::ops::ControlFlow::Continue(());
    let walked = store.walk(false, &mut no_op).await.unwrap();
    assert_eq!((walked.sessions, walked.foreign), (3, 4));
    assert_eq!(store.clear().await.unwrap(), 3);
    for key in &foreign {
        assert_eq!(server.cli(&["EXISTS", key]), "1", "{key} was deleted");
    }
    assert_eq!(store.count().await.unwrap(), 0);
}

/// A logged-in session in steady use costs its index entry a refresh now and then, not
/// one per request: reads stay one Redis command each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_an_indexed_session_cost_one_command_each() {
    let server = start_redis().await;
    let layer = SessionLayer::new(store_on(&server).await, config().index_by("user")).unwrap();
    let addr = serve(routes().layer(layer)).await;
    let login = get(addr, "/login", None).await;
    let cookie = login.cookie().unwrap();
    assert_eq!(server.cli(&["ZCARD", "tessera-index:user:ada"]), "1");
    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..20 {
        assert_eq!(get(addr, "/views", Some(&cookie)).await.status, 200);
    }
    expect_commands(&server, &[("getex", 20)], "20 reads of a logged-in session");
}
