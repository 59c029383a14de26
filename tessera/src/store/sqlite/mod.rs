//! `SqliteStore`: the embedded, persistent store. Sessions live in one SQLite file, so
//! `tessera serve` keeps its users across restarts with no server to install.
//!
//! The shape follows mini-redis's `db.rs` (shared state behind a cheap handle, a background
//! purge, a drop guard that stops it), with threads instead of tasks because SQLite calls
//! block and must never run on the async runtime's threads:
//!
//! - One *writer* thread owns the only connection that writes. Saves, destroys, touches,
//!   clears and sweep batches are jobs on its channel, so inside one process writes never
//!   wait on SQLite's write lock (no busy-wait). The writes waiting in the queue when the
//!   writer is free run in one transaction (group commit), and every caller is answered
//!   after the COMMIT: a response never reports a write that a crash of the process could
//!   lose. (`synchronous=NORMAL`: a power cut may lose the last commits, never corrupt.)
//! - A few *reader* threads, each with its own connection, take loads and admin reads from
//!   one shared queue. In WAL mode readers block neither the writer nor each other.
//! - A *sweeper* thread deletes expired rows every `sweep_interval`, `sweep_batch` rows per
//!   statement, queueing one batch at a time on the writer so requests slip in between.
//!   Dropping the last clone of the store stops the sweeper, then the other threads.
//!
//! An async call queues a job and awaits its answer on a oneshot channel. Queues are
//! bounded (`queue_limit`: one more call answers 503 at once), and every job carries the
//! deadline of its call (`timeout`): a job that has not started by then is not run, and a
//! statement waiting for another process's lock gives up then (the busy handler reads the
//! deadline), so a caller told "timeout" never has its write land afterwards. Expired rows are
//! invisible before the sweep reaches them: every statement compares `expires_at` with now.
//! The `record` column holds exactly [`Record::to_json`], the JSON the Redis store writes,
//! so `sqlite3 .tessera/sessions.db 'select * from sessions'` shows readable sessions.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{
    self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::{Loaded, SaveMode, SaveOutcome, Store, StoreError, Stored, Version, Walked, Walker};
use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::record::{Record, Ttl};

mod index;
mod open;

use open::{backend_error, connect};

/// Options of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a session whose cookie has no expiry is kept (connect-redis's `ttl`).
    /// Default: one day.
    pub default_ttl: Duration,
    /// How many reader connections (each on its own thread) serve loads. Default: 2.
    pub readers: usize,
    /// How long a statement of the background sweep, or the opening of the file, waits
    /// for a lock held by another process (a `tessera sessions` command, say) before
    /// failing. A request's statements wait at most until its call's [`timeout`](Self::timeout).
    /// Default: 5 s.
    pub busy_timeout: Duration,
    /// How long one call of a request may take, waiting in the queue and for locks: a job
    /// that has not started by then is not run, and a statement waiting for a lock gives up
    /// then, so the call answers [`StoreError::Timeout`] and nothing was written. Keep it
    /// within [`SessionConfig::store_timeout`](crate::SessionConfig::store_timeout) (3 s by
    /// default): the engine then arms no timer of its own, and what a request is told is
    /// what happened. Default: 2 s.
    pub timeout: Duration,
    /// How many calls may wait for each connection's thread (the writer's, the readers');
    /// one more answers a [`StoreError::Backend`] at once (503) instead of queueing without
    /// bound behind a stalled disk. Default: 1024.
    pub queue_limit: usize,
    /// How often expired rows are deleted. Expired rows are never loaded, so this only
    /// bounds the file's size. Default: 60 s.
    pub sweep_interval: Duration,
    /// How many expired rows one sweep statement deletes at most; a sweep runs batches until
    /// one comes back short, letting requests through between them. Default: 500.
    pub sweep_batch: usize,
    /// Whether a missing database file is created. Default: `true`. Tools that inspect an
    /// existing store (`tessera sessions …`) set it to `false`, so a mistyped path is an
    /// error naming it rather than a new, empty database.
    pub create: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            default_ttl: Duration::from_secs(86_400),
            readers: 2,
            busy_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            queue_limit: 1024,
            sweep_interval: Duration::from_secs(60),
            sweep_batch: 500,
            create: true,
        }
    }
}

