//! Cross-origin request protection: a tower layer that refuses state-changing requests a
//! browser says come from another site, and an optional per-session synchronizer token.
//!
//! Why it is here: a session cookie is sent with every request the browser makes to our
//! site, including a form another site auto-submits to us (cross-site request forgery).
//! `SameSite=Lax` (Tessera's default) already keeps the cookie off most cross-site POSTs,
//! but not off requests from a sibling subdomain (same *site*, other *origin*), and not
//! for applications that need `SameSite=None`. Modern browsers say where a request comes
//! from, so the server can refuse it without tokens in every form: this module follows
//! the algorithm of Go 1.25's `net/http.CrossOriginProtection`.
//!
//! The rules, for every method but `GET`, `HEAD` and `OPTIONS` (which must not change
//! state anyway):
//!
//! 1. `Sec-Fetch-Site: same-origin` or `none` (typed in the address bar, a bookmark):
//!    allowed. Any other value (`same-site`, `cross-site`): refused, unless the request's
//!    path is exempt or its `Origin` is trusted.
//! 2. No `Sec-Fetch-Site` (browsers before 2023, or not a browser): an `Origin` header
//!    whose `host[:port]` equals the request's `Host` is allowed, one that differs
//!    (`null` included) is refused unless exempt or trusted.
//! 3. Neither header: allowed. Browsers send at least one of them on every cross-origin
//!    POST; a request with neither comes from curl, a server or a same-origin form of an
//!    old browser, none of which carries a victim's cookie by accident.
//!
//! Behind a reverse proxy, pass the client's `Host` on (nginx: `proxy_set_header Host
//! $host;`): the `Origin` fallback compares against it, and would refuse same-origin
//! forms of browsers without Fetch Metadata if the proxy rewrote it.
//!
//! A refusal is answered `403 Forbidden` with a short plain-text body and logged at `warn`
//! (method, path, the two headers: never cookies or session IDs).
//!
//! Compared with tokens: there is nothing to put in forms or keep in the session, and it
//! covers JSON and `fetch` endpoints too. Browsers without Fetch Metadata fall back on
//! `Origin`, which cannot tell `http://` from `https://` on the same host (as in Go, this
//! fails open; HSTS closes it). Browsers old enough to send neither header (before about
//! 2020) are protected only by a synchronizer token: [`csrf_token`] and [`verify_token`]
//! keep one per session, for applications that must serve them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Session, SessionError, SessionId};

/// The body of a refusal.
const REFUSED: &str = "Forbidden: cross-origin request refused.\n";

/// The session key the synchronizer token is kept under.
pub const TOKEN_KEY: &str = "_csrf";

/// The layer that refuses cross-origin state-changing requests (see the
/// [module docs](self) for the rules).
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{routing::post, Router};
/// use tessera::cross_origin::CrossOriginLayer;
///
/// let protection = CrossOriginLayer::new()
///     .trusted_origin("https://admin.example.com")?
///     .exempt_path("/webhooks/");
/// let app: Router = Router::new()
///     .route("/transfer", post(|| async { "done" }))
///     .layer(protection);
/// # let _ = app;
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct CrossOriginLayer {
    rules: Arc<Rules>,
}

#[derive(Clone, Default)]
struct Rules {
    /// Lowercase `scheme://host[:port]`.
    trusted: Vec<String>,
    /// Exact paths, or subtrees when they end with `/`.
    exempt: Vec<String>,
}

/// A trusted origin that is not of the form `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "trusted origin {0:?} is not of the form scheme://host[:port] (no path, query or fragment)"
)]
pub struct InvalidOrigin(pub String);

