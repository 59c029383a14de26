//! Regression tests of the security review's findings on the `tessera` binary, each
//! through the real binary: what it prints, which secrets it signs with, which files it
//! creates or refuses, and what its demo counter does with values it cannot use.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::SET_COOKIE;
use test_support::{RedisServer, TempDir, TesseraServer};

const WELCOME: &str = "Welcome to the session demo! Visit again to see the view count increase.";
/// Long enough not to be warned about; used where the secret is not what is tested.
const SECRET: &str = "a hardening test secret of 32+ bytes";
const PASSWORD: &str = "hunter2-redis-password";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tessera"))
}

/// What a finished `tessera` run left.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `tessera ARGS…` in `cwd` with `env` until it exits. One still running after
/// `timeout` (a server that should have refused to start) is killed and fails the test.
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(cwd);
    for var in [
        "PORT",
        "SESSION_STORE",
        "SESSION_SECRET",
        "SESSION_SECRETS",
        "SESSION_PREFIX",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tessera {args:?} still ran after {timeout:?}; its output:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// GET `url` with an optional Cookie header: the status, the body and our Set-Cookie's
/// `name=value` pair, if any.
async fn get(url: &str, cookie: Option<&str>) -> (u16, String, Option<String>) {
    let mut req = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let pair = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("connect.sid="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    (status, resp.text().await.unwrap(), pair)
}

// ---------------------------------------------------------------------------------------
// Finding 3: credentials in store URLs never reach the output.
// ---------------------------------------------------------------------------------------

#[test]
fn store_passwords_never_reach_errors_or_help() {
    let dir = TempDir::new().unwrap();
    let long = Duration::from_secs(60);
    for (store, expected) in [
        (
            format!("redis://app:{PASSWORD}@127.0.0.1:1"),
            "redis://app:***@127.0.0.1:1",
        ),
        (
            format!("rediss://:{PASSWORD}@127.0.0.1:1/0"),
            "rediss://:***@127.0.0.1:1/0",
        ),
        (
            format!("redis-cluster://app:{PASSWORD}@127.0.0.1:1,127.0.0.1:2"),
            "redis-cluster://app:***@127.0.0.1:1,127.0.0.1:2",
        ),
        (
            format!(
                "redis-sentinel://127.0.0.1:1,127.0.0.1:2/mymaster?sentinel_password={PASSWORD}"
            ),
            "redis-sentinel://127.0.0.1:1,127.0.0.1:2/mymaster?sentinel_password=***",
        ),
        (
            format!("nosuch://app:{PASSWORD}@host/x"),
            "unknown store URL",
        ),
        // A password with characters a URL parser would take for the path.
        (
            format!("redis://:pa/ss{PASSWORD}@127.0.0.1:1"),
            "redis://:***@127.0.0.1:1",
        ),
    ] {
        for args in [
            vec![
                "serve", "--port", "0", "--store", &store, "--secret", SECRET,
            ],
            vec!["sessions", "count", "--store", &store],
        ] {
            let out = run(dir.path(), &args, &[], long);
            assert!(!out.status.success(), "{args:?}: {out:?}");
            assert!(
                !out.stderr.contains(PASSWORD) && !out.stdout.contains(PASSWORD),
                "{args:?} printed the password: {out:?}"
            );
            assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        }
    }

    // `--help` shows the environment's values of the flags that take a URL or a secret.
    let store = format!("redis://app:{PASSWORD}@127.0.0.1:1");
    for args in [["serve", "--help"], ["sessions", "count"]] {
        let mut args = args.to_vec();
        if args[0] == "sessions" {
            args.push("--help");
        }
        let out = run(
            dir.path(),
            &args,
            &[("SESSION_STORE", &store), ("SESSION_SECRET", PASSWORD)],
            long,
        );
        assert!(out.status.success(), "{out:?}");
        assert!(!out.stdout.contains(PASSWORD), "{}", out.stdout);
    }
}

/// The start line names the store so an operator sees which one, without its password.
#[tokio::test]
async fn the_start_line_names_the_store_without_its_password() {
    let redis = RedisServer::start();
    redis.cli(&[
        "ACL",
        "SETUSER",
        "app",
        "on",
        &format!(">{PASSWORD}"),
        "~*",
        "+@all",
    ]);
    let dir = TempDir::new().unwrap();
    let url = format!("redis://app:{PASSWORD}@127.0.0.1:{}", redis.port);
    let server = TesseraServer::start(
        bin(),
        dir.path(),
        &["--store", &url, "--secret", SECRET],
        &[],
    );
    let (status, body, _) = get(&format!("{}/", server.url()), None).await;
    assert_eq!((status, body.as_str()), (200, WELCOME));
    let log = server.log();
    assert!(
        log.contains(&format!("store=redis://app:***@127.0.0.1:{}", redis.port)),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}
