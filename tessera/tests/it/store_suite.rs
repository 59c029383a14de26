//! The store conformance suite: what every `Store` must do, written once.
//!
//! A store's test module instantiates it with [`store_suite!`], giving a function that
//! makes a fresh, empty store with a given default TTL (and anything that must live as long
//! as the store, such as the `redis-server` it talks to). A new store is done when it passes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tessera::record::{CookieData, Record};
use tessera::{SaveMode, SaveOutcome, SessionId, Store};
use time::OffsetDateTime;

/// What a store factory returns: the store, and a guard kept alive as long as it.
pub type Made = (Box<dyn std::any::Any + Send>, Arc<dyn Store>);

/// Generates one `#[tokio::test]` per check for a store factory
/// `async fn(default_ttl: Duration) -> Made`.
#[macro_export]
macro_rules! store_suite {
    ($make:path) => {
        $crate::store_suite!(@tests $make;
            load_missing, create_then_load, create_refuses_existing, update_overwrites,
            update_does_not_resurrect, destroy_is_idempotent, touch_reports_existence,
            cookie_expiry_expires, default_ttl_applies_without_cookie_expiry, touch_extends_life,
            expired_cookie_is_not_stored, admin_list_count_inspect_clear, parallel_writers,
            keeps_data_exactly, load_and_touch_extends_life, guarded_update_writes_only_over_what_was_loaded,
            guarded_update_does_not_resurrect, guarded_updates_in_parallel_lose_nothing,
            concurrent_increments_through_the_layer_all_count,
            concurrent_requests_changing_different_keys_both_land,
            a_logout_racing_increments_stays_logged_out, admin_walks_in_bounded_pages,
            index_lists_a_users_sessions, index_prunes_sessions_deleted_behind_its_back,
            index_revokes_one_session, index_revokes_all_and_all_but_current,
            absolute_timeout_ends_an_active_session);
    };
    (@tests $make:path; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::store_suite::$check(|ttl| Box::pin($make(ttl))).await;
            }
        )*
    };
}

pub use crate::index_suite::*;

