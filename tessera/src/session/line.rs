//! The commit line of each session within this process, and the group commit.
//!
//! Requests of one session that reach their commit while another of them is writing wait
//! in that session's line instead of each trying a compare-and-set of its own: theirs would
//! fail, since the write in flight changes the record, and under a burst (a page and its
//! XHRs, a double click, a load test on one session) every commit would cost a failed round
//! trip and a re-read. When the write in flight ends, everyone who waited is merged into one
//! record (each request's changes re-applied per key, in the order they arrived, on the
//! record just written) and written by one compare-and-set: a group commit. A burst of N
//! requests costs a few writes instead of N, and a compare-and-set fails only when a writer
//! outside this process (another instance, a Node app) wrote in between.
//!
//! The group commit runs in a task of its own, never in a request's future: a request
//! whose client went away (its future dropped mid-commit) cannot strand the requests that
//! handed it their changes. Only the first request of a line commits in its own future,
//! and only its own changes. A line exists while one of its requests commits, so idle
//! sessions cost nothing here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::Session;
use crate::engine::Engine;
use crate::error::SessionError;
use crate::id::SessionId;
use crate::record::Record;
use crate::store::{StoreError, Version};

/// The last record this process wrote for a session, and the version the store gave it.
pub(crate) struct Latest {
    pub(crate) record: Arc<Record>,
    pub(crate) version: Version,
}

/// What a request waiting in line learns of its commit: as [`Session::persist`] answers,
/// `Some` written (merged with the others), `None` gone (destroyed or expired meanwhile).
type Outcome = Result<Option<()>, SessionError>;

/// A request waiting in a line: its session (whose changes the group commit reads) and
/// where to tell it the outcome.
pub(crate) struct Waiter {
    session: Session,
    done: oneshot::Sender<Outcome>,
}

/// The lines of the sessions being committed now, each with the requests waiting in it.
///
/// Keyed with FxHash, as `MemoryStore`'s map is (see there why a hash that does not resist
/// chosen collisions is right for session IDs).
#[derive(Default)]
pub(crate) struct Lines {
    lines: Mutex<LineMap>,
}

type LineMap = HashMap<SessionId, Vec<Waiter>, rustc_hash::FxBuildHasher>;

/// Where a request stands in its session's line.
pub(crate) enum Place {
    /// Nobody of this process is writing the session: commit now.
    First(Turn),
    /// Another request is writing it: the group commit after it takes this one's changes.
    Behind(oneshot::Receiver<Outcome>),
}

impl Lines {
    fn lock(&self) -> std::sync::MutexGuard<'_, LineMap> {
        // Nothing can panic while the lock is held; a poisoned map is still consistent.
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the line of `id` with `session`, the request about to commit it.
    pub(crate) fn join(&self, engine: &Arc<Engine>, id: &SessionId, session: &Session) -> Place {
        use std::collections::hash_map::Entry;
        match self.lock().entry(id.clone()) {
            Entry::Occupied(mut line) => {
                let (done, outcome) = oneshot::channel();
                line.get_mut().push(Waiter {
                    session: session.clone(),
                    done,
                });
                Place::Behind(outcome)
            }
            Entry::Vacant(line) => {
                line.insert(Vec::new());
                Place::First(Turn {
                    engine: Arc::clone(engine),
                    id: id.clone(),
                    latest: None,
                })
            }
        }
    }

    /// The requests that joined the line of `id` since its last write began; when there
    /// are none, the line ends.
    fn next(&self, id: &SessionId) -> Vec<Waiter> {
        let mut lines = self.lock();
        match lines.get_mut(id) {
            Some(waiting) if !waiting.is_empty() => std::mem::take(waiting),
            _ => {
                lines.remove(id);
                Vec::new()
            }
        }
    }
}

