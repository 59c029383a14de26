//! `SqliteStore` against the conformance suite, plus its own tests: corrupt rows and
//! files, the sweep, unusable paths, persistence across reopening. Every store is a real
//! file in a temporary folder.
#![cfg(feature = "sqlite")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::Router;
use tessera::record::DecodeError;
use tessera::signing::Secrets;
use tessera::store::sqlite::{SqliteOptions, SqliteStore};
use tessera::{SaveMode, SaveOutcome, Session, SessionConfig, SessionId, SessionLayer, Store};
use tessera::{SessionError, StoreError};

use crate::store_suite::{record, Made};

async fn make(default_ttl: Duration) -> Made {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        default_ttl,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("sessions.db"), options)
        .await
        .unwrap();
    (Box::new(dir), Arc::new(store))
}

crate::store_suite!(make);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A second, plain connection to the store's file, as `sqlite3` would open it.
fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn insert_raw(conn: &rusqlite::Connection, id: &str, record: &str, expires_at: i64) {
    conn.execute(
        "INSERT INTO sessions (id, record, expires_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        rusqlite::params![id, record, expires_at, now_ms()],
    )
    .unwrap();
}

async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(path, SqliteOptions::default()).await
}

/// The message of an open error, which must be a configuration error naming the file.
async fn open_error(path: &Path) -> String {
    match open(path).await {
        Err(StoreError::Config(message)) => {
            assert!(
                message.contains(&path.display().to_string()),
                "the error does not name the file: {message}"
            );
            message
        }
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(store) => panic!("{store:?} opened"),
    }
}

