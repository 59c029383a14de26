//! HTTP-level tests of the layer: every rule of a request, over real TCP, with the layer
//! mounted in a real axum server and a real HTTP client.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tessera::{
    CookieSecure, MemoryStore, Priority, SameSite, SessionConfig, SessionId, Store, Unset,
};

use crate::support::{config, get, get_raw, server, Counting, SECRET};

const WELCOME: &str = "Welcome to the session demo! Visit again to see the view count increase.";

#[tokio::test]
async fn demo_flow_counts_and_logout_clears_the_cookie() {
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let first = get(addr, "/", None).await;
    assert_eq!((first.status, first.body.as_str()), (200, WELCOME));
    let cookie = first
        .cookie()
        .expect("a new, modified session gets a cookie");
    let second = get(addr, "/", Some(&cookie)).await;
    assert_eq!(second.body, "You have visited this page 2 times.");
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 3 times."
    );
    assert_eq!(store.count().await.unwrap(), 1);

    let out = get(addr, "/logout", Some(&cookie)).await;
    assert_eq!(out.body, "Logged out successfully!");
    assert_eq!(out.set_cookies.len(), 1);
    assert!(
        out.set_cookies[0]
            .starts_with("connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly"),
        "{:?}",
        out.set_cookies
    );
    assert_eq!(store.count().await.unwrap(), 0);
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        WELCOME,
        "the old cookie no longer works"
    );
}

#[tokio::test]
async fn cookie_is_signed_exactly_like_express() {
    // The reference cookie of shared/reference/express-session.md, taken from a running
    // express-session app with secret `your_secret_key_here`; the signature was also
    // recomputed with Python's hmac module (see signing.rs).
    // express sends no SameSite by default; Tessera's Lax default is opted out of here.
    let config = SessionConfig::default()
        .secret("your_secret_key_here")
        .cookie_without_same_site()
        .id_generator(|| Some("fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q".into()));
    let addr = server(config, Arc::new(MemoryStore::new())).await;
    let reply = get(addr, "/", None).await;
    assert_eq!(
        reply.set_cookies,
        ["connect.sid=s%3AfxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q.t03XZrgJ%2F%2B0XNdPYID%2Fiw9L9l7h%2FK4wd8fOUjnocFEk; Path=/; HttpOnly"]
    );
}

#[tokio::test]
async fn generated_ids_are_32_url_safe_characters() {
    let addr = server(config(), Arc::new(MemoryStore::new())).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let id = get(addr, "/", None).await.cookie_id().unwrap();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert!(seen.insert(id));
    }
}

#[tokio::test]
async fn rotation_accepts_old_secret_and_resigns_with_the_new() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let old = server(SessionConfig::default().secret("old secret"), store.clone()).await;
    let rotated = server(
        SessionConfig::default().secrets(["new secret", "old secret"]),
        store.clone(),
    )
    .await;
    let only_new = server(SessionConfig::default().secret("new secret"), store.clone()).await;

    let minted = get(old, "/", None).await;
    let signed_old = minted.cookie().unwrap();
    // Re-signed even where express would send no cookie (unmodified, no max age).
    let read_only = get(rotated, "/views", Some(&signed_old)).await;
    assert_eq!(read_only.body, "1");
    assert!(
        read_only.cookie().is_some_and(|c| c != signed_old),
        "{:?}",
        read_only.set_cookies
    );
    let reply = get(rotated, "/", Some(&signed_old)).await;
    assert_eq!(
        reply.body, "You have visited this page 2 times.",
        "old-secret cookie accepted"
    );
    let resigned = reply
        .cookie()
        .expect("modified session: cookie re-sent, signed with the first secret");
    assert_ne!(resigned, signed_old);
    assert_eq!(
        reply.cookie_id(),
        minted.cookie_id(),
        "same session, new signature"
    );
    assert_eq!(
        get(only_new, "/", Some(&resigned)).await.body,
        "You have visited this page 3 times."
    );
    assert_eq!(
        get(only_new, "/", Some(&signed_old)).await.body,
        WELCOME,
        "old secret no longer configured there"
    );
}

