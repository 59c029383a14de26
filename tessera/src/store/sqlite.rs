//! `SqliteStore`: the embedded, persistent store (in progress).
