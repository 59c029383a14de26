//! The per-user index and the absolute timeout, checked on every store through the
//! conformance suite (`store_suite!` runs these too): listing, revoking one, all, all but
//! the current one, pruning of sessions deleted behind the index's back, and the absolute
//! timeout under steady activity. Real HTTP through the layer, real stores.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tessera::index::UserIndex;
use tessera::{Session, SessionConfig, SessionError, SessionId, SessionLayer, Store};

use crate::support::{self, Reply};

type Factory = super::store_suite::Factory;
const DAY: Duration = Duration::from_secs(86_400);

#[derive(serde::Deserialize)]
struct Args {
    user: Option<String>,
    handle: Option<String>,
    keep: Option<bool>,
}

async fn login(session: Session, Query(q): Query<Args>) -> Result<String, SessionError> {
    session.regenerate().await?;
    session.insert("user", q.user.unwrap_or_default()).await?;
    session.set_device("test client").await?;
    Ok(session.id().await?.to_string())
}

async fn mine(session: Session) -> Result<String, SessionError> {
    let list: Vec<Value> = session
        .user_sessions()
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "handle": s.handle.to_string(),
                "current": s.current,
                "created": s.created.is_some(),
                "expires": s.expires.is_some(),
                "device": s.device,
            })
        })
        .collect();
    Ok(Value::Array(list).to_string())
}

async fn revoke(session: Session, Query(q): Query<Args>) -> Result<String, SessionError> {
    let handle = q.handle.unwrap_or_default().parse().unwrap();
    Ok(session.revoke(&handle).await?.to_string())
}

async fn revoke_all(session: Session, Query(q): Query<Args>) -> Result<String, SessionError> {
    Ok(session
        .revoke_all(q.keep.unwrap_or(false))
        .await?
        .to_string())
}

async fn who(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<String>("user")
        .await?
        .unwrap_or_else(|| "nobody".into()))
}

async fn bump(session: Session) -> Result<String, SessionError> {
    let views: u64 = session
        .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(views.to_string())
}

async fn app(store: Arc<dyn Store>, config: SessionConfig) -> SocketAddr {
    let routes = Router::new()
        .route("/login", get(login))
        .route("/mine", get(mine))
        .route("/revoke", get(revoke))
        .route("/revoke-all", get(revoke_all))
        .route("/who", get(who))
        .route("/bump", get(bump));
    let layer = SessionLayer::from_arc(store, config).unwrap();
    support::serve(routes.layer(layer)).await
}

/// A user name no other test uses: stores (a Cluster, a Sentinel setup) are shared by
/// tests running at once, and so are their index keys.
fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{n}-{nanos}", std::process::id())
}

fn indexed() -> SessionConfig {
    support::config().index_by("user")
}

