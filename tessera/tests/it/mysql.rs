//! `MySqlStore` against the conformance suite on MariaDB, plus what only it has:
//! express-mysql-session's table created as its `schema.sql` does, rows stored as it
//! stores them, clear errors for a missing database and a foreign table, the prune job, and
//! a database that dies and comes back. Tests share one private MariaDB (`test_support`),
//! each on a table of its own; the one that kills its server starts its own.
#![cfg(feature = "mysql")]

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tessera::store::mysql::{MySqlOptions, MySqlStore};
use tessera::{SaveMode, SaveOutcome, SessionId, Store, StoreError};
use test_support::MariaDbServer;
use time::OffsetDateTime;

use crate::sql_shared;
use crate::store_suite::{record, Made};
use crate::support::{config, get};

static SERVER: Mutex<Weak<MariaDbServer>> = Mutex::new(Weak::new());

async fn shared() -> Arc<MariaDbServer> {
    sql_shared::server(&SERVER, MariaDbServer::start).await
}

fn options(table: &str) -> MySqlOptions {
    MySqlOptions {
        table: table.to_owned(),
        ..MySqlOptions::default()
    }
}

async fn make(default_ttl: Duration) -> Made {
    let server = shared().await;
    let options = MySqlOptions {
        default_ttl,
        ..options(&sql_shared::table())
    };
    let store = MySqlStore::connect(&server.url(), options).await.unwrap();
    (Box::new(server), Arc::new(store))
}

crate::store_suite!(make);

fn id() -> SessionId {
    SessionId::generate().unwrap()
}

