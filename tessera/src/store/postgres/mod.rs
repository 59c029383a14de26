//! `PostgresStore`: sessions in PostgreSQL, in connect-pg-simple's table, so an Express app
//! on connect-pg-simple 10 and a Tessera service share one table and each continues the
//! other's sessions.
//!
//! The table is connect-pg-simple's `table.sql`, created when missing (its
//! `createTableIfMissing`):
//!
//! ```sql
//! CREATE TABLE "session" (
//!   "sid" varchar NOT NULL COLLATE "default" PRIMARY KEY,  -- the bare session ID
//!   "sess" json NOT NULL,                                 -- JSON.stringify(session)
//!   "expire" timestamp(6) NOT NULL                        -- to_timestamp(Unix seconds)
//! );
//! CREATE INDEX "IDX_session_expire" ON "session" ("expire");
//! ```
//!
//! Its rules, kept here: `expire` is the cookie's expiry rounded up to a whole second
//! (`Math.ceil`), else now + the default TTL; it is written and compared through
//! `to_timestamp(seconds)` in SQL, as connect-pg-simple does, so both agree on which rows
//! are live; a load ignores rows with `expire < to_timestamp(now)`; a background job deletes
//! those every 15 minutes or so (`pruneSessionInterval`, randomized to 50–150 %).
//!
//! `expire` is a `timestamp` *without* time zone: `to_timestamp` gives an instant and
//! PostgreSQL stores its wall-clock time in the connection's `TimeZone`, and reads it back
//! the same way. Neither node-postgres nor tokio-postgres sets `TimeZone`, so both use the
//! server's default and agree; a client that sets another `TimeZone` (a `PGTZ` variable, an
//! `options=-c TimeZone=…` URL parameter, `ALTER ROLE … SET TimeZone`) sees expiries shifted
//! by the difference. Keep every app on one `TimeZone`, ideally UTC (a `timestamptz` column
//! has no such caveat, and is accepted too).
//!
//! Where it departs from connect-pg-simple, for safety:
//! - No upsert of a loaded session: connect-pg-simple's `set` is `INSERT … ON CONFLICT DO
//!   UPDATE`, so a slow request's save brings back a session that a logout deleted
//!   meanwhile. Here a new session is `INSERT … ON CONFLICT DO UPDATE … WHERE` the existing
//!   row has expired (a live row with the ID is a clash), and a loaded one is an `UPDATE`
//!   of a live row only, which finds nothing once the session is gone.
//! - The guarded commit: an update that names the version it loaded adds
//!   `AND sess::text = $expected` (a `json` column keeps the text exactly as written, so
//!   this compares bytes), and tells a changed row from a deleted one in the same
//!   statement. The version is the stored text itself, as read back by `RETURNING`, so a
//!   write by a Node app is detected like any other and nothing extra is stored.
//!
//! Connections come from a small pool (deadpool-postgres) that replaces dead ones by
//! itself; every call has a timeout covering the wait for a connection and the statements.
//! A call cut short by its timeout closes its connection rather than handing it, still busy,
//! to the next request.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod};
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::admin::PAGE_SIZE;
use super::sql::{self, PruneGuard};
use super::{Loaded, SaveMode, SaveOutcome, Store, StoreError, Stored, Version, Walked, Walker};
use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::record::{Record, Ttl};

mod checkout;
mod index;
mod schema;

use checkout::{checkout, describe, Checkout};
use schema::{create_table_sql, shape_problems, Statements};

/// connect-pg-simple's default table name.
pub const DEFAULT_TABLE: &str = "session";
/// connect-pg-simple's default `pruneSessionInterval`: 15 minutes.
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(900);

