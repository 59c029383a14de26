//! The web helpers over real HTTP: `cross_origin`'s layer and token, and `flash`, mounted
//! with the session layer in a real axum server on a free port, driven by a real client.

use std::net::SocketAddr;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use tessera::cross_origin::{self, CrossOriginLayer};
use tessera::flash::{self, Level};
use tessera::{MemoryStore, Session, SessionError, SessionLayer};

use crate::support::{config, serve};

/// `POST|PUT|PATCH|DELETE /transfer` moves the session's `balance` to 0; `GET /balance`
/// shows it (100 at first). Other routes: the token and flash endpoints below.
fn app(protection: CrossOriginLayer) -> Router {
    let sessions = SessionLayer::new(MemoryStore::new(), config()).unwrap();
    Router::new()
        .route("/balance", get(balance))
        .route(
            "/transfer",
            post(transfer)
                .put(transfer)
                .patch(transfer)
                .delete(transfer),
        )
        .route("/webhooks/in", post(|| async { "hook" }))
        .route("/exact", post(|| async { "exact" }))
        .route("/exact2", post(|| async { "exact2" }))
        .route("/token", get(token))
        .route("/checked", post(checked))
        .route("/login", post(login))
        .route("/flash", post(push_flash))
        .route("/flash-foreign", post(foreign_flash))
        .route("/take", get(take_flash))
        .layer(sessions)
        .layer(protection)
}

async fn balance(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<u64>("balance")
        .await?
        .unwrap_or(100)
        .to_string())
}

async fn transfer(session: Session) -> Result<&'static str, SessionError> {
    session.insert("balance", 0).await?;
    Ok("moved")
}

async fn token(session: Session) -> Result<String, SessionError> {
    cross_origin::csrf_token(&session).await
}

#[derive(serde::Deserialize)]
struct Text {
    text: String,
}

async fn checked(
    session: Session,
    Query(q): Query<Text>,
) -> Result<(StatusCode, &'static str), SessionError> {
    Ok(if cross_origin::verify_token(&session, &q.text).await? {
        (StatusCode::OK, "accepted")
    } else {
        (StatusCode::FORBIDDEN, "bad token")
    })
}

async fn login(session: Session) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.insert("user", "ada").await?;
    Ok("logged in")
}

#[derive(serde::Deserialize)]
struct Push {
    text: String,
    #[serde(default)]
    level: Option<String>,
}

async fn push_flash(session: Session, Query(q): Query<Push>) -> Result<&'static str, SessionError> {
    let level = match q.level.as_deref() {
        Some("error") => Level::Error,
        _ => Level::Success,
    };
    flash::push(&session, level, q.text).await?;
    Ok("pushed")
}

async fn foreign_flash(session: Session) -> Result<&'static str, SessionError> {
    session.insert(flash::KEY, "written by another app").await?;
    Ok("stored")
}

async fn take_flash(session: Session) -> Result<String, SessionError> {
    let messages = flash::take(&session).await?;
    Ok(messages
        .iter()
        .map(|m| format!("{}:{}", m.level, m.text))
        .collect::<Vec<_>>()
        .join("|"))
}

/// A client that keeps no cookies: each test passes the one it means to send.
struct Client {
    addr: SocketAddr,
    http: reqwest::Client,
    cookie: Option<String>,
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
    sets_cookie: bool,
}

impl Client {
    async fn new(protection: CrossOriginLayer) -> Self {
        Client {
            addr: serve(app(protection)).await,
            http: reqwest::Client::new(),
            cookie: None,
        }
    }

    /// Sends `method path` with `headers`, remembering a cookie the server sets.
    async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.addr));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let set = response
            .headers()
            .get(SET_COOKIE)
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
        let sets_cookie = set.is_some();
        if let Some(set) = set {
            self.cookie = Some(set);
        }
        Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: response.text().await.unwrap(),
            sets_cookie,
        }
    }

    /// A session with a balance of 100 stored, and its cookie kept.
    async fn with_session(protection: CrossOriginLayer) -> Self {
        let mut client = Self::new(protection).await;
        let token = client.send("GET", "/token", &[]).await;
        assert_eq!(token.status, 200);
        assert!(token.sets_cookie);
        client
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    async fn balance(&mut self) -> String {
        self.send("GET", "/balance", &[]).await.body
    }
}

