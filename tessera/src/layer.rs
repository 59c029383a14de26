//! `SessionLayer` and `SessionService`: the tower middleware.
//!
//! Per request it hands the `Cookie` headers to a new [`Session`] (which verifies our
//! cookie when it is first needed), puts the session in the request's extensions, calls
//! the inner service, then lets the session decide what to write and appends the
//! `Set-Cookie`. A store failure at that point turns
//! the response into `503 Service Unavailable` (the handler's changes were not kept, so
//! answering success would lie), logged with its cause.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::SET_COOKIE;
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::cache;
use crate::config::{ConfigError, SessionConfig};
use crate::engine::Engine;
use crate::session::{RawCookies, Session};
use crate::signing::Secrets;
use crate::store::Store;

/// The session middleware. Wraps any tower service; see the crate docs for an example.
#[derive(Clone)]
pub struct SessionLayer {
    engine: Arc<Engine>,
}

impl SessionLayer {
    /// A layer over `store` with the given options.
    ///
    /// # Errors
    /// [`ConfigError`] when no secret is set, a secret is empty, or the cookie name, path or
    /// domain would not make a valid `Set-Cookie` header.
    pub fn new(store: impl Store, config: SessionConfig) -> Result<Self, ConfigError> {
        Self::from_arc(Arc::new(store), config)
    }

    /// Like [`new`](Self::new), for a store already behind an `Arc` (shared with other
    /// code, or chosen at run time as `Arc<dyn Store>`).
    pub fn from_arc(store: Arc<dyn Store>, mut config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        config.index = match config.index_key.as_deref() {
            Some(key) => Some(crate::index::UserIndex::new(key)?),
            None => None,
        };
        let secrets = Secrets::new(&config.secrets)?;
        Ok(SessionLayer {
            engine: Arc::new(Engine::new(store, config, secrets)),
        })
    }

    /// The store behind this layer.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.engine.store
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("store", &self.engine.store)
            .field("config", &self.engine.config)
            .finish()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            engine: self.engine.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    engine: Arc<Engine>,
}

impl<S: fmt::Debug> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The cookie is verified when the session is first needed, not here.
        let cookies = RawCookies::from_headers(req.headers());
        let secure = is_secure(&req, &self.engine.config);
        let session = Session::new(self.engine.clone(), cookies, secure);
        req.extensions_mut().insert(session.clone());

        // The inner service is called here rather than inside the future: nothing has to
        // be awaited first, so the service that was driven to readiness serves the call
        // itself, and no clone of it is made per request (tower's clone-and-replace is for
        // middleware that awaits before calling on).
        let response = self.inner.call(req);
        let engine = self.engine.clone();
        Box::pin(async move {
            let mut response = response.await?;
            let outcome = session.finish().await;
            if let Some(error) = outcome.error {
                return Ok(failed(&error));
            }
            let mut sets_cookie = false;
            if let Some(set_cookie) = outcome.set_cookie {
                match HeaderValue::try_from(set_cookie) {
                    Ok(value) => {
                        response.headers_mut().append(SET_COOKIE, value);
                        sets_cookie = true;
                    }
                    Err(error) => {
                        tracing::error!(%error, "session cookie is not a valid header value")
                    }
                }
            }
            if engine.config.cache_headers {
                cache::protect(response.headers_mut(), outcome.read, sets_cookie);
            }
            Ok(response)
        })
    }
}

/// The response for a session that could not be finished: the handler's changes were not
/// kept, so answering success would lie.
fn failed<B: Default>(error: &crate::SessionError) -> Response<B> {
    let status = if error.is_unavailable() {
        tracing::warn!(%error, "session could not be saved at the end of the request; answering 503");
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        tracing::error!(%error, "session could not be finished; answering 500");
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

/// A request extension saying that the request came over a TLS connection, for
/// [`CookieSecure::Auto`](crate::CookieSecure::Auto) and for sending `Secure` cookies at all.
///
/// A server that accepts both TLS and plain connections inserts it, in its TLS acceptor,
/// into every request of a TLS connection (with axum: a
/// `Router::layer(axum::Extension(SecureConnection))` on the router served over TLS only).
/// A server that only ever takes TLS can set [`SessionConfig::behind_tls`] instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecureConnection;

/// Whether the request came over TLS, as only the server can tell: the layer is behind
/// TLS, the TLS acceptor marked the request, or a trusted proxy says
/// `X-Forwarded-Proto: https` (the first value counts, as in express-session).
///
/// Never the request target: a client may send an absolute-form target
/// (`GET https://host/ HTTP/1.1`), or an HTTP/2 `:scheme`, over plain TCP, and hyper puts
/// either in the URI as it came.
fn is_secure<B>(req: &Request<B>, config: &SessionConfig) -> bool {
    if config.behind_tls || req.extensions().get::<SecureConnection>().is_some() {
        return true;
    }
    if !config.trust_proxy {
        return false;
    }
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Ok200;

    impl Service<Request<String>> for Ok200 {
        type Response = Response<String>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<String>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<String>) -> Self::Future {
            std::future::ready(Ok(Response::new(String::new())))
        }
    }

    /// The layer boxes one future per request. glibc's malloc serves blocks up to about
    /// 1 KiB from a per-thread cache; a larger box takes an arena lock, which tokio's
    /// worker threads then contend for (measured: a 1.2 KiB future here cost a futex call
    /// on a good share of requests). Rare paths are boxed separately to keep it small.
    #[tokio::test]
    async fn the_per_request_future_stays_under_a_kibibyte() {
        let config = crate::SessionConfig::default().secret("s");
        let mut service = SessionLayer::new(crate::MemoryStore::new(), config)
            .unwrap()
            .layer(Ok200);
        let future = service.call(Request::new(String::new()));
        let size = std::mem::size_of_val(&*future);
        assert!(size <= 1000, "the layer's future is {size} bytes");
    }
}
