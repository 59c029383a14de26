//! Mounting the layer in a real axum server on a free port.

use std::net::SocketAddr;

use axum::Router;

/// Serves `app` on 127.0.0.1 on a free port until the test's runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}
