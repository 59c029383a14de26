//! Shared pieces of the HTTP tests: the layer mounted in a real axum server on a free port,
//! a plain client that shows raw headers, and a store wrapper that counts calls.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::routing::get as route_get;
use axum::Router;
use reqwest::header::{COOKIE, SET_COOKIE};
use tessera::record::Record;
use tessera::{
    Loaded, MemoryStore, SaveMode, SaveOutcome, Session, SessionConfig, SessionError, SessionId,
    SessionLayer, Store, StoreError, Stored,
};
use time::OffsetDateTime;

pub const SECRET: &str = "keyboard cat";

/// Serves `app` on 127.0.0.1 on a free port until the test's runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// The routes the HTTP tests exercise.
pub fn routes() -> Router {
    Router::new()
        .route("/", route_get(counter))
        .route("/views", route_get(views))
        .route("/untouched", route_get(|| async { "ok" }))
        .route("/logout", route_get(logout))
        .route("/login", route_get(login))
        .route("/remember", route_get(remember))
        .route("/unset", route_get(unset))
        .route("/slow-increment", route_get(slow_increment))
        .route("/id", route_get(id))
        .route("/increment", route_get(increment))
        .route("/login-ignoring-errors", route_get(login_ignoring_errors))
        .route("/slow-set", route_get(slow_set))
        .route("/data", route_get(data))
        .route("/big", route_get(big))
}

#[derive(serde::Deserialize)]
struct Big {
    bytes: usize,
}

/// Stores a string of `bytes` bytes under `blob`; answers whether the session took it.
async fn big(
    session: Session,
    axum::extract::Query(q): axum::extract::Query<Big>,
) -> Result<&'static str, SessionError> {
    session.insert("views", 1).await?;
    match session.insert("blob", "x".repeat(q.bytes)).await {
        Ok(()) => Ok("stored"),
        Err(SessionError::TooLarge { .. }) => Ok("too large"),
        Err(other) => Err(other),
    }
}

/// A careless login: the error of `regenerate` is dropped on the floor.
async fn login_ignoring_errors(session: Session) -> Result<&'static str, SessionError> {
    let _ = session.regenerate().await;
    session.insert("user", "ada").await?;
    Ok("logged in")
}

/// The counter as a read-modify-write: safe under concurrent requests of one session.
async fn increment(session: Session) -> Result<String, SessionError> {
    let views: u64 = session
        .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(views.to_string())
}

#[derive(serde::Deserialize)]
struct SlowSet {
    key: String,
    value: serde_json::Value,
    /// Milliseconds between loading the session and changing it (default 600).
    wait: Option<u64>,
}

/// Loads the session, waits, then sets one key: a request that overlaps another.
async fn slow_set(
    session: Session,
    axum::extract::Query(q): axum::extract::Query<SlowSet>,
) -> Result<&'static str, SessionError> {
    session.get_value(&q.key).await?;
    tokio::time::sleep(Duration::from_millis(q.wait.unwrap_or(600))).await;
    session.insert_value(&q.key, q.value).await?;
    Ok("set")
}

async fn data(session: Session) -> Result<String, SessionError> {
    Ok(serde_json::Value::Object(session.data().await?).to_string())
}

pub async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(if views == 1 {
        "Welcome to the session demo! Visit again to see the view count increase.".into()
    } else {
        format!("You have visited this page {views} times.")
    })
}

async fn views(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("views").await?.unwrap_or(0).to_string())
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("Logged out successfully!")
}

async fn login(session: Session) -> Result<String, SessionError> {
    session.regenerate().await?;
    session.insert("user", "ada").await?;
    Ok(session.id().await?.to_string())
}

async fn remember(session: Session) -> Result<&'static str, SessionError> {
    session
        .set_max_age(Some(Duration::from_secs(30 * 86_400)))
        .await?;
    Ok("remembered")
}

async fn unset(session: Session) -> Result<&'static str, SessionError> {
    session.insert("views", 999).await?;
    session.unset();
    Ok("unset")
}

async fn slow_increment(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    tokio::time::sleep(Duration::from_millis(600)).await;
    session.insert("views", views).await?;
    Ok(views.to_string())
}

async fn id(session: Session) -> Result<String, SessionError> {
    Ok(session.id().await?.to_string())
}

/// The signed `Cookie` header for `id`, percent-encoded as the layer writes it, as a
/// browser would send it back.
pub fn cookie_for(id: &SessionId) -> String {
    let signed = tessera::signing::Secrets::new([SECRET]).unwrap().sign(id);
    format!(
        "connect.sid={}",
        signed
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace('+', "%2B")
    )
}

