//! `MemoryStore` against the conformance suite.

use std::sync::Arc;
use std::time::Duration;

use tessera::{MemoryStore, SaveMode, SaveOutcome, Store};

use crate::store_suite::Made;

async fn make(default_ttl: Duration) -> Made {
    (
        Box::new(()),
        Arc::new(MemoryStore::with_default_ttl(default_ttl)),
    )
}

crate::store_suite!(make);

// The expiry index is lazy: extending a session leaves its index entry where it was, and
// the purge re-files it when that deadline comes up. These check both ways a deadline
// can move, and that the purge still frees what has expired.

fn id() -> tessera::SessionId {
    tessera::SessionId::generate().unwrap()
}

fn in_ms(ms: i64) -> Option<time::OffsetDateTime> {
    Some(time::OffsetDateTime::now_utc() + time::Duration::milliseconds(ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_session_is_refiled_then_purged() {
    let store = MemoryStore::new();
    let id = id();
    let saved = store
        .save(
            &id,
            &crate::store_suite::record(Some(600), 1),
            SaveMode::Create,
        )
        .await
        .unwrap();
    assert!(matches!(saved, SaveOutcome::Saved(_)));
    assert!(store.touch(&id, in_ms(2_000)).await.unwrap());
    // Past the first deadline: the purge ran, found it extended, and kept it.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(store.load(&id).await.unwrap().is_some());
    assert_eq!(store.len(), 1);
    // Past the second: gone, and freed without anyone asking for it.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert!(store.load(&id).await.unwrap().is_none());
    assert_eq!(store.len(), 0, "the purge task frees expired sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shortened_session_expires_at_its_new_deadline() {
    let store = MemoryStore::new();
    let id = id();
    store
        .save(
            &id,
            &crate::store_suite::record(Some(60_000), 1),
            SaveMode::Create,
        )
        .await
        .unwrap();
    let shorter = crate::store_suite::record(Some(500), 2);
    let saved = store
        .save(&id, &shorter, SaveMode::Update { expected: None })
        .await
        .unwrap();
    assert!(matches!(saved, SaveOutcome::Saved(_)));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(store.load(&id).await.unwrap().is_none());
    assert_eq!(
        store.len(),
        0,
        "the purge task woke for the earlier deadline"
    );
}

/// A full store evicts the session that expires first instead of growing without bound.
#[tokio::test]
async fn a_full_store_evicts_the_session_that_expires_first() {
    let store = MemoryStore::with_max_sessions(3);
    let soonest = id();
    store
        .save(
            &soonest,
            &crate::store_suite::record(Some(60_000), 1),
            SaveMode::Create,
        )
        .await
        .unwrap();
    let mut later = Vec::new();
    for n in 0..4 {
        let id = id();
        let rec = crate::store_suite::record(Some(600_000 + n * 1000), 2);
        assert!(matches!(
            store.save(&id, &rec, SaveMode::Create).await.unwrap(),
            SaveOutcome::Saved(_)
        ));
        later.push(id);
    }
    assert_eq!(store.len(), 3);
    assert!(store.load(&soonest).await.unwrap().is_none());
    assert!(store.load(&later[0]).await.unwrap().is_none());
    for id in &later[1..] {
        assert!(store.load(id).await.unwrap().is_some());
    }
}

/// Far more expired sessions than one purge batch: the background task frees them all,
/// a batch per hold of the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_frees_many_expired_sessions_in_batches() {
    let store = MemoryStore::with_max_sessions(1_000_000);
    for n in 0..20_000 {
        let rec = crate::store_suite::record(Some(300 + (n % 50)), 1);
        store.save(&id(), &rec, SaveMode::Create).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !store.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.len(), 0, "the purge left expired sessions behind");
}
