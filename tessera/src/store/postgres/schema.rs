//! connect-pg-simple's table, and every statement the store runs on it: the one place
//! that knows the SQL, so the rules it shares with connect-pg-simple (`to_timestamp`
//! seconds, live rows `expire >= now`) are read in one go.

use super::{quote_ident, quote_literal};

/// Every statement the store runs, with the (quoted) table name in place. Parameters are
/// in Unix seconds, always passed to `to_timestamp` as connect-pg-simple does.
pub(super) struct Statements {
    pub(super) load: String,
    pub(super) load_and_touch: String,
    pub(super) create: String,
    pub(super) update: String,
    pub(super) update_guarded: String,
    pub(super) live: String,
    pub(super) destroy: String,
    pub(super) touch: String,
    pub(super) page: String,
    pub(super) delete_read: String,
    pub(super) inspect: String,
    pub(super) prune: String,
}

impl Statements {
    pub(super) fn new(t: &str) -> Self {
        Statements {
            load: format!(
                "SELECT sess::text FROM {t} WHERE sid = $1 AND expire >= to_timestamp($2)"
            ),
            load_and_touch: format!(
                "UPDATE {t} SET expire = to_timestamp($3) \
                 WHERE sid = $1 AND expire >= to_timestamp($2) RETURNING sess::text"
            ),
            // A live row with this ID is a clash; an expired one counts as absent and is
            // replaced (the prune job may not have reached it yet).
            create: format!(
                "INSERT INTO {t} AS t (sess, expire, sid) \
                 VALUES ($2::text::json, to_timestamp($3), $1) \
                 ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire \
                 WHERE t.expire < to_timestamp($4) \
                 RETURNING sess::text"
            ),
            update: format!(
                "UPDATE {t} SET sess = $2::text::json, expire = to_timestamp($3) \
                 WHERE sid = $1 AND expire >= to_timestamp($4) RETURNING sess::text"
            ),
            // The guarded commit in one statement: the update, and whether a live row was
            // there (seen as of the statement's start), to tell Changed from Gone.
            update_guarded: format!(
                "WITH updated AS (\
                   UPDATE {t} SET sess = $2::text::json, expire = to_timestamp($3) \
                   WHERE sid = $1 AND expire >= to_timestamp($4) AND sess::text = $5::text \
                   RETURNING sess::text AS sess) \
                 SELECT (SELECT sess FROM updated), \
                   EXISTS (SELECT 1 FROM {t} WHERE sid = $1 AND expire >= to_timestamp($4))"
            ),
            live: format!("SELECT 1 FROM {t} WHERE sid = $1 AND expire >= to_timestamp($2)"),
            destroy: format!("DELETE FROM {t} WHERE sid = $1"),
            touch: format!(
                "UPDATE {t} SET expire = to_timestamp($2) \
                 WHERE sid = $1 AND expire >= to_timestamp($3)"
            ),
            // One page of an admin walk, by keyset: rows after `$2` in `sid` order. The
            // TTL is read in the connection's TimeZone, as `expire` was written.
            page: format!(
                "SELECT sid::text, sess::text, \
                 EXTRACT(EPOCH FROM (expire - to_timestamp($1)::timestamp))::float8 \
                 FROM {t} WHERE sid > $2 AND expire >= to_timestamp($1) ORDER BY sid LIMIT $3"
            ),
            // A clearing walk deletes exactly the rows it read: one changed meanwhile stays.
            delete_read: format!("DELETE FROM {t} WHERE sid = $1 AND sess::text = $2"),
            // `expire::timestamptz` reads the wall-clock time back in the connection's
            // TimeZone, as it was written (a no-op on a timestamptz column).
            inspect: format!(
                "SELECT sess::text, (EXTRACT(EPOCH FROM expire::timestamptz) * 1000)::int8 \
                 FROM {t} WHERE sid = $1 AND expire >= to_timestamp($2)"
            ),
            prune: format!("DELETE FROM {t} WHERE expire < to_timestamp($1)"),
        }
    }
}

/// connect-pg-simple's `table.sql` for `table` (quoted, maybe schema-qualified), under an
/// advisory lock. The default table's constraint and index get connect-pg-simple's names;
/// another table's get names of its own (connect-pg-simple keeps `session_pkey` and
/// `IDX_session_expire` whatever the table, so its second table in a schema fails).
pub(super) fn create_table_sql(table: &str, name: &str) -> String {
    let pkey = quote_ident(&format!("{name}_pkey"));
    let index = quote_ident(&format!("IDX_{name}_expire"));
    let lock = quote_literal(&format!("tessera session table {table}"));
    format!(
        "SELECT pg_advisory_xact_lock(hashtext({lock})); \
         CREATE TABLE IF NOT EXISTS {table} (\
           \"sid\" varchar NOT NULL COLLATE \"default\", \
           \"sess\" json NOT NULL, \
           \"expire\" timestamp(6) NOT NULL, \
           CONSTRAINT {pkey} PRIMARY KEY (\"sid\")); \
         CREATE INDEX IF NOT EXISTS {index} ON {table} (\"expire\")"
    )
}

/// What keeps `columns` (name, type name) from being usable as connect-pg-simple's table.
/// Extra columns are allowed, as connect-pg-simple allows them.
pub(super) fn shape_problems(columns: &[(String, String)], unique_sid: bool) -> Vec<String> {
    let expected: [(&str, &[&str], &str); 3] = [
        ("sid", &["varchar", "text"], "varchar"),
        ("sess", &["json", "jsonb"], "json"),
        ("expire", &["timestamp", "timestamptz"], "timestamp(6)"),
    ];
    let mut problems = Vec::new();
    for (name, accepted, wanted) in expected {
        match columns.iter().find(|(column, _)| column == name) {
            None => problems.push(format!("no `{name}` column ({wanted})")),
            Some((_, found)) if !accepted.contains(&found.as_str()) => {
                problems.push(format!("`{name}` is {found}, not {wanted}"))
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() && !unique_sid {
        problems.push("`sid` is not its primary key".to_owned());
    }
    problems
}
