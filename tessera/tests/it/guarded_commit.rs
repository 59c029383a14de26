//! The guarded commit beyond the store suite's cases: the group commit (requests of one
//! session that commit while another of them is writing it wait in its line and are
//! written together, in one compare-and-set), the bound on its tries, and its opt-out,
//! `guarded_commit(false)`: connect-redis's last writer wins. On a real
//! `redis-server`, with `CLIENT PAUSE … WRITE` holding the first write in Redis while the
//! others reach their commit, so who waits behind whom is not left to timing.
//!
//! The requests are the layer's own futures (the router called as a tower service, each in
//! a task), so a test can drop one mid-commit as a server does when its client goes away.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use tessera::store::redis::RedisStore;
use tessera::{Session, SessionError, SessionLayer, Store};
use test_support::RedisServer;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tower_service::Service;

use crate::support::{config, cookie_for};

const PREFIX: &str = "group:";

/// Requests parked after their change, until the test lets them finish.
struct Gates {
    parked: AtomicUsize,
    arrived: Notify,
    /// Requests whose `x-turn` is at most this go on.
    turn: watch::Sender<u32>,
}

impl Gates {
    async fn park(&self, headers: &HeaderMap) {
        let turn: u32 = headers
            .get("x-turn")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut released = self.turn.subscribe();
        self.parked.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_waiters();
        released.wait_for(|&up_to| turn <= up_to).await.unwrap();
    }

    async fn wait_parked(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let arrived = self.arrived.notified();
                if self.parked.load(Ordering::SeqCst) >= n {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .expect("the requests reach their handlers");
    }

    fn release(&self, up_to: u32) {
        self.turn.send_replace(up_to);
    }
}

/// `update`s `views` by one, then parks.
async fn increment(
    State(gates): State<Arc<Gates>>,
    headers: HeaderMap,
    session: Session,
) -> Result<String, SessionError> {
    bump(&gates, &headers, &session, u64::MAX).await
}

/// [`increment`] with a closure that panics on a value over 2: it runs once in the handler
/// (on 2), and panics when the group commit runs it again on more.
async fn fragile(
    State(gates): State<Arc<Gates>>,
    headers: HeaderMap,
    session: Session,
) -> Result<String, SessionError> {
    bump(&gates, &headers, &session, 2).await
}

/// Adds one to `views` (panicking on a value over `up_to`), then parks.
async fn bump(
    gates: &Gates,
    headers: &HeaderMap,
    session: &Session,
    up_to: u64,
) -> Result<String, SessionError> {
    let views: u64 = session
        .update("views", move |n: Option<u64>| {
            let n = n.unwrap_or(0);
            assert!(n <= up_to, "the application's closure panics on {n}");
            n + 1
        })
        .await?;
    gates.park(headers).await;
    Ok(views.to_string())
}

/// Sets `note`, then parks.
async fn note(
    State(gates): State<Arc<Gates>>,
    headers: HeaderMap,
    session: Session,
) -> Result<&'static str, SessionError> {
    session.insert("note", "kept").await?;
    gates.park(&headers).await;
    Ok("noted")
}

struct Setup {
    server: RedisServer,
    store: RedisStore,
    app: Router,
    gates: Arc<Gates>,
    cookie: String,
    id: tessera::SessionId,
}

/// A Redis, the layer on it, and one session holding `views: 2`.
async fn setup() -> Setup {
    setup_with(config()).await
}

async fn setup_with(config: tessera::SessionConfig) -> Setup {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let store = RedisStore::builder(server.url())
        .prefix(PREFIX)
        .connect()
        .await
        .unwrap();
    let gates = Arc::new(Gates {
        parked: AtomicUsize::new(0),
        arrived: Notify::new(),
        turn: watch::Sender::new(0),
    });
    let app = Router::new()
        .route("/increment", get(increment))
        .route("/note", get(note))
        .route("/fragile", get(fragile))
        .with_state(gates.clone())
        .layer(SessionLayer::new(store.clone(), config).unwrap());
    let id = tessera::SessionId::generate().unwrap();
    let mut record = crate::store_suite::record(Some(86_400_000), 1);
    record.cookie.original_max_age = Some(86_400_000);
    store
        .save(&id, &record, tessera::SaveMode::Create)
        .await
        .unwrap();
    let setup = Setup {
        cookie: cookie_for(&id),
        server,
        store,
        app,
        gates,
        id,
    };
    // One request first, so that Redis has the guarded commit's script cached: a request
    // dropped while Redis answers `NOSCRIPT` would never send it in full, and its write
    // would not land.
    assert_eq!(answered(send(&setup, "/increment", 0)).await.1, "2");
    setup.gates.parked.store(0, Ordering::SeqCst);
    setup.server.cli(&["CONFIG", "RESETSTAT"]);
    setup
}

/// What a request answered: the status, the body and the `Set-Cookie` headers.
type Answer = (StatusCode, String, Vec<String>);

