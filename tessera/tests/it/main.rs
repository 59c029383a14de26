//! Tessera's integration tests, in one binary (one link step instead of many on a 2-core
//! machine). Each module mounts the real layer in a real server, or talks to a real store.

mod guarded_commit;
mod hardening;
mod http;
mod index_suite;
mod memory;
mod mysql;
mod postgres;
mod redis;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql_shared;
mod sqlite;
mod store_suite;
mod support;
mod web;
