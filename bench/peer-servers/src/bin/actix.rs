//! actix-web 4 + actix-session 0.11 with `RedisSessionStore` (feature `redis-session`), set
//! up as its docs show: `RedisSessionStore::new(url)` (one multiplexed connection manager),
//! `SessionMiddleware` with its default private (encrypted) cookie, and a persistent
//! session lifecycle of one day, like every other server's cookie max age. `Secure` is off
//! because the benchmark speaks plain HTTP on loopback (the same for every server).
//! Workers: actix's default (one per core). actix-web's own ceiling, without the session
//! middleware, is `bench-actix-bare`.

use actix_session::config::PersistentSession;
use actix_session::storage::RedisSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{time::Duration, Key};
use actix_web::{web, App, Error, HttpServer};

async fn counter(session: Session) -> Result<String, Error> {
    let views: u64 = session.get("views")?.unwrap_or(0) + 1;
    session.insert("views", views)?;
    Ok(format!("views {views}"))
}

async fn read(session: Session) -> Result<String, Error> {
    let views: u64 = session.get("views")?.unwrap_or(0);
    Ok(format!("views {views}"))
}

async fn untouched() -> &'static str {
    "ok"
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let store = RedisSessionStore::new(bench_common::redis_url())
        .await
        .map_err(std::io::Error::other)?;
    // A fixed 64-byte key so restarts keep cookies valid (a deployment reads it from config).
    let key = Key::from(&[7u8; 64]);
    let ttl = Duration::seconds(bench_common::MAX_AGE.as_secs() as i64);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(
                SessionMiddleware::builder(store.clone(), key.clone())
                    .cookie_secure(false)
                    .session_lifecycle(PersistentSession::default().session_ttl(ttl))
                    .build(),
            )
            .route("/counter", web::get().to(counter))
            .route("/read", web::get().to(read))
            .route("/untouched", web::get().to(untouched))
    })
    .bind(bench_common::addr())?;
    bench_common::announce("actix-session (redis)");
    server.run().await
}
