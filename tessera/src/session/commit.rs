//! Writing a session: a create for a new one, the guarded commit for a loaded one.
//!
//! The guarded commit is a compare-and-set: the store writes only if the record it holds
//! is still the version this request loaded ([`SaveMode::Update`]'s `expected`). When it
//! is not (another request, instance or Node app wrote meanwhile), this request's changes
//! are re-applied per key to the fresh record (`Changes::rebase`) and the write is tried
//! again, at most [`MAX_ATTEMPTS`] times. Commits of one session within this process wait
//! their turn ([`Commits`](crate::engine::Commits)) and start from the last one's record,
//! so only a writer outside this process can make a compare-and-set fail.

use std::sync::Arc;
use std::time::Duration;

use super::state::{lock, reset_expiry};
use super::Session;
use crate::engine::{Latest, Slot};
use crate::error::SessionError;
use crate::events::metric::Count;
use crate::events::EventKind;
use crate::id::SessionId;
use crate::store::{SaveMode, SaveOutcome};

/// How many times a guarded commit is tried before the request gives up with
/// [`SessionError::Conflict`] (503). Each retry follows a write by a process outside this
/// one, so reaching it means several other writers saved this session within a few round
/// trips.
pub(crate) const MAX_ATTEMPTS: u32 = 8;

/// How many fresh IDs a new session tries when the store already holds its ID.
const CREATE_ATTEMPTS: u32 = 3;

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
        // Boxed: the commit's state would otherwise be part of every request's future.
        let slot = self.engine().commits.slot(&id);
        let result = Box::pin(self.commit_in_line(&id, &slot)).await;
        self.engine().commits.release(&id, slot);
        result
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
    /// a destroyed session.
    async fn overwrite(&self, id: &SessionId) -> Result<Option<()>, SessionError> {
        let engine = self.engine();
        let Some(record) = lock(&self.inner.state).record.clone() else {
            return Ok(None);
        };
        let mode = SaveMode::Update { expected: None };
        self.index_before_write(id, &record).await?;
        let outcome = engine
            .call("save", engine.store.save(id, &record, mode))
            .await?;
        match outcome {
            SaveOutcome::Saved(version) => {
                saved(engine, &version);
                self.index_after_write(id, &record).await;
                let mut state = lock(&self.inner.state);
                state.version = Some(version);
                state.saved();
                Ok(Some(()))
            }
            _ => {
                lock(&self.inner.state).gone();
                Ok(None)
            }
        }
    }

    /// The guarded commit, holding this session's place in line.
    async fn commit_in_line(
        &self,
        id: &SessionId,
        slot: &Slot,
    ) -> Result<Option<()>, SessionError> {
        let engine = self.engine();
        let mut latest = slot.lock().await;
        // A request of this session committed since this one loaded: start from what it
        // wrote rather than fail a compare-and-set to learn it.
        if let Some(last) = latest.as_ref() {
            let mut state = lock(&self.inner.state);
            if state.version.as_ref() != Some(&last.version) {
                self.rebase_onto(&mut state, (*last.record).clone(), last.version.clone())?;
            }
        }
        let result = self.commit_attempts(id, &mut latest).await;
        let (saved, conflicts) = match &result {
            Ok((written, conflicts)) => (*written, *conflicts),
            Err((_, conflicts)) => (false, *conflicts),
        };
        if conflicts > 0 {
            let attempts = conflicts + u32::from(saved);
            engine.emit(EventKind::Conflict { attempts, saved }, Some(id));
        }
        match result {
            Ok((written, _)) => Ok(written.then_some(())),
            Err((error, _)) => Err(error),
        }
    }

    /// The attempts of a guarded commit; answers whether the record was written and how
    /// many conflicts it met (with the error, when it failed).
    async fn commit_attempts(
        &self,
        id: &SessionId,
        latest: &mut Option<Latest>,
    ) -> Result<(bool, u32), (SessionError, u32)> {
        let engine = self.engine();
        let mut conflicts = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let (record, expected) = {
                let state = lock(&self.inner.state);
                let Some(record) = state.record.clone() else {
                    return Ok((false, conflicts));
                };
                (record, state.version.clone())
            };
            let mode = SaveMode::Update {
                expected: expected.as_ref(),
            };
            self.index_before_write(id, &record)
                .await
                .map_err(|e| (e, conflicts))?;
            let outcome = engine
                .call("save", engine.store.save(id, &record, mode))
                .await
                .map_err(|e| (e.into(), conflicts))?;
            match outcome {
                SaveOutcome::Saved(version) => {
                    saved(engine, &version);
                    self.index_after_write(id, &record).await;
                    *latest = Some(Latest {
                        record,
                        version: version.clone(),
                    });
                    let mut state = lock(&self.inner.state);
                    state.version = Some(version);
                    state.saved();
                    return Ok((true, conflicts));
                }
                SaveOutcome::Gone | SaveOutcome::Conflict => {
                    tracing::info!(
                        "session was destroyed or expired by another request; not saving it again"
                    );
                    *latest = None;
                    lock(&self.inner.state).gone();
                    return Ok((false, conflicts));
                }
                SaveOutcome::Changed => {
                    tracing::debug!(
                        attempt,
                        "session changed in the store since it was loaded; merging and retrying"
                    );
                    conflicts += 1;
                    engine.metrics.count(Count::Conflicts);
                    *latest = None;
                    if attempt == MAX_ATTEMPTS {
                        break;
                    }
                    engine.metrics.count(Count::Retries);
                    if attempt > 1 {
                        // Writers outside this process keep winning: step aside a little,
                        // a different little for each, so they stop meeting.
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    let fresh = engine.load(id).await.map_err(|e| (e.into(), conflicts))?;
                    let Some(fresh) = fresh else {
                        lock(&self.inner.state).gone();
                        return Ok((false, conflicts));
                    };
                    let mut state = lock(&self.inner.state);
                    self.rebase_onto(&mut state, fresh.record, fresh.version)
                        .map_err(|e| (e, conflicts))?;
                }
            }
        }
        engine.metrics.count(Count::GaveUp);
        tracing::warn!(
            attempts = MAX_ATTEMPTS,
            "session kept changing in the store while this request committed; answering 503, its changes are not saved"
        );
        Err((
            SessionError::Conflict {
                attempts: MAX_ATTEMPTS,
            },
            conflicts,
        ))
    }

    /// Re-applies this request's changes on `fresh`, read as `version`, and makes that the
    /// record to commit.
    fn rebase_onto(
        &self,
        state: &mut super::state::State,
        fresh: crate::record::Record,
        version: crate::store::Version,
    ) -> Result<(), SessionError> {
        let Some(ours) = state.record.clone() else {
            return Ok(());
        };
        let mut merged = state.changes.rebase(&ours, fresh)?;
        // The end of the request resets the expiry; the fresh cookie needs it too.
        reset_expiry(&mut merged);
        state.record = Some(Arc::new(merged));
        state.version = Some(version);
        Ok(())
    }
}

/// Counts a record written, with its size when the version says it.
fn saved(engine: &crate::engine::Engine, version: &crate::store::Version) {
    engine.metrics.count(Count::Saved);
    if let Some(bytes) = version.as_bytes() {
        engine.metrics.record_bytes(bytes.len());
    }
}

/// A pause of up to 0.1 ms × 2^attempt, varied by the clock's nanoseconds.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 100u64 << attempt.min(8);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_micros(nanos % ceiling)
}
