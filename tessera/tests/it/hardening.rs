//! Regression tests of the security review's findings, each over real HTTP: the layer in a
//! real axum server on a free port, a real client, and hostile input planted where an
//! attacker (or a broken peer) would put it.

use std::sync::Arc;

use reqwest::header::COOKIE;
use tessera::MemoryStore;

use crate::support::{config, get, get_raw, server};

fn visited(n: u64) -> String {
    format!("You have visited this page {n} times.")
}

// ---------------------------------------------------------------------------------------
// Finding 1: a non-ASCII byte in another cookie must not cost us our session.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_non_ascii_cookie_of_another_name_keeps_the_session() {
    let addr = server(config(), Arc::new(MemoryStore::new())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    let ours = cookie.as_bytes();
    // UTF-8 (what a browser sends for `document.cookie = "other=José"`), a Latin-1 byte,
    // before and after ours, and a value of our own name that is not UTF-8 before the
    // valid one (only our own cookie's value must be valid; the first that verifies wins).
    let headers: Vec<Vec<u8>> = vec![
        [b"other=Jos\xc3\xa9; ".as_slice(), ours].concat(),
        [ours, b"; other=Jos\xe9".as_slice()].concat(),
        [b"a=\xff\xfe; ".as_slice(), ours, b"; b=\x80".as_slice()].concat(),
        [b"connect.sid=s%3A\xff\xfe.x; ".as_slice(), ours].concat(),
    ];
    let mut views = 1;
    for header in &headers {
        views += 1;
        let reply = get_raw(addr, "/", Some(header)).await;
        assert_eq!(
            reply.body,
            visited(views),
            "Cookie: {}",
            String::from_utf8_lossy(header)
        );
    }

    // The non-ASCII cookie in a Cookie header of its own, ours in another.
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .header(
            COOKIE,
            reqwest::header::HeaderValue::from_bytes(b"other=Jos\xc3\xa9").unwrap(),
        )
        .header(COOKIE, cookie.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), visited(views + 1));
}
