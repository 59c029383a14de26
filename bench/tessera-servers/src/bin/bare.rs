//! The ceiling: axum with the same routes as `bench-tessera` and no session middleware.

use axum::{routing::get, Router};

#[tokio::main]
async fn main() {
    let app = Router::new()
        .route("/counter", get(|| async { "views 1" }))
        .route("/read", get(|| async { "views 1" }))
        .route("/untouched", get(|| async { "ok" }))
        .route("/login", get(|| async { "user user0" }))
        .route("/sessions", get(|| async { "sessions 1" }));
    let listener = tokio::net::TcpListener::bind(bench_common::addr())
        .await
        .expect("bind");
    bench_common::announce("bare axum");
    axum::serve(listener, app).await.expect("serve");
}
