//! Session events and metrics: what the engine tells an audit log and a dashboard.
//!
//! Events go to the subscriber the application registers with
//! [`SessionConfig::on_event`](crate::SessionConfig::on_event): created, regenerated,
//! destroyed, revoked (through the per-user index), expired (the absolute timeout),
//! conflict and store error. Each carries the session's [`SessionHandle`], never its ID
//! (the ID is a bearer credential and must not reach logs), and the user when the session
//! is indexed.
//!
//! Metrics go through the [`metrics`] facade, so the application picks the exporter
//! (Prometheus, StatsD, …). Their handles are registered when the
//! [`SessionLayer`](crate::SessionLayer) is made: **install the recorder before making the
//! layer** (a layer made earlier reports to no recorder). With none installed, each costs
//! a check of an empty handle.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `tessera_sessions_created_total` | counter | |
//! | `tessera_sessions_loaded_total` | counter | |
//! | `tessera_sessions_saved_total` | counter | |
//! | `tessera_sessions_touched_total` | counter | |
//! | `tessera_sessions_destroyed_total` | counter | |
//! | `tessera_sessions_regenerated_total` | counter | |
//! | `tessera_sessions_revoked_total` | counter | (ended through the per-user index) |
//! | `tessera_sessions_expired_total` | counter | (ended by the absolute timeout) |
//! | `tessera_commit_conflicts_total` | counter | (a guarded commit found the session changed) |
//! | `tessera_commit_retries_total` | counter | (a merged commit tried again) |
//! | `tessera_commit_gave_up_total` | counter | (a commit out of attempts: 503) |
//! | `tessera_store_errors_total` | counter | `store`, `op`, `kind` (`timeout` or `backend`) |
//! | `tessera_store_call_seconds` | histogram | `store`, `op` |
//! | `tessera_record_bytes` | histogram | (the size of each record saved) |

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::signing::SessionHandle;
use crate::store::StoreError;

/// Something that happened to a session.
#[derive(Debug, Clone)]
pub struct SessionEvent {
    /// What happened.
    pub kind: EventKind,
    /// The session's handle (none for a store error before any session was known).
    pub handle: Option<SessionHandle>,
    /// The user the session belongs to, when the per-user index is on and the session
    /// named one (see [`SessionConfig::index_by`](crate::SessionConfig::index_by)).
    pub user: Option<String>,
    /// When.
    pub at: OffsetDateTime,
}

/// What happened to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A new session was stored for the first time.
    Created,
    /// `regenerate()` replaced a session (a login): `old` is the handle of the session
    /// deleted, the event's own handle the new one's.
    Regenerated {
        /// The replaced session's handle.
        old: SessionHandle,
    },
    /// `destroy()` deleted the session (a logout).
    Destroyed,
    /// The session was ended through the per-user index: `revoke`, `revoke_all` ("sign
    /// out everywhere").
    Revoked,
    /// The session reached the absolute timeout and was deleted when next loaded.
    Expired,
    /// A guarded commit found the session changed by another writer and merged this
    /// request's changes into what that writer stored; `saved` says whether a commit then
    /// succeeded (false: out of attempts, 503, or the session was gone).
    Conflict {
        /// Commits tried (the conflicts, plus the one that succeeded).
        attempts: u32,
        /// Whether the last one was written (false: the request answered 503).
        saved: bool,
    },
    /// The store failed or timed out on `op`.
    StoreError {
        /// The operation (`load`, `save`, `touch`, `destroy`).
        op: &'static str,
        /// Whether it timed out (rather than failed).
        timeout: bool,
    },
}

impl SessionEvent {
    /// The event as one JSON object, for a JSON-lines audit log:
    /// `{"event":"regenerated","session":"…","old":"…","at":"2026-12-01T20:00:00Z"}`.
    pub fn to_json(&self) -> Value {
        let at = self.at.format(&Rfc3339).unwrap_or_default();
        let mut object = json!({
            "event": self.kind.name(),
            "session": self.handle.as_ref().map(SessionHandle::as_str),
            "at": at,
        });
        if let (Some(user), Value::Object(map)) = (&self.user, &mut object) {
            map.insert("user".into(), user.as_str().into());
        }
        if let Value::Object(map) = &mut object {
            match &self.kind {
                EventKind::Regenerated { old } => {
                    map.insert("old".into(), old.as_str().into());
                }
                EventKind::Conflict { attempts, saved } => {
                    map.insert("attempts".into(), (*attempts).into());
                    map.insert("saved".into(), (*saved).into());
                }
                EventKind::StoreError { op, timeout } => {
                    map.insert("op".into(), (*op).into());
                    map.insert("timeout".into(), (*timeout).into());
                }
                EventKind::Created
                | EventKind::Destroyed
                | EventKind::Revoked
                | EventKind::Expired => {}
            }
        }
        object
    }
}