/// A server with `config` (the test secret added) over `store`.
pub async fn server(config: SessionConfig, store: Arc<dyn Store>) -> SocketAddr {
    let layer = SessionLayer::from_arc(store, config).unwrap();
    serve(routes().layer(layer)).await
}

/// The default config of these tests: express-session's recommended options and a max age.
pub fn config() -> SessionConfig {
    SessionConfig::default()
        .secret(SECRET)
        .cookie_max_age(Duration::from_secs(86_400))
}

/// One response, raw.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub set_cookies: Vec<String>,
}

impl Reply {
    /// The session cookie's `name=value` pair from Set-Cookie, ready for a Cookie header.
    pub fn cookie(&self) -> Option<String> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with("connect.sid="))
            .map(|c| c.split(';').next().unwrap().to_owned())
    }

    /// The session ID in the Set-Cookie.
    pub fn cookie_id(&self) -> Option<String> {
        let c = self.cookie()?;
        let v = c.strip_prefix("connect.sid=s%3A")?;
        Some(v.split('.').next()?.to_owned())
    }
}

/// GET `path` with an optional raw Cookie header (bytes, so tests can send anything).
pub async fn get_raw(addr: SocketAddr, path: &str, cookie: Option<&[u8]>) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("http://{addr}{path}"));
    if let Some(c) = cookie {
        req = req.header(COOKIE, reqwest::header::HeaderValue::from_bytes(c).unwrap());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let set_cookies = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = resp.text().await.unwrap();
    Reply {
        status,
        body,
        set_cookies,
    }
}

pub async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    get_raw(addr, path, cookie.map(str::as_bytes)).await
}

/// Calls counted per operation, around a real store.
#[derive(Debug, Default)]
pub struct Calls {
    pub load: AtomicUsize,
    pub save: AtomicUsize,
    pub destroy: AtomicUsize,
    pub touch: AtomicUsize,
}

impl Calls {
    pub fn total(&self) -> usize {
        self.load.load(Ordering::SeqCst)
            + self.save.load(Ordering::SeqCst)
            + self.destroy.load(Ordering::SeqCst)
            + self.touch.load(Ordering::SeqCst)
    }
    pub fn get(&self, which: &AtomicUsize) -> usize {
        which.load(Ordering::SeqCst)
    }
}

/// A `MemoryStore` that counts what the engine asks of it, and can be switched to fail
/// (as a store that is down) or to stall (as one that is slow).
#[derive(Debug, Clone)]
pub struct Counting {
    pub inner: MemoryStore,
    pub calls: Arc<Calls>,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    pub stall: Arc<std::sync::atomic::AtomicBool>,
    /// Fails only this operation (`"destroy"`, say), when set.
    pub failing_op: Arc<std::sync::Mutex<Option<&'static str>>>,
}

impl Counting {
    pub fn new() -> Self {
        Counting {
            inner: MemoryStore::new(),
            calls: Arc::default(),
            failing: Arc::default(),
            stall: Arc::default(),
            failing_op: Arc::default(),
        }
    }

    async fn gate(&self, op: &'static str) -> Result<(), StoreError> {
        if self.stall.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.failing.load(Ordering::SeqCst) || *self.failing_op.lock().unwrap() == Some(op) {
            return Err(StoreError::backend("counting", op, "connection refused"));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Counting {
    async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError> {
        self.calls.load.fetch_add(1, Ordering::SeqCst);
        self.gate("load").await?;
        self.inner.load(id).await
    }
    async fn save(
        &self,
        id: &SessionId,
        record: &Record,
        mode: SaveMode<'_>,
    ) -> Result<SaveOutcome, StoreError> {
        self.calls.save.fetch_add(1, Ordering::SeqCst);
        self.gate("save").await?;
        self.inner.save(id, record, mode).await
    }
    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError> {
        self.calls.destroy.fetch_add(1, Ordering::SeqCst);
        self.gate("destroy").await?;
        self.inner.destroy(id).await
    }
    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        self.calls.touch.fetch_add(1, Ordering::SeqCst);
        self.gate("touch").await?;
        self.inner.touch(id, expires).await
    }
    async fn walk(
        &self,
        delete: bool,
        walker: &mut dyn tessera::store::Walker,
    ) -> Result<tessera::store::Walked, StoreError> {
        self.inner.walk(delete, walker).await
    }
    async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.inspect(id).await
    }
}
