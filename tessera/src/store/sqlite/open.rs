//! Opening the SQLite file: each connection's pragmas (WAL, the busy handler), and for the
//! writer the schema, created or migrated in one transaction, with errors that name the
//! path and say what to do.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, MAIN_DB};

use super::{busy, within, SqliteOptions};
use crate::store::StoreError;

/// The schema version this code writes, kept in the file's `PRAGMA user_version`.
const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// `MIGRATIONS[n]` takes a database from schema version `n` to `n + 1`.
const MIGRATIONS: [&str; 2] = [
    "
    CREATE TABLE sessions (
        id         TEXT PRIMARY KEY NOT NULL,
        record     TEXT NOT NULL,
        expires_at INTEGER NOT NULL, -- unix milliseconds
        created_at INTEGER NOT NULL, -- unix milliseconds
        updated_at INTEGER NOT NULL  -- unix milliseconds
    );
    CREATE INDEX sessions_expires_at ON sessions (expires_at);
",
    super::index::MIGRATION,
];

/// Opens and configures one connection; the writer also creates or migrates the schema.
pub(super) fn connect(
    path: &Path,
    options: &SqliteOptions,
    writer: bool,
) -> Result<Connection, StoreError> {
    let fail = |e: rusqlite::Error| open_error(path, &e);
    // No SQLITE_OPEN_URI: a path is a path, even one starting with `file:`.
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    // Lock waits end at the running job's deadline (see `busy`); while opening, at the
    // busy timeout.
    conn.busy_handler(Some(busy)).map_err(fail)?;
    within(Instant::now() + options.busy_timeout, || {
        configure(conn, path, options, writer)
    })
}

/// The pragmas, and for the writer the schema, of a newly opened connection.
fn configure(
    mut conn: Connection,
    path: &Path,
    options: &SqliteOptions,
    writer: bool,
) -> Result<Connection, StoreError> {
    let fail = |e: rusqlite::Error| open_error(path, &e);
    conn.set_prepared_statement_cache_capacity(32);
    // The first statement that reads the file: a file that is not a database fails here.
    // Switching to WAL takes an exclusive lock and answers SQLITE_BUSY at once, without
    // the busy handler, while another process opens the same file: retry it ourselves,
    // within the busy timeout, so instances started together all come up.
    let started = std::time::Instant::now();
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && started.elapsed() < options.busy_timeout =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other.map_err(fail)?,
        }
    };
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    if !writer {
        conn.pragma_update(None, "query_only", true).map_err(fail)?;
        return Ok(conn);
    }
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), journal_mode = %mode, "SQLite refused WAL mode (a file system without shared memory?); readers and the writer will block each other");
    }
    if conn.is_readonly(MAIN_DB).map_err(fail)? {
        return Err(StoreError::Config(format!(
            "the session database {} is read-only: make the file and its folder writable by this user",
            path.display()
        )));
    }
    migrate(&mut conn, path)?;
    // Reads the schema and the first pages of the table and its index: a file damaged at
    // its start is refused here. Damage deeper in fails the requests that reach it (503,
    // with the same advice), as a full integrity check would take too long on a big file.
    conn.query_row(
        "SELECT (SELECT 1 FROM sessions LIMIT 1), \
         (SELECT 1 FROM sessions WHERE expires_at > 0 LIMIT 1)",
        [],
        |_| Ok(()),
    )
    .map_err(fail)?;
    Ok(conn)
}

/// Brings the schema to [`SCHEMA_VERSION`], in one transaction (safe against another
/// process opening the same file at the same time).
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |e: rusqlite::Error| open_error(path, &e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(fail)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "the session database {} has schema version {version}, written by a newer Tessera \
             (this one knows up to {SCHEMA_VERSION}): upgrade tessera, or use another file",
            path.display()
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if version == 0 {
        let taken: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'sessions'",
                [],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if taken {
            return Err(StoreError::Config(format!(
                "{} already has a `sessions` table that Tessera did not create: \
                 point the store at a file of its own",
                path.display()
            )));
        }
    }
    for step in &MIGRATIONS[version..] {
        tx.execute_batch(step).map_err(fail)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION as i64)
        .map_err(fail)?;
    tx.commit().map_err(fail)?;
    tracing::info!(path = %path.display(), from = version, to = SCHEMA_VERSION, "session database schema ready");
    Ok(())
}

/// An error at open time, naming the file and saying what to do.
fn open_error(path: &Path, error: &rusqlite::Error) -> StoreError {
    let folder = path.parent().unwrap_or(Path::new("/"));
    let advice = match error.sqlite_error_code() {
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            if path.is_dir() {
                "it is a folder: give the path of a file (it is created if missing)".to_owned()
            } else if folder.exists() && !folder.is_dir() {
                format!("{} is not a folder: choose another path", folder.display())
            } else if !folder.exists() {
                format!(
                    "the folder {} does not exist: create it, or choose another path",
                    folder.display()
                )
            } else {
                format!(
                    "check that this user may write the file and the folder {} \
                     (SQLite creates the file and its -wal and -shm files there), \
                     or choose another path",
                    folder.display()
                )
            }
        }
        Some(ErrorCode::NotADatabase) => "the file is not a SQLite database: move it aside (a new \
             one is created in its place) or choose another path"
            .to_owned(),
        Some(ErrorCode::DatabaseCorrupt) => format!(
            "the database is corrupt: move it and its -wal and -shm files aside to start with \
             no sessions, or try `sqlite3 {} .recover`",
            path.display()
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another process holds a lock on it: stop that process, or choose another path"
                .to_owned()
        }
        Some(ErrorCode::DiskFull) => "the disk is full: free some space".to_owned(),
        _ => "check the path, or choose another".to_owned(),
    };
    StoreError::Config(format!(
        "cannot open the session database {}: {error}; {advice}",
        path.display()
    ))
}

/// A failed statement on a request path, with a hint for the failures an operator can fix.
pub(super) fn backend_error(label: &str, op: &'static str, error: rusqlite::Error) -> StoreError {
    let hint = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Some(
            "the database file is damaged: stop the server and move it and its -wal and -shm \
             files aside (sessions start over), or try `sqlite3 FILE .recover`",
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Some("another process held the database's lock longer than the busy timeout")
        }
        Some(ErrorCode::DiskFull) => Some("the disk is full: free some space"),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
            Some("the database file or its folder is no longer writable by this user")
        }
        _ => None,
    };
    match hint {
        Some(hint) => StoreError::backend(label, op, format!("{error}; {hint}")),
        None => StoreError::backend(label, op, error),
    }
}