/// Sessions in a SQLite file (WAL mode), persistent across restarts. Clones share the same
/// connections; the threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `sqlite:///absolute/path`, naming the store in errors and logs.
    label: String,
    default_ttl: Duration,
    timeout: Duration,
    queue_limit: usize,
    writer: SyncSender<Job>,
    readers: SyncSender<Job>,
    /// The drop guard: when the last clone of the store drops this, the sweeper sees its
    /// channel disconnect and stops; the writer and readers stop once their queues are
    /// dropped and drained.
    _stop_sweeper: Sender<()>,
}

/// Work for a connection's thread: statements to run, returning their [`Answer`], and the
/// moment after which nobody waits for them any more.
struct Job {
    deadline: Instant,
    run: Box<dyn FnOnce(&mut Connection) -> Answer + Send>,
}

thread_local! {
    /// Until when the statement running on this thread may wait for a lock (see `busy`).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// SQLite's busy handler on every connection: while another process holds the lock, wait
/// in short naps until the running job's deadline, then give up (the statement fails with
/// SQLITE_BUSY, its caller hears so, and nothing is written after it was told "timeout").
fn busy(attempt: i32) -> bool {
    let give_up = match DEADLINE.get() {
        Some(deadline) => Instant::now() >= deadline,
        None => false,
    };
    if give_up {
        return false;
    }
    std::thread::sleep(Duration::from_millis(
        u64::from(attempt.clamp(1, 10) as u32),
    ));
    true
}

/// Runs `f` with `deadline` as this thread's lock-wait limit.
fn within<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    let before = DEADLINE.replace(Some(deadline));
    let result = f();
    DEADLINE.set(before);
    result
}

/// Sends a job's result to its caller once the transaction the job ran in has committed
/// (`None`) or failed (why): no caller hears "saved" before the write is committed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 128;

/// How a job fails: an SQLite error (mapped to [`StoreError::Backend`] with the store's
/// name), an error already typed, or a transaction that did not commit.
enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
    RolledBack(String),
    /// The job's deadline passed before it started: it was not run.
    Late(Duration),
    /// The queue was full: the job was not queued.
    Full(usize),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl Fail {
    fn into_error(self, label: &str, op: &'static str) -> StoreError {
        match self {
            Fail::Sql(e) => backend_error(label, op, e),
            Fail::Store(e) => e,
            Fail::RolledBack(why) => {
                StoreError::backend(label, op, format!("the write was rolled back: {why}"))
            }
            Fail::Late(after) => StoreError::Timeout {
                store: label.to_owned(),
                op,
                after,
            },
            Fail::Full(limit) => StoreError::backend(
                label,
                op,
                format!(
                    "{limit} calls are already waiting for the database; is the disk stalled? \
                     (SqliteOptions::queue_limit)"
                ),
            ),
        }
    }
}

type JobResult<T> = Result<T, Fail>;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.inner.label)
    }
}

