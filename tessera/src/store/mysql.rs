//! `MySqlStore`: sessions in MySQL or MariaDB, in express-mysql-session's table, so an
//! Express app on express-mysql-session 3 and a Tessera service share one table and each
//! continues the other's sessions.
//!
//! The table is express-mysql-session's `schema.sql`, created when missing (its
//! `createDatabaseTable`, on by default):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS `sessions` (
//!   `session_id` varchar(128) COLLATE utf8mb4_bin NOT NULL,  -- the bare session ID
//!   `expires` int(11) unsigned NOT NULL,                      -- Unix seconds
//!   `data` mediumtext COLLATE utf8mb4_bin,                    -- JSON.stringify(session)
//!   PRIMARY KEY (`session_id`)
//! ) ENGINE=InnoDB
//! ```
//!
//! Its rules, kept here: `expires` is the cookie's expiry in whole seconds
//! (`Math.round`), else now + the default TTL (its `expiration`); a row with
//! `expires < now` is no session; a background job deletes those every 15 minutes
//! (`checkExpirationInterval`; here randomized to 50–150 % so instances spread out).
//!
//! Where it departs from express-mysql-session, for safety:
//! - No upsert of a loaded session: express-mysql-session's `set` is `INSERT … ON
//!   DUPLICATE KEY UPDATE`, so a slow request's save brings back a session that a logout
//!   deleted meanwhile. Here a new session is an `INSERT` (a duplicate key is a clash, unless
//!   that row has expired, which is then replaced), and a loaded one is an `UPDATE` of a live
//!   row only, which finds nothing once the session is gone.
//! - The guarded commit: an update that names the version it loaded adds
//!   `AND data = $expected`, compared as bytes (`CAST(… AS BINARY)`: `utf8mb4_bin` would
//!   ignore trailing spaces), then a lookup tells a changed row from a deleted one. The
//!   version is the stored text itself, so a write by a Node app is detected like any other
//!   and nothing extra is stored.
//!
//! Connections come from mysql_async's pool, which checks an idle connection before handing
//! it out and replaces a dead one by itself. The pool's connections report *matched* rows
//! for an `UPDATE` (`CLIENT_FOUND_ROWS`), so a save that rewrites identical values still
//! counts as written. Every call has a timeout covering the wait for a connection and the
//! statements.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, Row};
use time::OffsetDateTime;

use super::admin::PAGE_SIZE;
use super::sql::{self, PruneGuard};
use super::{Loaded, SaveMode, SaveOutcome, Store, StoreError, Stored, Version, Walked, Walker};
use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::record::{Record, Ttl};

/// express-mysql-session's default table name.
pub const DEFAULT_TABLE: &str = "sessions";
/// express-mysql-session's default `checkExpirationInterval`: 15 minutes.
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(900);

/// The most a `mediumtext` holds: a bigger session cannot be stored.
const MAX_DATA_BYTES: usize = 16_777_215;

/// MySQL's error numbers the store tells apart.
const ER_DUP_ENTRY: u16 = 1062;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_BAD_DB: u16 = 1049;

/// Options of a [`MySqlStore`]. The URL's `table` parameter, when given, sets
/// [`table`](Self::table).
#[derive(Debug, Clone)]
pub struct MySqlOptions {
    /// The table (express-mysql-session's `schema.tableName`). Default: `sessions`.
    pub table: String,
    /// How long a session whose cookie has no expiry is kept (express-mysql-session's
    /// `expiration`; zero means the default). Default: one day.
    pub default_ttl: Duration,
    /// Create the table when it does not exist (express-mysql-session's
    /// `createDatabaseTable`). Default: true.
    pub create_table: bool,
    /// How often expired rows are deleted, each wait randomized to 50–150 %; `None` turns
    /// the job off (express-mysql-session's `clearExpired: false`). Expired rows are never
    /// loaded, so this only bounds the table's size. Default: 15 minutes.
    pub prune_interval: Option<Duration>,
    /// The most connections the store opens. Default: 16.
    pub pool_size: usize,
    /// How long one request-path call (`load`, `save`, `destroy`, `touch`) may take in all:
    /// waiting for a connection (and opening one), then its statements. Default: 2 s.
    pub timeout: Duration,
    /// The same bound for the admin calls (`ids`, `count`, `inspect`, `clear`), the prune
    /// job and the checks at start-up, which may scan the whole table. Default: 60 s.
    pub admin_timeout: Duration,
}

