//! Regression tests of the security review's findings on the `tessera` binary, each
//! through the real binary: what it prints, which secrets it signs with, which files it
//! creates or refuses, and what its demo counter does with values it cannot use.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::SET_COOKIE;
use tessera::signing::Secrets;
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
    test_support::clean_env(&mut cmd);
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

/// The `s:<id>.<sig>` inside a `connect.sid=…` pair.
fn signed_value(pair: &str) -> String {
    pair.strip_prefix("connect.sid=")
        .unwrap()
        .replace("%3A", ":")
        .replace("%2F", "/")
        .replace("%2B", "+")
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

// ---------------------------------------------------------------------------------------
// Finding 5: no secret is shortened silently; short ones are warned about.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_secret_is_never_split_and_rotation_is_explicit() {
    let dir = TempDir::new().unwrap();
    let with_comma = "the first part of the key,and the rest of it";
    let server = TesseraServer::start(
        bin(),
        dir.path(),
        &["--store", "memory", "--secret", with_comma],
        &[],
    );
    let (_, body, pair) = get(&format!("{}/", server.url()), None).await;
    assert_eq!(body, WELCOME);
    let value = signed_value(&pair.unwrap());
    assert!(
        Secrets::new([with_comma]).unwrap().unsign(&value).is_some(),
        "signed with the whole value: {value}"
    );
    assert!(
        server.log().contains("comma"),
        "a comma in a secret is pointed out: {}",
        server.log()
    );
    assert!(!server.log().contains(with_comma), "{}", server.log());

    // Rotation: --secret given twice, or --secrets with a list (split on commas, trimmed
    // around each); the first signs, all verify. The servers share the default SQLite
    // store, so a session minted under the old secret continues under the new list.
    let (new, old) = (
        "the new secret: 32 bytes or more!",
        "the old secret: 32 bytes or more!",
    );
    let old_server = TesseraServer::start(bin(), dir.path(), &["--secret", old], &[]);
    let list = format!("{new} , {old}");
    for args in [
        vec!["--secret", new, "--secret", old],
        vec!["--secrets", list.as_str()],
    ] {
        let (_, body, old_pair) = get(&format!("{}/", old_server.url()), None).await;
        assert_eq!(body, WELCOME);
        let rotating = TesseraServer::start(bin(), dir.path(), &args, &[]);
        let (_, body, pair) = get(&format!("{}/", rotating.url()), old_pair.as_deref()).await;
        assert_eq!(body, "You have visited this page 2 times.", "{args:?}");
        let value = signed_value(&pair.expect("re-signed with the new secret"));
        assert!(
            Secrets::new([new]).unwrap().unsign(&value).is_some(),
            "{args:?}: {value}"
        );
    }

    // An empty item, or both flags at once, is an error, never a silent choice.
    for args in [
        vec![
            "serve",
            "--port",
            "0",
            "--store",
            "memory",
            "--secrets",
            "a-long-enough-secret-value-here,,b",
        ],
        vec![
            "serve",
            "--port",
            "0",
            "--store",
            "memory",
            "--secrets",
            " , ",
        ],
        vec!["serve", "--port", "0", "--store", "memory", "--secret", ""],
        vec![
            "serve",
            "--port",
            "0",
            "--store",
            "memory",
            "--secret",
            "x",
            "--secrets",
            "y",
        ],
    ] {
        let out = run(dir.path(), &args, &[], Duration::from_secs(30));
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(out.stderr.contains("secret"), "{args:?}: {}", out.stderr);
    }
}

#[tokio::test]
async fn a_short_secret_is_warned_about_without_being_shown() {
    let dir = TempDir::new().unwrap();
    let short = "tiny-s3cret";
    let server = TesseraServer::start(
        bin(),
        dir.path(),
        &["--store", "memory", "--secret", SECRET, "--secret", short],
        &[],
    );
    let (status, _, _) = get(&format!("{}/", server.url()), None).await;
    assert_eq!(status, 200);
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("32 bytes"))
        .unwrap_or_else(|| panic!("no warning about the short secret:\n{log}"));
    assert!(warning.contains("secret 2"), "{warning}");
    assert!(!log.contains(short), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("secret 1")),
        "a long secret is not warned about:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 11: a demo secret file others can read is refused; a new one is private.