impl SqliteStore {
    /// Opens (creating if needed, unless [`SqliteOptions::create`] is off) the database at
    /// `path`, creates or migrates its schema, and starts the store's threads.
    ///
    /// The folder must exist. Relative paths are taken from the working directory.
    ///
    /// # Errors
    /// [`StoreError::Config`] naming the path and what to do when the file cannot be opened
    /// or created (missing or read-only folder, a folder in its place), does not exist and
    /// `create` is off, is not a SQLite database or is corrupt, or was written by a newer
    /// Tessera.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = std::path::absolute(path.as_ref()).map_err(|e| {
            StoreError::Config(format!(
                "cannot resolve the session database path {}: {e}",
                path.as_ref().display()
            ))
        })?;
        let label = format!("sqlite://{}", path.display());
        // Checked here for a clear message; the open flags below also leave out CREATE, so
        // a file removed in between is not recreated either.
        if !options.create && !path.exists() {
            return Err(StoreError::Config(format!(
                "no session database at {}: check the path (an existing database is \
                 opened, none is created)",
                path.display()
            )));
        }
        let options = SqliteOptions {
            readers: options.readers.max(1),
            sweep_batch: options.sweep_batch.max(1),
            ..options
        };

        // The writer opens first: it creates the file and migrates the schema.
        let (writer, queue) = mpsc::sync_channel(options.queue_limit.max(1));
        start_worker(
            "tessera-sqlite-writer",
            &path,
            &options,
            Role::Writer(queue),
        )
        .await?;
        let (readers, queue) = mpsc::sync_channel(options.queue_limit.max(1));
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..options.readers {
            let name = format!("tessera-sqlite-reader-{n}");
            start_worker(&name, &path, &options, Role::Reader(queue.clone())).await?;
        }

        let (stop_sweeper, stopped) = mpsc::channel();
        let sweeper = Sweeper {
            writer: writer.clone(),
            busy_timeout: options.busy_timeout,
            stopped,
            interval: options.sweep_interval,
            batch: options.sweep_batch,
            label: label.clone(),
        };
        std::thread::Builder::new()
            .name("tessera-sqlite-sweeper".into())
            .spawn(move || sweeper.run())
            .map_err(|e| StoreError::Config(format!("cannot start a thread for {label}: {e}")))?;

        tracing::debug!(store = %label, readers = options.readers, "SQLite session store open");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                label,
                default_ttl: options.default_ttl,
                timeout: options.timeout,
                queue_limit: options.queue_limit.max(1),
                writer,
                readers,
                _stop_sweeper: stop_sweeper,
            }),
        })
    }

    /// The database file (absolute).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> JobResult<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(&self.inner.writer, op, f).await
    }

    async fn read<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> JobResult<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(&self.inner.readers, op, f).await
    }

    async fn call<T: Send + 'static>(
        &self,
        queue: &SyncSender<Job>,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> JobResult<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let answer = match submit(queue, self.inner.timeout, self.inner.queue_limit, f) {
            Ok(answer) => answer,
            Err(Some(fail)) => return Err(fail.into_error(&self.inner.label, op)),
            Err(None) => return Err(self.stopped(op)),
        };
        match answer.await {
            Ok(result) => result.map_err(|fail| fail.into_error(&self.inner.label, op)),
            Err(_) => Err(self.stopped(op)),
        }
    }

    fn stopped(&self, op: &'static str) -> StoreError {
        StoreError::backend(
            &self.inner.label,
            op,
            "the store's SQLite thread stopped or its job failed; see the log, restart the \
             process if it persists",
        )
    }
}

/// [`SaveMode`] without its borrow, to move into a job.
#[derive(Clone, Copy)]
enum Mode {
    Create,
    Update,
}

/// Queues `f`, to be run within `timeout`, and returns the channel its answer comes on;
/// `Err(Some(Full))` when the queue is full, `Err(None)` when the thread is gone.
fn submit<T: Send + 'static>(
    queue: &SyncSender<Job>,
    timeout: Duration,
    limit: usize,
    f: impl FnOnce(&mut Connection) -> JobResult<T> + Send + 'static,
) -> Result<oneshot::Receiver<JobResult<T>>, Option<Fail>> {
    let (tx, rx) = oneshot::channel();
    let deadline = Instant::now() + timeout;
    let run = Box::new(move |conn: &mut Connection| -> Answer {
        // The caller gave up (its request ended), or the job comes too late: a statement
        // nobody waits for is not run, so a late save does not land after the client was
        // told it failed.
        if tx.is_closed() {
            return Box::new(|_| {});
        }
        if Instant::now() >= deadline {
            let _ = tx.send(Err(Fail::Late(timeout)));
            return Box::new(|_| {});
        }
        let result = within(deadline, || f(conn));
        Box::new(move |failed| {
            let result = match (result, failed) {
                (Ok(_), Some(why)) => Err(Fail::RolledBack(why.to_owned())),
                (result, _) => result,
            };
            let _ = tx.send(result);
        })
    });
    match queue.try_send(Job { deadline, run }) {
        Ok(()) => Ok(rx),
        Err(TrySendError::Full(_)) => Err(Some(Fail::Full(limit))),
        Err(TrySendError::Disconnected(_)) => Err(None),
    }
}