impl Default for MySqlOptions {
    fn default() -> Self {
        MySqlOptions {
            table: DEFAULT_TABLE.to_owned(),
            default_ttl: Duration::from_secs(86_400),
            create_table: true,
            prune_interval: Some(DEFAULT_PRUNE_INTERVAL),
            pool_size: 16,
            timeout: Duration::from_secs(2),
            admin_timeout: Duration::from_secs(60),
        }
    }
}

/// Sessions in a MySQL or MariaDB table shaped as express-mysql-session's. Clones share
/// one pool; the prune job stops when the last clone is dropped.
#[derive(Clone)]
pub struct MySqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL with its password hidden, and the table: the store's name in errors and logs.
    label: String,
    pool: Pool,
    sql: Statements,
    default_ttl: Duration,
    timeout: Duration,
    admin_timeout: Duration,
    /// Dropped with the last clone of the store: stops the prune job.
    _prune: Option<PruneGuard>,
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.label)
    }
}

/// Every statement the store runs, with the (quoted) table name in place. Times are Unix
/// seconds.
struct Statements {
    load: String,
    insert: String,
    replace_expired: String,
    update: String,
    update_guarded: String,
    live: String,
    destroy: String,
    touch: String,
    page: String,
    delete_read: String,
    inspect: String,
    delete_expired: String,
    by_user: String,
}

impl Statements {
    fn new(t: &str) -> Self {
        Statements {
            load: format!("SELECT data FROM {t} WHERE session_id = ? AND expires >= ?"),
            insert: format!("INSERT INTO {t} (session_id, expires, data) VALUES (?, ?, ?)"),
            replace_expired: format!(
                "UPDATE {t} SET expires = ?, data = ? WHERE session_id = ? AND expires < ?"
            ),
            update: format!(
                "UPDATE {t} SET expires = ?, data = ? WHERE session_id = ? AND expires >= ?"
            ),
            update_guarded: format!(
                "UPDATE {t} SET expires = ?, data = ? WHERE session_id = ? AND expires >= ? \
                 AND CAST(data AS BINARY) = CAST(? AS BINARY)"
            ),
            live: format!("SELECT 1 FROM {t} WHERE session_id = ? AND expires >= ?"),
            destroy: format!("DELETE FROM {t} WHERE session_id = ?"),
            touch: format!("UPDATE {t} SET expires = ? WHERE session_id = ? AND expires >= ?"),
            // One page of an admin walk, by keyset: rows after `?` in `session_id` order
            // (utf8mb4_bin: byte order).
            page: format!(
                "SELECT session_id, data, expires FROM {t} \
                 WHERE session_id > ? AND expires >= ? ORDER BY session_id LIMIT ?"
            ),
            // A clearing walk deletes exactly the rows it read: one changed meanwhile stays.
            delete_read: format!(
                "DELETE FROM {t} WHERE session_id = ? AND CAST(data AS BINARY) = CAST(? AS BINARY)"
            ),
            inspect: format!("SELECT data, expires FROM {t} WHERE session_id = ? AND expires >= ?"),
            delete_expired: format!("DELETE FROM {t} WHERE expires < ?"),
            // The per-user index: the user read out of the JSON. `data` is text, so a row
            // that is not JSON is skipped rather than an error (MySQL's JSON_EXTRACT fails
            // on one).
            by_user: format!(
                "SELECT session_id, expires FROM {t} WHERE expires >= ? AND \
                 (CASE WHEN JSON_VALID(data) THEN JSON_UNQUOTE(JSON_EXTRACT(data, ?)) END) = ?"
            ),
        }
    }
}

/// `` `name` ``, with any backtick doubled.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Now in whole Unix seconds, rounded: express-mysql-session's `Math.round(Date.now() / 1000)`.
fn now_s() -> i64 {
    sql::round_seconds(sql::now_ms())
}

/// A column of a row, or a "bad row" error naming the column.
fn column<T: mysql_async::prelude::FromValue>(row: &Row, index: usize) -> Result<T, String> {
    match row.get_opt::<T, usize>(index) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(format!("unexpected value in column {index}: {e}")),
        None => Err(format!("no column {index} in the row")),
    }
}