// ---------------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn a_demo_secret_readable_by_others_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join(".tessera");
    std::fs::create_dir(&folder).unwrap();
    let path = folder.join("secret");
    let secret = "an existing demo secret that others could read, 64 characters..";
    std::fs::write(&path, secret).unwrap();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run(
            dir.path(),
            &["serve", "--port", "0", "--store", "memory"],
            &[],
            Duration::from_secs(20),
        );
        assert!(!out.status.success(), "mode {mode:o}: {out:?}");
        assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
        assert!(out.stderr.contains(".tessera/secret"), "{}", out.stderr);
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
    }
    // Fixed as the message says: served.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = TesseraServer::start(bin(), dir.path(), &["--store", "memory"], &[]);
    assert!(
        server.log().contains("using the demo secret"),
        "{}",
        server.log()
    );
}

#[cfg(unix)]
#[test]
fn a_generated_demo_secret_and_its_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let _server = TesseraServer::start(bin(), dir.path(), &[], &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join(".tessera/secret")), 0o600);
    assert_eq!(mode(&dir.path().join(".tessera")), 0o700);
}

// ---------------------------------------------------------------------------------------
// Finding 12: the demo counter survives stored values it cannot use.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_starts_afresh_on_a_value_it_cannot_use_and_never_wraps() {
    use tessera::store::sqlite::{SqliteOptions, SqliteStore};
    use tessera::{SaveMode, SessionId, Store};
    let dir = TempDir::new().unwrap();
    let server = TesseraServer::start(bin(), dir.path(), &["--secret", SECRET], &[]);
    let url = format!("{}/", server.url());
    let (_, body, pair) = get(&url, None).await;
    assert_eq!(body, WELCOME);
    let pair = pair.unwrap();
    let id = SessionId::parse(
        signed_value(&pair)
            .strip_prefix("s:")
            .and_then(|v| v.split('.').next())
            .unwrap(),
    )
    .unwrap();
    // A second writer of the same file, as a Node app or an operator could be.
    let store = SqliteStore::open(
        dir.path().join(".tessera/sessions.db"),
        SqliteOptions::default(),
    )
    .await
    .unwrap();
    let plant = |views: serde_json::Value| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let mut record = store.load(&id).await.unwrap().unwrap().record;
            record.data.insert("views".into(), views);
            let mode = SaveMode::Update { expected: None };
            store.save(&id, &record, mode).await.unwrap();
        }
    };

    for unusable in [
        serde_json::json!("x"),
        serde_json::json!(-1),
        serde_json::json!(2.5),
        serde_json::json!(null),
        serde_json::json!({"n": 1}),
        serde_json::json!([3]),
    ] {
        plant(unusable.clone()).await;
        let (status, body, _) = get(&url, Some(&pair)).await;
        assert_eq!(
            (status, body.as_str()),
            (200, WELCOME),
            "views = {unusable}"
        );
        let (_, body, _) = get(&url, Some(&pair)).await;
        assert_eq!(
            body, "You have visited this page 2 times.",
            "after {unusable}"
        );
    }

    for top in [serde_json::json!(u64::MAX), serde_json::json!(1e20)] {
        plant(top.clone()).await;
        for _ in 0..2 {
            let (status, body, _) = get(&url, Some(&pair)).await;
            assert_eq!(status, 200, "views = {top}");
            assert_eq!(
                body,
                format!("You have visited this page {} times.", u64::MAX),
                "views = {top}"
            );
        }
        let stored = store.load(&id).await.unwrap().unwrap().record;
        assert_eq!(stored.data["views"], serde_json::json!(u64::MAX));
    }
}

// ---------------------------------------------------------------------------------------
// Finding 14: admin commands open existing databases only.
// ---------------------------------------------------------------------------------------

#[test]
fn admin_commands_do_not_create_a_database_on_a_mistyped_path() {
    let dir = TempDir::new().unwrap();
    for (store, path) in [
        ("sqlite://.tesera/sessions.db", ".tesera/sessions.db"),
        ("sqlite://sessions.db", "sessions.db"),
    ] {
        for command in [
            vec!["sessions", "count", "--store", store],
            vec!["sessions", "list", "--store", store],
            vec!["sessions", "clear", "--yes", "--store", store],
        ] {
            let out = run(dir.path(), &command, &[], Duration::from_secs(30));
            assert!(!out.status.success(), "{command:?}: {out:?}");
            assert!(out.stderr.contains(path), "{command:?}: {}", out.stderr);
            assert!(out.stderr.contains("no session database"), "{}", out.stderr);
        }
        let top = Path::new(path).components().next().unwrap();
        assert!(!dir.path().join(top).exists(), "{path}: created");
    }
}