/// What a connection's thread does.
enum Role {
    /// Owns the only writing connection and its queue.
    Writer(Receiver<Job>),
    /// Shares the readers' queue.
    Reader(Arc<Mutex<Receiver<Job>>>),
}

/// Starts a connection's thread and waits until its connection is open (and, for the
/// writer, the schema is current).
async fn start_worker(
    name: &str,
    path: &Path,
    options: &SqliteOptions,
    role: Role,
) -> Result<(), StoreError> {
    let (ready, is_ready) = oneshot::channel();
    let shown = path.display().to_string();
    let (path, options) = (path.to_path_buf(), options.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let writer = matches!(role, Role::Writer(_));
            let conn = match connect(&path, &options, writer) {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            work(conn, role);
        })
        .map_err(|e| StoreError::Config(format!("cannot start a thread for the store: {e}")))?;
    is_ready.await.unwrap_or_else(|_| {
        Err(StoreError::Config(format!(
            "the thread opening {shown} stopped unexpectedly"
        )))
    })
}

/// Runs jobs until the store is gone and the queue drained.
fn work(mut conn: Connection, role: Role) {
    match role {
        Role::Reader(queue) => loop {
            // The lock is held while taking a job, never while running one.
            let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(job) = job else { return };
            if let Some(answer) = run(&mut conn, job) {
                answer(None);
            }
        },
        Role::Writer(queue) => {
            while let Ok(first) = queue.recv() {
                let mut batch = vec![first];
                batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                commit(&mut conn, batch);
            }
        }
    }
}

/// Runs a job; a panic loses the job's answer (its caller gets an error) but must not take
/// the connection's thread, and with it the store, down.
fn run(conn: &mut Connection, job: Job) -> Option<Answer> {
    let answer = std::panic::catch_unwind(AssertUnwindSafe(|| (job.run)(conn)));
    if answer.is_err() {
        tracing::error!("a SQLite session store job panicked; carrying on");
    }
    answer.ok()
}

/// Runs the writes waiting in the queue in one transaction (group commit): under load one
/// commit, and one write of each page touched, serves many requests. A failing statement
/// fails its own job only; a transaction that does not commit fails them all.
fn commit(conn: &mut Connection, jobs: Vec<Job>) {
    // The transaction waits for a lock no longer than its most pressed job may.
    let deadline = jobs.iter().map(|job| job.deadline).min();
    let batch = |conn: &mut Connection, sql: &str| match deadline {
        Some(deadline) => within(deadline, || conn.execute_batch(sql)),
        None => conn.execute_batch(sql),
    };
    let began = jobs.len() > 1 && batch(conn, "BEGIN IMMEDIATE").is_ok();
    let answers: Vec<Answer> = jobs.into_iter().filter_map(|job| run(conn, job)).collect();
    let failed = match began {
        // One job, or BEGIN failed: each statement committed on its own.
        false => None,
        // An I/O error, a full disk or the like rolled the whole transaction back.
        true if conn.is_autocommit() => Some("an error in the same transaction".to_owned()),
        true => batch(conn, "COMMIT").err().map(|e| e.to_string()),
    };
    if failed.is_some() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for answer in answers {
        answer(failed.as_deref());
    }
}

