//! `PostgresStore` against the conformance suite, plus what only it has: connect-pg-simple's
//! table created as its `table.sql` does, rows stored as connect-pg-simple stores them,
//! clear errors for a missing database and a foreign table, the prune job, and a database
//! that dies and comes back. Tests share one private PostgreSQL (`test_support`), each on a
//! table of its own; the one that kills its server starts its own.
#![cfg(feature = "postgres")]

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tessera::store::postgres::{PostgresOptions, PostgresStore};
use tessera::{SaveMode, SaveOutcome, SessionId, Store, StoreError};
use test_support::PostgresServer;
use time::OffsetDateTime;

use crate::sql_shared;
use crate::store_suite::{record, Made};
use crate::support::{config, get, server};

static SERVER: Mutex<Weak<PostgresServer>> = Mutex::new(Weak::new());

async fn shared() -> Arc<PostgresServer> {
    sql_shared::server(&SERVER, PostgresServer::start).await
}

fn options(table: &str) -> PostgresOptions {
    PostgresOptions {
        table: table.to_owned(),
        ..PostgresOptions::default()
    }
}

async fn make(default_ttl: Duration) -> Made {
    let server = shared().await;
    let options = PostgresOptions {
        default_ttl,
        ..options(&sql_shared::table())
    };
    let store = PostgresStore::connect(&server.url(), options)
        .await
        .unwrap();
    (Box::new(server), Arc::new(store))
}

crate::store_suite!(make);

fn id() -> SessionId {
    SessionId::generate().unwrap()
}