/// Sends `path` with the session's cookie through the layer, as a task of its own (which
/// the test may abort: the request's future is then dropped, as when a client goes away).
fn send(setup: &Setup, path: &str, turn: u32) -> JoinHandle<Answer> {
    send_to(&setup.app, &setup.cookie, path, turn)
}

/// [`send`] through another app.
fn send_to(app: &Router, cookie: &str, path: &str, turn: u32) -> JoinHandle<Answer> {
    let mut app = app.clone();
    let request = Request::get(path)
        .header("cookie", cookie)
        .header("x-turn", turn.to_string())
        .body(Body::empty())
        .unwrap();
    tokio::spawn(async move {
        let response = app.call(request).await.unwrap();
        let status = response.status();
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned(), cookies)
    })
}

/// Holds every write command in Redis for `ms` (reads go on).
fn pause_writes(server: &RedisServer, ms: u64) {
    assert_eq!(
        server.cli(&["CLIENT", "PAUSE", &ms.to_string(), "WRITE"]),
        "OK"
    );
}

/// Holds writes in Redis for `ms`, lets the requests of turn 1 reach their commit (held by
/// the pause), then those of turn 2, which join the line behind them.
async fn first_then_the_rest(setup: &Setup, ms: u64) {
    pause_writes(&setup.server, ms);
    setup.gates.release(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    setup.gates.release(2);
}

fn evalsha_calls(server: &RedisServer) -> u64 {
    command_calls(server, "evalsha")
}

/// The session's data as stored now.
async fn stored_data(setup: &Setup) -> serde_json::Map<String, serde_json::Value> {
    let loaded = setup.store.load(&setup.id).await.unwrap().unwrap();
    loaded.record.data
}

async fn views(setup: &Setup) -> serde_json::Value {
    stored_data(setup).await["views"].clone()
}

async fn answered(request: JoinHandle<Answer>) -> (StatusCode, String) {
    let (status, body, _) = answered_with_cookies(request).await;
    (status, body)
}

async fn answered_with_cookies(request: JoinHandle<Answer>) -> Answer {
    tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("every request is answered")
        .unwrap()
}

/// Twenty requests reach their commit while the first write is held in Redis: the first
/// writes alone, the other nineteen together after it. Two compare-and-sets, every
/// increment kept, every request answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_session_is_written_in_two_compare_and_sets() {
    let setup = setup().await;
    let requests: Vec<_> = (0..20).map(|_| send(&setup, "/increment", 1)).collect();
    setup.gates.wait_parked(20).await;
    pause_writes(&setup.server, 1000);
    setup.gates.release(1);
    for request in requests {
        let (status, _) = answered(request).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(views(&setup).await, serde_json::json!(22));
    assert_eq!(
        evalsha_calls(&setup.server),
        2,
        "the first request's write, then one for the nineteen behind it"
    );
}

/// The first request's future is dropped while its write is held in Redis (its client
/// went away): the requests waiting behind it are still written and answered. Its own
/// write was already sent, so it lands too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_goes_on_when_its_first_request_is_dropped_mid_commit() {
    let setup = setup().await;
    let first = send(&setup, "/increment", 1);
    let behind: Vec<_> = (0..9).map(|_| send(&setup, "/increment", 2)).collect();
    setup.gates.wait_parked(10).await;
    first_then_the_rest(&setup, 1000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for request in behind {
        let (status, _) = answered(request).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(views(&setup).await, serde_json::json!(12));
}

/// In a group, a request whose `update` cannot run on the value now stored (another app
/// stored a string there) fails alone: the request written before it is kept, and so is
/// the other app's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_cannot_apply_fails_alone() {
    let setup = setup().await;
    let noting = send(&setup, "/note", 1);
    let counting = send(&setup, "/increment", 2);
    setup.gates.wait_parked(2).await;
    // Another app changes `views` to a string after both requests loaded the session.
    let key = format!("{PREFIX}{}", setup.id.as_str());
    let stored = setup.server.cli(&["GET", &key]);
    let mut json: serde_json::Value = serde_json::from_str(&stored).unwrap();
    json["views"] = serde_json::json!("many");
    assert_eq!(
        setup
            .server
            .cli(&["SET", &key, &json.to_string(), "KEEPTTL"]),
        "OK"
    );
    first_then_the_rest(&setup, 600).await;
    assert_eq!(answered(noting).await, (StatusCode::OK, "noted".to_owned()));
    let (status, _) = answered(counting).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let data = stored_data(&setup).await;
    assert_eq!(data["views"], serde_json::json!("many"));
    assert_eq!(data["note"], serde_json::json!("kept"));
}

/// An `update` closure of the application that panics when the group commit runs it costs
/// its group a 503, never the session: the line goes on, and the next request is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_group_commit_does_not_block_the_session() {
    let setup = setup().await;
    let first = send(&setup, "/increment", 1);
    let fragile = send(&setup, "/fragile", 2);
    setup.gates.wait_parked(2).await;
    first_then_the_rest(&setup, 600).await;
    assert_eq!(answered(first).await, (StatusCode::OK, "3".to_owned()));
    let (status, _) = answered(fragile).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(views(&setup).await, serde_json::json!(3));
    // The session's line was handed on: a new request is written at once.
    assert_eq!(
        answered(send(&setup, "/increment", 0)).await,
        (StatusCode::OK, "4".to_owned())
    );
    assert_eq!(views(&setup).await, serde_json::json!(4));
}