#[tokio::test]
async fn a_cross_site_post_is_refused_and_changes_nothing() {
    let mut c = Client::with_session(CrossOriginLayer::new()).await;
    for site in ["cross-site", "same-site"] {
        let refused = c
            .send(
                "POST",
                "/transfer",
                &[("sec-fetch-site", site), ("origin", "http://evil.test")],
            )
            .await;
        assert_eq!(refused.status, 403, "Sec-Fetch-Site: {site}");
        assert_eq!(refused.body, "Forbidden: cross-origin request refused.\n");
        assert_eq!(refused.content_type, "text/plain; charset=utf-8");
        assert!(!refused.sets_cookie);
        assert_eq!(c.balance().await, "100");
    }
}

#[tokio::test]
async fn every_unsafe_method_is_checked_and_safe_ones_are_not() {
    let mut c = Client::with_session(CrossOriginLayer::new()).await;
    for method in ["PUT", "PATCH", "DELETE"] {
        let answer = c
            .send(method, "/transfer", &[("sec-fetch-site", "cross-site")])
            .await;
        assert_eq!(answer.status, 403, "{method}");
    }
    assert_eq!(c.balance().await, "100");
    let get = c
        .send("GET", "/balance", &[("sec-fetch-site", "cross-site")])
        .await;
    assert_eq!((get.status, get.body.as_str()), (200, "100"));
}

#[tokio::test]
async fn same_origin_and_user_initiated_requests_pass() {
    for site in ["same-origin", "none"] {
        let mut c = Client::with_session(CrossOriginLayer::new()).await;
        let answer = c
            .send("POST", "/transfer", &[("sec-fetch-site", site)])
            .await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "moved"),
            "{site}"
        );
        assert_eq!(c.balance().await, "0");
    }
}

#[tokio::test]
async fn without_fetch_metadata_the_origin_must_match_the_host() {
    let mut c = Client::with_session(CrossOriginLayer::new()).await;
    let port = c.addr.port();
    for origin in [
        format!("http://127.0.0.1:{}", port + 1),
        "http://evil.test".to_owned(),
        "null".to_owned(),
    ] {
        let answer = c.send("POST", "/transfer", &[("origin", &origin)]).await;
        assert_eq!(answer.status, 403, "Origin: {origin}");
    }
    assert_eq!(c.balance().await, "100");
    let origin = format!("http://{}", c.host());
    let answer = c.send("POST", "/transfer", &[("origin", &origin)]).await;
    assert_eq!(answer.status, 200, "Origin: {origin}");
    assert_eq!(c.balance().await, "0");
}

#[tokio::test]
async fn a_request_with_neither_header_passes() {
    let mut c = Client::with_session(CrossOriginLayer::new()).await;
    let answer = c.send("POST", "/transfer", &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "moved"));
    assert_eq!(c.balance().await, "0");
}

#[tokio::test]
async fn trusted_origins_and_exempt_paths_pass() {
    let protection = CrossOriginLayer::new()
        .trusted_origin("http://Front.Example:8080")
        .unwrap()
        .exempt_path("/webhooks/")
        .exempt_path("/exact");
    let mut c = Client::with_session(protection).await;
    let cross = ("sec-fetch-site", "cross-site");
    let hook = c
        .send(
            "POST",
            "/webhooks/in",
            &[cross, ("origin", "http://x.test")],
        )
        .await;
    assert_eq!((hook.status, hook.body.as_str()), (200, "hook"));
    assert_eq!(c.send("POST", "/exact", &[cross]).await.status, 200);
    assert_eq!(c.send("POST", "/exact2", &[cross]).await.status, 403);
    // A trusted origin, with or without Fetch Metadata; a near miss is still refused.
    let trusted = ("origin", "http://front.example:8080");
    assert_eq!(c.send("POST", "/transfer", &[trusted]).await.status, 200);
    let answer = c.send("POST", "/transfer", &[cross, trusted]).await;
    assert_eq!(answer.status, 200);
    let near = ("origin", "https://front.example:8080");
    assert_eq!(
        c.send("POST", "/transfer", &[cross, near]).await.status,
        403
    );
}

