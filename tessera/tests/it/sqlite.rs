//! `SqliteStore` against the conformance suite, plus its own tests.
