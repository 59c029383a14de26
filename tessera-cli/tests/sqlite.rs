//! `tessera serve` on its default store, the embedded SQLite file, through the real binary:
//! sessions survive a clean restart and a kill -9 in the middle of writes, and many
//! sessions writing at once lose nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_support::{browser, counter_views, TesseraServer, WELCOME};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tessera"))
}

/// `tessera serve` in `cwd` with no `--store`: the default, `sqlite://.tessera/sessions.db`.
fn serve(cwd: &Path) -> TesseraServer {
    TesseraServer::start(bin(), cwd, &[], &[])
}

/// `GET /`, which must answer 200; the body.
async fn visit(client: &reqwest::Client, server: &TesseraServer) -> String {
    let response = client
        .get(server.url())
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET / failed: {e}\nserver log:\n{}", server.log()));
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}\nserver log:\n{}", server.log());
    body
}

/// `tessera sessions COMMAND --store <the default>` in `cwd`, while the server runs.
fn sessions(cwd: &Path, command: &str) -> String {
    let out = Command::new(bin())
        .args([
            "sessions",
            command,
            "--store",
            "sqlite://.tessera/sessions.db",
        ])
        .current_dir(cwd)
        .env_remove("SESSION_STORE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera sessions {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_quiet(server: &TesseraServer) {
    let log = server.log();
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "the server logged warnings or errors:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_on_the_default_store() {
    let cwd = tempfile::tempdir().unwrap();
    let client = browser();

    let mut server = serve(cwd.path());
    // The line that gave the address names the store; it reaches the log just after.
    test_support::wait_until(
        "the server to log that it uses sqlite://.tessera/sessions.db",
        Duration::from_secs(5),
        || server.log().contains("store=sqlite://.tessera/sessions.db"),
    );
    assert_eq!(visit(&client, &server).await, WELCOME);
    assert_eq!(
        visit(&client, &server).await,
        "You have visited this page 2 times."
    );
    let log = server.log();
    assert!(
        server.process.terminate(Duration::from_secs(10)),
        "no clean exit on SIGTERM:\n{log}"
    );
    assert!(cwd.path().join(".tessera/sessions.db").is_file());
    assert!(cwd.path().join(".tessera/secret").is_file());

    // The same browser (its cookie jar ignores the port) on a new process.
    let server = serve(cwd.path());
    assert_eq!(
        visit(&client, &server).await,
        "You have visited this page 3 times."
    );
    assert_quiet(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_kill_9_during_writes() {
    let cwd = tempfile::tempdir().unwrap();
    let mut server = serve(cwd.path());
    let url = server.url();

    // Eight browsers visit as fast as they can; each remembers the last count it was sent.
    let mut writers = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        writers.push(tokio::spawn(async move {
            let client = browser();
            let mut last = 0;
            loop {
                let Ok(response) = client.get(&url).send().await else {
                    break;
                };
                let status = response.status();
                let Ok(body) = response.text().await else {
                    break;
                };
                assert_eq!(status, 200, "{body}");
                let n = counter_views(&body);
                assert_eq!(n, last + 1, "a count was skipped or repeated");
                last = n;
            }
            (client, last)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.process.kill();
    let mut received = Vec::new();
    for writer in writers {
        received.push(writer.await.unwrap());
    }
    assert!(
        received.iter().all(|(_, last)| *last >= 2),
        "some browser got fewer than two answers before the kill: {:?}",
        received.iter().map(|(_, n)| n).collect::<Vec<_>>()
    );

    // Every answer a browser received was committed before it was sent; at most the one
    // request in flight at the kill was committed without an answer.
    let server = serve(cwd.path());
    for (client, last) in &received {
        let now = counter_views(&visit(client, &server).await);
        assert!(
            now == last + 1 || now == last + 2,
            "a session was answered {last} before the kill and now counts {now}"
        );
    }
    assert_eq!(sessions(cwd.path(), "count").trim(), "8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parallel_sessions_lose_nothing() {
    const SESSIONS: usize = 100;
    const VISITS: u64 = 10;
    let cwd = tempfile::tempdir().unwrap();
    let server = serve(cwd.path());
    let url = server.url();

    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = browser();
            for expected in 1..=VISITS {
                let response = client.get(&url).send().await.unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert_eq!(status, 200, "{body}");
                assert_eq!(counter_views(&body), expected);
            }
        }));
    }
    for task in tasks {
        task.await
            .unwrap_or_else(|e| panic!("a session failed: {e}\nserver log:\n{}", server.log()));
    }

    assert_eq!(sessions(cwd.path(), "count").trim(), SESSIONS.to_string());
    assert_eq!(sessions(cwd.path(), "list").lines().count(), SESSIONS);
    assert_quiet(&server);
}