impl CrossOriginLayer {
    /// Protection with no trusted origin and no exempt path.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows requests whose `Origin` header is exactly `origin` (`scheme://host[:port]`,
    /// compared without regard to ASCII case), e.g. a front end on another subdomain.
    ///
    /// # Errors
    /// [`InvalidOrigin`] when `origin` has no scheme or host, or has a path, query or
    /// fragment (browsers never send those in `Origin`, so it would never match).
    pub fn trusted_origin(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        let invalid = || InvalidOrigin(origin.to_owned());
        let (scheme, host) = origin.split_once("://").ok_or_else(invalid)?;
        let scheme_ok = !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"/?#@".contains(&b));
        if !scheme_ok || !host_ok {
            return Err(invalid());
        }
        Arc::make_mut(&mut self.rules)
            .trusted
            .push(origin.to_ascii_lowercase());
        Ok(self)
    }

    /// Lets every request to `path` through (webhooks, endpoints authenticated otherwise).
    /// A path ending with `/` exempts the whole subtree under it (`/webhooks/` covers
    /// `/webhooks/stripe`); any other path is matched exactly.
    pub fn exempt_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.rules).exempt.push(path.into());
        self
    }
}

impl fmt::Debug for CrossOriginLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrossOriginLayer")
            .field("trusted", &self.rules.trusted)
            .field("exempt", &self.rules.exempt)
            .finish()
    }
}

impl<S> Layer<S> for CrossOriginLayer {
    type Service = CrossOriginProtection<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOriginProtection {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The service [`CrossOriginLayer`] wraps around an inner service.
#[derive(Clone)]
pub struct CrossOriginProtection<S> {
    inner: S,
    rules: Arc<Rules>,
}

impl<S: fmt::Debug> fmt::Debug for CrossOriginProtection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrossOriginProtection")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CrossOriginProtection<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.rules.allows(&req) {
            return ResponseFuture {
                kind: Kind::Inner {
                    future: self.inner.call(req),
                },
            };
        }
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        tracing::warn!(
            method = %req.method(),
            path = req.uri().path(),
            sec_fetch_site = header("sec-fetch-site").as_deref(),
            origin = header("origin").as_deref(),
            "refused a cross-origin request"
        );
        let mut response = Response::new(ResBody::from(REFUSED));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        ResponseFuture {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`CrossOriginProtection`]: the inner service's, or the
    /// refusal.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<B>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after it completed"),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Rules {
    /// Go's `CrossOriginProtection.Check`, as the module docs state it.
    fn allows<B>(&self, req: &Request<B>) -> bool {
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return true;
        }
        let origin = req.headers().get(ORIGIN).map(HeaderValue::as_bytes);
        match req
            .headers()
            .get("sec-fetch-site")
            .map(HeaderValue::as_bytes)
        {
            Some(b"same-origin" | b"none") => return true,
            Some(_) => return self.exempt(req.uri().path(), origin),
            None => {}
        }
        let Some(origin) = origin else {
            return true;
        };
        if origin_host(origin).is_some_and(|host| host.eq_ignore_ascii_case(request_host(req))) {
            return true;
        }
        self.exempt(req.uri().path(), Some(origin))
    }

    /// An exempt path, or a trusted origin.
    fn exempt(&self, path: &str, origin: Option<&[u8]>) -> bool {
        let path_exempt = self.exempt.iter().any(|p| {
            if p.ends_with('/') {
                path.starts_with(p.as_str())
            } else {
                path == p
            }
        });
        path_exempt
            || origin.is_some_and(|o| {
                self.trusted
                    .iter()
                    .any(|t| t.as_bytes().eq_ignore_ascii_case(o))
            })
    }
}

/// The `host[:port]` of an `Origin` value (`scheme://host[:port]`); `None` for `null` and
/// anything else that is not a tuple origin.
fn origin_host(origin: &[u8]) -> Option<&[u8]> {
    let at = origin.windows(3).position(|w| w == b"://")?;
    let host = &origin[at + 3..];
    (!host.is_empty() && !host.iter().any(|b| b"/?#@".contains(b))).then_some(host)
}

