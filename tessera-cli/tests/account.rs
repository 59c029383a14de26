//! The demo's account routes on the real `tessera serve` binary, over real HTTP: `POST
//! /login` negotiated on `Accept` (plain text for curl, 303 and a flash for browsers), the
//! account page, and the cross-origin layer in front of every POST.

use std::path::Path;

use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use test_support::{TempDir, TesseraServer};

const FORM: &str = "application/x-www-form-urlencoded";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn start(dir: &TempDir) -> TesseraServer {
    TesseraServer::start(
        Path::new(env!("CARGO_BIN_EXE_tessera")),
        dir.path(),
        &[
            "--store",
            "memory",
            "--secret",
            "account tests: thirty-two bytes at least",
        ],
        &[],
    )
}

/// One client with a cookie jar that does not follow redirects (so the 303 is seen).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn post_form(
    client: &reqwest::Client,
    url: String,
    body: &'static str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client.post(url).header(CONTENT_TYPE, FORM).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn curl_gets_plain_text_from_post_login() {
    let dir = TempDir::new().unwrap();
    let server = start(&dir);
    let c = client();
    let reply = post_form(&c, format!("{}/login", server.url()), "user=ada", &[]).await;
    assert_eq!(reply.status(), 200);
    assert!(reply.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let set = reply.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(!set.contains("Expires="), "a browser-session cookie: {set}");
    assert_eq!(reply.text().await.unwrap(), "Logged in as ada.");

    let remember = post_form(
        &c,
        format!("{}/login", server.url()),
        "user=bob&remember=on",
        &[(ACCEPT.as_str(), "*/*")],
    )
    .await;
    assert_eq!(remember.status(), 200);
    let set = remember.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let in_30_days = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let expires = set.split("Expires=").nth(1).unwrap_or_default();
    assert!(
        expires.contains(&format!(" {:02} ", in_30_days.day())),
        "a 30-day cookie: {set}"
    );
    assert_eq!(remember.text().await.unwrap(), "Logged in as bob.");

    let empty = post_form(&c, format!("{}/login", server.url()), "user=+", &[]).await;
    assert_eq!(empty.status(), 400);
}

#[tokio::test]
async fn a_browser_login_redirects_to_the_account_page_with_a_notice_once() {
    let dir = TempDir::new().unwrap();
    let server = start(&dir);
    let c = client();
    let page = |c: &reqwest::Client| {
        c.get(format!("{}/account", server.url()))
            .header(ACCEPT, BROWSER_ACCEPT)
            .send()
    };
    let form = page(&c).await.unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(form.headers()[CACHE_CONTROL], "no-store");
    let html = form.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/login\""),
        "{html}"
    );

    let reply = post_form(
        &c,
        format!("{}/login", server.url()),
        "user=%3Cb%3Eada%3C%2Fb%3E",
        &[(ACCEPT.as_str(), BROWSER_ACCEPT)],
    )
    .await;
    assert_eq!(reply.status(), 303);
    assert_eq!(reply.headers()[LOCATION], "/account");

    let html = page(&c).await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Signed in as &lt;b&gt;ada&lt;/b&gt;, until you close the browser."),
        "{html}"
    );
    assert!(!html.contains("<b>ada"), "escaped: {html}");
    assert!(html.contains("(this one)"), "{html}");
    let again = page(&c).await.unwrap().text().await.unwrap();
    assert!(
        !again.contains("class=\"flash"),
        "the notice shows once: {again}"
    );

    let out = post_form(&c, format!("{}/account/logout", server.url()), "", &[]).await;
    assert_eq!(out.status(), 303);
    let html = page(&c).await.unwrap().text().await.unwrap();
    assert!(
        html.contains("You are signed out on this device."),
        "{html}"
    );
    assert!(html.contains("action=\"/login\""), "{html}");
}