async fn log_in(addr: SocketAddr, user: &str) -> (String, SessionId) {
    let reply = support::get(addr, &format!("/login?user={user}"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = SessionId::parse(&reply.body).unwrap();
    (reply.cookie().unwrap(), id)
}

fn listing(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str::<Vec<Value>>(&reply.body).unwrap()
}

async fn who_is(addr: SocketAddr, cookie: &str) -> String {
    support::get(addr, "/who", Some(cookie)).await.body
}

/// Two sessions of one user and one of another: each user lists their own, with handles
/// (never IDs), the current one marked, the device note and the creation time shown.
pub async fn index_lists_a_users_sessions(make: Factory) {
    let (_g, store) = make(DAY).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let addr = app(store.clone(), indexed()).await;
    let (a1, id1) = log_in(addr, &alice).await;
    let (_a2, id2) = log_in(addr, &alice).await;
    let (b1, _) = log_in(addr, &bob).await;
    let mine = listing(&support::get(addr, "/mine", Some(&a1)).await);
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(
        mine.iter().filter(|s| s["current"] == json!(true)).count(),
        1
    );
    for s in &mine {
        let handle = s["handle"].as_str().unwrap();
        assert!(!handle.contains(id1.as_str()) && !handle.contains(id2.as_str()));
        assert_eq!((&s["created"], &s["expires"]), (&json!(true), &json!(true)));
        assert_eq!(s["device"], json!("test client"));
    }
    assert_eq!(
        listing(&support::get(addr, "/mine", Some(&b1)).await).len(),
        1
    );
    // The admin view over the store gives the IDs.
    let index = UserIndex::new("user").unwrap();
    let mut ids: Vec<_> = index
        .sessions(&*store, &alice)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut want = vec![id1, id2];
    want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(ids, want);
}

/// A session deleted behind the index's back (a Node logout, a `DEL`, an admin's
/// destroy) or whose user changed is not listed, and is pruned on the way.
pub async fn index_prunes_sessions_deleted_behind_its_back(make: Factory) {
    let (_g, store) = make(DAY).await;
    let alice = unique("alice");
    let addr = app(store.clone(), indexed()).await;
    let (a1, _) = log_in(addr, &alice).await;
    let (_, gone) = log_in(addr, &alice).await;
    let (_, moved) = log_in(addr, &alice).await;
    store.destroy(&gone).await.unwrap();
    // Another writer (a Node app) gives the session to someone else.
    let mut record = store.load(&moved).await.unwrap().unwrap().record;
    record.data.insert("user".into(), json!(unique("mallory")));
    let saved = store
        .save(
            &moved,
            &record,
            tessera::SaveMode::Update { expected: None },
        )
        .await
        .unwrap();
    assert!(matches!(saved, tessera::SaveOutcome::Saved(_)));
    assert_eq!(
        listing(&support::get(addr, "/mine", Some(&a1)).await).len(),
        1
    );
    let left: Vec<_> = store
        .index_entries("user", &alice)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(!left.contains(&gone) && !left.contains(&moved), "pruned");
}

/// Revoking one session by its handle ends that session only; a handle of another
/// user's session ends nothing.
pub async fn index_revokes_one_session(make: Factory) {
    let (_g, store) = make(DAY).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let addr = app(store.clone(), indexed()).await;
    let (a1, _) = log_in(addr, &alice).await;
    let (a2, _) = log_in(addr, &alice).await;
    let (b1, _) = log_in(addr, &bob).await;
    let other = listing(&support::get(addr, "/mine", Some(&a1)).await)
        .into_iter()
        .find(|s| s["current"] == json!(false))
        .unwrap();
    let handle = other["handle"].as_str().unwrap();
    // Bob cannot end Alice's session with her handle.
    let tried = support::get(addr, &format!("/revoke?handle={handle}"), Some(&b1)).await;
    assert_eq!(tried.body, "false");
    assert_eq!(who_is(addr, &a2).await, alice);
    let done = support::get(addr, &format!("/revoke?handle={handle}"), Some(&a1)).await;
    assert_eq!(done.body, "true");
    assert_eq!(who_is(addr, &a2).await, "nobody");
    assert_eq!(who_is(addr, &a1).await, alice);
    assert_eq!(
        listing(&support::get(addr, "/mine", Some(&a1)).await).len(),
        1
    );
}

/// "Sign out everywhere else" keeps the current session; "everywhere" ends it too; the
/// other user's sessions stay.
pub async fn index_revokes_all_and_all_but_current(make: Factory) {
    let (_g, store) = make(DAY).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let addr = app(store.clone(), indexed()).await;
    let (a1, _) = log_in(addr, &alice).await;
    let (a2, _) = log_in(addr, &alice).await;
    let (a3, _) = log_in(addr, &alice).await;
    let (b1, _) = log_in(addr, &bob).await;
    let kept = support::get(addr, "/revoke-all?keep=true", Some(&a1)).await;
    assert_eq!(kept.body, "2");
    assert_eq!(
        (
            who_is(addr, &a1).await,
            who_is(addr, &a2).await,
            who_is(addr, &a3).await
        ),
        (alice.clone(), "nobody".to_owned(), "nobody".to_owned())
    );
    let (a4, _) = log_in(addr, &alice).await;
    let all = support::get(addr, "/revoke-all", Some(&a4)).await;
    assert_eq!(all.body, "2");
    assert!(
        all.set_cookies
            .iter()
            .any(|c| c.contains("Expires=Thu, 01 Jan 1970")),
        "the current session's cookie is cleared: {:?}",
        all.set_cookies
    );
    assert_eq!(who_is(addr, &a1).await, "nobody");
    assert_eq!(who_is(addr, &a4).await, "nobody");
    assert_eq!(who_is(addr, &b1).await, bob);
    let index = UserIndex::new("user").unwrap();
    assert!(index.sessions(&*store, &alice).await.unwrap().is_empty());
}

/// The absolute timeout ends a session that is never idle; a login (regenerate) starts
/// its clock again.
pub async fn absolute_timeout_ends_an_active_session(make: Factory) {
    let (_g, store) = make(DAY).await;
    let alice = unique("alice");
    let config = indexed().absolute_timeout(Duration::from_secs(3));
    let addr = app(store.clone(), config).await;
    let started = tokio::time::Instant::now();
    let (cookie, first) = log_in(addr, &alice).await;
    // Steady activity, well inside any idle timeout.
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(who_is(addr, &cookie).await, alice);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A login now restarts the clock for the new session.
    let (fresh, _) = log_in(addr, &alice).await;
    tokio::time::sleep_until(started + Duration::from_millis(3400)).await;
    assert_eq!(
        who_is(addr, &cookie).await,
        "nobody",
        "past 3 s since login"
    );
    assert!(store.load(&first).await.unwrap().is_none(), "deleted");
    assert_eq!(who_is(addr, &fresh).await, alice, "its own clock");
    // A bump after the timeout starts a new session with a new cookie.
    let bumped = support::get(addr, "/bump", Some(&cookie)).await;
    assert_eq!(bumped.body, "1");
    assert!(bumped.cookie().is_some());
}