impl MySqlStore {
    /// Connects to the database `url` names, checks the session table (creating it when
    /// missing, unless [`MySqlOptions::create_table`] is off) and starts the prune job.
    ///
    /// `url`: `mysql://[user[:password]@]host[:port]/database[?table=…]`; other parameters
    /// are mysql_async's (`prefer_socket=false`, `socket=…`, …). TLS is not supported.
    ///
    /// # Errors
    /// [`StoreError::Config`] for a bad URL or one without a database, a database that does
    /// not exist, a refused login, a table that cannot be created, or one whose shape is not
    /// express-mysql-session's; [`StoreError::Backend`] or [`StoreError::Timeout`] when the
    /// server cannot be reached.
    pub async fn connect(url: &str, options: MySqlOptions) -> Result<Self, StoreError> {
        let shown = sql::redact_url(url);
        let bad_url = |why: String| {
            StoreError::Config(format!(
                "{shown} is not a usable MySQL URL: {why}; expected \
                 mysql://user:password@host:port/database?table=…"
            ))
        };
        let (driver_url, params) = sql::take_params(url, &["table"]).map_err(bad_url)?;
        let mut options = options;
        if let Some((_, table)) = params.into_iter().next_back() {
            options.table = table;
        }
        if options.table.is_empty() {
            return Err(bad_url("the table name is empty".into()));
        }
        // mysql_async's URL errors may quote a parameter's value, but never the password
        // (it is not a parameter); still, only its kind is shown.
        let opts = Opts::from_url(&driver_url).map_err(|e| match e {
            mysql_async::UrlError::InvalidParamValue { param, .. } => {
                bad_url(format!("bad value for the `{param}` parameter"))
            }
            other => bad_url(other.to_string()),
        })?;
        if opts.db_name().is_none_or(str::is_empty) {
            return Err(bad_url(
                "it names no database (mysql://…/DATABASE)".to_owned(),
            ));
        }
        let constraints = PoolConstraints::new(0, options.pool_size.max(1)).unwrap_or_default();
        // No reset when a connection goes back to the pool: the store never changes a
        // connection's state (no variables, no temporary tables, no open transaction), and
        // the reset costs a round trip and drops the prepared statements, so every call
        // would prepare its statement again. Idle connections are kept a minute.
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_reset_connection(false)
            .with_inactive_connection_ttl(Duration::from_secs(60));
        let opts = OptsBuilder::from_opts(opts)
            .client_found_rows(true)
            .pool_opts(pool_opts);
        let pool = Pool::new(opts);

        let table = quote_ident(&options.table);
        let label = format!("{} (table {table})", sql::redact_url(&driver_url));
        let default_ttl = if options.default_ttl.is_zero() {
            MySqlOptions::default().default_ttl
        } else {
            options.default_ttl
        };
        let mut inner = Inner {
            label,
            pool,
            sql: Statements::new(&table),
            default_ttl,
            timeout: options.timeout,
            admin_timeout: options.admin_timeout,
            _prune: None,
        };
        let check = inner.prepare_table(&table, &options);
        sql::within(&inner.label, "connect", options.admin_timeout, check).await?;

        if let Some(interval) = options.prune_interval {
            let (pool, statement) = (inner.pool.clone(), inner.sql.delete_expired.clone());
            let (label, timeout) = (inner.label.clone(), inner.admin_timeout);
            inner._prune = Some(sql::spawn_prune(inner.label.clone(), interval, move || {
                let (pool, statement, label) = (pool.clone(), statement.clone(), label.clone());
                async move {
                    let prune = async {
                        let mut conn = checkout(&pool, &label, "prune").await?;
                        conn.exec_drop(&statement, (now_s(),))
                            .await
                            .map_err(|e| StoreError::backend(&label, "prune", e))?;
                        Ok(conn.affected_rows())
                    };
                    sql::within(&label, "prune", timeout, prune).await
                }
            }));
        }
        tracing::debug!(store = %inner.label, "MySQL session store open");
        Ok(MySqlStore {
            inner: Arc::new(inner),
        })
    }
}

