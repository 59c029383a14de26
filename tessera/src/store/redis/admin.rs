//! The admin calls (`ids`, `count`, `inspect`, `clear`: the `tessera sessions` commands),
//! never made on a request path.
//!
//! They walk the keyspace with `SCAN … MATCH prefix*` page by page, never `KEYS` (which
//! blocks the server while it lists every key), on every node that holds keys
//! (`Connection::sweep`: one server, or every cluster master). `clear` deletes each page
//! with `UNLINK`, and on a cluster with one per hash slot, since a multi-key command across
//! slots fails with CROSSSLOT.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::cluster_routing::Slot;
use redis::Value;

use super::commands::is_wrongtype;
use super::Inner;
use crate::store::{StoreError, Stored};

/// What a SCAN sweep does with each page of keys.
pub(super) enum Visit {
    Collect(HashSet<Vec<u8>>),
    Delete { deleted: u64, unlink: bool },
}

/// The prefix as a SCAN pattern: glob characters escaped, then `*`.
fn scan_pattern(prefix: &str) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(prefix.len() + 1);
    for &b in prefix.as_bytes() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(b);
    }
    pattern.push(b'*');
    pattern
}

impl Inner {
    pub(super) async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let prefix = self.options.prefix.len();
        let mut ids: Vec<String> = self
            .collect_keys()
            .await?
            .into_iter()
            .map(|key| String::from_utf8_lossy(key.get(prefix..).unwrap_or_default()).into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub(super) async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.collect_keys().await?.len() as u64)
    }

    pub(super) async fn inspect(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let key = self.key(id);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        let mut replies = self.send_pipeline("inspect", &pipe, 2).await?.into_iter();
        let (Some(value), Some(pttl)) = (replies.next(), replies.next()) else {
            return Err(StoreError::backend(
                &self.name,
                "inspect",
                "Redis answered a GET + PTTL pipeline with fewer than two replies",
            ));
        };
        let ttl = match self.reply::<i64>("inspect", pttl)? {
            ms if ms >= 0 => Some(Duration::from_millis(ms as u64)),
            _ => None,
        };
        let value = match value {
            Value::Nil => return Ok(None),
            Value::BulkString(bytes) => bytes,
            Value::ServerError(e) if is_wrongtype(&e) => {
                let mut cmd = redis::cmd("TYPE");
                cmd.arg(&key);
                let reply = self.send("inspect", &cmd).await?;
                let kind: String = self.reply("inspect", reply)?;
                format!("(not a session: the key holds a Redis {kind}, not a string)").into_bytes()
            }
            other => self.reply::<Vec<u8>>("inspect", other)?,
        };
        Ok(Some(Stored { value, ttl }))
    }

    pub(super) async fn clear(&self) -> Result<u64, StoreError> {
        let mut visit = Visit::Delete {
            deleted: 0,
            unlink: true,
        };
        self.connection.sweep(self, &mut visit).await?;
        match visit {
            Visit::Delete { deleted, .. } => Ok(deleted),
            Visit::Collect(_) => Ok(0),
        }
    }

    /// One node's keys under the prefix, page by page. On a cluster node (`per_slot`) a
    /// page's keys are deleted with one command per hash slot: a multi-key command across
    /// slots fails with CROSSSLOT.
    pub(super) async fn sweep_node<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        visit: &mut Visit,
        per_slot: bool,
    ) -> Result<(), StoreError> {
        let pattern = scan_pattern(&self.options.prefix);
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(self.options.scan_count);
            let (next, keys): (u64, Vec<Vec<u8>>) =
                self.timed("scan", scan.query_async(conn)).await?;
            match visit {
                Visit::Collect(all) => all.extend(keys),
                Visit::Delete { deleted, unlink } if !keys.is_empty() => {
                    *deleted += self.delete_page(conn, &keys, unlink, per_slot).await?;
                }
                Visit::Delete { .. } => {}
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    /// Deletes one SCAN page: one `UNLINK` for the page, or one per slot (pipelined).
    async fn delete_page<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        keys: &[Vec<u8>],
        unlink: &mut bool,
        per_slot: bool,
    ) -> Result<u64, StoreError> {
        let groups: Vec<Vec<&[u8]>> = if per_slot {
            let mut by_slot: HashMap<Slot, Vec<&[u8]>> = HashMap::new();
            for key in keys {
                by_slot.entry(Slot::for_key(key)).or_default().push(key);
            }
            by_slot.into_values().collect()
        } else {
            vec![keys.iter().map(Vec::as_slice).collect()]
        };
        loop {
            let mut pipe = redis::pipe();
            for group in &groups {
                pipe.cmd(if *unlink { "UNLINK" } else { "DEL" }).arg(group);
            }
            let replies = self
                .timed("clear", conn.req_packed_commands(&pipe, 0, groups.len()))
                .await?;
            // Redis before 4.0 has no UNLINK.
            let no_unlink = replies.iter().any(|r| {
                matches!(r, Value::ServerError(e)
                    if e.details().is_some_and(|d| d.contains("unknown command")))
            });
            if *unlink && no_unlink {
                *unlink = false;
                continue;
            }
            let mut deleted = 0;
            for reply in replies {
                deleted += self.reply::<u64>("clear", reply)?;
            }
            return Ok(deleted);
        }
    }

    async fn collect_keys(&self) -> Result<HashSet<Vec<u8>>, StoreError> {
        let mut visit = Visit::Collect(HashSet::new());
        self.connection.sweep(self, &mut visit).await?;
        match visit {
            Visit::Collect(keys) => Ok(keys),
            Visit::Delete { .. } => Ok(HashSet::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_pattern_escapes_glob_characters() {
        assert_eq!(scan_pattern("sess:"), b"sess:*");
        assert_eq!(scan_pattern(r"a*b?[c]\d"), br"a\*b\?\[c\]\\d*");
    }
}
