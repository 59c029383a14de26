//! The actix-web ceiling: actix-web 4 with the same three routes and bodies as the bare
//! axum server (`bench-bare`) and no session middleware. Next to bare axum it shows how
//! much of the gap to actix-session is the framework (actix-web vs axum/hyper) rather than
//! the session layer. Workers: actix's default (one per core), like `bench-actix`.

use actix_web::{web, App, HttpServer};

async fn views() -> &'static str {
    "views 1"
}

async fn untouched() -> &'static str {
    "ok"
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let server = HttpServer::new(|| {
        App::new()
            .route("/counter", web::get().to(views))
            .route("/read", web::get().to(views))
            .route("/untouched", web::get().to(untouched))
    })
    .bind(bench_common::addr())?;
    bench_common::announce("bare actix-web");
    server.run().await
}