pub type Factory =
    fn(Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = Made> + Send>>;

const DAY: Duration = Duration::from_secs(86_400);

fn id() -> SessionId {
    SessionId::generate().unwrap()
}

/// A record like express writes, expiring `in_ms` from now (`None`: no cookie expiry).
pub fn record(in_ms: Option<i64>, views: u64) -> Record {
    let mut r = Record::new(CookieData {
        original_max_age: in_ms,
        expires: in_ms.map(|ms| OffsetDateTime::now_utc() + time::Duration::milliseconds(ms)),
        secure: Some(false),
        http_only: Some(true),
        path: Some("/".into()),
        ..CookieData::default()
    });
    r.data.insert("views".into(), json!(views));
    r
}

fn views(r: &Record) -> u64 {
    r.data["views"].as_u64().unwrap()
}

pub async fn load_missing(make: Factory) {
    let (_g, store) = make(DAY).await;
    assert!(store.load(&id()).await.unwrap().is_none());
}

pub async fn create_then_load(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    let rec = record(Some(60_000), 1);
    assert!(matches!(
        store.save(&id, &rec, SaveMode::Create).await.unwrap(),
        SaveOutcome::Saved(_)
    ));
    let got = store
        .load(&id)
        .await
        .unwrap()
        .expect("saved session loads")
        .record;
    assert_eq!(views(&got), 1);
    // Stored with millisecond precision, as JSON keeps it.
    assert_eq!(
        got.cookie.expires.map(|e| e.unix_timestamp()),
        rec.cookie.expires.map(|e| e.unix_timestamp())
    );
    assert_eq!(got.cookie.original_max_age, Some(60_000));
}

pub async fn create_refuses_existing(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store
        .save(&id, &record(Some(60_000), 1), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(
        store
            .save(&id, &record(Some(60_000), 2), SaveMode::Create)
            .await
            .unwrap(),
        SaveOutcome::Conflict
    );
    assert_eq!(
        views(&store.load(&id).await.unwrap().unwrap().record),
        1,
        "a Create must not overwrite"
    );
}

pub async fn update_overwrites(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store
        .save(&id, &record(Some(60_000), 1), SaveMode::Create)
        .await
        .unwrap();
    assert!(matches!(
        store
            .save(
                &id,
                &record(Some(60_000), 2),
                SaveMode::Update { expected: None }
            )
            .await
            .unwrap(),
        SaveOutcome::Saved(_)
    ));
    assert_eq!(views(&store.load(&id).await.unwrap().unwrap().record), 2);
}

pub async fn update_does_not_resurrect(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store
        .save(&id, &record(Some(60_000), 1), SaveMode::Create)
        .await
        .unwrap();
    store.destroy(&id).await.unwrap();
    assert_eq!(
        store
            .save(
                &id,
                &record(Some(60_000), 2),
                SaveMode::Update { expected: None }
            )
            .await
            .unwrap(),
        SaveOutcome::Gone
    );
    assert!(
        store.load(&id).await.unwrap().is_none(),
        "a destroyed session came back"
    );
}

pub async fn destroy_is_idempotent(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store.destroy(&id).await.unwrap();
    store
        .save(&id, &record(None, 1), SaveMode::Create)
        .await
        .unwrap();
    store.destroy(&id).await.unwrap();
    store.destroy(&id).await.unwrap();
    assert!(store.load(&id).await.unwrap().is_none());
}

pub async fn touch_reports_existence(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    assert!(!store.touch(&id, None).await.unwrap());
    store
        .save(&id, &record(None, 1), SaveMode::Create)
        .await
        .unwrap();
    assert!(store.touch(&id, None).await.unwrap());
}

pub async fn cookie_expiry_expires(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store
        .save(&id, &record(Some(1_200), 1), SaveMode::Create)
        .await
        .unwrap();
    assert!(store.load(&id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        store.load(&id).await.unwrap().is_none(),
        "expired session still loads"
    );
    assert!(
        !store.ids().await.unwrap().contains(&id.to_string()),
        "expired session still listed"
    );
}

pub async fn default_ttl_applies_without_cookie_expiry(make: Factory) {
    let (_g, store) = make(Duration::from_secs(1)).await;
    let id = id();
    store
        .save(&id, &record(None, 1), SaveMode::Create)
        .await
        .unwrap();
    assert!(store.load(&id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert!(
        store.load(&id).await.unwrap().is_none(),
        "default TTL not applied"
    );
}

pub async fn touch_extends_life(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store
        .save(&id, &record(Some(1_200), 1), SaveMode::Create)
        .await
        .unwrap();
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(30);
    assert!(store.touch(&id, Some(later)).await.unwrap());
    assert_outlives_its_cookie(&*store, &id, "touch").await;
}

/// After a session saved to expire in 1.2 s was extended to 30 s: it is still there once
/// the 1.2 s have passed, with 20 to 30 s to live.
async fn assert_outlives_its_cookie(store: &dyn Store, id: &SessionId, by: &str) {
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        store.load(id).await.unwrap().is_some(),
        "{by} did not extend the session"
    );
    let ttl = store
        .inspect(id.as_str())
        .await
        .unwrap()
        .unwrap()
        .ttl
        .unwrap();
    assert!(
        ttl > Duration::from_secs(20) && ttl <= Duration::from_secs(30),
        "{ttl:?}"
    );
}

pub async fn expired_cookie_is_not_stored(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    let outcome = store
        .save(&id, &record(Some(-1_000), 1), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Gone);
    assert!(store.load(&id).await.unwrap().is_none());
}

pub async fn admin_list_count_inspect_clear(make: Factory) {
    let (_g, store) = make(DAY).await;
    assert_eq!(store.count().await.unwrap(), 0);
    let ids: Vec<SessionId> = (0..25).map(|_| id()).collect();
    for (n, id) in ids.iter().enumerate() {
        store
            .save(id, &record(Some(600_000), n as u64), SaveMode::Create)
            .await
            .unwrap();
    }
    assert_eq!(store.count().await.unwrap(), 25);
    let mut listed = store.ids().await.unwrap();
    listed.sort();
    let mut expected: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let shown = store.inspect(ids[3].as_str()).await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&shown.value).unwrap();
    assert_eq!(json["views"], json!(3));
    assert_eq!(json["cookie"]["originalMaxAge"], json!(600_000));
    let ttl = shown.ttl.unwrap();
    assert!(
        ttl > Duration::from_secs(590) && ttl <= Duration::from_secs(600),
        "{ttl:?}"
    );
    assert!(store.inspect("no-such-session").await.unwrap().is_none());
    assert_eq!(store.clear().await.unwrap(), 25);
    assert_eq!(store.count().await.unwrap(), 0);
}

pub async fn parallel_writers(make: Factory) {
    let (_g, store) = make(DAY).await;
    let mut tasks = Vec::new();
    for n in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = id();
            store
                .save(&id, &record(Some(600_000), n), SaveMode::Create)
                .await
                .unwrap();
            for v in 1..=5 {
                store
                    .save(
                        &id,
                        &record(Some(600_000), n * 100 + v),
                        SaveMode::Update { expected: None },
                    )
                    .await
                    .unwrap();
            }
            (id, n * 100 + 5)
        }));
    }
    for task in tasks {
        let (id, expected) = task.await.unwrap();
        assert_eq!(
            views(&store.load(&id).await.unwrap().unwrap().record),
            expected
        );
    }
    assert_eq!(store.count().await.unwrap(), 64);
}