/// The message of a connect error, which must be a configuration error.
async fn config_error(url: &str, options: PostgresOptions) -> String {
    match PostgresStore::connect(url, options).await {
        Err(StoreError::Config(message)) => message,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(store) => panic!("{store:?} connected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_a_clear_error_without_the_password() {
    let server = shared().await;
    // Trust authentication ignores the password; the store must not show it anyway.
    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/no_such_db",
        server.port
    );
    let message = config_error(&url, PostgresOptions::default()).await;
    assert!(message.contains("no_such_db"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(
        message.contains("CREATE DATABASE"),
        "says what to do: {message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("postgres:***@"), "{message}");

    let store = PostgresStore::connect(
        &server.url().replace("postgres@", "postgres:hunter2@"),
        options(&sql_shared::table()),
    )
    .await
    .unwrap();
    let shown = format!("{store:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("***"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_another_shape_is_a_clear_error() {
    let server = shared().await;
    let table = sql_shared::table();
    server.psql(&format!(
        "CREATE TABLE {table} (id serial PRIMARY KEY, data text)"
    ));
    let message = config_error(&server.url(), options(&table)).await;
    assert!(message.contains("not connect-pg-simple's"), "{message}");
    assert!(message.contains("no `sess` column"), "{message}");
    assert!(message.contains("table"), "says what to do: {message}");

    // The right columns, but no primary key: `ON CONFLICT (sid)` would fail on every save.
    let table = sql_shared::table();
    server.psql(&format!(
        "CREATE TABLE {table} (sid varchar NOT NULL, sess json NOT NULL, expire timestamp(6) NOT NULL)"
    ));
    let message = config_error(&server.url(), options(&table)).await;
    assert!(
        message.contains("`sid` is not its primary key"),
        "{message}"
    );

    // Missing, and not to be created.
    let message = config_error(
        &server.url(),
        PostgresOptions {
            create_table: false,
            ..options(&sql_shared::table())
        },
    )
    .await;
    assert!(message.contains("does not exist"), "{message}");

    let message = config_error(
        &format!("{}?schema=no_such_schema", server.url()),
        options(&sql_shared::table()),
    )
    .await;
    assert!(message.contains("schema does not exist"), "{message}");
}

/// The table and index connect-pg-simple's `table.sql` creates, in a schema and table named
/// by the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_connect_pg_simples_table() {
    let server = shared().await;
    let schema = sql_shared::table();
    server.psql(&format!("CREATE SCHEMA {schema}"));
    let url = format!("{}?schema={schema}&table=session", server.url());
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let columns = server.psql(&format!(
        "SELECT column_name, data_type, is_nullable, coalesce(datetime_precision, -1), \
         coalesce(collation_name, '') FROM information_schema.columns \
         WHERE table_schema = '{schema}' AND table_name = 'session' ORDER BY ordinal_position"
    ));
    assert_eq!(
        columns,
        "sid|character varying|NO|-1|\n\
         sess|json|NO|-1|\n\
         expire|timestamp without time zone|NO|6|"
    );
    let indexes = server.psql(&format!(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = '{schema}' ORDER BY 1"
    ));
    assert_eq!(
        indexes,
        format!(
            "IDX_session_expire|CREATE INDEX \"IDX_session_expire\" ON {schema}.session USING btree (expire)\n\
             session_pkey|CREATE UNIQUE INDEX session_pkey ON {schema}.session USING btree (sid)"
        )
    );
    // Opening it again finds it and accepts it; so does a second store at once.
    let again = PostgresStore::connect(&url, PostgresOptions::default());
    let third = PostgresStore::connect(&url, PostgresOptions::default());
    let (again, third) = tokio::join!(again, third);
    again.unwrap();
    third.unwrap();
    assert!(format!("{store:?}").contains(&format!("\"{schema}\".\"session\"")));
}

/// What connect-pg-simple stores: the bare ID, `JSON.stringify(session)` as given, and
/// `to_timestamp(Math.ceil(expires / 1000))` (else now + ttl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_rows_as_connect_pg_simple_does() {
    let server = shared().await;
    let table = sql_shared::table();
    let store = PostgresStore::connect(
        &server.url(),
        PostgresOptions {
            default_ttl: Duration::from_secs(3600),
            ..options(&table)
        },
    )
    .await
    .unwrap();
    let id = id();
    let rec = record(Some(600_000), 7);
    store.save(&id, &rec, SaveMode::Create).await.unwrap();
    let row = server.psql(&format!(
        "SELECT sid, sess::text, extract(epoch FROM expire)::int8 FROM {table}"
    ));
    let expires_ms = (rec.cookie.expires.unwrap().unix_timestamp_nanos() / 1_000_000) as i64;
    let json = String::from_utf8(rec.to_json()).unwrap();
    assert_eq!(
        row,
        format!("{id}|{json}|{}", (expires_ms + 999).div_euclid(1000))
    );

    // No cookie expiry: now + ttl, rounded up.
    let browser_session = self::id();
    let before = OffsetDateTime::now_utc().unix_timestamp();
    store
        .save(&browser_session, &record(None, 1), SaveMode::Create)
        .await
        .unwrap();
    let expire: i64 = server
        .psql(&format!(
            "SELECT extract(epoch FROM expire)::int8 FROM {table} WHERE sid = '{browser_session}'"
        ))
        .parse()
        .unwrap();
    assert!(
        (before + 3600..=before + 3602).contains(&expire),
        "{expire} vs {before}"
    );

    // A row connect-pg-simple wrote (its text kept as given, spaces and all) loads, and a
    // guarded update over it lands.
    let node = self::id();
    let written = r#"{"cookie":{"originalMaxAge":600000,"expires":"2099-01-01T00:00:00.000Z","httpOnly":true,"path":"/"}, "views": 3}"#;
    server.psql(&format!(
        "INSERT INTO {table} (sess, expire, sid) SELECT '{written}', to_timestamp(4070908800), '{node}'"
    ));
    let loaded = store.load(&node).await.unwrap().unwrap();
    assert_eq!(loaded.version.as_bytes(), Some(written.as_bytes()));
    assert_eq!(loaded.record.data["views"], 3);
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
async fn corrupt_rows_are_corrupt_not_errors() {
    let server = shared().await;
    let table = sql_shared::table();
    let store = PostgresStore::connect(&server.url(), options(&table))
        .await
        .unwrap();
    let id = id();
    server.psql(&format!(
        "INSERT INTO {table} VALUES ('{id}', '{{\"views\":1}}', now() + interval '1 hour')"
    ));
    assert!(matches!(
        store.load(&id).await,
        Err(StoreError::Corrupt { .. })
    ));
    let shown = store.inspect(id.as_str()).await.unwrap().unwrap();
    assert_eq!(shown.value, br#"{"views":1}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prune_job_deletes_expired_rows_only() {
    let server = shared().await;
    let table = sql_shared::table();
    let store = PostgresStore::connect(
        &server.url(),
        PostgresOptions {
            prune_interval: Some(Duration::from_millis(200)),
            ..options(&table)
        },
    )
    .await
    .unwrap();
    server.psql(&format!(
        "INSERT INTO {table} SELECT 'expired' || n, '{{}}', now() - interval '1 minute' \
         FROM generate_series(1, 500) n"
    ));
    let live = id();
    store
        .save(&live, &record(Some(600_000), 1), SaveMode::Create)
        .await
        .unwrap();
    let rows = || -> i64 {
        server
            .psql(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows() > 1 {
        assert!(Instant::now() < deadline, "{} rows left", rows());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.load(&live).await.unwrap().is_some());

    // Dropping the store stops its job: expired rows stay.
    drop(store);
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.psql(&format!(
        "INSERT INTO {table} VALUES ('late', '{{}}', now() - interval '1 minute')"
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rows(), 2);
}

/// `expire` is a wall-clock time in the connection's TimeZone: a store whose connections
/// use another TimeZone than the server's default still agrees with itself (it writes and
/// compares through `to_timestamp` in the same zone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_time_zone_agrees_with_itself() {
    let server = shared().await;
    let url = format!(
        "{}?options=-c%20TimeZone%3DPacific%2FAuckland",
        server.url()
    );
    let store = PostgresStore::connect(&url, options(&sql_shared::table()))
        .await
        .unwrap();
    let id = id();
    store
        .save(&id, &record(Some(600_000), 1), SaveMode::Create)
        .await
        .unwrap();
    assert!(store.load(&id).await.unwrap().is_some());
    let ttl = store
        .inspect(id.as_str())
        .await
        .unwrap()
        .unwrap()
        .ttl
        .unwrap();
    assert!(
        ttl > Duration::from_secs(590) && ttl <= Duration::from_secs(600),
        "{ttl:?}"
    );
    assert_eq!(store.count().await.unwrap(), 1);
}

/// PostgreSQL down: every request that needs the store answers 503 within the timeout;
/// once it is back, the pool reconnects by itself and the same session goes on counting
/// (PostgreSQL kept it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_answers_503_and_sessions_continue_after_restart() {
    let mut server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap();
    let store = PostgresStore::connect(
        &server.url(),
        PostgresOptions {
            timeout: Duration::from_millis(800),
            ..options("session")
        },
    )
    .await
    .unwrap();
    let addr = server_on(store.clone()).await;
    let first = get(addr, "/", None).await;
    let cookie = first.cookie().unwrap();
    assert_eq!(
        get(addr, "/", Some(&cookie)).await.body,
        "You have visited this page 2 times."
    );

    server.kill();
    for path in ["/", "/views", "/logout"] {
        let started = Instant::now();
        let reply = get(addr, path, Some(&cookie)).await;
        assert_eq!(reply.status, 503, "{path} while PostgreSQL is down");
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

async fn server_on(store: PostgresStore) -> std::net::SocketAddr {
    server(config(), Arc::new(store)).await
}