/// Options of a [`PostgresStore`]. The URL's `schema` and `table` parameters, when given,
/// set [`schema`](Self::schema) and [`table`](Self::table).
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The table's schema (connect-pg-simple's `schemaName`); `None`: the connection's
    /// `search_path` decides, as with connect-pg-simple. Default: `None`.
    pub schema: Option<String>,
    /// The table (connect-pg-simple's `tableName`). Default: `session`.
    pub table: String,
    /// How long a session whose cookie has no expiry is kept (connect-pg-simple's `ttl`;
    /// zero means the default, as `ttl || 86400` does there). Default: one day.
    pub default_ttl: Duration,
    /// Create the table (and its index) when it does not exist. Default: true.
    pub create_table: bool,
    /// How often expired rows are deleted, each wait randomized to 50–150 %; `None`
    /// turns the job off (another instance or a cron job prunes). Expired rows are never
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

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: None,
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

/// Sessions in a PostgreSQL table shaped as connect-pg-simple's. Clones share one pool;
/// the prune job stops when the last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL with its password hidden, and the table: the store's name in errors and logs.
    label: String,
    pool: Pool,
    sql: Statements,
    /// The table's quoted name, for statements made per call (the per-user index's).
    table: String,
    default_ttl: Duration,
    timeout: Duration,
    admin_timeout: Duration,
    /// Dropped with the last clone of the store: stops the prune job.
    _prune: Option<PruneGuard>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.label)
    }
}

/// `"name"`, with any `"` doubled: an identifier PostgreSQL reads back exactly.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with any `'` doubled (`standard_conforming_strings`, on since 9.1).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Now in whole Unix seconds, rounded up: connect-pg-simple's `currentTimestamp()`.
fn now_s() -> f64 {
    sql::ceil_seconds(sql::now_ms()) as f64
}

impl PostgresStore {
    /// Connects to the database `url` names, checks the session table (creating it when
    /// missing, unless [`PostgresOptions::create_table`] is off) and starts the prune job.
    ///
    /// `url`: `postgres://[user[:password]@]host[:port][/database][?schema=…&table=…]`
    /// (also `postgresql://`); other parameters are tokio-postgres's (`sslmode=disable`,
    /// `application_name=…`, `options=…`). TLS is not supported: `sslmode=prefer`, the
    /// default, connects without it.
    ///
    /// # Errors
    /// [`StoreError::Config`] for a bad URL, a database that does not exist, a refused login,
    /// a missing schema, a table that cannot be created, or one whose shape is not
    /// connect-pg-simple's; [`StoreError::Backend`] or [`StoreError::Timeout`] when the
    /// server cannot be reached.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let shown = sql::redact_url(url);
        let bad_url = |why: String| {
            StoreError::Config(format!(
                "{shown} is not a usable PostgreSQL URL: {why}; expected \
                 postgres://user:password@host:port/database?schema=…&table=…"
            ))
        };
        let (driver_url, params) = sql::take_params(url, &["schema", "table"]).map_err(bad_url)?;
        let mut options = options;
        for (key, value) in params {
            match key.as_str() {
                "schema" => options.schema = Some(value).filter(|s| !s.is_empty()),
                _ => options.table = value,
            }
        }
        if options.table.is_empty() {
            return Err(bad_url("the table name is empty".into()));
        }
        let mut config =
            tokio_postgres::Config::from_str(&driver_url).map_err(|e| bad_url(describe(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("tessera");
        }

        let table = match &options.schema {
            Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&options.table)),
            None => quote_ident(&options.table),
        };
        let label = format!("{} (table {table})", sql::redact_url(&driver_url));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // No timeouts in the pool: each call's own covers the wait, the connect and the
        // statements at once.
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build the pool for {label}: {e}")))?;

        let default_ttl = if options.default_ttl.is_zero() {
            PostgresOptions::default().default_ttl
        } else {
            options.default_ttl
        };
        let mut inner = Inner {
            label,
            pool,
            sql: Statements::new(&table),
            table: table.clone(),
            default_ttl,
            timeout: options.timeout,
            admin_timeout: options.admin_timeout,
            _prune: None,
        };
        let check = inner.prepare_table(&table, &options);
        sql::within(&inner.label, "connect", options.admin_timeout, check).await?;

