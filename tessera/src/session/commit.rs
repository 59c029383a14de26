//! Writing a session: a create for a new one, the guarded commit for a loaded one.
//!
//! The guarded commit is a compare-and-set: the store writes only if the record it holds
//! is still the version this request loaded ([`SaveMode::Update`]'s `expected`). When it
//! is not (another instance or a Node app wrote meanwhile), the changes are re-applied per
//! key to the fresh record ([`Changes::apply_onto`](super::state::Changes::apply_onto))
//! and the write is tried again, at most [`MAX_ATTEMPTS`] times. Requests of one session
//! that commit while another of this process writes it wait in its line and are written
//! together after it, in one compare-and-set ([`line`](super::line)).

use std::sync::Arc;
use std::time::Duration;

use super::line::{self, Latest, Place};
use super::state::{lock, reset_expiry};
use super::Session;
use crate::engine::Engine;
use crate::error::SessionError;
use crate::events::metric::Count;
use crate::events::EventKind;
use crate::id::SessionId;
use crate::record::Record;
use crate::store::{SaveMode, SaveOutcome, Version};

/// How many times a guarded commit is tried before the requests it writes give up with
/// [`SessionError::Conflict`] (503). Each retry follows a write by a process outside this
/// one. Two processes that write one session without pause each win about half the races,
/// so the bound is where losing every one of them is rare: with 8 tries, two instances
/// hammering one session gave up on about 1 commit in 1,000; with 16, on about 1 in
/// 100,000 (the pauses between tries add at most about 70 ms).
pub(crate) const MAX_ATTEMPTS: u32 = 16;

/// How many fresh IDs a new session tries when the store already holds its ID.
const CREATE_ATTEMPTS: u32 = 3;

/// Each request's own outcome in a guarded commit of several: `Some(Ok(Some(())))` written,
/// `Some(Ok(None))` gone, `None` while undecided.
pub(super) type Outcomes = [Option<Result<Option<()>, SessionError>>];

impl Session {
    /// Writes the record (Create or Update). `None` when the session turned out to be gone:
    /// destroyed or expired meanwhile, or already expired by its own cookie.
    pub(super) async fn persist(&self) -> Result<Option<()>, SessionError> {
        self.stamp_login();
        let (id, stored) = {
            let state = lock(&self.inner.state);
            let Some(id) = state.id.clone() else {
                return Ok(None);
            };
            let stored = state.stored_as.as_ref() == Some(&id);
            (id, stored)
        };
        if !stored {
            return self.create().await;
        }
        if !self.engine().config.guarded_commit {
            return self.overwrite(&id).await;
        }
        match self.engine().lines.join(&self.inner.engine, &id, self) {
            Place::First(mut turn) => {
                let (sessions, mut outcome) = ([self], [None]);
                let commit =
                    Self::commit_together(self.engine(), &id, None, &sessions, &mut outcome);
                // Boxed: the commit's state would otherwise be part of every request's future.
                if let Some(latest) = Box::pin(commit).await {
                    turn.wrote(latest);
                }
                // Hands the line to whoever joined it meanwhile.
                drop(turn);
                let [outcome] = outcome;
                outcome.unwrap_or(Ok(None))
            }
            Place::Behind(told) => line::answer(self.engine(), told.await),
        }
    }

    /// A new session: written only where no record is, under a fresh ID on a clash.
    async fn create(&self) -> Result<Option<()>, SessionError> {
        let engine = self.engine();
        for _ in 0..CREATE_ATTEMPTS {
            let (id, record) = {
                let state = lock(&self.inner.state);
                let (Some(id), Some(record)) = (state.id.clone(), state.record.clone()) else {
                    return Ok(None);
                };
                (id, record)
            };
            self.index_before_write(&id, &record).await?;
            let outcome = engine
                .call("save", engine.store.save(&id, &record, SaveMode::Create))
                .await?;
            match outcome {
                SaveOutcome::Saved(version) => {
                    saved(engine, &version);
                    engine.metrics.count(Count::Created);
                    self.index_after_write(&id, &record).await;
                    let user = lock(&self.inner.state).indexed_as.clone();
                    engine.emit_for(EventKind::Created, Some(&id), user);
                    let mut state = lock(&self.inner.state);
                    state.stored_as = Some(id);
                    state.version = Some(version);
                    state.saved();
                    return Ok(Some(()));
                }
                SaveOutcome::Conflict => {
                    tracing::warn!("new session ID already in the store; choosing another");
                    let fresh = engine.new_id()?;
                    lock(&self.inner.state).id = Some(fresh);
                }
                // Expired by its own cookie before it was ever stored.
                SaveOutcome::Gone | SaveOutcome::Changed => return Ok(None),
            }
        }
        Err(SessionError::Id(format!(
            "{CREATE_ATTEMPTS} generated IDs in a row were already taken"
        )))
    }