/// Now, as unix milliseconds.
fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Unix milliseconds `seconds` from `now`.
fn after(now: i64, seconds: u64) -> i64 {
    now.saturating_add(
        i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000),
    )
}

/// A stored value's bytes, whatever its SQLite type (a hand-edited row may hold anything).
fn raw_value(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<u8>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.to_vec(),
        ValueRef::Null => b"null".to_vec(),
        ValueRef::Integer(n) => n.to_string().into_bytes(),
        ValueRef::Real(x) => x.to_string().into_bytes(),
    })
}

fn is_live(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sessions WHERE id = ?1 AND expires_at > ?2")?
        .exists(params![id, now])
}

fn delete(conn: &Connection, id: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
        .execute([id])
}

/// Deletes at most `batch` expired rows; answers how many.
fn delete_expired(conn: &Connection, batch: usize) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM sessions WHERE rowid IN \
         (SELECT rowid FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
    )?
    .execute(params![now_ms(), i64::try_from(batch).unwrap_or(i64::MAX)])
}

/// The background sweep: runs on its own thread, queueing one batch at a time on the writer.
struct Sweeper {
    writer: SyncSender<Job>,
    busy_timeout: Duration,
    stopped: Receiver<()>,
    interval: Duration,
    batch: usize,
    label: String,
}

