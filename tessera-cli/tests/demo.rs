//! `tessera serve`, the real binary, over real HTTP: the article's demo and its flags.

use std::path::Path;
use std::time::Duration;

use test_support::{browser, TempDir, TesseraServer};

const WELCOME: &str = "Welcome to the session demo! Visit again to see the view count increase.";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tessera"))
}

#[tokio::test]
async fn the_article_demo_counts_and_logs_out() {
    let dir = TempDir::new().unwrap();
    let server = TesseraServer::start(
        bin(),
        dir.path(),
        &["--store", "memory", "--secret", "s3cret"],
        &[],
    );
    let b = browser();
    let get = |path: &'static str| {
        let b = b.clone();
        let url = format!("{}{path}", server.url());
        async move {
            let r = b.get(url).send().await.unwrap();
            let ctype = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), ctype, r.text().await.unwrap())
        }
    };
    let (status, ctype, body) = get("/").await;
    assert_eq!((status, body.as_str()), (200, WELCOME));
    assert!(ctype.unwrap().starts_with("text/plain"));
    assert_eq!(get("/").await.2, "You have visited this page 2 times.");
    assert_eq!(get("/").await.2, "You have visited this page 3 times.");
    assert_eq!(get("/logout").await.2, "Logged out successfully!");
    assert_eq!(get("/").await.2, WELCOME);
    assert!(
        server.log().contains("store=memory"),
        "start line names the store: {}",
        server.log()
    );
}

#[tokio::test]
async fn flags_shape_the_cookie() {
    let dir = TempDir::new().unwrap();
    let server = TesseraServer::start(
        bin(),
        dir.path(),
        &[
            "--store",
            "memory",
            "--cookie-name",
            "sid",
            "--cookie-max-age",
            "60",
        ],
        &[("SESSION_SECRET", "from-env")],
    );
    let r = reqwest::get(format!("{}/", server.url())).await.unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("sid=s%3A"), "{set}");
    let expires = set
        .split("Expires=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let in_a_minute = time::OffsetDateTime::now_utc() + time::Duration::seconds(60);
    assert!(
        expires.contains(&format!(" {:02}:", in_a_minute.hour())),
        "{set}"
    );
    assert!(
        !dir.path().join(".tessera/secret").exists(),
        "a given secret is not replaced by a generated one"
    );

    // --cookie-secure true: no cookie over plain HTTP, as express.
    let secure = TesseraServer::start(
        bin(),
        dir.path(),
        &[
            "--store",
            "memory",
            "--secret",
            "x",
            "--cookie-secure",
            "true",
        ],
        &[],
    );
    let r = reqwest::get(format!("{}/", secure.url())).await.unwrap();
    assert!(r.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_generated_secret_is_kept_private_and_reused() {
    let dir = TempDir::new().unwrap();
    let first = TesseraServer::start(bin(), dir.path(), &["--store", "memory"], &[]);
    let path = dir.path().join(".tessera/secret");
    let secret = std::fs::read_to_string(&path).expect("demo secret written");
    assert!(secret.trim().len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        first.log().contains("generated a demo secret"),
        "{}",
        first.log()
    );
    let second = TesseraServer::start(bin(), dir.path(), &["--store", "memory"], &[]);
    assert!(second.log().contains("using the demo secret"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let dir = TempDir::new().unwrap();
    let mut server = TesseraServer::start(
        bin(),
        dir.path(),
        &["--store", "memory", "--secret", "x"],
        &[],
    );
    assert_eq!(
        reqwest::get(format!("{}/health", server.url()))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        server.process.terminate(Duration::from_secs(10)),
        "exit status 0 after SIGTERM"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(server.log().contains("shut down"), "{}", server.log());
}

#[test]
fn bad_options_fail_with_a_clear_message() {
    let dir = TempDir::new().unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--store", "nosuch://x", "--secret", "x"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown store URL"), "{err}");

    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--store",
            "memory",
            "--secret",
            "x",
            "--cookie-name",
            "bad name",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cookie name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_started_together_agree_on_the_generated_secret() {
    let dir = TempDir::new().unwrap();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| TesseraServer::start(bin(), dir.path(), &[], &[]));
        let b = s.spawn(|| TesseraServer::start(bin(), dir.path(), &[], &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Both on the default embedded store in the same folder: one user, alternating.
    let client = browser();
    for (n, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let body = client
            .get(format!("{}/", server.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if n == 0 {
            assert_eq!(body, WELCOME);
        } else {
            assert_eq!(
                body,
                format!("You have visited this page {} times.", n + 1),
                "logs:\n{}\n{}",
                a.log(),
                b.log()
            );
        }
    }
}

/// `GET /metrics` shows the session counters moving as a user visits, in Prometheus's text
/// format, and scraping it creates no session.
#[tokio::test]
async fn metrics_move_as_a_user_visits() {
    let dir = TempDir::new().unwrap();
    let server = TesseraServer::start(
        Path::new(env!("CARGO_BIN_EXE_tessera")),
        dir.path(),
        &["--secret", "a secret of thirty-two bytes or more"],
        &[],
    );
    let scrape = || async {
        let response = reqwest::get(format!("{}/metrics", server.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("set-cookie").is_none());
        response.text().await.unwrap()
    };
    let value = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    };
    let before = scrape().await;
    assert_eq!(value(&before, "tessera_sessions_created_total"), 0);
    let client = browser();
    for _ in 0..3 {
        let reply = client
            .get(format!("{}/", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    let after = scrape().await;
    assert_eq!(
        value(&after, "tessera_sessions_created_total"),
        1,
        "{after}"
    );
    assert_eq!(value(&after, "tessera_sessions_loaded_total"), 2, "{after}");
    assert_eq!(value(&after, "tessera_sessions_saved_total"), 3, "{after}");
    assert!(after.contains("tessera_store_call_seconds"), "{after}");
    assert!(after.contains("tessera_record_bytes"), "{after}");
}