    /// The opt-out: last writer wins (connect-redis's behaviour), still never resurrecting
    /// a destroyed session. The guarded commit's one attempt, with nothing expected.
    async fn overwrite(&self, id: &SessionId) -> Result<Option<()>, SessionError> {
        let Some(record) = lock(&self.inner.state).record.clone() else {
            return Ok(None);
        };
        let (sessions, mut outcome) = ([self], [None]);
        let base = Base::Own(0, record);
        // A lone request on its own record: nothing is re-applied, so nothing can fail
        // on its own and `outcome` stays undecided.
        let written = Self::write_together(self.engine(), id, base, None, &sessions, &mut outcome);
        Ok(Box::pin(written).await?.map(|_| ()))
    }

    /// The guarded commit of `sessions`, requests of the session `id` in the order they
    /// joined its line, as one record: their changes re-applied in turn on `latest` (what
    /// this process last wrote), or else on the first one's record, and written by one
    /// compare-and-set, tried again on a fresh record when another writer got there first.
    ///
    /// A request whose `update` cannot run on the merged value (it has another type) is
    /// left out with its error; the others are written.
    pub(super) async fn commit_together(
        engine: &Engine,
        id: &SessionId,
        latest: Option<Latest>,
        sessions: &[&Session],
        outcomes: &mut Outcomes,
    ) -> Option<Latest> {
        // A request whose record is gone (destroyed in its own handler) has nothing to add.
        for (session, outcome) in sessions.iter().zip(outcomes.iter_mut()) {
            if lock(&session.inner.state).record.is_none() {
                *outcome = Some(Ok(None));
            }
        }
        let first = outcomes.iter().position(Option::is_none)?;
        let (base, expected) = match latest {
            Some(latest) => (Base::Written(latest.record), Some(latest.version)),
            None => {
                let state = lock(&sessions[first].inner.state);
                let record = state.record.clone()?;
                (Base::Own(first, record), state.version.clone())
            }
        };
        let result = Self::write_together(engine, id, base, expected, sessions, outcomes).await;
        let (latest, error) = match result {
            Ok(Some(latest)) => {
                fill(outcomes, || Ok(Some(())));
                (Some(latest), None)
            }
            Ok(None) => {
                fill(outcomes, || Ok(None));
                (None, None)
            }
            Err(error) => (None, Some(error)),
        };
        if let Some(error) = error {
            // Every request written together gets the error: the last its original, the
            // others a copy.
            let mut undecided: Vec<_> = outcomes.iter_mut().filter(|o| o.is_none()).collect();
            if let Some((last, others)) = undecided.split_last_mut() {
                for outcome in others {
                    **outcome = Some(Err(error.again()));
                }
                **last = Some(Err(error));
            }
        }
        latest
    }

