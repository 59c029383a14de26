//! A pooled PostgreSQL connection for one call, and the errors of getting one: a
//! connection whose call was cut short by its timeout is closed, never handed to the next
//! request mid-statement.

use deadpool_postgres::{ClientWrapper, Object, Pool};

use crate::store::StoreError;

/// A pooled connection for one call. Dropped before [`Checkout::release`] (the call was
/// cut short by its timeout, mid-statement), the connection is closed instead of returned
/// to the pool, so that no request gets a connection still busy with a statement nobody
/// waits for.
pub(super) struct Checkout {
    object: Option<Object>,
}

impl Checkout {
    pub(super) fn new(object: Object) -> Self {
        Checkout {
            object: Some(object),
        }
    }

    pub(super) fn client(&self) -> &ClientWrapper {
        self.object
            .as_deref()
            .expect("a checkout holds its connection until it is released or dropped")
    }

    /// The statements ended (well or not): the connection may serve other calls. The pool
    /// drops it on its next checkout if it has closed meanwhile.
    pub(super) fn release(mut self) {
        drop(self.object.take());
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            drop(Object::take(object));
        }
    }
}

/// An error and its causes, one line: tokio-postgres's own message is only its kind ("db
/// error"), the server's message is its source.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A connection from `pool`, opening one if none is idle.
pub(super) async fn checkout(
    pool: &Pool,
    label: &str,
    op: &'static str,
) -> Result<Checkout, StoreError> {
    match pool.get().await {
        Ok(object) => Ok(Checkout::new(object)),
        Err(deadpool_postgres::PoolError::Backend(e)) => Err(StoreError::backend(
            label,
            op,
            format!(
                "cannot connect to PostgreSQL: {}; check that it is running and reachable",
                describe(&e)
            ),
        )),
        Err(e) => Err(StoreError::backend(label, op, e.to_string())),
    }
}