#[tokio::test]
async fn bad_cookies_are_no_cookie_and_never_looked_up() {
    let store = Counting::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let good = get(addr, "/", None).await;
    let good_cookie = good.cookie().unwrap();
    let good_id = good.cookie_id().unwrap();
    let value = good_cookie.trim_start_matches("connect.sid=");
    let loads_before = store.calls.get(&store.calls.load);

    let tampered_sig = format!("connect.sid={}", value.replacen('.', ".A", 1));
    let other_id = format!("connect.sid=s%3AAAAA{}", &value[9..]);
    let oversized = format!("connect.sid=s%3A{}.{}", "a".repeat(5000), "b".repeat(43));
    let bad: Vec<Vec<u8>> = vec![
        format!("connect.sid={good_id}").into_bytes(), // unsigned
        tampered_sig.into_bytes(),                     // tampered signature
        other_id.into_bytes(),                         // tampered ID
        b"connect.sid=s%3Agarbage".to_vec(),           // no dot
        b"connect.sid=s%3A".to_vec(),                  // empty
        b"connect.sid=".to_vec(),                      // empty
        b"connect.sid=%ZZ%".to_vec(),                  // bad escape
        oversized.into_bytes(),                        // oversized
        b"connect.sid=s%3A\xff\xfe.\xff".to_vec(),     // not UTF-8
        b"connect.sid=s%3Aab%20cd.e".to_vec(),         // ill-formed ID
    ];
    for cookie in &bad {
        let reply = get_raw(addr, "/", Some(cookie)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, WELCOME),
            "{:?}",
            String::from_utf8_lossy(cookie)
        );
        let new_id = reply
            .cookie_id()
            .expect("a fresh session with its own cookie");
        assert_ne!(new_id, good_id, "never the client's ID");
    }
    assert_eq!(
        store.calls.get(&store.calls.load),
        loads_before,
        "no store lookup for a bad cookie"
    );

    // A well-signed ID the store does not know: looked up once, then a new ID.
    let other_secret = server(config(), Arc::new(MemoryStore::new())).await;
    let unknown = get(other_secret, "/", None).await;
    let reply = get(addr, "/", Some(&unknown.cookie().unwrap())).await;
    assert_eq!(reply.body, WELCOME);
    assert_ne!(reply.cookie_id().unwrap(), unknown.cookie_id().unwrap());
    assert_eq!(store.calls.get(&store.calls.load), loads_before + 1);
}