#[tokio::test]
async fn the_token_is_per_session_and_survives_only_until_login() {
    let mut a = Client::with_session(CrossOriginLayer::new()).await;
    let token = a.send("GET", "/token", &[]).await.body;
    assert_eq!(token.len(), 32);
    assert_eq!(a.send("GET", "/token", &[]).await.body, token, "stable");
    let ok = a.send("POST", &format!("/checked?text={token}"), &[]).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "accepted"));
    let wrong = format!("/checked?text={}x", &token[..31]);
    assert_eq!(a.send("POST", &wrong, &[]).await.status, 403);
    assert_eq!(a.send("POST", "/checked?text=", &[]).await.status, 403);

    // Another session (same server) does not accept this one's token.
    let mut b = Client {
        addr: a.addr,
        http: reqwest::Client::new(),
        cookie: None,
    };
    let other = b.send("POST", &format!("/checked?text={token}"), &[]).await;
    assert_eq!(other.status, 403);

    // Login regenerates the session: the token taken before it is gone.
    assert_eq!(a.send("POST", "/login", &[]).await.body, "logged in");
    let after = a.send("POST", &format!("/checked?text={token}"), &[]).await;
    assert_eq!(after.status, 403);
    assert_ne!(a.send("GET", "/token", &[]).await.body, token);
}

#[tokio::test]
async fn flash_messages_show_once_in_order() {
    let mut c = Client::new(CrossOriginLayer::new()).await;
    let empty = c.send("GET", "/take", &[]).await;
    assert_eq!(empty.body, "");
    assert!(!empty.sets_cookie, "taking nothing saves no session");
    c.send("POST", "/flash?text=Saved.", &[]).await;
    c.send("POST", "/flash?text=Oops&level=error", &[]).await;
    assert_eq!(
        c.send("GET", "/take", &[]).await.body,
        "success:Saved.|error:Oops"
    );
    assert_eq!(c.send("GET", "/take", &[]).await.body, "", "shown once");
}

#[tokio::test]
async fn flash_keeps_the_newest_messages_and_drops_foreign_values() {
    let mut c = Client::new(CrossOriginLayer::new()).await;
    for n in 0..flash::MAX_MESSAGES + 3 {
        c.send("POST", &format!("/flash?text={n}"), &[]).await;
    }
    let body = c.send("GET", "/take", &[]).await.body;
    let shown: Vec<&str> = body.split('|').collect();
    assert_eq!(shown.len(), flash::MAX_MESSAGES);
    assert_eq!(shown[0], "success:3");
    assert_eq!(
        shown.last().copied(),
        Some(format!("success:{}", flash::MAX_MESSAGES + 2).as_str())
    );

    c.send("POST", "/flash-foreign", &[]).await;
    let taken = c.send("GET", "/take", &[]).await;
    assert_eq!((taken.status, taken.body.as_str()), (200, ""));
    c.send("POST", "/flash-foreign", &[]).await;
    c.send("POST", "/flash?text=fresh", &[]).await;
    assert_eq!(c.send("GET", "/take", &[]).await.body, "success:fresh");
}

#[tokio::test]
async fn concurrent_flashes_all_land() {
    let mut c = Client::new(CrossOriginLayer::new()).await;
    c.send("POST", "/flash?text=first", &[]).await;
    let cookie = c.cookie.clone().unwrap();
    let addr = c.addr;
    let pushes = (0..8).map(|n| {
        let cookie = cookie.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("http://{addr}/flash?text=n{n}"))
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    for push in pushes.collect::<Vec<_>>() {
        assert_eq!(push.await.unwrap(), 200);
    }
    let body = c.send("GET", "/take", &[]).await.body;
    assert_eq!(body.split('|').count(), 9, "{body}");
}