    /// The compare-and-set attempts of [`commit_together`](Self::commit_together): answers
    /// what was written (`None`: the session is gone). A member left out is given its
    /// outcome in `outcomes`.
    async fn write_together(
        engine: &Engine,
        id: &SessionId,
        mut base: Base,
        mut expected: Option<Version>,
        sessions: &[&Session],
        outcomes: &mut Outcomes,
    ) -> Result<Option<Latest>, SessionError> {
        let mut conflicts = 0;
        let result = 'attempts: {
            for attempt in 1..=MAX_ATTEMPTS {
                let record = merge(&base, sessions, outcomes);
                if undecided(outcomes).next().is_none() {
                    // Every request's change failed on this record: nothing to write.
                    break 'attempts Ok(None);
                }
                for i in undecided(outcomes) {
                    sessions[i].index_before_write(id, &record).await?;
                }
                let mode = SaveMode::Update {
                    expected: expected.as_ref(),
                };
                let outcome = engine
                    .call("save", engine.store.save(id, &record, mode))
                    .await?;
                match outcome {
                    SaveOutcome::Saved(version) => {
                        saved(engine, &version);
                        for i in undecided(outcomes) {
                            sessions[i].index_after_write(id, &record).await;
                            let mut state = lock(&sessions[i].inner.state);
                            state.record = Some(Arc::clone(&record));
                            state.version = Some(version.clone());
                            state.saved();
                        }
                        break 'attempts Ok(Some(Latest { record, version }));
                    }
                    SaveOutcome::Gone | SaveOutcome::Conflict => {
                        tracing::info!(
                            "session was destroyed or expired by another request; not saving it again"
                        );
                        for i in undecided(outcomes) {
                            lock(&sessions[i].inner.state).gone();
                        }
                        break 'attempts Ok(None);
                    }
                    SaveOutcome::Changed => {
                        tracing::debug!(
                            attempt,
                            "session changed in the store since it was loaded; merging and retrying"
                        );
                        conflicts += 1;
                        engine.metrics.count(Count::Conflicts);
                        if attempt == MAX_ATTEMPTS {
                            break;
                        }
                        engine.metrics.count(Count::Retries);
                        if attempt > 1 {
                            // Writers outside this process keep winning: step aside a
                            // little, a different little for each, so they stop meeting.
                            tokio::time::sleep(backoff(attempt)).await;
                        }
                        let Some(fresh) = engine.load(id).await? else {
                            for i in undecided(outcomes) {
                                lock(&sessions[i].inner.state).gone();
                            }
                            break 'attempts Ok(None);
                        };
                        base = Base::Written(Arc::new(fresh.record));
                        expected = Some(fresh.version);
                    }
                }
            }
            engine.metrics.count(Count::GaveUp);
            tracing::warn!(
                attempts = MAX_ATTEMPTS,
                requests = undecided(outcomes).count(),
                "session kept changing in the store while it was committed; answering 503, the changes are not saved"
            );
            Err(SessionError::Conflict {
                attempts: MAX_ATTEMPTS,
            })
        };
        if conflicts > 0 {
            let saved = matches!(result, Ok(Some(_)));
            let attempts = conflicts + u32::from(saved);
            engine.emit(EventKind::Conflict { attempts, saved }, Some(id));
        }
        result
    }
}

/// What a guarded commit's record starts from.
enum Base {
    /// The record of the request at this index, at the version it loaded: its changes
    /// are in it.
    Own(usize, Arc<Record>),
    /// A record as stored (written by this process, or read fresh): every request's
    /// changes are re-applied on it.
    Written(Arc<Record>),
}

/// The indexes of the requests still to be written.
fn undecided(outcomes: &Outcomes) -> impl Iterator<Item = usize> + '_ {
    (0..outcomes.len()).filter(|&i| outcomes[i].is_none())
}

/// The record to write: `base` with the changes of every request still to be written, in
/// order. A request whose changes cannot be re-applied is left out, its error in `outcomes`.
fn merge(base: &Base, sessions: &[&Session], outcomes: &mut Outcomes) -> Arc<Record> {
    let (record, own) = match base {
        // One request on its own record: written as it is, no copy.
        Base::Own(_, own) if undecided(outcomes).count() == 1 => return Arc::clone(own),
        Base::Own(i, own) => (own, Some(*i)),
        Base::Written(record) => (record, None),
    };
    let mut merged = (**record).clone();
    for (i, session) in sessions.iter().enumerate() {
        if Some(i) == own || outcomes[i].is_some() {
            continue;
        }
        let state = lock(&session.inner.state);
        let Some(ours) = state.record.clone() else {
            continue;
        };
        if let Err(error) = state.changes.apply_onto(&ours, &mut merged) {
            tracing::info!(%error, "a request's change cannot be applied to the session as now stored; that request fails, the others are saved");
            outcomes[i] = Some(Err(error));
        }
    }
    // The end of each request reset the expiry of its own record; the merged one needs
    // it too.
    reset_expiry(&mut merged);
    Arc::new(merged)
}

/// Gives every request without an outcome yet the one `make` makes.
fn fill(outcomes: &mut Outcomes, mut make: impl FnMut() -> Result<Option<()>, SessionError>) {
    for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
        *outcome = Some(make());
    }
}

/// Counts a record written, with its size when the version says it.
fn saved(engine: &crate::engine::Engine, version: &crate::store::Version) {
    engine.metrics.count(Count::Saved);
    if let Some(bytes) = version.as_bytes() {
        engine.metrics.record_bytes(bytes.len());
    }
}

/// A pause of up to 0.1 ms × 2^attempt (at most 6.4 ms), varied by the clock's nanoseconds.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 100u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_micros(nanos % ceiling)
}
