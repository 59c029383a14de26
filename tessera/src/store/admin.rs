//! The admin side of a store (`tessera sessions …`): a walk over every stored session,
//! page by page, never on a request path.
//!
//! A walk hands each page to a [`Walker`] and forgets it, so memory stays bounded by one
//! page whatever the store holds (Redis `SCAN`, SQL keyset pagination, the memory map in
//! slices). Only sessions are reported: a key under the store's prefix whose suffix is not
//! a well-formed session ID, or whose value does not decode as a session (another
//! application's data, a hand-written key, a key of another Redis type), is counted as
//! foreign and never listed or deleted.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::id::SessionId;
use crate::record::Record;

/// How many entries a store reads per page of a walk, unless it has a setting of its own.
pub const PAGE_SIZE: usize = 500;

/// One stored session, as a walk finds it.
#[derive(Debug)]
pub struct Listed {
    /// The session ID: a bearer credential, for administrators' eyes only.
    pub id: SessionId,
    /// The stored value's size in bytes.
    pub bytes: usize,
    /// Time left before the store drops it, `None` when it never expires.
    pub ttl: Option<Duration>,
    /// The session itself.
    pub record: Record,
}

/// One page of a walk.
#[derive(Debug, Default)]
pub struct Page {
    /// The sessions of this page.
    pub sessions: Vec<Listed>,
    /// Entries of this page under the store's prefix that are not sessions: skipped.
    pub foreign: u64,
}

/// What a walk does with each page: print it, count it, sum it up.
pub trait Walker: Send {
    /// Called once per page, in store order; `Break` ends the walk early (`list --limit`).
    fn page(&mut self, page: &Page) -> ControlFlow<()>;
}

impl<F: FnMut(&Page) -> ControlFlow<()> + Send> Walker for F {
    fn page(&mut self, page: &Page) -> ControlFlow<()> {
        self(page)
    }
}

/// What a whole walk found (and deleted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Sessions seen.
    pub sessions: u64,
    /// Foreign entries seen and left alone.
    pub foreign: u64,
    /// Sessions deleted (a walk with `delete`); a session that changed or went away
    /// between the read and the delete may be missing from it.
    pub deleted: u64,
    /// The walker stopped the walk before the end.
    pub stopped: bool,
}

impl Walked {
    /// Adds one page's figures; answers whether the walk goes on.
    pub fn add(&mut self, page: &Page, deleted: u64, go_on: ControlFlow<()>) -> bool {
        self.sessions += page.sessions.len() as u64;
        self.foreign += page.foreign;
        self.deleted += deleted;
        self.stopped = go_on.is_break();
        !self.stopped
    }
}

/// One page of an SQL store's keyset walk, from its rows as read (key, stored value, time
/// left): the sessions, counted foreign rows, and the rows that were sessions (key and
/// value), which a clearing walk deletes by both, so a row changed meanwhile stays.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn sql_page(
    rows: impl IntoIterator<Item = (String, Vec<u8>, Option<Duration>)>,
) -> (Page, Vec<(String, Vec<u8>)>) {
    let mut page = Page::default();
    let mut read = Vec::new();
    for (key, value, ttl) in rows {
        let session = SessionId::parse(&key)
            .and_then(|id| Record::from_json(&value).ok().map(|record| (id, record)));
        let Some((id, record)) = session else {
            page.foreign += 1;
            continue;
        };
        page.sessions.push(Listed {
            id,
            bytes: value.len(),
            ttl,
            record,
        });
        read.push((key, value));
    }
    (page, read)
}