/// The head of a line: the request committing its own changes. Giving up the turn (when
/// its commit ends, or when its future is dropped mid-commit) starts the group commit of
/// whoever joined the line meanwhile.
pub(crate) struct Turn {
    engine: Arc<Engine>,
    id: SessionId,
    /// What the commit wrote, if it did: where the group commit starts from.
    latest: Option<Latest>,
}

impl Turn {
    /// The commit wrote `latest`.
    pub(crate) fn wrote(&mut self, latest: Latest) {
        self.latest = Some(latest);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        hand_on(&self.engine, &self.id, self.latest.take());
    }
}

/// Starts the group commit of whoever joined the line of `id` since its last write began
/// (`latest`, if that write is known to have landed); ends the line if nobody did.
fn hand_on(engine: &Arc<Engine>, id: &SessionId, latest: Option<Latest>) {
    let waiters = engine.lines.next(id);
    if waiters.is_empty() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(group(Arc::clone(engine), id.clone(), latest, waiters));
        }
        // Only while the runtime shuts down: nothing can be written any more.
        Err(_) => abandon(engine, id, waiters),
    }
}

/// The group commits of one line, one after the other, until nobody waits.
async fn group(
    engine: Arc<Engine>,
    id: SessionId,
    mut latest: Option<Latest>,
    mut waiters: Vec<Waiter>,
) {
    // Code of the application runs in a commit (`update` closures, the event subscriber):
    // if it panics, this task ends here, the requests it was writing are answered 503 (their
    // senders are dropped), and the line must still go on for those who joined it since.
    let mut running = Running {
        engine: Arc::clone(&engine),
        id: id.clone(),
        ended: false,
    };
    loop {
        let sessions: Vec<&Session> = waiters.iter().map(|w| &w.session).collect();
        let mut outcomes: Vec<_> = waiters.iter().map(|_| None).collect();
        latest =
            Session::commit_together(&engine, &id, latest.take(), &sessions, &mut outcomes).await;
        for (waiter, outcome) in waiters.drain(..).zip(outcomes) {
            // A request whose client went away no longer listens; its changes are saved.
            let _ = waiter.done.send(outcome.unwrap_or(Ok(None)));
        }
        waiters = engine.lines.next(&id);
        if waiters.is_empty() {
            running.ended = true;
            return;
        }
    }
}

/// A group commit's task while it runs: if it stops before its line is done (a panic, the
/// runtime dropping it), whoever waits in the line is handed on.
struct Running {
    engine: Arc<Engine>,
    id: SessionId,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.ended {
            tracing::error!(
                "a group commit stopped before its end (code it ran panicked, or the runtime is shutting down); the requests it was writing are answered 503"
            );
            hand_on(&self.engine, &self.id, None);
        }
    }
}

/// Tells everyone in the line of `id` that nothing was written, and ends the line.
fn abandon(engine: &Engine, id: &SessionId, mut waiters: Vec<Waiter>) {
    tracing::warn!(
        "the async runtime is shutting down; requests waiting to commit their session are answered 503, their changes not saved"
    );
    while !waiters.is_empty() {
        for waiter in waiters.drain(..) {
            let _ = waiter
                .done
                .send(Err(unsaved(engine, "the async runtime is shutting down")));
        }
        waiters = engine.lines.next(id);
    }
}

/// The 503 of a request whose group commit could not write it.
fn unsaved(engine: &Engine, why: &'static str) -> SessionError {
    StoreError::backend(format!("{:?}", engine.store), "save", why).into()
}

/// What a request waiting in line answers, once told.
pub(crate) fn answer(
    engine: &Engine,
    told: Result<Outcome, oneshot::error::RecvError>,
) -> Result<Option<()>, SessionError> {
    // Not told: the group commit's task stopped before it answered (see `Running`).
    told.unwrap_or_else(|_| {
        Err(unsaved(
            engine,
            "the group commit writing this request stopped before it answered (code it ran panicked, or the runtime is shutting down)",
        ))
    })
}
