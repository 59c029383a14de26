//! `tessera serve` loses no increment of the article's counter when requests of one session
//! run at the same time: on the default SQLite store, on the memory store, on Redis, and
//! across two instances sharing one Redis (where each instance's commits can only meet the
//! other's through the store's compare-and-set).

use std::path::Path;
use std::time::Duration;

use reqwest::header::{COOKIE, SET_COOKIE};
use test_support::{counter_views, RedisServer, TempDir, TesseraServer, WELCOME};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const SECRET: &str = "a test secret that is long enough!";

fn serve(cwd: &Path, store: Option<&str>) -> TesseraServer {
    let mut args = vec!["--secret", SECRET];
    if let Some(store) = store {
        args.extend(["--store", store]);
    }
    TesseraServer::start(Path::new(BIN), cwd, &args, &[])
}

/// `GET /` with `cookie`; the status, the body and the `connect.sid` pair of a Set-Cookie.
async fn visit(url: &str, cookie: Option<&str>) -> (u16, String, Option<String>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut request = client.get(format!("{url}/"));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let pair = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("connect.sid="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    (status, response.text().await.unwrap(), pair)
}

/// One visit, then 100 at once with that cookie spread over `urls`, then one more: the
/// last must count 102.
async fn hundred_parallel_visits_all_count(urls: &[String]) {
    let (status, body, cookie) = visit(&urls[0], None).await;
    assert_eq!((status, body.as_str()), (200, WELCOME));
    let cookie = cookie.expect("a new session gets a cookie");
    let requests: Vec<_> = (0..100)
        .map(|n| {
            let (url, cookie) = (urls[n % urls.len()].clone(), cookie.clone());
            tokio::spawn(async move { visit(&url, Some(&cookie)).await })
        })
        .collect();
    for request in requests {
        let (status, body, _) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (_, body, _) = visit(&urls[0], Some(&cookie)).await;
    assert_eq!(counter_views(&body), 102, "every visit counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_default_sqlite_store() {
    let dir = TempDir::new().unwrap();
    let server = serve(dir.path(), None);
    hundred_parallel_visits_all_count(&[server.url()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_memory_store() {
    let dir = TempDir::new().unwrap();
    let server = serve(dir.path(), Some("memory"));
    hundred_parallel_visits_all_count(&[server.url()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis() {
    let redis = RedisServer::start();
    let server = serve(redis.dir.path(), Some(&redis.url()));
    hundred_parallel_visits_all_count(&[server.url()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_instances_on_one_redis() {
    let redis = RedisServer::start();
    let one = serve(redis.dir.path(), Some(&redis.url()));
    let two = serve(redis.dir.path(), Some(&redis.url()));
    hundred_parallel_visits_all_count(&[one.url(), two.url()]).await;
}
