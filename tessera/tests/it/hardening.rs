//! Regression tests of the security review's findings, each over real HTTP: the layer in a
//! real axum server on a free port, a real client, and hostile input planted where an
//! attacker (or a broken peer) would put it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::COOKIE;
use tessera::record::{CookieData, Record};
use tessera::{
    ConfigError, CookieSecure, MemoryStore, SaveMode, SessionConfig, SessionId, SessionLayer, Store,
};

use crate::support::{config, cookie_for, get, get_raw, server, Reply};

const WELCOME: &str = "Welcome to the session demo! Visit again to see the view count increase.";

fn visited(n: u64) -> String {
    format!("You have visited this page {n} times.")
}

// ---------------------------------------------------------------------------------------
// Finding 1: a non-ASCII byte in another cookie must not cost us our session.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_non_ascii_cookie_of_another_name_keeps_the_session() {
    let addr = server(config(), Arc::new(MemoryStore::new())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let ours = cookie.as_bytes();
    // UTF-8 (what a browser sends for `document.cookie = "other=José"`), a Latin-1 byte,
    // before and after ours, and a value of our own name that is not UTF-8 before the
    // valid one (only our own cookie's value must be valid; the first that verifies wins).
    let headers: Vec<Vec<u8>> = vec![
        [b"other=Jos\xc3\xa9; ".as_slice(), ours].concat(),
        [ours, b"; other=Jos\xe9".as_slice()].concat(),
        [b"a=\xff\xfe; ".as_slice(), ours, b"; b=\x80".as_slice()].concat(),
        [b"connect.sid=s%3A\xff\xfe.x; ".as_slice(), ours].concat(),
    ];
    let mut views = 1;
    for header in &headers {
        views += 1;
        let reply = get_raw(addr, "/", Some(header)).await;
        assert_eq!(
            reply.body,
            visited(views),
            "Cookie: {}",
            String::from_utf8_lossy(header)
        );
    }

    // The non-ASCII cookie in a Cookie header of its own, ours in another.
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .header(
            COOKIE,
            reqwest::header::HeaderValue::from_bytes(b"other=Jos\xc3\xa9").unwrap(),
        )
        .header(COOKIE, cookie.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), visited(views + 1));
}

// ---------------------------------------------------------------------------------------
// Finding 6: a hostile stored value is no session (or a rendered cookie), never a panic.
// ---------------------------------------------------------------------------------------

/// Far-future dates whose UTC form is past year 9999, and max ages no i64 of milliseconds
/// holds, written into the SQLite file as any other writer of the table could.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_stored_values_in_a_sqlite_file_are_new_sessions_not_panics() {
    use tessera::store::sqlite::{SqliteOptions, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let addr = server(config(), Arc::new(store.clone())).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;

    let hostile = [
        r#"{"cookie":{"originalMaxAge":null,"expires":"9999-12-31T23:59:59.999-01:00","path":"/"},"views":5}"#,
        r#"{"cookie":{"originalMaxAge":1e300,"expires":null,"path":"/"},"views":5}"#,
        r#"{"cookie":{"originalMaxAge":-1e300,"expires":null,"path":"/"},"views":5}"#,
        r#"{"cookie":{"originalMaxAge":18446744073709551615,"expires":"2026-11-29T09:04:54.097Z","path":"/"},"views":5}"#,
        r#"{"cookie":{"originalMaxAge":86400000,"expires":"9999-12-31T23:59:59.999-23:59","path":"/"},"views":5}"#,
    ];
    for json in hostile {
        let id = SessionId::generate().unwrap();
        conn.execute(
            "INSERT INTO sessions (id, record, expires_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?4)",
            rusqlite::params![id.as_str(), json, now_ms + 3_600_000, now_ms],
        )
        .unwrap();
        let cookie = cookie_for(&id);
        for path in ["/", "/views"] {
            let reply = get(addr, path, Some(&cookie)).await;
            assert_eq!(reply.status, 200, "{path} on {json}");
            if path == "/" {
                assert_eq!(reply.body, WELCOME, "a fresh session for {json}");
                assert_ne!(
                    reply.cookie_id().as_deref(),
                    Some(id.as_str()),
                    "never the hostile session's ID"
                );
            }
        }
    }
    // The extremes that are still read as sessions: every date computed from them is
    // checked, so they are served (200), whatever they do to the cookie's expiry.
    for json in [
        r#"{"cookie":{"originalMaxAge":9223372036854775807,"expires":"9999-12-31T23:59:59.999Z","path":"/"},"views":5}"#,
        r#"{"cookie":{"originalMaxAge":-9223372036854775808,"expires":null,"path":"/"},"views":5}"#,
        r#"{"cookie":{"originalMaxAge":-1,"expires":"0000-01-01T00:00:00.000+23:59","path":"/"},"views":5}"#,
    ] {
        let id = SessionId::generate().unwrap();
        conn.execute(
            "INSERT INTO sessions (id, record, expires_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?4)",
            rusqlite::params![id.as_str(), json, now_ms + 3_600_000, now_ms],
        )
        .unwrap();
        let cookie = cookie_for(&id);
        for path in ["/views", "/", "/"] {
            let reply = get(addr, path, Some(&cookie)).await;
            assert_eq!(reply.status, 200, "{path} on {json}");
        }
    }
    // The server still serves.
    assert_eq!(get(addr, "/", None).await.body, WELCOME);
}