        if let Some(interval) = options.prune_interval {
            let (pool, statement) = (inner.pool.clone(), inner.sql.prune.clone());
            let (label, timeout) = (inner.label.clone(), inner.admin_timeout);
            inner._prune = Some(sql::spawn_prune(inner.label.clone(), interval, move || {
                let (pool, statement, label) = (pool.clone(), statement.clone(), label.clone());
                async move {
                    let prune = async {
                        let conn = checkout(&pool, &label, "prune").await?;
                        let result = conn.client().execute(&statement, &[&now_s()]).await;
                        conn.release();
                        result.map_err(|e| StoreError::backend(&label, "prune", describe(&e)))
                    };
                    sql::within(&label, "prune", timeout, prune).await
                }
            }));
        }
        tracing::debug!(store = %inner.label, "PostgreSQL session store open");
        Ok(PostgresStore {
            inner: Arc::new(inner),
        })
    }
}

impl Inner {
    async fn checkout(&self, op: &'static str) -> Result<Checkout, StoreError> {
        checkout(&self.pool, &self.label, op).await
    }

    fn error(&self, op: &'static str, error: &tokio_postgres::Error) -> StoreError {
        StoreError::backend(&self.label, op, describe(error))
    }

    /// Creates the table when missing, then checks that it is connect-pg-simple's.
    async fn prepare_table(
        &self,
        table: &str,
        options: &PostgresOptions,
    ) -> Result<(), StoreError> {
        let conn = match self.pool.get().await {
            Ok(object) => Checkout::new(object),
            Err(deadpool_postgres::PoolError::Backend(e)) => return Err(self.connect_error(&e)),
            Err(e) => return Err(StoreError::backend(&self.label, "connect", e.to_string())),
        };
        let result = self.check_table(conn.client(), table, options).await;
        conn.release();
        result
    }

    /// The errors an operator fixes in the configuration are [`StoreError::Config`].
    fn connect_error(&self, e: &tokio_postgres::Error) -> StoreError {
        let advice = match e.code() {
            Some(code) if *code == SqlState::INVALID_CATALOG_NAME => Some(
                "the database does not exist: create it (`createdb NAME`, or CREATE DATABASE) \
                 or fix the URL's database name",
            ),
            Some(code)
                if *code == SqlState::INVALID_PASSWORD
                    || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                Some("the server refused the login: check the user and password in the URL")
            }
            _ => None,
        };
        match advice {
            Some(advice) => {
                StoreError::Config(format!("{}: {}; {advice}", self.label, describe(e)))
            }
            None => StoreError::backend(
                &self.label,
                "connect",
                format!(
                    "cannot connect to PostgreSQL: {}; check that it is running and reachable",
                    describe(e)
                ),
            ),
        }
    }

    async fn check_table(
        &self,
        client: &ClientWrapper,
        table: &str,
        options: &PostgresOptions,
    ) -> Result<(), StoreError> {
        let config = |what: &str, e: &tokio_postgres::Error| {
            StoreError::Config(format!("{}: {what}: {}", self.label, describe(e)))
        };
        let found: bool = client
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&table])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| config("cannot look the table up", &e))?;
        if !found {
            if !options.create_table {
                return Err(StoreError::Config(format!(
                    "{}: the table does not exist; create it (docs/sql-stores.md has the SQL, \
                     connect-pg-simple's table.sql) or let the store create it",
                    self.label
                )));
            }
            // Two instances starting together: the advisory lock makes the second wait
            // for the first's CREATE, then find the table there. One simple query is one
            // transaction, so the lock is held until the index exists too.
            let create = create_table_sql(table, &options.table);
            client
                .batch_execute(&create)
                .await
                .map_err(|e| match e.code() {
                    Some(code) if *code == SqlState::INVALID_SCHEMA_NAME => {
                        StoreError::Config(format!(
                            "{}: the schema does not exist: create it (CREATE SCHEMA) or fix \
                             the `schema` parameter: {}",
                            self.label,
                            describe(&e)
                        ))
                    }
                    _ => config(
                        "cannot create the table (create it yourself with connect-pg-simple's \
                         table.sql, or grant CREATE on the schema)",
                        &e,
                    ),
                })?;
            tracing::info!(store = %self.label, "created the session table");
        }
        let columns = client
            .query(
                "SELECT a.attname::text, t.typname::text FROM pg_attribute a \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table],
            )
            .await
            .map_err(|e| config("cannot read the table's columns", &e))?;
        let columns: Vec<(String, String)> = columns
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| config("cannot read the table's columns", &e))?;
        let unique_sid: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indnatts = 1 \
                 AND a.attname = 'sid')",
                &[&table],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| config("cannot read the table's indexes", &e))?;
        let problems = shape_problems(&columns, unique_sid);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Config(format!(
                "{}: the table is not connect-pg-simple's session table: {}; point the store \
                 at another table (the `table` URL parameter; it is created when missing) or \
                 fix this one",
                self.label,
                problems.join("; ")
            )))
        }
    }
}