/// A connection from `pool`, opening one if none is idle.
async fn checkout(pool: &Pool, label: &str, op: &'static str) -> Result<Conn, StoreError> {
    pool.get_conn().await.map_err(|e| {
        StoreError::backend(
            label,
            op,
            format!("cannot connect to MySQL: {e}; check that it is running and reachable"),
        )
    })
}

impl Inner {
    async fn checkout(&self, op: &'static str) -> Result<Conn, StoreError> {
        checkout(&self.pool, &self.label, op).await
    }

    fn error(
        &self,
        op: &'static str,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::backend(&self.label, op, error)
    }

    /// Creates the table when missing, then checks that it is express-mysql-session's.
    async fn prepare_table(&self, table: &str, options: &MySqlOptions) -> Result<(), StoreError> {
        let mut conn = self
            .pool
            .get_conn()
            .await
            .map_err(|e| self.connect_error(e))?;
        let config = |what: &str, e: mysql_async::Error| {
            StoreError::Config(format!("{}: {what}: {e}", self.label))
        };
        let exists: Option<Row> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (options.table.as_str(),),
            )
            .await
            .map_err(|e| config("cannot look the table up", e))?;
        if exists.is_none() {
            if !options.create_table {
                return Err(StoreError::Config(format!(
                    "{}: the table does not exist; create it (docs/sql-stores.md has the SQL, \
                     express-mysql-session's schema.sql) or let the store create it",
                    self.label
                )));
            }
            conn.query_drop(create_table_sql(table))
                .await
                .map_err(|e| {
                    config(
                        "cannot create the table (create it yourself with express-mysql-session's \
                     schema.sql, or grant CREATE)",
                        e,
                    )
                })?;
            tracing::info!(store = %self.label, "created the session table");
        }
        let rows: Vec<Row> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, COLUMN_KEY \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (options.table.as_str(),),
            )
            .await
            .map_err(|e| config("cannot read the table's columns", e))?;
        let columns = rows
            .iter()
            .map(|row| {
                Ok(ColumnInfo {
                    name: column(row, 0)?,
                    data_type: column::<String>(row, 1)?.to_ascii_lowercase(),
                    charset: column(row, 2)?,
                    key: column(row, 3)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|why| {
                StoreError::Config(format!(
                    "{}: cannot read the table's columns: {why}",
                    self.label
                ))
            })?;
        let problems = shape_problems(&columns);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Config(format!(
                "{}: the table is not express-mysql-session's sessions table: {}; point the \
                 store at another table (the `table` URL parameter; it is created when missing) \
                 or fix this one",
                self.label,
                problems.join("; ")
            )))
        }
    }

    /// The errors an operator fixes in the configuration are [`StoreError::Config`].
    fn connect_error(&self, e: mysql_async::Error) -> StoreError {
        let advice = match &e {
            mysql_async::Error::Server(server) => match server.code {
                ER_BAD_DB => Some(
                    "the database does not exist: create it (CREATE DATABASE) or fix the URL's \
                     database name",
                ),
                ER_ACCESS_DENIED | ER_DBACCESS_DENIED => Some(
                    "the server refused the login: check the user and password in the URL, and \
                     the user's grants on the database",
                ),
                _ => None,
            },
            _ => None,
        };
        match advice {
            Some(advice) => StoreError::Config(format!("{}: {e}; {advice}", self.label)),
            None => StoreError::backend(
                &self.label,
                "connect",
                format!("cannot connect to MySQL: {e}; check that it is running and reachable"),
            ),
        }
    }
}

/// express-mysql-session's `schema.sql` for `table` (quoted).
fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
           `session_id` varchar(128) COLLATE utf8mb4_bin NOT NULL, \
           `expires` int(11) unsigned NOT NULL, \
           `data` mediumtext COLLATE utf8mb4_bin, \
           PRIMARY KEY (`session_id`)\
         ) ENGINE=InnoDB"
    )
}

/// One column as `information_schema.COLUMNS` describes it.
struct ColumnInfo {
    name: String,
    data_type: String,
    charset: Option<String>,
    key: String,
}