/// The request's `Host` header, or the authority of its target (HTTP/2, absolute form).
fn request_host<B>(req: &Request<B>) -> &[u8] {
    req.headers()
        .get(HOST)
        .map(HeaderValue::as_bytes)
        .or_else(|| req.uri().authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default()
}

/// This session's synchronizer token, created (and stored under [`TOKEN_KEY`]) on first
/// use. Put it in a hidden form field or a header, and check it with [`verify_token`].
///
/// The token lasts as long as the session; `regenerate` (on login) empties the session,
/// so a token taken before login is worthless after it.
///
/// ```
/// # async fn form(session: tessera::Session) -> Result<String, tessera::SessionError> {
/// let token = tessera::cross_origin::csrf_token(&session).await?;
/// Ok(format!(r#"<input type="hidden" name="csrf" value="{token}">"#))
/// # }
/// ```
///
/// # Errors
/// The session's errors (store failures, a destroyed session); [`SessionError::Id`] when
/// the operating system has no random bytes to give.
pub async fn csrf_token(session: &Session) -> Result<String, SessionError> {
    if let Some(serde_json::Value::String(token)) = session.get_value(TOKEN_KEY).await? {
        if !token.is_empty() {
            return Ok(token);
        }
    }
    // 24 random bytes from the OS, the same strength as a session ID.
    let token = SessionId::generate()
        .map_err(|e| SessionError::Id(e.to_string()))?
        .as_str()
        .to_owned();
    session.insert(TOKEN_KEY, &token).await?;
    Ok(token)
}

/// Whether `candidate` is this session's synchronizer token (compared in constant time).
/// `false` when the session has none yet.
///
/// ```
/// # async fn submit(session: tessera::Session, form_field: String) -> Result<(), tessera::SessionError> {
/// if !tessera::cross_origin::verify_token(&session, &form_field).await? {
///     // answer 403
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// The session's errors (store failures, a destroyed session).
pub async fn verify_token(session: &Session, candidate: &str) -> Result<bool, SessionError> {
    let stored = match session.get_value(TOKEN_KEY).await? {
        Some(serde_json::Value::String(token)) if !token.is_empty() => token,
        _ => return Ok(false),
    };
    Ok(stored.as_bytes().ct_eq(candidate.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri("/form");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn origin_hosts() {
        assert_eq!(
            origin_host(b"http://a.test:8080"),
            Some(&b"a.test:8080"[..])
        );
        assert_eq!(origin_host(b"null"), None);
        assert_eq!(origin_host(b"http://a.test/path"), None);
        assert_eq!(origin_host(b"http://"), None);
    }

    #[test]
    fn trusted_origins_are_checked_when_added() {
        assert!(CrossOriginLayer::new()
            .trusted_origin("https://a.test")
            .is_ok());
        assert!(CrossOriginLayer::new()
            .trusted_origin("http://a.test:81")
            .is_ok());
        for bad in [
            "a.test",
            "https://",
            "https://a.test/",
            "://a.test",
            "https://a.test?x",
        ] {
            assert_eq!(
                CrossOriginLayer::new().trusted_origin(bad).unwrap_err(),
                InvalidOrigin(bad.into())
            );
        }
    }

    #[test]
    fn sharing_a_layer_keeps_each_copy_its_rules() {
        let base = CrossOriginLayer::new().exempt_path("/a");
        let more = base.clone().exempt_path("/b");
        assert_eq!(base.rules.exempt, ["/a"]);
        assert_eq!(more.rules.exempt, ["/a", "/b"]);
    }

    #[test]
    fn other_methods_than_post_are_checked_too() {
        let rules = Rules::default();
        for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::CONNECT] {
            let req = request(method.clone(), &[("sec-fetch-site", "cross-site")]);
            assert!(!rules.allows(&req), "{method}");
        }
        let req = request(Method::OPTIONS, &[("sec-fetch-site", "cross-site")]);
        assert!(rules.allows(&req));
    }
}
