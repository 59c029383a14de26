//! PostgresStore's per-user index: a query on the sessions themselves.
//!
//! The user is read out of connect-pg-simple's `sess` JSON (`sess->>'userId'`), so there
//! is nothing to keep in step: the answer is exact, it includes sessions a Node app logged
//! in, and a session deleted or expired by anyone is simply not found. Without an index on
//! that expression the query reads the whole table; `docs/sql-stores.md` gives the
//! `CREATE INDEX` to add for large tables.

use super::{now_s, PostgresStore};
use crate::id::SessionId;
use crate::index::IndexEntry;
use crate::store::StoreError;

/// The statement for the indexed key `key`, with the (quoted) table name in place. The
/// key is written as a literal, not a parameter, so that an index on the expression
/// (`CREATE INDEX … ((sess ->> 'userId'))`) matches it; `UserIndex::new` allows only
/// letters, digits, `_`, `-` and `$` in it, and it is quoted all the same.
fn statement(t: &str, key: &str) -> String {
    let key = super::quote_literal(key);
    format!(
        "SELECT sid::text, (EXTRACT(EPOCH FROM expire::timestamptz) * 1000)::int8 \
         FROM {t} WHERE expire >= to_timestamp($1) AND (sess ->> {key}) = $2::text"
    )
}

impl PostgresStore {
    pub(super) async fn index_query(
        &self,
        key: &str,
        user: &str,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let inner = &*self.inner;
        let rows = self
            .within("index", async {
                let conn = inner.checkout("index").await?;
                let result = conn
                    .client()
                    .query(&statement(&inner.table, key), &[&now_s(), &user])
                    .await;
                conn.release();
                result.map_err(|e| inner.error("index", &e))
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let sid: String = row.try_get(0).ok()?;
                let expire_ms: i64 = row.try_get(1).ok()?;
                Some(IndexEntry {
                    id: SessionId::parse(&sid)?,
                    expires: time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(expire_ms) * 1_000_000,
                    )
                    .ok(),
                })
            })
            .collect())
    }
}