#[tokio::test]
async fn cross_origin_posts_are_refused_and_the_article_routes_are_unchanged() {
    let dir = TempDir::new().unwrap();
    let server = start(&dir);
    let c = client();
    let login = format!("{}/login", server.url());
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() ^ 1);
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", other_port.as_str())][..],
        &[("origin", "null")][..],
    ] {
        let reply = post_form(&c, login.clone(), "user=mallory", headers).await;
        assert_eq!(reply.status(), 403, "{headers:?}");
        assert!(reply.headers().get(SET_COOKIE).is_none());
        assert_eq!(
            reply.text().await.unwrap(),
            "Forbidden: cross-origin request refused.\n"
        );
    }
    let same = format!("http://{}", server.addr);
    for headers in [
        &[("sec-fetch-site", "same-origin")][..],
        &[("origin", same.as_str())][..],
    ] {
        let reply = post_form(&c, login.clone(), "user=ada", headers).await;
        assert_eq!(reply.status(), 200, "{headers:?}");
    }
    assert!(server.log().contains("refused a cross-origin request"));

    // `/` and `/logout` answer as before, cross-site GETs included.
    let get = |path: &str| {
        c.get(format!("{}{path}", server.url()))
            .header("sec-fetch-site", "cross-site")
            .send()
    };
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        test_support::WELCOME
    );
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        "You have visited this page 2 times."
    );
    assert_eq!(
        get("/logout").await.unwrap().text().await.unwrap(),
        "Logged out successfully!"
    );
}

/// The account page's sign-out buttons: one session by handle (only the owner's), and
/// everywhere.
#[tokio::test]
async fn the_account_forms_sign_out_one_session_or_all() {
    let dir = TempDir::new().unwrap();
    let server = start(&dir);
    let (a, b, bob) = (client(), client(), client());
    let login = format!("{}/login", server.url());
    for (c, user) in [(&a, "user=ada"), (&b, "user=ada"), (&bob, "user=bob")] {
        assert_eq!(post_form(c, login.clone(), user, &[]).await.status(), 200);
    }
    let sessions: serde_json::Value = serde_json::from_str(
        &a.get(format!("{}/sessions", server.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let others: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == false)
        .map(|s| s["handle"].as_str().unwrap())
        .collect();
    assert_eq!(others.len(), 1, "{sessions}");
    let field: &'static str = format!("session={}", others[0]).leak();
    let revoke = format!("{}/account/revoke", server.url());
    let page = |c: &reqwest::Client| {
        let url = format!("{}/account", server.url());
        let c = c.clone();
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };

    // bob cannot end ada's session with its handle; a malformed handle ends nothing.
    assert_eq!(
        post_form(&bob, revoke.clone(), field, &[]).await.status(),
        303
    );
    assert!(page(&bob).await.contains("That session had already ended."));
    assert!(page(&b)
        .await
        .contains("Signed in as <strong id=\"user-name\">ada"));
    post_form(&a, revoke.clone(), "session=not-a-handle", &[]).await;
    assert!(page(&a).await.contains("That is not a session of yours."));

    // ada can, from her other session.
    assert_eq!(
        post_form(&a, revoke.clone(), field, &[]).await.status(),
        303
    );
    let html = page(&a).await;
    assert!(html.contains("That session is signed out."), "{html}");
    assert_eq!(html.matches("<tr class=\"session").count(), 1, "{html}");
    assert!(
        page(&b).await.contains("action=\"/login\""),
        "b is signed out"
    );

    // Its own handle, posted by hand: this session ends, and the notice still shows.
    let own: serde_json::Value = serde_json::from_str(
        &bob.get(format!("{}/sessions", server.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let own = format!("session={}", own[0]["handle"].as_str().unwrap()).leak();
    assert_eq!(
        post_form(&bob, revoke.clone(), own, &[]).await.status(),
        303
    );
    let html = page(&bob).await;
    assert!(html.contains("That session is signed out."), "{html}");
    assert!(html.contains("action=\"/login\""), "{html}");
    post_form(&bob, login.clone(), "user=bob", &[]).await;

    // Everywhere: this session too; bob's stays.
    post_form(&b, login.clone(), "user=ada", &[]).await;
    let all = post_form(&a, format!("{}/account/revoke-all", server.url()), "", &[]).await;
    assert_eq!(all.status(), 303);
    let html = page(&a).await;
    assert!(html.contains("Signed out everywhere: 2 sessions"), "{html}");
    assert!(html.contains("action=\"/login\""), "{html}");
    assert!(page(&b).await.contains("action=\"/login\""));
    assert!(page(&bob).await.contains("user-name\">bob"));
}