#[tokio::test]
async fn the_first_verifying_duplicate_cookie_wins() {
    let addr = server(config(), Arc::new(MemoryStore::new())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let header = format!("connect.sid=garbage; other=1; {cookie}; connect.sid=s%3Ax.y");
    assert_eq!(
        get(addr, "/", Some(&header)).await.body,
        "You have visited this page 2 times."
    );
}

#[tokio::test]
async fn untouched_routes_do_no_store_io() {
    let store = Counting::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let before = store.calls.total();
    for _ in 0..5 {
        let reply = get(addr, "/untouched", Some(&cookie)).await;
        assert_eq!(reply.status, 200);
        assert!(reply.set_cookies.is_empty());
        assert!(get(addr, "/untouched", None).await.set_cookies.is_empty());
    }
    assert_eq!(store.calls.total(), before);
}

#[tokio::test]
async fn unmodified_sessions_are_touched_not_saved() {
    let store = Counting::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let saves = store.calls.get(&store.calls.save);
    let reply = get(addr, "/views", Some(&cookie)).await;
    assert_eq!(reply.body, "1");
    assert!(
        reply.set_cookies.is_empty(),
        "not rolling, not modified: no cookie"
    );
    assert_eq!(store.calls.get(&store.calls.save), saves);
    assert_eq!(store.calls.get(&store.calls.touch), 1);
}

#[tokio::test]
async fn always_touch_extends_untouched_routes() {
    let store = Counting::new();
    let addr = server(config().always_touch(true), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    assert!(get(addr, "/untouched", Some(&cookie))
        .await
        .set_cookies
        .is_empty());
    assert_eq!(store.calls.get(&store.calls.touch), 1);
    // Loaded, so the session's own max age (which "remember me" may have changed) is kept.
    assert_eq!(store.calls.get(&store.calls.load), 1);
}

#[tokio::test]
async fn resave_saves_unmodified_sessions() {
    let store = Counting::new();
    let addr = server(config().resave(true), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let saves = store.calls.get(&store.calls.save);
    get(addr, "/views", Some(&cookie)).await;
    assert_eq!(store.calls.get(&store.calls.save), saves + 1);
    assert_eq!(store.calls.get(&store.calls.touch), 0);
}

#[tokio::test]
async fn save_uninitialized_stores_and_sends_empty_sessions() {
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let reply = get(addr, "/views", None).await;
    assert!(
        reply.set_cookies.is_empty(),
        "default: a new unmodified session gets no cookie"
    );
    assert_eq!(store.count().await.unwrap(), 0);

    let addr = server(config().save_uninitialized(true), Arc::new(store.clone())).await;
    for path in ["/views", "/untouched"] {
        let reply = get(addr, path, None).await;
        let id = reply
            .cookie_id()
            .expect("save_uninitialized sends a cookie");
        assert!(
            store.inspect(&id).await.unwrap().is_some(),
            "and stores the session"
        );
    }
}

#[tokio::test]
async fn rolling_sends_a_fresh_cookie_every_time() {
    let store = Counting::new();
    let addr = server(config().rolling(true), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    for path in ["/views", "/untouched"] {
        let reply = get(addr, path, Some(&cookie)).await;
        assert_eq!(reply.cookie().as_deref(), Some(cookie.as_str()), "{path}");
        assert!(reply.set_cookies[0].contains("; Expires="));
    }
    assert_eq!(
        store.calls.get(&store.calls.touch),
        2,
        "each extends the stored TTL"
    );
    // An unknown ID is not given a rolling cookie.
    store.inner.clear().await.unwrap();
    assert!(get(addr, "/untouched", Some(&cookie))
        .await
        .set_cookies
        .is_empty());
}

#[tokio::test]
async fn unset_keep_and_destroy() {
    let store = MemoryStore::new();
    let keep = server(config(), Arc::new(store.clone())).await;
    let cookie = get(keep, "/", None).await.cookie().unwrap();
    let reply = get(keep, "/unset", Some(&cookie)).await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(
        get(keep, "/views", Some(&cookie)).await.body,
        "1",
        "unset keep: stored session unchanged"
    );

    let destroy = server(config().unset(Unset::Destroy), Arc::new(store.clone())).await;
    get(destroy, "/unset", Some(&cookie)).await;
    assert_eq!(
        store.count().await.unwrap(),
        0,
        "unset destroy: stored session deleted"
    );
}

#[tokio::test]
async fn regenerate_gives_a_new_id_and_destroys_the_old() {
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let first = get(addr, "/", None).await;
    let old_id = first.cookie_id().unwrap();
    let login = get(addr, "/login", Some(&first.cookie().unwrap())).await;
    let new_id = login
        .cookie_id()
        .expect("regenerated session gets a cookie");
    assert_eq!(login.body, new_id);
    assert_ne!(new_id, old_id);
    assert!(
        store.inspect(&old_id).await.unwrap().is_none(),
        "old record destroyed"
    );
    let stored = store.inspect(&new_id).await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&stored.value).unwrap();
    assert_eq!(json["user"], "ada");
    assert!(json.get("views").is_none(), "regenerate empties the data");
}

#[tokio::test]
async fn remember_me_changes_the_cookie_lifetime() {
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let first = get(addr, "/", None).await;
    let reply = get(addr, "/remember", Some(&first.cookie().unwrap())).await;
    let set = reply
        .set_cookies
        .first()
        .expect("a lifetime change sends the cookie");
    let expires = set
        .split("Expires=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(expires, &format)
        .unwrap()
        .assume_utc();
    let from_now = at - time::OffsetDateTime::now_utc();
    assert!(
        (from_now - time::Duration::days(30)).abs() < time::Duration::minutes(1),
        "Expires={expires} is not 30 days from now"
    );
    let ttl = store
        .inspect(&first.cookie_id().unwrap())
        .await
        .unwrap()
        .unwrap()
        .ttl
        .unwrap();
    assert!(ttl > Duration::from_secs(29 * 86_400), "{ttl:?}");
}

#[tokio::test]
async fn cookie_attributes_follow_the_options() {
    let config = config()
        .name("sid")
        .cookie_path("/app")
        .cookie_domain("example.test")
        .cookie_same_site(SameSite::Lax)
        .cookie_priority(Priority::High)
        .cookie_http_only(false);
    let layer = tessera::SessionLayer::new(MemoryStore::new(), config).unwrap();
    let addr = crate::support::serve(crate::support::routes().layer(layer)).await;
    let reply = get(addr, "/", None).await;
    let set = &reply.set_cookies[0];
    let attrs: Vec<&str> = set
        .split("; ")
        .skip(1)
        .map(|a| a.split('=').next().unwrap())
        .collect();
    assert_eq!(
        attrs,
        ["Domain", "Path", "Expires", "Priority", "SameSite"],
        "{set}"
    );
    assert!(set.starts_with("sid=s%3A"));
    assert!(set.contains("; Domain=example.test; Path=/app; Expires="));
    assert!(set.ends_with("; Priority=High; SameSite=Lax"));
    assert!(!set.contains("Max-Age"));

    // No max age: a browser-session cookie, no Expires; SameSite=Lax by default.
    let addr = server(
        SessionConfig::default().secret(SECRET),
        Arc::new(MemoryStore::new()),
    )
    .await;
    let set = &get(addr, "/", None).await.set_cookies[0];
    assert_eq!(
        set.matches("; ").count(),
        3,
        "Path, HttpOnly, SameSite only: {set}"
    );
    assert!(set.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{set}");
}

#[tokio::test]
async fn secure_cookies_need_a_secure_request() {
    let store = MemoryStore::new();
    let always = server(
        config().cookie_secure(CookieSecure::Always),
        Arc::new(store.clone()),
    )
    .await;
    let reply = get(always, "/", None).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.set_cookies.is_empty(),
        "no Secure cookie over plain HTTP"
    );
    assert_eq!(store.count().await.unwrap(), 1, "but the session is saved");

    let auto = server(
        config().cookie_secure(CookieSecure::Auto).trust_proxy(true),
        Arc::new(store.clone()),
    )
    .await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("http://{auto}/"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("; HttpOnly; Secure"), "{set}");
    assert!(
        get(auto, "/", None).await.set_cookies[0]
            .find("Secure")
            .is_none(),
        "plain request: not Secure"
    );

    let untrusted = server(config().cookie_secure(CookieSecure::Auto), Arc::new(store)).await;
    let resp = client
        .get(format!("http://{untrusted}/"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(
        !resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure"),
        "proxy header ignored unless trusted"
    );
}

#[tokio::test]
async fn a_failing_store_answers_503() {
    let store = Counting::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    store.failing.store(true, Ordering::SeqCst);
    for (path, cookie) in [
        ("/", Some(cookie.as_str())),
        ("/", None),
        ("/views", Some(&cookie)),
        ("/logout", Some(&cookie)),
    ] {
        let reply = get(addr, path, cookie).await;
        assert_eq!(reply.status, 503, "{path} {cookie:?}");
        assert!(reply.set_cookies.is_empty());
    }
    assert_eq!(
        get(addr, "/untouched", Some(&cookie)).await.status,
        200,
        "no store needed, no failure"
    );
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 2 times."
    );
}

#[tokio::test]
async fn a_slow_store_answers_503_after_the_timeout() {
    let store = Counting::new();
    let addr = server(
        config().store_timeout(Duration::from_millis(300)),
        Arc::new(store.clone()),
    )
    .await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    store.stall.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let reply = get(addr, "/", Some(&cookie)).await;
    assert_eq!(reply.status, 503);
    // Not a timing assertion on speed: only that the request did not hang on the stalled store.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_session_destroyed_meanwhile_is_not_resurrected() {
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let slow = tokio::spawn({
        let cookie = cookie.clone();
        async move { get(addr, "/slow-increment", Some(&cookie)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(addr, "/logout", Some(&cookie)).await.body,
        "Logged out successfully!"
    );
    let slow = slow.await.unwrap();
    assert_eq!(slow.body, "2");
    assert_eq!(
        store.count().await.unwrap(),
        0,
        "the slow request's save must not bring it back"
    );
    // No cookie at all: a removal cookie would also delete one a concurrent login's
    // regenerate() just gave the browser.
    assert!(slow.set_cookies.is_empty(), "{:?}", slow.set_cookies);
}

#[tokio::test]
async fn corrupt_records_become_new_sessions() {
    use tessera::record::Record;
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let reply = get(addr, "/", None).await;
    let id = SessionId::parse(&reply.cookie_id().unwrap()).unwrap();
    // MemoryStore holds records, so a corrupt one is simulated one level up, in Redis and
    // SQLite tests; here the engine's handling of a record without data is checked.
    let empty = Record::from_json(br#"{"cookie":{"originalMaxAge":null,"expires":null}}"#).unwrap();
    store
        .save(&id, &empty, tessera::SaveMode::Update { expected: None })
        .await
        .unwrap();
    assert_eq!(
        get(addr, "/", Some(&reply.cookie().unwrap())).await.body,
        WELCOME
    );
}

#[tokio::test]
async fn a_value_of_another_type_is_a_500_and_the_session_stays() {
    use tessera::record::Record;
    let store = MemoryStore::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let reply = get(addr, "/", None).await;
    let cookie = reply.cookie().unwrap();
    let id = SessionId::parse(&reply.cookie_id().unwrap()).unwrap();
    // Another app (Node, say) stored `views` as a string; `/views` reads it as a number.
    let text = Record::from_json(
        br#"{"cookie":{"originalMaxAge":null,"expires":null,"path":"/"},"views":"three"}"#,
    )
    .unwrap();
    store
        .save(&id, &text, tessera::SaveMode::Update { expected: None })
        .await
        .unwrap();
    let reply = get(addr, "/views", Some(&cookie)).await;
    assert_eq!(reply.status, 500);
    // The session is left as it was: a later read of the right type still works.
    let number = Record::from_json(
        br#"{"cookie":{"originalMaxAge":null,"expires":null,"path":"/"},"views":3}"#,
    )
    .unwrap();
    store
        .save(&id, &number, tessera::SaveMode::Update { expected: None })
        .await
        .unwrap();
    assert_eq!(get(addr, "/views", Some(&cookie)).await.body, "3");
}

#[tokio::test]
async fn concurrent_sessions_stay_apart() {
    let addr = server(config(), Arc::new(MemoryStore::new())).await;
    let mut tasks = Vec::new();
    for n in 1..=20u64 {
        tasks.push(tokio::spawn(async move {
            let browser = test_support::browser();
            let mut last = String::new();
            for _ in 0..n {
                last = browser
                    .get(format!("http://{addr}/views"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                browser.get(format!("http://{addr}/")).send().await.unwrap();
            }
            let views = browser
                .get(format!("http://{addr}/views"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (n, last, views)
        }));
    }
    for task in tasks {
        let (n, last, views) = task.await.unwrap();
        assert_eq!(views, n.to_string());
        assert_eq!(last, (n - 1).to_string());
    }
}

#[tokio::test]
async fn missing_layer_is_a_500_with_a_cause() {
    let addr = crate::support::serve(crate::support::routes()).await;
    let reply = get(addr, "/", None).await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("without SessionLayer"));
}

#[test]
fn config_errors_are_typed() {
    use tessera::{ConfigError, SessionLayer};
    let err = SessionLayer::new(MemoryStore::new(), SessionConfig::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Secret(_)), "{err}");
    let err = SessionLayer::new(MemoryStore::new(), config().name("a b")).unwrap_err();
    assert!(matches!(err, ConfigError::Name(_)));
    let err = SessionLayer::new(MemoryStore::new(), config().cookie_path("/a;b")).unwrap_err();
    assert!(matches!(err, ConfigError::Attribute { .. }));
}

#[tokio::test]
async fn rolling_keeps_a_sessions_own_lifetime() {
    let store = MemoryStore::new();
    let addr = server(config().rolling(true), Arc::new(store.clone())).await;
    let first = get(addr, "/", None).await;
    let cookie = first.cookie().unwrap();
    get(addr, "/remember", Some(&cookie)).await;
    let reply = get(addr, "/untouched", Some(&cookie)).await;
    let expires = reply.set_cookies[0]
        .split("Expires=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let in_30_days = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    assert!(
        expires.contains(&format!("{:02} ", in_30_days.day())),
        "{expires}"
    );
    let ttl = store
        .inspect(&first.cookie_id().unwrap())
        .await
        .unwrap()
        .unwrap()
        .ttl
        .unwrap();
    assert!(
        ttl > Duration::from_secs(29 * 86_400),
        "rolling must not shorten it: {ttl:?}"
    );
}

/// A regenerate that cannot delete the old record fails the request, even when the handler
/// ignores the error: it never carries on under the old ID, which an attacker may have
/// planted (session fixation), and nothing of the request is saved.
#[tokio::test]
async fn a_failed_regenerate_fails_the_request_even_if_the_handler_ignores_it() {
    let store = Counting::new();
    let addr = server(config(), Arc::new(store.clone())).await;
    let first = get(addr, "/", None).await;
    let cookie = first.cookie().unwrap();
    let old = tessera::SessionId::parse(&first.cookie_id().unwrap()).unwrap();
    *store.failing_op.lock().unwrap() = Some("destroy");
    let login = get(addr, "/login-ignoring-errors", Some(&cookie)).await;
    assert_eq!(login.status, 503, "{login:?}");
    assert!(login.set_cookies.is_empty(), "{:?}", login.set_cookies);
    let stored = store.inner.load(&old).await.unwrap().unwrap().record;
    assert!(
        !stored.data.contains_key("user"),
        "the old session was logged in: {:?}",
        stored.data
    );
    assert_eq!(store.inner.len(), 1, "no new session was stored either");
}

/// A change that would make the stored session larger than the limit fails with a clear
/// error to the handler and changes nothing; the rest of the request's changes are saved.
#[tokio::test]
async fn a_session_over_the_size_limit_is_refused_to_the_handler() {
    let store = MemoryStore::new();
    let addr = server(
        config().max_record_bytes(Some(10_000)),
        Arc::new(store.clone()),
    )
    .await;
    let small = get(addr, "/big?bytes=1000", None).await;
    assert_eq!(small.body, "stored");
    let cookie = small.cookie().unwrap();
    let big = get(addr, "/big?bytes=20000", Some(&cookie)).await;
    assert_eq!((big.status, big.body.as_str()), (200, "too large"));
    let data: serde_json::Value =
        serde_json::from_str(&get(addr, "/data", Some(&cookie)).await.body).unwrap();
    assert_eq!(
        data["blob"].as_str().map(str::len),
        Some(1000),
        "the refused value was not stored: the old one stays"
    );
}

/// The subscriber hears a visit create a session, a login regenerate it and a logout destroy
/// it, each with a handle, never the session ID.
#[tokio::test]
async fn events_tell_an_audit_log_what_happened_without_session_ids() {
    let events = Arc::new(std::sync::Mutex::new(Vec::<tessera::SessionEvent>::new()));
    let seen = events.clone();
    let config = config().on_event(move |event| seen.lock().unwrap().push(event.clone()));
    let addr = server(config, Arc::new(MemoryStore::new())).await;
    let first = get(addr, "/", None).await;
    let cookie = first.cookie().unwrap();
    let visitor = first.cookie_id().unwrap();
    let login = get(addr, "/login", Some(&cookie)).await;
    let user = login.cookie_id().unwrap();
    let user_cookie = login.cookie().unwrap();
    get(addr, "/logout", Some(&user_cookie)).await;

    let events = events.lock().unwrap().clone();
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        names,
        ["created", "regenerated", "created", "destroyed"],
        "{events:?}"
    );
    let handle = |n: usize| events[n].handle.clone().unwrap();
    assert_eq!(
        events[1].kind,
        tessera::EventKind::Regenerated { old: handle(0) },
        "the login names the visitor's session as the one it replaced"
    );
    assert_eq!(handle(1), handle(2), "the new session is the one stored");
    assert_eq!(handle(3), handle(2), "and the one logged out");
    assert_ne!(handle(0), handle(1));
    for event in &events {
        let line = event.to_json().to_string();
        assert!(
            !line.contains(&visitor) && !line.contains(&user),
            "a session ID in an event: {line}"
        );
    }
}
