//! SqliteStore's per-user index: a side table of (indexed key, user, session ID).
//!
//! A trigger deletes a session's rows with the session, whoever deletes it (a logout, the
//! expiry sweep, `tessera sessions clear`, the `sqlite3` shell), so the table never holds
//! a deleted session. A listing joins it with the live sessions, so an expired session
//! that the sweep has not reached yet is not listed either. The only rows without a
//! session are those of a first write that failed after its entry was added; they are
//! never listed and cost a few bytes.

use rusqlite::params;

use super::{now_ms, SqliteStore};
use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::store::StoreError;

/// The migration that adds the table and its trigger (schema version 2).
pub(super) const MIGRATION: &str = "
    CREATE TABLE session_users (
        key  TEXT NOT NULL, -- the indexed key (SessionConfig::index_by)
        user TEXT NOT NULL,
        id   TEXT NOT NULL,
        PRIMARY KEY (key, user, id)
    ) WITHOUT ROWID;
    CREATE INDEX session_users_id ON session_users (id);
    CREATE TRIGGER sessions_unindex AFTER DELETE ON sessions
    BEGIN
        DELETE FROM session_users WHERE id = old.id;
    END;
";

impl SqliteStore {
    pub(super) async fn index_insert(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
    ) -> Result<(), StoreError> {
        self.index_write(
            "INSERT OR IGNORE INTO session_users (key, user, id) VALUES (?1, ?2, ?3)",
            key,
            user,
            id,
        )
        .await
    }

    pub(super) async fn index_delete(
        &self,
        key: &str,
        user: &str,
        id: &SessionId,
    ) -> Result<(), StoreError> {
        self.index_write(
            "DELETE FROM session_users WHERE key = ?1 AND user = ?2 AND id = ?3",
            key,
            user,
            id,
        )
        .await
    }

    /// Runs `statement` on one (key, user, id) row.
    async fn index_write(
        &self,
        statement: &'static str,
        key: &str,
        user: &str,
        id: &SessionId,
    ) -> Result<(), StoreError> {
        let row = (key.to_owned(), user.to_owned(), id.clone());
        self.write("index", move |conn| {
            conn.prepare_cached(statement)?
                .execute(params![row.0, row.1, row.2.as_str()])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn index_select(
        &self,
        key: &str,
        user: &str,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let (key, user) = (key.to_owned(), user.to_owned());
        let rows: Vec<(String, i64)> = self
            .read("index", move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT u.id, s.expires_at FROM session_users u JOIN sessions s ON s.id = u.id \
                     WHERE u.key = ?1 AND u.user = ?2 AND s.expires_at > ?3",
                )?;
                let rows = statement
                    .query_map(params![key, user, now_ms()], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, expires_at)| {
                Some(IndexEntry {
                    id: SessionId::parse(&id)?,
                    expires: time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(expires_at) * 1_000_000,
                    )
                    .ok(),
                })
            })
            .collect())
    }
}
