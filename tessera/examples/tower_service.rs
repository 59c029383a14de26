//! `SessionLayer` around a plain tower `Service`, without axum: the session is in the
//! request's extensions. The service is called directly, as a server would call it, so the
//! program shows the `Set-Cookie` it answers and what happens when the cookie comes back.
//!
//! ```sh
//! cargo run -p tessera --example tower_service
//! ```
//!
//! Any server that drives tower services (hyper through hyper-util's
//! `TowerToHyperService`, tonic, axum's `Router::layer`) serves it the same way.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use tessera::{MemoryStore, Session, SessionConfig, SessionLayer};
use tower_layer::Layer;
use tower_service::Service;

/// Counts visits in the session; knows nothing about cookies or stores.
#[derive(Clone)]
struct Visits;

impl Service<Request<String>> for Visits {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        // Put there by SessionLayer; absent only if the layer is missing.
        let session = req.extensions().get::<Session>().cloned();
        Box::pin(async move {
            let Some(session) = session else {
                return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "no SessionLayer"));
            };
            match session
                .update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)
                .await
            {
                Ok(visits) => Ok(text(StatusCode::OK, &format!("visit number {visits}"))),
                // A store failure: the layer would answer 503 at the end anyway.
                Err(e) if e.is_unavailable() => Ok(text(StatusCode::SERVICE_UNAVAILABLE, "")),
                Err(e) => Ok(text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
            }
        })
    }
}

fn text(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    response
}

/// Sends one request (with `cookie`, if any) and prints what came back; returns the
/// `name=value` part of the `Set-Cookie`, if one was sent.
async fn visit<S>(service: &mut S, cookie: Option<&str>) -> Result<Option<String>, S::Error>
where
    S: Service<Request<String>, Response = Response<String>>,
{
    let mut request = Request::new(String::new());
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        request.headers_mut().insert(COOKIE, value);
    }
    poll_fn(|cx| service.poll_ready(cx)).await?;
    let response = service.call(request).await?;
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok());
    println!("> Cookie: {}", cookie.unwrap_or("(none)"));
    println!("< {} {:?}", response.status(), response.body());
    println!("< Set-Cookie: {}\n", set_cookie.unwrap_or("(none)"));
    Ok(set_cookie
        .and_then(|v| v.split(';').next())
        .map(str::to_owned))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SessionConfig::default().secret("keyboard cat");
    let mut service = SessionLayer::new(MemoryStore::new(), config)?.layer(Visits);

    // No cookie: a new session, saved because the service wrote to it, and its cookie.
    let cookie = visit(&mut service, None).await?.ok_or("no Set-Cookie")?;
    // The cookie back: the same session. No Set-Cookie, since the cookie has no expiry
    // to refresh (it would with `cookie_max_age` or `rolling`).
    visit(&mut service, Some(&cookie)).await?;
    // A tampered cookie is no cookie: a new session, never an error.
    let tampered = cookie.replacen("s%3A", "s%3AX", 1);
    visit(&mut service, Some(&tampered)).await?;
    Ok(())
}