pub async fn keeps_data_exactly(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    let json = r#"{"cookie":{"originalMaxAge":600000,"expires":"2099-01-01T00:00:00.000Z","secure":false,"httpOnly":true,"path":"/"},"user":{"name":"Zoë ✓","roles":["a","b"],"n":12345678901234567890,"f":0.1,"big":1e+21},"ok":true,"none":null}"#;
    let rec = Record::from_json(json.as_bytes()).unwrap();
    store.save(&id, &rec, SaveMode::Create).await.unwrap();
    let got = store.load(&id).await.unwrap().unwrap().record;
    assert_eq!(String::from_utf8(got.to_json()).unwrap(), json);
}

pub async fn load_and_touch_extends_life(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    assert!(store.load_and_touch(&id, None).await.unwrap().is_none());
    store
        .save(&id, &record(Some(1_200), 7), SaveMode::Create)
        .await
        .unwrap();
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(30);
    let got = store
        .load_and_touch(&id, Some(later))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(views(&got.record), 7);
    if got.touched {
        assert_outlives_its_cookie(&*store, &id, "load_and_touch").await;
    }
}

/// The guarded commit's compare-and-set: an update that names the version it loaded
/// writes only over that version; the version a save answers is what a load then sees.
pub async fn guarded_update_writes_only_over_what_was_loaded(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    let SaveOutcome::Saved(created) = store
        .save(&id, &record(Some(60_000), 1), SaveMode::Create)
        .await
        .unwrap()
    else {
        panic!("a new session is saved");
    };
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        loaded.version, created,
        "a load sees the version the save answered"
    );
    let first = SaveMode::Update {
        expected: Some(&loaded.version),
    };
    let SaveOutcome::Saved(second) = store
        .save(&id, &record(Some(60_000), 2), first)
        .await
        .unwrap()
    else {
        panic!("an update over the loaded version is written");
    };
    assert_ne!(second, loaded.version);
    // A writer still holding the first version lost the race: nothing written.
    assert_eq!(
        store
            .save(&id, &record(Some(60_000), 3), first)
            .await
            .unwrap(),
        SaveOutcome::Changed
    );
    assert_eq!(views(&store.load(&id).await.unwrap().unwrap().record), 2);
    // The version the winner got back chains to the next commit without a load.
    let next = SaveMode::Update {
        expected: Some(&second),
    };
    assert!(matches!(
        store
            .save(&id, &record(Some(60_000), 4), next)
            .await
            .unwrap(),
        SaveOutcome::Saved(_)
    ));
    assert_eq!(views(&store.load(&id).await.unwrap().unwrap().record), 4);
}

pub async fn guarded_update_does_not_resurrect(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store
        .save(&id, &record(Some(60_000), 1), SaveMode::Create)
        .await
        .unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    store.destroy(&id).await.unwrap();
    let mode = SaveMode::Update {
        expected: Some(&loaded.version),
    };
    assert_eq!(
        store
            .save(&id, &record(Some(60_000), 2), mode)
            .await
            .unwrap(),
        SaveOutcome::Gone
    );
    assert!(store.load(&id).await.unwrap().is_none());
}

