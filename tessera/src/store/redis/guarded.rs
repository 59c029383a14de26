//! The guarded commit on Redis: a compare-and-set of one session key, as a server-side
//! script.
//!
//! Redis runs a script as one atomic step, so the check ("is the stored value still the one
//! this request loaded?") and the write cannot be split by another client's command. The
//! script touches only the session key, so on a Cluster it runs in that key's slot. It
//! compares the whole stored value with the one loaded: nothing is stored beside
//! connect-redis's JSON, and a write by a Node app in between is seen like any other.
//!
//! The script is called by its SHA (`EVALSHA`); a server that does not have it cached (a
//! restart, a failover to a replica that never ran it, `SCRIPT FLUSH`) answers `NOSCRIPT`,
//! and it is sent once in full (`EVAL`), which caches it again: no request fails for it.

use std::sync::OnceLock;

use redis::Value;

use super::Inner;
use crate::store::{SaveOutcome, StoreError, Version};

/// Write the new value only if the stored one is still the value this request loaded.
/// Answers 1 (written), 2 (another value is stored: nothing written) or 0 (no session:
/// destroyed or expired, and not brought back). `ARGV`: the loaded value, the new value,
/// and the TTL in seconds (empty for none, with `disable_ttl`).
const GUARDED_SET: &str = "\
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
if stored ~= ARGV[1] then return 2 end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
";

/// [`GUARDED_SET`] with its SHA1, computed once.
fn script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(GUARDED_SET))
}

impl Inner {
    /// Writes `value` under `key` if the stored value is still the one of `expected`.
    pub(super) async fn guarded_set(
        &self,
        key: &[u8],
        expected: &Version,
        value: Vec<u8>,
        ttl: Option<u64>,
    ) -> Result<SaveOutcome, StoreError> {
        // A version this store did not make matches no stored value.
        let Some(expected) = expected.as_bytes() else {
            return Ok(SaveOutcome::Changed);
        };
        let command = |name: &'static str, body: &str| {
            let data = body.len() + key.len() + expected.len() + value.len() + 20 + 1;
            let mut cmd = Inner::command(name, 7, data);
            cmd.arg(body).arg(1).arg(key).arg(expected).arg(&value);
            match ttl {
                Some(ttl) => cmd.arg(ttl),
                None => cmd.arg(""),
            };
            cmd
        };
        let mut reply = self
            .send_save(command("EVALSHA", script().get_hash()))
            .await?;
        if matches!(&reply, Value::ServerError(e) if e.code() == "NOSCRIPT") {
            tracing::debug!(store = %self.name, "the guarded commit's script was not cached on the server; sending it in full");
            reply = self.send_save(command("EVAL", GUARDED_SET)).await?;
        }
        match reply {
            Value::Int(1) => Ok(SaveOutcome::Saved(Version::bytes(value))),
            Value::Int(2) => Ok(SaveOutcome::Changed),
            Value::Int(0) => Ok(SaveOutcome::Gone),
            other => {
                self.reply::<()>("save", other)?;
                Err(StoreError::backend(
                    &self.name,
                    "save",
                    "the guarded commit's script answered something other than 0, 1 or 2",
                ))
            }
        }
    }
}