impl PostgresStore {
    /// The `expire` of a row for a cookie expiring at `expires` (else the default TTL):
    /// connect-pg-simple's `Math.ceil` seconds.
    fn expire_for(&self, expires: Option<OffsetDateTime>) -> f64 {
        let ms = match expires {
            Some(at) => sql::unix_ms(at),
            None => sql::ms_from_now(self.inner.default_ttl),
        };
        sql::ceil_seconds(ms) as f64
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

    /// Reads one row's `sess` text (column 0) with `statement`, as a [`Loaded`] record.
    async fn load_with(
        &self,
        op: &'static str,
        id: &SessionId,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        touched: bool,
    ) -> Result<Option<Loaded>, StoreError> {
        let inner = &*self.inner;
        let text: Option<String> = self
            .within(op, async {
                let conn = inner.checkout(op).await?;
                let result = async {
                    let statement = conn.client().prepare_cached(statement).await?;
                    let row = conn.client().query_opt(&statement, params).await?;
                    row.map(|row| row.try_get(0)).transpose()
                }
                .await;
                conn.release();
                result.map_err(|e| inner.error(op, &e))
            })
            .await?;
        let Some(text) = text else { return Ok(None) };
        match Record::from_json(text.as_bytes()) {
            Ok(record) => Ok(Some(Loaded {
                record,
                version: Version::bytes(text.into_bytes()),
                touched,
            })),
            Err(source) => Err(StoreError::Corrupt {
                id: id.clone(),
                source,
            }),
        }
    }

    /// Runs `statement` for its affected-row count.
    async fn execute(
        &self,
        op: &'static str,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        self.within(op, async {
            let conn = inner.checkout(op).await?;
            let result = async {
                let statement = conn.client().prepare_cached(statement).await?;
                conn.client().execute(&statement, params).await
            }
            .await;
            conn.release();
            result.map_err(|e| inner.error(op, &e))
        })
        .await
    }

    /// The save's statements on one connection.
    async fn save_on(
        &self,
        client: &ClientWrapper,
        id: &str,
        json: &str,
        ttl: Ttl,
        expires: Option<OffsetDateTime>,
        mode: SaveMode<'_>,
    ) -> Result<SaveOutcome, tokio_postgres::Error> {
        let sql = &self.inner.sql;
        let now = now_s();
        let Ttl::Seconds(_) = ttl else {
            // The cookie has already expired: nothing is written (connect-redis sends DEL).
            // A Create must not delete a live session that is not its own.
            return Ok(match mode {
                SaveMode::Create if is_live(client, sql, id, now).await? => SaveOutcome::Conflict,
                SaveMode::Create => SaveOutcome::Gone,
                SaveMode::Update { .. } => {
                    let statement = client.prepare_cached(&sql.destroy).await?;
                    client.execute(&statement, &[&id]).await?;
                    SaveOutcome::Gone
                }
            });
        };
        let expire = self.expire_for(expires);
        let saved = |text: String| SaveOutcome::Saved(Version::bytes(text.into_bytes()));
        Ok(match mode {
            SaveMode::Create => {
                let statement = client.prepare_cached(&sql.create).await?;
                match client
                    .query_opt(&statement, &[&id, &json, &expire, &now])
                    .await?
                {
                    Some(row) => saved(row.try_get(0)?),
                    None => SaveOutcome::Conflict,
                }
            }
            SaveMode::Update { expected: None } => {
                let statement = client.prepare_cached(&sql.update).await?;
                match client
                    .query_opt(&statement, &[&id, &json, &expire, &now])
                    .await?
                {
                    Some(row) => saved(row.try_get(0)?),
                    None => SaveOutcome::Gone,
                }
            }
            SaveMode::Update {
                expected: Some(version),
            } => {
                // A version this store did not make (not UTF-8 text) matches no row.
                let Some(expected) = version
                    .as_bytes()
                    .and_then(|bytes| std::str::from_utf8(bytes).ok())
                else {
                    return Ok(if is_live(client, sql, id, now).await? {
                        SaveOutcome::Changed
                    } else {
                        SaveOutcome::Gone
                    });
                };
                let statement = client.prepare_cached(&sql.update_guarded).await?;
                let row = client
                    .query_one(&statement, &[&id, &json, &expire, &now, &expected])
                    .await?;
                match (
                    row.try_get::<_, Option<String>>(0)?,
                    row.try_get::<_, bool>(1)?,
                ) {
                    (Some(text), _) => saved(text),
                    (None, true) => SaveOutcome::Changed,
                    (None, false) => SaveOutcome::Gone,
                }
            }
        })
    }
}