impl EventKind {
    /// The event's name in logs: `created`, `regenerated`, `destroyed`, `revoked`,
    /// `expired`, `conflict`, `store_error`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Regenerated { .. } => "regenerated",
            EventKind::Destroyed => "destroyed",
            EventKind::Revoked => "revoked",
            EventKind::Expired => "expired",
            EventKind::Conflict { .. } => "conflict",
            EventKind::StoreError { .. } => "store_error",
        }
    }
}

/// The application's event subscriber.
#[derive(Clone)]
pub(crate) struct Subscriber(pub(crate) Arc<dyn Fn(&SessionEvent) + Send + Sync>);

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscriber")
    }
}

/// The metrics' handles, registered once when the layer is made, so their names live
/// here only and a request pays no registration: with no recorder installed each is a
/// handle that does nothing (building a metric's key per call, as the macros do, cost
/// about 2% of a counter request's instructions on MemoryStore).
pub(crate) mod metric {
    use super::*;
    use metrics::{Counter, Histogram};

    /// The counters, by what they count.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Count {
        Created,
        Loaded,
        Saved,
        Touched,
        Destroyed,
        Regenerated,
        Revoked,
        Expired,
        Conflicts,
        Retries,
        GaveUp,
    }

    const COUNTERS: [&str; 11] = [
        "tessera_sessions_created_total",
        "tessera_sessions_loaded_total",
        "tessera_sessions_saved_total",
        "tessera_sessions_touched_total",
        "tessera_sessions_destroyed_total",
        "tessera_sessions_regenerated_total",
        "tessera_sessions_revoked_total",
        "tessera_sessions_expired_total",
        "tessera_commit_conflicts_total",
        "tessera_commit_retries_total",
        "tessera_commit_gave_up_total",
    ];

    /// The store operations the engine times (`Engine::call`'s `op`).
    const OPS: [&str; 5] = ["load", "save", "destroy", "touch", "index"];

    pub(crate) struct Metrics {
        store: &'static str,
        counters: [Counter; COUNTERS.len()],
        record_bytes: Histogram,
        calls: [Histogram; OPS.len()],
        /// Per op: timeouts, then other failures.
        errors: [[Counter; 2]; OPS.len()],
    }

    impl Metrics {
        /// Registers every metric with the recorder installed now (if any).
        pub(crate) fn register(store: &'static str) -> Self {
            Metrics {
                store,
                counters: COUNTERS.map(|name| metrics::counter!(name)),
                record_bytes: metrics::histogram!("tessera_record_bytes"),
                calls: OPS.map(|op| {
                    metrics::histogram!("tessera_store_call_seconds", "store" => store, "op" => op)
                }),
                errors: OPS.map(|op| {
                    ["timeout", "backend"].map(|kind| {
                        metrics::counter!("tessera_store_errors_total", "store" => store, "op" => op, "kind" => kind)
                    })
                }),
            }
        }

        pub(crate) fn count(&self, what: Count) {
            self.counters[what as usize].increment(1);
        }

        pub(crate) fn store_call(&self, op: &'static str, took: Duration) {
            match OPS.iter().position(|o| *o == op) {
                Some(i) => self.calls[i].record(took.as_secs_f64()),
                None => metrics::histogram!("tessera_store_call_seconds", "store" => self.store, "op" => op)
                    .record(took.as_secs_f64()),
            }
        }

        pub(crate) fn store_error(&self, op: &'static str, error: &StoreError) {
            let timeout = matches!(error, StoreError::Timeout { .. });
            match OPS.iter().position(|o| *o == op) {
                Some(i) => self.errors[i][usize::from(!timeout)].increment(1),
                None => {
                    let kind = if timeout { "timeout" } else { "backend" };
                    metrics::counter!("tessera_store_errors_total", "store" => self.store, "op" => op, "kind" => kind)
                        .increment(1);
                }
            }
        }

        pub(crate) fn record_bytes(&self, bytes: usize) {
            self.record_bytes.record(bytes as f64);
        }
    }
}
