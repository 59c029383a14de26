//! The admin calls (`walk` and `inspect`: the `tessera sessions` commands), never made on
//! a request path.
//!
//! They walk the keyspace with `SCAN … MATCH prefix*` page by page, never `KEYS` (which
//! blocks the server while it lists every key), on every node that holds keys
//! (`Connection::sweep`: one server, or every cluster master). Each page's values are read
//! in one pipeline and decoded: only keys whose suffix is a session ID and whose value is a
//! session are listed or deleted; anything else under the prefix is counted as foreign. A
//! deleting walk removes each page with `UNLINK`, and on a cluster with one per hash slot,
//! since a multi-key command across slots fails with CROSSSLOT.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::cluster_routing::Slot;
use redis::Value;

use super::commands::is_wrongtype;
use super::Inner;
use crate::id::SessionId;
use crate::store::{Listed, Page, StoreError, Stored, Walked, Walker};

/// A walk in progress over every node's keys: what to do with each page, and what was
/// found so far.
pub(super) struct Visit<'a> {
    walker: &'a mut dyn Walker,
    pub(super) delete: bool,
    walked: Walked,
    /// Whether the server has UNLINK (Redis 4.0 and later); found out on the first delete.
    unlink: bool,
}

impl Visit<'_> {
    /// The walker asked to stop: the nodes not visited yet are skipped.
    pub(super) fn stopped(&self) -> bool {
        self.walked.stopped
    }
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
    pub(super) async fn walk(
        &self,
        delete: bool,
        walker: &mut dyn Walker,
    ) -> Result<Walked, StoreError> {
        let mut visit = Visit {
            walker,
            delete,
            walked: Walked::default(),
            unlink: true,
        };
        self.connection.sweep(self, &mut visit).await?;
        Ok(visit.walked)
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

    /// One node's keys under the prefix, page by page: each page's values read (one
    /// pipeline), decoded, handed to the walker and, for a deleting walk, deleted. On a
    /// cluster node (`per_slot`) a page's keys are deleted with one command per hash slot:
    /// a multi-key command across slots fails with CROSSSLOT.
    pub(super) async fn sweep_node<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        visit: &mut Visit<'_>,
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
            let (page, keys) = self.read_page(conn, keys).await?;
            let go_on = visit.walker.page(&page);
            let deleted = if visit.delete && !keys.is_empty() {
                self.delete_page(conn, &keys, &mut visit.unlink, per_slot)
                    .await?
            } else {
                0
            };
            if !visit.walked.add(&page, deleted, go_on) {
                return Ok(());
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    /// The sessions among one SCAN page's keys (values and TTLs in one pipeline), and
    /// their keys; every other key counts as foreign.
    async fn read_page<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        keys: Vec<Vec<u8>>,
    ) -> Result<(Page, Vec<Vec<u8>>), StoreError> {
        let prefix = self.options.prefix.len();
        let mut page = Page::default();
        let candidates: Vec<(SessionId, Vec<u8>)> = keys
            .into_iter()
            .filter_map(|key| {
                let id = std::str::from_utf8(key.get(prefix..)?)
                    .ok()
                    .and_then(SessionId::parse);
                if id.is_none() {
                    page.foreign += 1;
                }
                Some((id?, key))
            })
            .collect();
        if candidates.is_empty() {
            return Ok((page, Vec::new()));
        }
        let mut pipe = redis::pipe();
        for (_, key) in &candidates {
            pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        }
        let replies = self
            .timed(
                "scan",
                conn.req_packed_commands(&pipe, 0, candidates.len() * 2),
            )
            .await?;
        let mut replies = replies.into_iter();
        let mut session_keys = Vec::with_capacity(candidates.len());
        for (id, key) in candidates {
            let (Some(value), Some(pttl)) = (replies.next(), replies.next()) else {
                break;
            };
            // A key of another type answers WRONGTYPE; a key gone meanwhile, nil: neither
            // is a session. Only a value that decodes is one.
            let record = match value {
                Value::BulkString(bytes) => self
                    .options
                    .serializer
                    .deserialize(&bytes)
                    .ok()
                    .map(|record| (record, bytes.len())),
                _ => None,
            };
            let Some((record, bytes)) = record else {
                page.foreign += 1;
                continue;
            };
            let ttl = match pttl {
                Value::Int(ms) if ms >= 0 => Some(Duration::from_millis(ms as u64)),
                _ => None,
            };
            page.sessions.push(Listed {
                id,
                bytes,
                ttl,
                record,
            });
            session_keys.push(key);
        }
        Ok((page, session_keys))
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