async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(format!("views={views}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_row_is_an_error_and_a_new_session_through_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = open(&path).await.unwrap();
    let conn = raw(&path);
    let (garbage, no_cookie) = (
        SessionId::generate().unwrap(),
        SessionId::generate().unwrap(),
    );
    insert_raw(&conn, garbage.as_str(), "not json {", now_ms() + 60_000);
    insert_raw(
        &conn,
        no_cookie.as_str(),
        r#"{"views":7}"#,
        now_ms() + 60_000,
    );

    match store.load(&garbage).await {
        Err(StoreError::Corrupt {
            id,
            source: DecodeError::Json(_),
        }) => assert_eq!(id, garbage),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match store.load(&no_cookie).await {
        Err(StoreError::Corrupt {
            id,
            source: DecodeError::MissingCookie,
        }) => {
            assert_eq!(id, no_cookie)
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The admin view shows the raw value, so an operator can see what is wrong.
    let shown = store.inspect(garbage.as_str()).await.unwrap().unwrap();
    assert_eq!(shown.value, b"not json {");

    // Through the layer: a cookie naming the corrupt row gets a new session, not an error.
    let layer =
        SessionLayer::new(store.clone(), SessionConfig::default().secret("s3cret")).unwrap();
    let app = Router::new().route("/", get(counter)).layer(layer);
    let addr = crate::support::serve(app).await;
    let signed = Secrets::new(["s3cret"]).unwrap().sign(&garbage);
    let cookie = format!(
        "connect.sid={}",
        signed
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace('+', "%2B")
    );
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.text().await.unwrap(), "views=1");
    let new_id = set_cookie
        .strip_prefix("connect.sid=s%3A")
        .and_then(|rest| rest.split('.').next())
        .and_then(SessionId::parse)
        .unwrap_or_else(|| panic!("no session cookie in {set_cookie:?}"));
    assert_ne!(new_id, garbage, "the corrupt session's ID was kept");
    let saved = store.load(&new_id).await.unwrap().unwrap().record;
    assert_eq!(saved.data["views"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_expired_rows_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let options = SqliteOptions {
        sweep_interval: Duration::from_millis(100),
        sweep_batch: 100,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&path, options).await.unwrap();
    let mut conn = raw(&path);
    let tx = conn.transaction().unwrap();
    for _ in 0..1_234 {
        let id = SessionId::generate().unwrap();
        insert_raw(&tx, id.as_str(), r#"{"cookie":{}}"#, now_ms() - 1_000);
    }
    tx.commit().unwrap();
    let live: Vec<SessionId> = (0..5).map(|_| SessionId::generate().unwrap()).collect();
    for id in &live {
        store
            .save(id, &record(Some(600_000), 1), SaveMode::Create)
            .await
            .unwrap();
    }
    let rows = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rows(&conn) > 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired rows not swept: {} left",
            rows(&conn)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows(&conn), 5);
    for id in &live {
        assert!(
            store.load(id).await.unwrap().is_some(),
            "the sweep took a live session"
        );
    }
}

/// A folder this process cannot create files in. As root, permissions do not stop it, so
/// then it is `/proc/self`, where nobody can.
fn read_only_folder(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let folder = dir.join("read-only");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(folder.join("probe"), b"").is_err() {
        folder
    } else {
        PathBuf::from("/proc/self")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_paths_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();

    let message = open_error(&dir.path().join("missing").join("sessions.db")).await;
    assert!(message.contains("does not exist"), "{message}");

    let file = dir.path().join("file.txt");
    std::fs::write(&file, "not a folder").unwrap();
    let message = open_error(&file.join("sessions.db")).await;
    assert!(message.contains("is not a folder"), "{message}");

    let message = open_error(dir.path()).await;
    assert!(message.contains("it is a folder"), "{message}");

    let message = open_error(&read_only_folder(dir.path()).join("sessions.db")).await;
    assert!(
        message.contains("may write the file and the folder"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_foreign_database_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..16_384u32).map(|n| (n * 7919 % 251) as u8).collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let message = open_error(&garbage).await;
    assert!(message.contains("not a SQLite database"), "{message}");
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        bytes,
        "the file was changed"
    );

    // A real database whose pages were overwritten past the header.
    let damaged = dir.path().join("damaged.db");
    {
        let store = open(&damaged).await.unwrap();
        for n in 0..200 {
            let id = SessionId::generate().unwrap();
            store
                .save(&id, &record(Some(600_000), n), SaveMode::Create)
                .await
                .unwrap();
        }
    }
    let conn = raw(&damaged);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&damaged).unwrap();
    for b in &mut bytes[100..] {
        *b = 0xA5;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let message = open_error(&damaged).await;
    assert!(
        message.contains("corrupt") || message.contains("malformed"),
        "{message}"
    );

    let foreign = dir.path().join("foreign.db");
    raw(&foreign)
        .execute_batch("CREATE TABLE sessions (sid TEXT, data BLOB)")
        .unwrap();
    let message = open_error(&foreign).await;
    assert!(message.contains("did not create"), "{message}");

    let newer = dir.path().join("newer.db");
    open(&newer).await.unwrap();
    raw(&newer).pragma_update(None, "user_version", 99).unwrap();
    let message = open_error(&newer).await;
    assert!(message.contains("newer Tessera"), "{message}");
}

/// A file made by the first schema (no per-user index) is migrated when opened: its
/// sessions stay, and the index works on them from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_the_first_schema_is_migrated_and_keeps_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, record TEXT NOT NULL, \
         expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL); \
         CREATE INDEX sessions_expires_at ON sessions (expires_at); PRAGMA user_version = 1;",
    )
    .unwrap();
    let id = SessionId::generate().unwrap();
    let json = r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"user":"ada"}"#;
    insert_raw(&conn, id.as_str(), json, now_ms() + 60_000);
    drop(conn);
    let store = open(&path).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.record.data["user"], "ada");
    store.index_add("user", "ada", &id, None).await.unwrap();
    let entries = store.index_entries("user", "ada").await.unwrap();
    assert_eq!(entries.iter().map(|e| &e.id).collect::<Vec<_>>(), vec![&id]);
    // The trigger drops the entry with the session, whoever deletes it.
    raw(&path)
        .execute("DELETE FROM sessions WHERE id = ?1", [id.as_str()])
        .unwrap();
    let left: i64 = raw(&path)
        .query_row("SELECT count(*) FROM session_users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let ids: Vec<SessionId> = (0..3).map(|_| SessionId::generate().unwrap()).collect();
    let kept = record(Some(600_000), 41);
    {
        let store = open(&path).await.unwrap();
        for id in &ids {
            store.save(id, &kept, SaveMode::Create).await.unwrap();
        }
        store.destroy(&ids[2]).await.unwrap();
    }
    let store = open(&path).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 2);
    let loaded = store.load(&ids[0]).await.unwrap().unwrap().record;
    assert_eq!(loaded.to_json(), kept.to_json());
    assert!(store.load(&ids[2]).await.unwrap().is_none());
    assert!(matches!(
        store
            .save(
                &ids[1],
                &record(Some(600_000), 42),
                SaveMode::Update { expected: None }
            )
            .await
            .unwrap(),
        SaveOutcome::Saved(_)
    ));

    // What `sqlite3 sessions.db 'select * from sessions'` shows: the JSON the Redis store
    // writes, a unix-millisecond expiry, in a WAL-mode file at schema version 1.
    let conn = raw(&path);
    let (json, expires_at, created_at, updated_at): (String, i64, i64, i64) = conn
        .query_row(
            "SELECT record, expires_at, created_at, updated_at FROM sessions WHERE id = ?1",
            [ids[0].as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(json.as_bytes(), kept.to_json());
    assert!(
        (expires_at - (now_ms() + 600_000)).abs() < 10_000,
        "{expires_at}"
    );
    assert_eq!(created_at, updated_at);
    let (created_at, updated_at): (i64, i64) = conn
        .query_row(
            "SELECT created_at, updated_at FROM sessions WHERE id = ?1",
            [ids[1].as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(updated_at >= created_at);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2, "the sessions table, then the per-user index");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Another process holds the database's write lock longer than a request may wait: the
/// request answers 503 by the store's timeout, and its write does not land when the lock
/// is released later (what the client was told is what happened). A full queue answers
/// 503 at once instead of queueing without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stuck_behind_another_process_times_out_and_never_lands_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let options = SqliteOptions {
        timeout: Duration::from_millis(1000),
        queue_limit: 1,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&path, options).await.unwrap();
    let layer = SessionLayer::new(store.clone(), crate::support::config()).unwrap();
    let addr = crate::support::serve(crate::support::routes().layer(layer)).await;
    // A loaded machine may make even this first write miss the short timeout: try again.
    let mut first = crate::support::get(addr, "/increment", None).await;
    for _ in 0..20 {
        if first.status == 200 {
            break;
        }
        first = crate::support::get(addr, "/increment", None).await;
    }
    let cookie = first.cookie().unwrap();
    let id = SessionId::parse(&first.cookie_id().unwrap()).unwrap();

    // Another process's write transaction, held three times the store's timeout.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(3000));
        conn.execute_batch("COMMIT").unwrap();
    });
    is_locked.recv().unwrap();
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let cookie = cookie.clone();
            tokio::spawn(
                async move { crate::support::get(addr, "/increment", Some(&cookie)).await },
            )
        })
        .collect();
    // 503 while the lock is held (timed out, or the queue full); 200 if a loaded machine
    // got the request to the store only after the lock was gone. Either way, what each
    // client was told is what happened.
    let mut saved = 0;
    for request in requests {
        let reply = request.await.unwrap();
        assert!(matches!(reply.status, 200 | 503), "{reply:?}");
        saved += u64::from(reply.status == 200);
    }
    holder.join().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = store.load(&id).await.unwrap().unwrap().record;
    assert_eq!(
        stored.data["views"],
        serde_json::json!(1 + saved),
        "a write its client was told had failed landed later"
    );
    assert_eq!(
        crate::support::get(addr, "/increment", Some(&cookie))
            .await
            .body,
        (2 + saved).to_string(),
        "the store works again once the lock is gone"
    );
}
