//! The ceiling: axum with the same three routes and no session middleware.

use axum::{routing::get, Router};

#[tokio::main]
async fn main() {
    let app = Router::new()
        .route("/counter", get(|| async { "views 1" }))
        .route("/read", get(|| async { "views 1" }))
        .route("/untouched", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(bench_common::addr())
        .await
        .expect("bind");
    bench_common::announce("bare axum");
    axum::serve(listener, app).await.expect("serve");
}