/// A record an application (or a store of its own) hands over with an expiry whose UTC
/// form `time` cannot hold: the cookie is still rendered and the session still saved.
#[tokio::test]
async fn an_unrepresentable_expiry_in_a_record_is_rendered_without_a_panic() {
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let first = get(addr, "/", None).await;
    let id = SessionId::parse(&first.cookie_id().unwrap()).unwrap();
    let cookie = first.cookie().unwrap();
    let mut record = Record::new(CookieData {
        // A fixed expiry and no max age: the engine keeps it as it is.
        expires: Some(time::macros::datetime!(9999-12-31 23:59:59.999 -1)),
        path: Some("/".into()),
        http_only: Some(true),
        ..CookieData::default()
    });
    record.data.insert("views".into(), 1.into());
    store
        .save(&id, &record, SaveMode::Update { expected: None })
        .await
        .unwrap();

    let reply = get(addr, "/", Some(&cookie)).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, &*visited(2)));
    let set = &reply.set_cookies[0];
    assert!(set.contains("; Expires=Fri, 31 Dec 9999 "), "{set}");
    let saved = store.inspect(id.as_str()).await.unwrap().unwrap();
    let json = String::from_utf8(saved.value).unwrap();
    assert!(json.contains(r#""expires":"9999-12-31T"#), "{json}");
}

// ---------------------------------------------------------------------------------------
// Finding 7: stored cookie attributes cannot inject attributes into Set-Cookie.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn stored_cookie_attributes_cannot_inject_into_set_cookie() {
    let store = MemoryStore::new();
    // Each invalid stored attribute falls back to the configured one; a stored domain of
    // none (a host-only cookie) is valid and kept.
    let cases: [(Option<&str>, Option<&str>, [&str; 2]); 4] = [
        (
            Some("/; Domain=evil.example; SameSite=None"),
            None,
            ["; Path=/; Expires=", "; Path=/app; Expires="],
        ),
        (
            Some("/a b"),
            Some("evil.example\r\nX-Injected: 1"),
            [
                "; Path=/; Expires=",
                "; Domain=example.test; Path=/app; Expires=",
            ],
        ),
        (
            Some(""),
            Some(""),
            [
                "; Path=/; Expires=",
                "; Domain=example.test; Path=/app; Expires=",
            ],
        ),
        (
            Some("/\u{e9}"),
            Some("evil.example; Secure"),
            [
                "; Path=/; Expires=",
                "; Domain=example.test; Path=/app; Expires=",
            ],
        ),
    ];
    let configs = [
        config(),
        config().cookie_path("/app").cookie_domain("example.test"),
    ];
    for (n, configured) in configs.into_iter().enumerate() {
        let addr = server(configured, Arc::new(store.clone())).await;
        for (path, domain, expected) in cases {
            let first = get(addr, "/", None).await;
            let id = SessionId::parse(&first.cookie_id().unwrap()).unwrap();
            let mut record = Record::from_json(
                br#"{"cookie":{"originalMaxAge":86400000,"expires":null,"httpOnly":true},"views":1}"#,
            )
            .unwrap();
            record.cookie.path = path.map(str::to_owned);
            record.cookie.domain = domain.map(str::to_owned);
            store
                .save(&id, &record, SaveMode::Update { expected: None })
                .await
                .unwrap();

            let reply = get(addr, "/", Some(&first.cookie().unwrap())).await;
            assert_eq!(reply.body, visited(2), "{path:?} {domain:?}");
            let set = &reply.set_cookies[0];
            assert!(!set.contains("evil"), "{set}");
            assert!(!set.contains("SameSite=None"), "{set}");
            assert!(!set.contains("Secure"), "{set}");
            assert!(set.contains(expected[n]), "{path:?} {domain:?}: {set}");
            assert_eq!(
                set.matches("Domain=").count(),
                usize::from(expected[n].contains("Domain")),
                "{set}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Finding 8: the client does not decide that a request is secure.
// ---------------------------------------------------------------------------------------

/// Sends `request` as it is over a new TCP connection and answers the raw response (plain
/// blocking sockets: reqwest cannot send an absolute-form target to an origin server).
async fn raw_http(addr: SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let request = request.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .expect("the server answers and closes the connection");
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
    .unwrap()
}

fn set_cookie_lines(response: &str) -> Vec<&str> {
    response
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .collect()
}

#[tokio::test]
async fn an_absolute_https_target_over_plain_tcp_is_not_secure() {
    let store = MemoryStore::new();
    let always = server(
        config().cookie_secure(CookieSecure::Always),
        Arc::new(store.clone()),
    )
    .await;
    let auto = server(
        config().cookie_secure(CookieSecure::Auto),
        Arc::new(store.clone()),
    )
    .await;
    for addr in [always, auto] {
        let response = raw_http(
            addr,
            &format!("GET https://{addr}/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let set = set_cookie_lines(&response);
        assert!(
            set.iter().all(|l| !l.contains("Secure")),
            "a Secure cookie over plain TCP: {response}"
        );
    }
    // Always: no cookie at all over plain HTTP (the session is still saved, as express).
    let response = raw_http(
        always,
        &format!("GET https://{always}/ HTTP/1.1\r\nHost: {always}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(set_cookie_lines(&response).is_empty(), "{response}");
}

/// What does make a request secure: the application saying so, for every request
/// (`behind_tls`) or for those of TLS connections (the `SecureConnection` extension its
/// TLS acceptor inserts; here a layer standing in for it).
#[tokio::test]
async fn the_server_not_the_client_says_a_request_came_over_tls() {
    let store = MemoryStore::new();
    let behind_tls = server(
        config()
            .cookie_secure(CookieSecure::Always)
            .behind_tls(true),
        Arc::new(store.clone()),
    )
    .await;
    let set = &get(behind_tls, "/", None).await.set_cookies;
    assert!(
        set[0].ends_with("; HttpOnly; Secure; SameSite=Lax"),
        "{set:?}"
    );

    let layer =
        SessionLayer::new(store.clone(), config().cookie_secure(CookieSecure::Auto)).unwrap();
    let marked = crate::support::serve(
        crate::support::routes()
            .layer(layer.clone())
            .layer(axum::Extension(tessera::SecureConnection)),
    )
    .await;
    let unmarked = crate::support::serve(crate::support::routes().layer(layer)).await;
    let set = &get(marked, "/", None).await.set_cookies;
    assert!(set[0].contains("; HttpOnly; Secure"), "{set:?}");
    let set = &get(unmarked, "/", None).await.set_cookies;
    assert!(!set[0].contains("Secure"), "{set:?}");
}

// ---------------------------------------------------------------------------------------
// Safer defaults.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_cookie_is_same_site_lax_by_default() {
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let reply: Reply = get(addr, "/", None).await;
    assert!(
        reply.set_cookies[0].ends_with("; HttpOnly; SameSite=Lax"),
        "{:?}",
        reply.set_cookies
    );
    // Stored with the session, as express stores `sameSite`.
    let id = reply.cookie_id().unwrap();
    let stored = store.inspect(&id).await.unwrap().unwrap().value;
    let json = String::from_utf8(stored).unwrap();
    assert!(json.contains(r#""path":"/","sameSite":"lax"}"#), "{json}");

    // The opt-out: no SameSite attribute at all, as express by default.
    let addr = server(config().cookie_without_same_site(), Arc::new(store.clone())).await;
    let reply = get(addr, "/", None).await;
    assert!(reply.set_cookies[0].ends_with("; HttpOnly"), "{reply:?}");
    let id = reply.cookie_id().unwrap();
    let json = String::from_utf8(store.inspect(&id).await.unwrap().unwrap().value).unwrap();
    assert!(!json.contains("sameSite"), "{json}");
}

#[test]
fn cookie_name_prefixes_that_browsers_would_refuse_are_config_errors() {
    let layer = |config: SessionConfig| SessionLayer::new(MemoryStore::new(), config);
    for bad in [
        config().name("__Host-sid"),
        config()
            .name("__Host-sid")
            .cookie_secure(CookieSecure::Auto),
        config()
            .name("__Host-sid")
            .cookie_secure(CookieSecure::Always)
            .cookie_path("/app"),
        config()
            .name("__Host-sid")
            .cookie_secure(CookieSecure::Always)
            .cookie_domain("example.test"),
        config().name("__Secure-sid"),
        config().name("__secure-sid"),
    ] {
        let err = layer(bad.clone()).unwrap_err();
        assert!(matches!(err, ConfigError::Prefix { .. }), "{bad:?}: {err}");
        assert!(err.to_string().contains("cookie_secure"), "{err}");
    }
    for good in [
        config()
            .name("__Host-sid")
            .cookie_secure(CookieSecure::Always),
        config()
            .name("__Secure-sid")
            .cookie_secure(CookieSecure::Always)
            .cookie_domain("example.test")
            .cookie_path("/app"),
        config().name("Host-sid"),
    ] {
        assert!(layer(good.clone()).is_ok(), "{good:?}");
    }
}

/// A `__Host-` cookie as browsers accept it, also for a session stored with attributes the
/// prefix forbids (by an app that used another name): `Path=/`, no Domain, Secure.
#[tokio::test]
async fn a_host_prefixed_cookie_is_sent_as_browsers_require() {
    let store = MemoryStore::new();
    let addr = server(
        config()
            .name("__Host-sid")
            .cookie_secure(CookieSecure::Always)
            .behind_tls(true),
        Arc::new(store.clone()),
    )
    .await;
    let first = get(addr, "/", None).await;
    let set = &first.set_cookies[0];
    assert!(set.starts_with("__Host-sid=s%3A"), "{set}");
    assert!(set.contains("; Path=/; Expires="), "{set}");
    assert!(set.ends_with("; HttpOnly; Secure; SameSite=Lax"), "{set}");
    assert!(!set.contains("Domain"), "{set}");

    let pair = set.split(';').next().unwrap().to_owned();
    let id = pair
        .strip_prefix("__Host-sid=s%3A")
        .and_then(|v| v.split('.').next())
        .and_then(SessionId::parse)
        .unwrap();
    let record = Record::from_json(
        br#"{"cookie":{"originalMaxAge":86400000,"expires":null,"secure":false,"httpOnly":true,"domain":"example.test","path":"/app"},"views":1}"#,
    )
    .unwrap();
    store
        .save(&id, &record, SaveMode::Update { expected: None })
        .await
        .unwrap();
    let reply = get(addr, "/", Some(&pair)).await;
    assert_eq!(reply.body, visited(2));
    let set = &reply.set_cookies[0];
    assert!(set.contains("; Path=/; Expires="), "{set}");
    assert!(!set.contains("Domain"), "{set}");
    assert!(set.contains("; Secure"), "{set}");
}

// ---------------------------------------------------------------------------------------
// Finding 14 (library side): a store opened with `create: false` never makes a database.
// ---------------------------------------------------------------------------------------

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sqlite_store_that_must_exist_is_not_created() {
    use tessera::store::sqlite::{SqliteOptions, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let existing = SqliteOptions {
        create: false,
        ..SqliteOptions::default()
    };
    match SqliteStore::open(&path, existing.clone()).await {
        Err(tessera::StoreError::Config(message)) => {
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(!path.exists());
    // Once created (the default), it opens without `create`.
    drop(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    SqliteStore::open(&path, existing).await.unwrap();
}