/// Many writers, each a load, an increment and a guarded save retried until it lands:
/// every increment counts.
pub async fn guarded_updates_in_parallel_lose_nothing(make: Factory) {
    let (_g, store) = make(DAY).await;
    let id = id();
    store
        .save(&id, &record(Some(600_000), 0), SaveMode::Create)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..5 {
                loop {
                    let loaded = store.load(&id).await.unwrap().unwrap();
                    let next = record(Some(600_000), views(&loaded.record) + 1);
                    let mode = SaveMode::Update {
                        expected: Some(&loaded.version),
                    };
                    match store.save(&id, &next, mode).await.unwrap() {
                        SaveOutcome::Saved(_) => break,
                        SaveOutcome::Changed => conflicts += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(views(&store.load(&id).await.unwrap().unwrap().record), 80);
}

/// The layer on this store, serving the test routes.
async fn app(store: Arc<dyn Store>) -> std::net::SocketAddr {
    crate::support::server(crate::support::config(), store).await
}

/// `update` re-runs on the fresh value when another request committed first: concurrent
/// increments of one session all count.
pub async fn concurrent_increments_through_the_layer_all_count(make: Factory) {
    let (_g, store) = make(DAY).await;
    let addr = app(store).await;
    let first = crate::support::get(addr, "/increment", None).await;
    assert_eq!(first.body, "1");
    let cookie = first.cookie().unwrap();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let cookie = cookie.clone();
            tokio::spawn(
                async move { crate::support::get(addr, "/increment", Some(&cookie)).await },
            )
        })
        .collect();
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(
        crate::support::get(addr, "/views", Some(&cookie))
            .await
            .body,
        "101",
        "every increment counted"
    );
}

/// Two requests of one session, each setting its own key while the other is in flight:
/// both keys land (a whole-record write would drop one).
pub async fn concurrent_requests_changing_different_keys_both_land(make: Factory) {
    let (_g, store) = make(DAY).await;
    let addr = app(store).await;
    let cookie = crate::support::get(addr, "/increment", None)
        .await
        .cookie()
        .unwrap();
    let slow = tokio::spawn({
        let cookie = cookie.clone();
        async move { crate::support::get(addr, "/slow-set?key=a&value=1", Some(&cookie)).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let fast = crate::support::get(addr, "/slow-set?key=b&value=2&wait=0", Some(&cookie)).await;
    assert_eq!(fast.status, 200);
    assert_eq!(slow.await.unwrap().status, 200);
    let data = crate::support::get(addr, "/data", Some(&cookie)).await.body;
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (&data["a"], &data["b"], &data["views"]),
        (&json!("1"), &json!("2"), &json!(1)),
        "{data}"
    );
}

/// A logout racing many increments: the session stays destroyed, and no response but the
/// logout's carries a removal cookie (which would also delete a fresh login's cookie).
pub async fn a_logout_racing_increments_stays_logged_out(make: Factory) {
    let (_g, store) = make(DAY).await;
    let addr = app(store.clone()).await;
    let first = crate::support::get(addr, "/increment", None).await;
    let cookie = first.cookie().unwrap();
    let id = SessionId::parse(&first.cookie_id().unwrap()).unwrap();
    let requests: Vec<_> = (0..100)
        .map(|n| {
            let cookie = cookie.clone();
            let path = if n == 50 { "/logout" } else { "/increment" };
            tokio::spawn(
                async move { (path, crate::support::get(addr, path, Some(&cookie)).await) },
            )
        })
        .collect();
    for request in requests {
        let (path, reply) = request.await.unwrap();
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let removals = reply
            .set_cookies
            .iter()
            .filter(|c| c.contains("Expires=Thu, 01 Jan 1970"))
            .count();
        assert_eq!(
            removals,
            usize::from(path == "/logout"),
            "{path}: {:?}",
            reply.set_cookies
        );
    }
    assert!(
        store.load(&id).await.unwrap().is_none(),
        "the logged-out session was brought back"
    );
}

/// An admin walk goes page by page: more sessions than one page are all seen once, a page
/// never holds more than the store's page size, and a walker can stop it early.
pub async fn admin_walks_in_bounded_pages(make: Factory) {
    let (_g, store) = make(DAY).await;
    let n = 1_100;
    // Saved 20 at a time: a pooled store's calls time out waiting for a connection when
    // a thousand come at once, and this is a test of walking, not of pools.
    for batch in (0..n).collect::<Vec<u64>>().chunks(20) {
        let saves: Vec<_> = batch
            .iter()
            .map(|&v| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .save(&id(), &record(Some(600_000), v), SaveMode::Create)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for save in saves {
            save.await.unwrap();
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut largest_page = 0;
    let walked = store
        .walk(false, &mut |page: &tessera::store::Page| {
            largest_page = largest_page.max(page.sessions.len());
            for s in &page.sessions {
                assert!(s.bytes > 0 && s.ttl.is_some());
                assert!(seen.insert(s.id.clone()), "{} seen twice", s.id);
            }
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(
        (walked.sessions, walked.foreign, walked.stopped),
        (n, 0, false)
    );
    assert_eq!(seen.len() as u64, n);
    assert!(
        largest_page <= tessera::store::admin::PAGE_SIZE && largest_page < n as usize,
        "a page of {largest_page}"
    );
    let mut pages = 0;
    let stopped = store
        .walk(true, &mut |_: &tessera::store::Page| {
            pages += 1;
            std::ops::ControlFlow::Break(())
        })
        .await
        .unwrap();
    assert!(stopped.stopped && pages == 1);
    assert_eq!(
        stopped.deleted, stopped.sessions,
        "the page seen was deleted"
    );
    assert_eq!(store.count().await.unwrap(), n - stopped.deleted);
    assert_eq!(store.clear().await.unwrap(), n - stopped.deleted);
    assert_eq!(store.count().await.unwrap(), 0);
}
