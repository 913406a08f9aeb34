//! Conformance suites: the same checks for every backend of a trait, in-memory and real.
//!
//! Each suite is a plain async function that panics with a message naming the broken promise. The in-memory
//! backends run them in this crate's tests; each real backend's crate runs them against the real program.
//! A fake that drifts from the real thing fails here first.

mod cache;
mod database;
mod host;
mod router;
mod runtime;

pub use cache::cache_suite;
pub use database::database_suite;
pub use host::host_suite;
pub use router::router_suite;
pub use runtime::{RuntimeFixture, runtime_suite};

use crate::error::{ErrorKind, Result};

/// Asserts that `result` failed with `kind`, naming `what` when it did not.
#[track_caller]
pub fn assert_kind<T: std::fmt::Debug>(result: Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a {kind} error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: expected {kind}, got {e}"),
    }
}
