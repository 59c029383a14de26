//! `MemoryStore` against the conformance suite.

use std::sync::Arc;
use std::time::Duration;

use tessera::MemoryStore;

use crate::store_suite::Made;

async fn make(default_ttl: Duration) -> Made {
    (
        Box::new(()),
        Arc::new(MemoryStore::with_default_ttl(default_ttl)),
    )
}

crate::store_suite!(make);