/// The message of a connect error, which must be a configuration error.
async fn config_error(url: &str, options: MySqlOptions) -> String {
    match MySqlStore::connect(url, options).await {
        Err(StoreError::Config(message)) => message,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(store) => panic!("{store:?} connected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_a_clear_error_without_the_password() {
    let server = shared().await;
    let url = format!("mysql://root@127.0.0.1:{}/no_such_db", server.port);
    let message = config_error(&url, MySqlOptions::default()).await;
    assert!(message.contains("no_such_db"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(
        message.contains("CREATE DATABASE"),
        "says what to do: {message}"
    );

    let message = config_error(
        &format!("mysql://root@127.0.0.1:{}", server.port),
        MySqlOptions::default(),
    )
    .await;
    assert!(message.contains("names no database"), "{message}");

    // A wrong password: refused, and not shown.
    let url = format!("mysql://root:hunter2@127.0.0.1:{}/tessera", server.port);
    let message = config_error(&url, MySqlOptions::default()).await;
    assert!(message.contains("refused the login"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("root:***@"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_another_shape_is_a_clear_error() {
    let server = shared().await;
    let table = sql_shared::table();
    server.sql(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, data blob)"
    ));
    let message = config_error(&server.url(), options(&table)).await;
    assert!(message.contains("not express-mysql-session's"), "{message}");
    assert!(message.contains("no `session_id` column"), "{message}");
    assert!(message.contains("`data` is blob"), "{message}");

    // express-mysql-session 1's table in the 3-byte `utf8`: emoji would not fit.
    let table = sql_shared::table();
    server.sql(&format!(
        "CREATE TABLE {table} (session_id varchar(128) NOT NULL PRIMARY KEY, \
         expires int(11) unsigned NOT NULL, data mediumtext CHARACTER SET utf8mb3)"
    ));
    let message = config_error(&server.url(), options(&table)).await;
    assert!(message.contains("not utf8mb4"), "{message}");

    let message = config_error(
        &server.url(),
        MySqlOptions {
            create_table: false,
            ..options(&sql_shared::table())
        },
    )
    .await;
    assert!(message.contains("does not exist"), "{message}");
}

/// The table express-mysql-session's `schema.sql` creates, named by the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_express_mysql_sessions_table() {
    let server = shared().await;
    let table = sql_shared::table();
    let url = format!("{}?table={table}", server.url());
    let store = MySqlStore::connect(&url, MySqlOptions::default())
        .await
        .unwrap();
    let columns = server.sql(&format!(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLLATION_NAME, ''), COLUMN_KEY \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'tessera' \
         AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ));
    assert_eq!(
        columns,
        "session_id\tvarchar(128)\tNO\tutf8mb4_bin\tPRI\n\
         expires\tint(11) unsigned\tNO\t\t\n\
         data\tmediumtext\tYES\tutf8mb4_bin" // (the output's last tab is trimmed)
    );
    let engine = server.sql(&format!(
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'tessera' \
         AND TABLE_NAME = '{table}'"
    ));
    assert_eq!(engine, "InnoDB");
    let (again, third) = tokio::join!(
        MySqlStore::connect(&url, MySqlOptions::default()),
        MySqlStore::connect(&url, MySqlOptions::default())
    );
    again.unwrap();
    third.unwrap();
    assert!(format!("{store:?}").contains(&format!("`{table}`")));
}

/// What express-mysql-session stores: the bare ID, `JSON.stringify(session)`, and
/// `Math.round(expires / 1000)` (else now + expiration).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_rows_as_express_mysql_session_does() {
    let server = shared().await;
    let table = sql_shared::table();
    let store = MySqlStore::connect(
        &server.url(),
        MySqlOptions {
            default_ttl: Duration::from_secs(3600),
            ..options(&table)
        },
    )
    .await
    .unwrap();
    let id = id();
    let rec = record(Some(600_000), 7);
    store.save(&id, &rec, SaveMode::Create).await.unwrap();
    let row = server.sql(&format!("SELECT session_id, expires, data FROM {table}"));
    let expires_ms = (rec.cookie.expires.unwrap().unix_timestamp_nanos() / 1_000_000) as i64;
    let json = String::from_utf8(rec.to_json()).unwrap();
    assert_eq!(
        row,
        format!("{id}\t{}\t{json}", (expires_ms + 500).div_euclid(1000))
    );

    let browser_session = self::id();
    let before = OffsetDateTime::now_utc().unix_timestamp();
    store
        .save(&browser_session, &record(None, 1), SaveMode::Create)
        .await
        .unwrap();
    let expires: i64 = server
        .sql(&format!(
            "SELECT expires FROM {table} WHERE session_id = '{browser_session}'"
        ))
        .parse()
        .unwrap();
    assert!(
        (before + 3600..=before + 3602).contains(&expires),
        "{expires} vs {before}"
    );

    // A save that rewrites the same values still counts as written (matched rows, not
    // changed rows), and a row express-mysql-session wrote takes a guarded update.
    let same = store.load(&id).await.unwrap().unwrap();
    let mode = SaveMode::Update {
        expected: Some(&same.version),
    };
    assert!(matches!(
        store.save(&id, &same.record, mode).await.unwrap(),
        SaveOutcome::Saved(_)
    ));
    let node = self::id();
    let written = r#"{"cookie":{"originalMaxAge":600000,"expires":"2099-01-01T00:00:00.000Z","httpOnly":true,"path":"/"}, "views": 3} "#;
    server.sql(&format!(
        "INSERT INTO {table} VALUES ('{node}', 4070908800, '{written}')"
    ));
    let loaded = store.load(&node).await.unwrap().unwrap();
    assert_eq!(loaded.version.as_bytes(), Some(written.as_bytes()));
    // utf8mb4_bin ignores trailing spaces; the guarded commit compares bytes.
    let trimmed = tessera::Version::bytes(written.trim_end().as_bytes());
    let stale = SaveMode::Update {
        expected: Some(&trimmed),
    };
    assert_eq!(
        store
            .save(&node, &record(Some(600_000), 4), stale)
            .await
            .unwrap(),
        SaveOutcome::Changed
    );
    let mode = SaveMode::Update {
        expected: Some(&loaded.version),
    };
    assert!(matches!(
        store
            .save(&node, &record(Some(600_000), 4), mode)
            .await
            .unwrap(),
        SaveOutcome::Saved(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_null_rows_are_corrupt_not_errors() {
    let server = shared().await;
    let table = sql_shared::table();
    let store = MySqlStore::connect(&server.url(), options(&table))
        .await
        .unwrap();
    let (no_cookie, null) = (id(), id());
    server.sql(&format!(
        "INSERT INTO {table} VALUES ('{no_cookie}', 4070908800, '{{\"views\":1}}'), \
         ('{null}', 4070908800, NULL)"
    ));
    for id in [&no_cookie, &null] {
        assert!(matches!(
            store.load(id).await,
            Err(StoreError::Corrupt { .. })
        ));
    }
    let shown = store.inspect(null.as_str()).await.unwrap().unwrap();
    assert_eq!(shown.value, b"null");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prune_job_deletes_expired_rows_only() {
    let server = shared().await;
    let table = sql_shared::table();
    let store = MySqlStore::connect(
        &server.url(),
        MySqlOptions {
            prune_interval: Some(Duration::from_millis(200)),
            ..options(&table)
        },
    )
    .await
    .unwrap();
    server.sql(&format!(
        "INSERT INTO {table} SELECT CONCAT('expired', seq), UNIX_TIMESTAMP() - 60, '{{}}' \
         FROM seq_1_to_500"
    ));
    let live = id();
    store
        .save(&live, &record(Some(600_000), 1), SaveMode::Create)
        .await
        .unwrap();
    let rows = || -> i64 {
        server
            .sql(&format!("SELECT COUNT(*) FROM {table}"))
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows() > 1 {
        assert!(Instant::now() < deadline, "{} rows left", rows());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.load(&live).await.unwrap().is_some());

    drop(store);
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.sql(&format!(
        "INSERT INTO {table} VALUES ('late', UNIX_TIMESTAMP() - 60, '{{}}')"
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rows(), 2, "the job stopped with the store");
}

/// MariaDB down: every request that needs the store answers 503 within the timeout; once
/// it is back, the pool reconnects by itself and the same session goes on counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_answers_503_and_sessions_continue_after_restart() {
    let mut server = tokio::task::spawn_blocking(MariaDbServer::start)
        .await
        .unwrap();
    let store = MySqlStore::connect(
        &server.url(),
        MySqlOptions {
            timeout: Duration::from_millis(800),
            ..MySqlOptions::default()
        },
    )
    .await
    .unwrap();
    let addr = crate::support::server(config(), Arc::new(store.clone())).await;
    let cookie = get(addr, "/", None).await.cookie().unwrap();
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 2 times."
    );

    server.kill();
    for path in ["/", "/views", "/logout"] {
        let started = Instant::now();
        let reply = get(addr, path, Some(&cookie)).await;
        assert_eq!(reply.status, 503, "{path} while MariaDB is down");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path}: {:?}",
            started.elapsed()
        );
    }
    assert!(matches!(
        store.load(&id()).await,
        Err(StoreError::Backend { .. } | StoreError::Timeout { .. })
    ));
    assert_eq!(get(addr, "/untouched", Some(&cookie)).await.status, 200);

    let mut server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 3 times.",
        "the session survived the restart"
    );
    assert_eq!(store.count().await.unwrap(), 1);
    server.kill();
}