impl Sweeper {
    fn run(self) {
        loop {
            if !self.sweep() {
                return;
            }
            match self.stopped.recv_timeout(self.interval) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    /// Deletes every expired row, batch by batch. Answers false once the store is dropped.
    fn sweep(&self) -> bool {
        let batch = self.batch;
        let mut total = 0;
        loop {
            let job = move |conn: &mut Connection| Ok(delete_expired(conn, batch)?);
            let answer = match submit(&self.writer, self.busy_timeout, usize::MAX, job) {
                Ok(answer) => answer,
                // A full queue is a busy store: sweep later.
                Err(Some(_)) => break,
                Err(None) => return false,
            };
            match answer.blocking_recv() {
                Ok(Ok(n)) => {
                    total += n;
                    if n < batch {
                        break;
                    }
                }
                Ok(Err(fail)) => {
                    let error = fail.into_error(&self.label, "sweep");
                    tracing::warn!(%error, "sweeping expired sessions failed; trying again later");
                    break;
                }
                Err(_) => return false,
            }
            if matches!(self.stopped.try_recv(), Err(TryRecvError::Disconnected)) {
                return false;
            }
        }
        if total > 0 {
            tracing::debug!(store = %self.label, deleted = total, "swept expired sessions");
        }
        true
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// Every call ends by [`SqliteOptions::timeout`] (a job that has not started by then
    /// is not run, a lock wait gives up then), so the engine needs no timer of its own and
    /// never answers "timeout" for a write that lands later.
    fn time_bound(&self) -> Option<Duration> {
        Some(self.inner.timeout)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError> {
        let id = id.clone();
        self.read("load", move |conn| {
            let raw = conn
                .prepare_cached("SELECT record FROM sessions WHERE id = ?1 AND expires_at > ?2")?
                .query_row(params![id.as_str(), now_ms()], |row| raw_value(row, 0))
                .optional()?;
            match raw {
                None => Ok(None),
                Some(raw) => match Record::from_json(&raw) {
                    Ok(record) => Ok(Some(Loaded::new(record, Version::bytes(raw)))),
                    Err(source) => Err(Fail::Store(StoreError::Corrupt { id, source })),
                },
            }
        })
        .await
    }

    async fn save(
        &self,
        id: &SessionId,
        record: &Record,
        mode: SaveMode<'_>,
    ) -> Result<SaveOutcome, StoreError> {
        let ttl = record.ttl(self.inner.default_ttl);
        let json = String::from_utf8(record.to_json())
            .map_err(|e| StoreError::backend(&self.inner.label, "save", e))?;
        let written_json: Arc<[u8]> = Arc::from(json.as_bytes());
        let id = id.clone();
        let (mode, expected) = match mode {
            SaveMode::Create => (Mode::Create, None),
            SaveMode::Update { expected } => (
                Mode::Update,
                // A version this store did not make (a counter) matches no row.
                expected.map(|v| v.as_bytes().map(<[u8]>::to_vec).unwrap_or_default()),
            ),
        };
        self.write("save", move |conn| {
            let id = id.as_str();
            let now = now_ms();
            let Ttl::Seconds(seconds) = ttl else {
                // The cookie has already expired: nothing is written (connect-redis sends
                // DEL). A Create must not delete a live session that is not its own.
                return Ok(match mode {
                    Mode::Create if is_live(conn, id, now)? => SaveOutcome::Conflict,
                    Mode::Create => SaveOutcome::Gone,
                    Mode::Update => {
                        delete(conn, id)?;
                        SaveOutcome::Gone
                    }
                });
            };
            let expires_at = after(now, seconds);
            Ok(match mode {
                // An expired row with this ID counts as absent and is replaced.
                Mode::Create => {
                    let written = conn
                        .prepare_cached(
                            "INSERT INTO sessions (id, record, expires_at, created_at, updated_at) \
                             VALUES (?1, ?2, ?3, ?4, ?4) \
                             ON CONFLICT (id) DO UPDATE SET record = excluded.record, \
                             expires_at = excluded.expires_at, created_at = excluded.created_at, \
                             updated_at = excluded.updated_at \
                             WHERE sessions.expires_at <= ?4",
                        )?
                        .execute(params![id, json, expires_at, now])?;
                    if written == 1 {
                        SaveOutcome::Saved(Version::bytes(written_json))
                    } else {
                        SaveOutcome::Conflict
                    }
                }
                // Only a live row is updated: a destroyed or expired session stays gone.
                Mode::Update => {
                    let updated = match &expected {
                        None => conn
                            .prepare_cached(
                                "UPDATE sessions SET record = ?2, expires_at = ?3, updated_at = ?4 \
                                 WHERE id = ?1 AND expires_at > ?4",
                            )?
                            .execute(params![id, json, expires_at, now])?,
                        // The guarded commit: one statement, so nothing runs between the
                        // check and the write. Compared as bytes, whatever the row's type.
                        Some(expected) => conn
                            .prepare_cached(
                                "UPDATE sessions SET record = ?2, expires_at = ?3, updated_at = ?4 \
                                 WHERE id = ?1 AND expires_at > ?4 AND CAST(record AS BLOB) = ?5",
                            )?
                            .execute(params![id, json, expires_at, now, expected])?,
                    };
                    if updated == 1 {
                        SaveOutcome::Saved(Version::bytes(written_json))
                    } else if expected.is_some() && is_live(conn, id, now)? {
                        SaveOutcome::Changed
                    } else {
                        SaveOutcome::Gone
                    }
                }
            })
        })
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError> {
        let id = id.clone();
        self.write("destroy", move |conn| {
            delete(conn, id.as_str())?;
            Ok(())
        })
        .await
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let ttl = Ttl::from_expiry(expires, self.inner.default_ttl);
        let id = id.clone();
        self.write("touch", move |conn| {
            let now = now_ms();
            match ttl {
                Ttl::Seconds(seconds) => {
                    let touched = conn
                        .prepare_cached(
                            "UPDATE sessions SET expires_at = ?2 WHERE id = ?1 AND expires_at > ?3",
                        )?
                        .execute(params![id.as_str(), after(now, seconds), now])?;
                    Ok(touched == 1)
                }
                // Extended into the past: gone (connect-redis's EXPIRE with ttl <= 0).
                Ttl::Expired => {
                    delete(conn, id.as_str())?;
                    Ok(false)
                }
            }
        })
        .await
    }

    /// Keyset pagination over the primary key: each page one read, and for a deleting
    /// walk one write that deletes exactly the rows read (a row changed meanwhile stays).
    async fn walk(&self, delete: bool, walker: &mut dyn Walker) -> Result<Walked, StoreError> {
        let mut walked = Walked::default();
        let mut after = String::new();
        loop {
            let from = std::mem::take(&mut after);
            let rows: Vec<(String, Vec<u8>, i64)> = self
                .read("scan", move |conn| {
                    let mut statement = conn.prepare_cached(
                        "SELECT id, record, expires_at FROM sessions \
                         WHERE id > ?1 AND expires_at > ?2 ORDER BY id LIMIT ?3",
                    )?;
                    let rows = statement
                        .query_map(
                            params![from, now_ms(), super::admin::PAGE_SIZE as i64],
                            |row| Ok((row.get::<_, String>(0)?, raw_value(row, 1)?, row.get(2)?)),
                        )?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(rows)
                })
                .await?;
            let Some((last, _, _)) = rows.last() else {
                return Ok(walked);
            };
            after = last.clone();
            let full = rows.len() == super::admin::PAGE_SIZE;
            let now = now_ms();
            let (page, read) =
                super::admin::sql_page(rows.into_iter().map(|(id, value, expires_at)| {
                    let left = u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0);
                    (id, value, Some(Duration::from_millis(left)))
                }));
            let go_on = walker.page(&page);
            let deleted = if delete && !read.is_empty() {
                self.write("clear", move |conn| {
                    let mut statement = conn.prepare_cached(
                        "DELETE FROM sessions WHERE id = ?1 AND CAST(record AS BLOB) = ?2",
                    )?;
                    let mut deleted = 0u64;
                    for (id, value) in &read {
                        deleted += statement.execute(params![id, value])? as u64;
                    }
                    Ok(deleted)
                })
                .await?
            } else {
                0
            };
            if !walked.add(&page, deleted, go_on) || !full {
                return Ok(walked);
            }
        }
    }

    /// A side table (see `index`); the expiry is the session's own, so refreshing an
    /// entry writes nothing.
    async fn index_add(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
        _expires: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.index_insert(key, user, id).await
    }

    fn default_ttl(&self) -> Option<Duration> {
        Some(self.inner.default_ttl)
    }

    async fn index_remove(&self, key: &str, user: &str, id: &SessionId) -> Result<(), StoreError> {
        self.index_delete(key, user, id).await
    }

    async fn index_entries(&self, key: &str, user: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.index_select(key, user).await
    }

    fn index_expiry(&self) -> super::IndexExpiry {
        super::IndexExpiry::FollowsSessions
    }

    async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let id = id.to_owned();
        self.read("inspect", move |conn| {
            let now = now_ms();
            let found = conn
                .prepare_cached(
                    "SELECT record, expires_at FROM sessions WHERE id = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id, now], |row| {
                    Ok((raw_value(row, 0)?, row.get::<_, i64>(1)?))
                })
                .optional()?;
            Ok(found.map(|(value, expires_at)| Stored {
                value,
                ttl: Some(Duration::from_millis(
                    u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0),
                )),
            }))
        })
        .await
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// This process's threads named by this file (the kernel keeps 15 bytes of a name).
    fn store_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == "tessera-sqlite-")
            .count()
    }

    // The only test in this crate's unit tests that starts a SQLite store, so the count of
    // its threads is this test's own.
    #[tokio::test]
    async fn dropping_the_last_clone_stops_every_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sessions.db"), SqliteOptions::default())
            .await
            .unwrap();
        let clone = store.clone();
        // The writer, two readers and the sweeper (which names itself once it runs).
        wait_for_threads(4);
        drop(store);
        assert_eq!(clone.count().await.unwrap(), 0, "a clone still works");
        drop(clone);
        wait_for_threads(0);
    }

    fn wait_for_threads(n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store_threads() != n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} store threads, expected {n}",
                store_threads()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