/// Whether a live row has this ID.
async fn is_live(
    client: &ClientWrapper,
    sql: &Statements,
    id: &str,
    now: f64,
) -> Result<bool, tokio_postgres::Error> {
    let statement = client.prepare_cached(&sql.live).await?;
    Ok(client.query_opt(&statement, &[&id, &now]).await?.is_some())
}

#[async_trait]
impl Store for PostgresStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Loaded>, StoreError> {
        let statement = &self.inner.sql.load;
        self.load_with("load", id, statement, &[&id.as_str(), &now_s()], false)
            .await
    }

    /// One `UPDATE … RETURNING`: the read and the touch in one round trip (the touch a
    /// request that only reads its session would send at its end anyway).
    async fn load_and_touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<Option<Loaded>, StoreError> {
        match Ttl::from_expiry(expires, self.inner.default_ttl) {
            Ttl::Seconds(_) => {
                let statement = &self.inner.sql.load_and_touch;
                let expire = self.expire_for(expires);
                self.load_with(
                    "load",
                    id,
                    statement,
                    &[&id.as_str(), &now_s(), &expire],
                    true,
                )
                .await
            }
            // Extended into the past: the engine decides what to do with the session.
            Ttl::Expired => self.load(id).await,
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
        let inner = &*self.inner;
        self.within("save", async {
            let conn = inner.checkout("save").await?;
            let result = self
                .save_on(
                    conn.client(),
                    id.as_str(),
                    &json,
                    ttl,
                    record.cookie.expires,
                    mode,
                )
                .await;
            conn.release();
            result.map_err(|e| inner.error("save", &e))
        })
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), StoreError> {
        self.execute("destroy", &self.inner.sql.destroy, &[&id.as_str()])
            .await
            .map(|_| ())
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        match Ttl::from_expiry(expires, self.inner.default_ttl) {
            // Only a live row: connect-pg-simple's touch would also revive an expired row
            // the prune job has not deleted yet.
            Ttl::Seconds(_) => {
                let expire = self.expire_for(expires);
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                    [&id.as_str(), &expire, &now_s()];
                Ok(self
                    .execute("touch", &self.inner.sql.touch, &params)
                    .await?
                    == 1)
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
        let limit = i64::try_from(PAGE_SIZE).unwrap_or(500);
        let mut walked = Walked::default();
        let mut after = String::new();
        loop {
            let rows = self
                .within_admin("scan", async {
                    let conn = inner.checkout("scan").await?;
                    let result = conn
                        .client()
                        .query(&inner.sql.page, &[&now_s(), &after, &limit])
                        .await;
                    conn.release();
                    result.map_err(|e| inner.error("scan", &e))
                })
                .await?;
            let full = rows.len() == PAGE_SIZE;
            // A row whose columns cannot be read is foreign too: an empty key never parses.
            let (page, read) = super::admin::sql_page(rows.iter().map(|row| {
                match (row.try_get(0), row.try_get::<_, String>(1), row.try_get(2)) {
                    (Ok(sid), Ok(sess), Ok(ttl)) => {
                        let ttl: f64 = ttl;
                        (
                            sid,
                            sess.into_bytes(),
                            Some(Duration::from_secs_f64(ttl.max(0.0))),
                        )
                    }
                    _ => (String::new(), Vec::new(), None),
                }
            }));
            // The next page starts after this one's last row, session or not.
            if let Some(last) = rows.last().and_then(|row| row.try_get::<_, String>(0).ok()) {
                after = last;
            }
            let go_on = walker.page(&page);
            let mut deleted = 0;
            if delete && !read.is_empty() {
                deleted = self
                    .within_admin("clear", async {
                        let conn = inner.checkout("clear").await?;
                        let mut n = 0;
                        let mut failed = None;
                        for (sid, sess) in &read {
                            // Read as text, so always UTF-8.
                            let sess = String::from_utf8_lossy(sess);
                            match conn
                                .client()
                                .execute(&inner.sql.delete_read, &[sid, &sess])
                                .await
                            {
                                Ok(rows) => n += rows,
                                Err(e) => {
                                    failed = Some(inner.error("clear", &e));
                                    break;
                                }
                            }
                        }
                        conn.release();
                        failed.map_or(Ok(n), Err)
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
            let conn = inner.checkout("inspect").await?;
            let result = conn
                .client()
                .query_opt(&inner.sql.inspect, &[&id, &now_s()])
                .await;
            conn.release();
            let row = result.map_err(|e| inner.error("inspect", &e))?;
            let Some(row) = row else { return Ok(None) };
            let (text, expire_ms): (String, i64) = (|| Ok((row.try_get(0)?, row.try_get(1)?)))()
                .map_err(|e: tokio_postgres::Error| inner.error("inspect", &e))?;
            Ok(Some(Stored {
                value: text.into_bytes(),
                ttl: Some(sql::ttl_until(expire_ms)),
            }))
        })
        .await
    }

    /// The index is a query on `sess` (see `index`): adding and removing entries has
    /// nothing to do.
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
        self.index_query(key, user).await
    }

    fn index_expiry(&self) -> super::IndexExpiry {
        super::IndexExpiry::FollowsSessions
    }

    /// Every request-path call runs under [`PostgresOptions::timeout`], so the engine need
    /// not time it again.
    fn time_bound(&self) -> Option<Duration> {
        Some(self.inner.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("session"), "\"session\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn the_default_table_gets_connect_pg_simples_names() {
        let sql = create_table_sql("\"session\"", "session");
        assert!(
            sql.contains("CONSTRAINT \"session_pkey\" PRIMARY KEY (\"sid\")"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "CREATE INDEX IF NOT EXISTS \"IDX_session_expire\" ON \"session\" (\"expire\")"
            ),
            "{sql}"
        );
        let sql = create_table_sql("\"app\".\"web\"", "web");
        assert!(
            sql.contains("\"web_pkey\"") && sql.contains("\"IDX_web_expire\""),
            "{sql}"
        );
    }

    #[test]
    fn shapes_are_checked() {
        let good = |sess: &str| {
            vec![
                ("sid".to_owned(), "varchar".to_owned()),
                ("sess".to_owned(), sess.to_owned()),
                ("expire".to_owned(), "timestamp".to_owned()),
            ]
        };
        assert!(shape_problems(&good("json"), true).is_empty());
        assert!(shape_problems(&good("jsonb"), true).is_empty());
        assert_eq!(
            shape_problems(&good("json"), false),
            ["`sid` is not its primary key"]
        );
        assert_eq!(
            shape_problems(&good("int4"), true),
            ["`sess` is int4, not json"]
        );
        let other = vec![("id".to_owned(), "int4".to_owned())];
        assert_eq!(shape_problems(&other, true).len(), 3);
    }
}