/// What keeps `columns` from being usable as express-mysql-session's table. Extra columns
/// are allowed.
fn shape_problems(columns: &[ColumnInfo]) -> Vec<String> {
    let find = |name: &str| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name));
    let mut problems = Vec::new();
    match find("session_id") {
        None => problems.push("no `session_id` column (varchar(128))".to_owned()),
        Some(c) if !matches!(c.data_type.as_str(), "varchar" | "char") => {
            problems.push(format!("`session_id` is {}, not varchar", c.data_type))
        }
        Some(c) if c.key != "PRI" => problems.push("`session_id` is not its primary key".into()),
        Some(_) => {}
    }
    match find("expires") {
        None => problems.push("no `expires` column (int unsigned)".to_owned()),
        Some(c) if !matches!(c.data_type.as_str(), "int" | "bigint") => {
            problems.push(format!("`expires` is {}, not int", c.data_type))
        }
        Some(_) => {}
    }
    match find("data") {
        None => problems.push("no `data` column (mediumtext)".to_owned()),
        Some(c) if !matches!(c.data_type.as_str(), "text" | "mediumtext" | "longtext") => {
            problems.push(format!("`data` is {}, not mediumtext", c.data_type))
        }
        // Sessions hold any text (emoji included): a 3-byte `utf8` column refuses some.
        Some(c) if c.charset.as_deref() != Some("utf8mb4") => problems.push(format!(
            "`data` is in character set {}, not utf8mb4",
            c.charset.as_deref().unwrap_or("none")
        )),
        Some(_) => {}
    }
    problems
}

impl MySqlStore {
    /// The `expires` of a row for a cookie expiring at `expires` (else the default TTL):
    /// express-mysql-session's `Math.round` seconds, within the column's range.
    fn expires_for(&self, expires: Option<OffsetDateTime>) -> i64 {
        let ms = match expires {
            Some(at) => sql::unix_ms(at),
            None => sql::ms_from_now(self.inner.default_ttl),
        };
        sql::round_seconds(ms).clamp(0, i64::from(u32::MAX))
    }

    async fn within<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        sql::within(&self.inner.label, op, self.inner.timeout, call).await
    }

    async fn within_admin<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        sql::within(&self.inner.label, op, self.inner.admin_timeout, call).await
    }

    /// Runs `statement` for its affected (matched) row count.
    async fn execute(
        &self,
        op: &'static str,
        statement: &str,
        params: impl Into<Params> + Send,
    ) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        self.within(op, async {
            let mut conn = inner.checkout(op).await?;
            conn.exec_drop(statement, params)
                .await
                .map_err(|e| inner.error(op, e))?;
            Ok(conn.affected_rows())
        })
        .await
    }

    /// The save's statements on one connection.
    async fn save_on(
        &self,
        conn: &mut Conn,
        id: &str,
        json: &str,
        ttl: Ttl,
        expires: Option<OffsetDateTime>,
        mode: SaveMode<'_>,
    ) -> Result<SaveOutcome, mysql_async::Error> {
        let sql = &self.inner.sql;
        let now = now_s();
        let Ttl::Seconds(_) = ttl else {
            // The cookie has already expired: nothing is written (connect-redis sends DEL).
            // A Create must not delete a live session that is not its own.
            return Ok(match mode {
                SaveMode::Create if is_live(conn, sql, id, now).await? => SaveOutcome::Conflict,
                SaveMode::Create => SaveOutcome::Gone,
                SaveMode::Update { .. } => {
                    conn.exec_drop(&sql.destroy, (id,)).await?;
                    SaveOutcome::Gone
                }
            });
        };
        let expires = self.expires_for(expires);
        let saved = || SaveOutcome::Saved(Version::bytes(json.as_bytes()));
        Ok(match mode {
            SaveMode::Create => match conn.exec_drop(&sql.insert, (id, expires, json)).await {
                Ok(()) => saved(),
                // A row with this ID: a clash, unless it has expired (the prune job has
                // not reached it yet), which counts as absent and is replaced.
                Err(mysql_async::Error::Server(e)) if e.code == ER_DUP_ENTRY => {
                    conn.exec_drop(&sql.replace_expired, (expires, json, id, now))
                        .await?;
                    if conn.affected_rows() == 1 {
                        saved()
                    } else {
                        SaveOutcome::Conflict
                    }
                }
                Err(e) => return Err(e),
            },
            SaveMode::Update { expected: None } => {
                conn.exec_drop(&sql.update, (expires, json, id, now))
                    .await?;
                if conn.affected_rows() == 1 {
                    saved()
                } else {
                    SaveOutcome::Gone
                }
            }
            SaveMode::Update {
                expected: Some(version),
            } => {
                // A version this store did not make (a counter) matches no row.
                let expected = version.as_bytes().unwrap_or_default();
                conn.exec_drop(&sql.update_guarded, (expires, json, id, now, expected))
                    .await?;
                if conn.affected_rows() == 1 {
                    saved()
                } else if is_live(conn, sql, id, now).await? {
                    SaveOutcome::Changed
                } else {
                    SaveOutcome::Gone
                }
            }
        })
    }
}

