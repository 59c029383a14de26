//! What the SQL stores' tests share: one database server for the tests that overlap in
//! time (starting one per test would cost a second or more each), and a fresh table name
//! per test, so the tests on one server never see each other's rows.

use std::sync::{Arc, Mutex, Weak};

/// The server in `slot`, started by `start` when none is running. The first test starts
/// it, the last one to finish stops it (a plain `static` is never dropped, so it would
/// leave the server running after the test binary exits).
pub async fn server<T: Send + Sync + 'static>(
    slot: &'static Mutex<Weak<T>>,
    start: fn() -> T,
) -> Arc<T> {
    tokio::task::spawn_blocking(move || {
        let mut current = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = current.upgrade() {
            return running;
        }
        let started = Arc::new(start());
        *current = Arc::downgrade(&started);
        started
    })
    .await
    .unwrap()
}

/// A table name no other test uses: `t_` and 20 characters of a fresh session ID, in
/// lower case (so the name needs no quoting to be typed in a SQL shell).
pub fn table() -> String {
    let id = tessera::SessionId::generate().unwrap();
    format!(
        "t_{}",
        &id.as_str()[..20].to_ascii_lowercase().replace('-', "_")
    )
}