fn command_calls(server: &RedisServer, name: &str) -> u64 {
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix(&format!("cmdstat_{name}:"))
                .map(str::to_owned)
        })
        .and_then(|stats| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls=").map(str::to_owned))
        })
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// With `guarded_commit(false)` a save is connect-redis's `SET`: two requests that loaded
/// the same record each write their own, and the last one wins (an increment is lost, as
/// with express-session). A session deleted meanwhile is still not brought back, and its
/// request sends no cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opt_out_is_last_writer_wins_and_never_resurrects() {
    let setup = setup_with(config().guarded_commit(false)).await;
    let requests: Vec<_> = (0..2).map(|_| send(&setup, "/increment", 1)).collect();
    setup.gates.wait_parked(2).await;
    setup.gates.release(1);
    for request in requests {
        assert_eq!(answered(request).await, (StatusCode::OK, "3".to_owned()));
    }
    assert_eq!(
        views(&setup).await,
        serde_json::json!(3),
        "one increment lost"
    );
    assert_eq!(command_calls(&setup.server, "set"), 2);
    assert_eq!(command_calls(&setup.server, "evalsha"), 0);

    let late = send(&setup, "/increment", 2);
    setup.gates.wait_parked(3).await;
    let key = format!("{PREFIX}{}", setup.id.as_str());
    assert_eq!(setup.server.cli(&["DEL", &key]), "1");
    setup.gates.release(2);
    let (status, _, cookies) = answered_with_cookies(late).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookies.is_empty(), "{cookies:?}");
    assert_eq!(setup.server.cli(&["EXISTS", &key]), "0", "brought back");
}

/// A second writer that always gets there first: before each guarded save of the layer
/// reaches Redis, it writes the session again (another key changed, as another instance
/// would), so every compare-and-set of the layer finds a newer record.
#[derive(Debug)]
struct AlwaysFirst {
    redis: RedisStore,
    writes: AtomicUsize,
}

#[async_trait::async_trait]
impl Store for AlwaysFirst {
    async fn load(
        &self,
        id: &tessera::SessionId,
    ) -> Result<Option<tessera::Loaded>, tessera::StoreError> {
        self.redis.load(id).await
    }

    async fn save(
        &self,
        id: &tessera::SessionId,
        record: &tessera::Record,
        mode: tessera::SaveMode<'_>,
    ) -> Result<tessera::SaveOutcome, tessera::StoreError> {
        if let tessera::SaveMode::Update { expected: Some(_) } = mode {
            if let Some(mut other) = self.redis.load(id).await?.map(|l| l.record) {
                let n = self.writes.fetch_add(1, Ordering::SeqCst);
                other.data.insert("other".into(), serde_json::json!(n));
                let overwrite = tessera::SaveMode::Update { expected: None };
                self.redis.save(id, &other, overwrite).await?;
            }
        }
        self.redis.save(id, record, mode).await
    }

    async fn destroy(&self, id: &tessera::SessionId) -> Result<(), tessera::StoreError> {
        self.redis.destroy(id).await
    }

    async fn touch(
        &self,
        id: &tessera::SessionId,
        expires: Option<time::OffsetDateTime>,
    ) -> Result<bool, tessera::StoreError> {
        self.redis.touch(id, expires).await
    }

    async fn walk(
        &self,
        delete: bool,
        walker: &mut dyn tessera::store::Walker,
    ) -> Result<tessera::store::Walked, tessera::StoreError> {
        self.redis.walk(delete, walker).await
    }

    async fn inspect(&self, id: &str) -> Result<Option<tessera::Stored>, tessera::StoreError> {
        self.redis.inspect(id).await
    }
}

/// A guarded commit that loses every race gives up after its bound of tries: the request
/// is answered 503, nothing of it is written (the other writer's record stays), and the
/// session is not damaged: the next request that wins its race is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_loses_every_race_gives_up_with_503_and_writes_nothing() {
    let setup = setup().await;
    let beaten = AlwaysFirst {
        redis: setup.store.clone(),
        writes: AtomicUsize::new(0),
    };
    let app = Router::new()
        .route("/increment", get(increment))
        .with_state(setup.gates.clone())
        .layer(SessionLayer::new(beaten, config()).unwrap());
    let (status, body) = answered(send_to(&app, &setup.cookie, "/increment", 0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let data = stored_data(&setup).await;
    assert_eq!(
        data["views"],
        serde_json::json!(2),
        "nothing of the request"
    );
    assert_eq!(
        data["other"],
        serde_json::json!(15),
        "16 tries, each beaten"
    );
    // The same session through a layer nobody races: written at once.
    let (status, body) = answered(send(&setup, "/increment", 0)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "3"));
}