/// Whether a live row has this ID.
async fn is_live(
    conn: &mut Conn,
    sql: &Statements,
    id: &str,
    now: i64,
) -> Result<bool, mysql_async::Error> {
    let row: Option<Row> = conn.exec_first(&sql.live, (id, now)).await?;
    Ok(row.is_some())
}

#[async_trait]
impl Store for MySqlStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError> {
        let inner = &*self.inner;
        let row: Option<Row> = self
            .within("load", async {
                let mut conn = inner.checkout("load").await?;
                conn.exec_first(&inner.sql.load, (id.as_str(), now_s()))
                    .await
                    .map_err(|e| inner.error("load", e))
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        // `data` may be NULL (the column allows it); that is no session either.
        let data: Option<Vec<u8>> = column(&row, 0).map_err(|why| inner.error("load", why))?;
        let data = data.unwrap_or_else(|| b"null".to_vec());
        match Record::from_json(&data) {
            Ok(record) => Ok(Some(Loaded::new(record, Version::bytes(data)))),
            Err(source) => Err(StoreError::Corrupt {
                id: id.clone(),
                source,
            }),
        }
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
        if json.len() > MAX_DATA_BYTES {
            return Err(self.inner.error(
                "save",
                format!(
                    "the session is {} bytes, more than a mediumtext column holds ({MAX_DATA_BYTES})",
                    json.len()
                ),
            ));
        }
        let inner = &*self.inner;
        self.within("save", async {
            let mut conn = inner.checkout("save").await?;
            self.save_on(
                &mut conn,
                id.as_str(),
                &json,
                ttl,
                record.cookie.expires,
                mode,
            )
            .await
            .map_err(|e| inner.error("save", e))
        })
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError> {
        self.execute("destroy", &self.inner.sql.destroy, (id.as_str(),))
            .await
            .map(|_| ())
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        match Ttl::from_expiry(expires, self.inner.default_ttl) {
            // Only a live row: express-mysql-session's touch would also revive an expired
            // row the prune job has not deleted yet.
            Ttl::Seconds(_) => {
                let params = (self.expires_for(expires), id.as_str(), now_s());
                Ok(self.execute("touch", &self.inner.sql.touch, params).await? == 1)
            }
            // Extended into the past: gone (connect-redis's EXPIRE with ttl <= 0).
            Ttl::Expired => {
                self.destroy(id).await?;
                Ok(false)
            }
        }
    }

    async fn walk(&self, delete: bool, walker: &mut dyn Walker) -> Result<Walked, StoreError> {
        let inner = &*self.inner;
        let mut walked = Walked::default();
        let mut after = String::new();
        loop {
            let rows: Vec<Row> = self
                .within_admin("scan", async {
                    let mut conn = inner.checkout("scan").await?;
                    conn.exec(&inner.sql.page, (&after, now_s(), PAGE_SIZE as u64))
                        .await
                        .map_err(|e| inner.error("scan", e))
                })
                .await?;
            let full = rows.len() == PAGE_SIZE;
            let now = now_s();
            // A row whose columns cannot be read is foreign too: an empty key never parses.
            let (page, read) = super::admin::sql_page(rows.iter().map(|row| {
                match (
                    column::<String>(row, 0),
                    column::<Option<Vec<u8>>>(row, 1),
                    column::<i64>(row, 2),
                ) {
                    (Ok(sid), Ok(data), Ok(expires)) => {
                        let left = u64::try_from(expires.saturating_sub(now)).unwrap_or(0);
                        (
                            sid,
                            data.unwrap_or_default(),
                            Some(Duration::from_secs(left)),
                        )
                    }
                    _ => (String::new(), Vec::new(), None),
                }
            }));
            // The next page starts after this one's last row, session or not.
            if let Some(last) = rows.last().and_then(|row| column::<String>(row, 0).ok()) {
                after = last;
            }
            let go_on = walker.page(&page);
            let mut deleted = 0;
            if delete && !read.is_empty() {
                deleted = self
                    .within_admin("clear", async {
                        let mut conn = inner.checkout("clear").await?;
                        let mut n = 0;
                        for (sid, data) in &read {
                            conn.exec_drop(&inner.sql.delete_read, (sid, data))
                                .await
                                .map_err(|e| inner.error("clear", e))?;
                            n += conn.affected_rows();
                        }
                        Ok(n)
                    })
                    .await?;
            }
            if !walked.add(&page, deleted, go_on) || !full {
                return Ok(walked);
            }
        }
    }

    async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let inner = &*self.inner;
        self.within_admin("inspect", async {
            let mut conn = inner.checkout("inspect").await?;
            let row: Option<Row> = conn
                .exec_first(&inner.sql.inspect, (id, now_s()))
                .await
                .map_err(|e| inner.error("inspect", e))?;
            let Some(row) = row else { return Ok(None) };
            let read = || -> Result<(Option<Vec<u8>>, i64), String> {
                Ok((column(&row, 0)?, column(&row, 1)?))
            };
            let (data, expires) = read().map_err(|why| inner.error("inspect", why))?;
            Ok(Some(Stored {
                value: data.unwrap_or_else(|| b"null".to_vec()),
                ttl: Some(sql::ttl_until(expires.saturating_mul(1000))),
            }))
        })
        .await
    }

    /// The index is a query on `data` (exact, and it sees sessions a Node app logged in
    /// too): adding and removing entries has nothing to do. Without an index on the
    /// expression it reads the whole table (see `docs/sql-stores.md`).
    async fn index_add(
        &self,
        _key: &str,
        _user: &str,
        _id: &SessionId,
        _expires: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn default_ttl(&self) -> Option<Duration> {
        Some(self.inner.default_ttl)
    }

    async fn index_remove(
        &self,
        _key: &str,
        _user: &str,
        _id: &SessionId,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn index_entries(&self, key: &str, user: &str) -> Result<Vec<IndexEntry>, StoreError> {
        let inner = &*self.inner;
        // The key's characters are restricted (`UserIndex::new`): quoting it is enough.
        let path = format!("$.\"{key}\"");
        let rows: Vec<Row> = self
            .within("index", async {
                let mut conn = inner.checkout("index").await?;
                conn.exec(&inner.sql.by_user, (now_s(), path, user))
                    .await
                    .map_err(|e| inner.error("index", e))
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let sid: String = column(row, 0).ok()?;
                let expires: i64 = column(row, 1).ok()?;
                Some(IndexEntry {
                    id: SessionId::parse(&sid)?,
                    expires: OffsetDateTime::from_unix_timestamp(expires).ok(),
                })
            })
            .collect())
    }

    fn index_expiry(&self) -> super::IndexExpiry {
        super::IndexExpiry::FollowsSessions
    }

    /// Every request-path call runs under [`MySqlOptions::timeout`], so the engine need
    /// not time it again.
    fn time_bound(&self) -> Option<Duration> {
        Some(self.inner.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, data_type: &str, charset: Option<&str>, key: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: data_type.into(),
            charset: charset.map(Into::into),
            key: key.into(),
        }
    }

    #[test]
    fn shapes_are_checked() {
        let good = vec![
            info("session_id", "varchar", Some("utf8mb4"), "PRI"),
            info("expires", "int", None, ""),
            info("data", "mediumtext", Some("utf8mb4"), ""),
        ];
        assert!(shape_problems(&good).is_empty());
        let utf8 = vec![
            info("session_id", "varchar", Some("utf8mb4"), ""),
            info("expires", "varchar", None, ""),
            info("data", "mediumtext", Some("utf8mb3"), ""),
        ];
        assert_eq!(
            shape_problems(&utf8),
            [
                "`session_id` is not its primary key",
                "`expires` is varchar, not int",
                "`data` is in character set utf8mb3, not utf8mb4"
            ]
        );
        assert_eq!(shape_problems(&[info("id", "int", None, "PRI")]).len(), 3);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("sessions"), "`sessions`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
