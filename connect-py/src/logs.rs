//! The engine's tracing into Python's `logging`.
//!
//! Nothing in the extension installs a tracing subscriber, so tracing (built with its `log` feature) turns
//! every event into a `log` record, and every span's creation into one from the span's module
//! (`step; step="switch" id=…`, INFO, from `connect_core.engine.run`). pyo3-log hands the records to the Python logger named after the Rust
//! module (`connect_core.engine.events`, `connect_docker.images`…), with the level mapped. What the engine
//! traces is already redacted (secrets print as `<redacted>`), so nothing here filters values.

use log::LevelFilter;
use pyo3::prelude::*;
use pyo3_log::{Caching, Logger, ResetHandle};
use std::sync::OnceLock;

static RESET: OnceLock<ResetHandle> = OnceLock::new();

/// Installs the bridge once per process. Span entries and exits (`tracing::span::active`) are left out: a
/// future is entered at every poll, which would be thousands of records per deploy, each taking the GIL.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let logger = Logger::new(py, Caching::LoggersAndLevels)?
        .filter(LevelFilter::Debug)
        .filter_target("tracing::span::active".to_string(), LevelFilter::Off);
    // Another extension in the process may own the `log` facade already; then its logger gets the records.
    if let Ok(handle) = logger.install() {
        let _ = RESET.set(handle);
    }
    Ok(())
}

/// Forgets the Python loggers and levels cached on the Rust side: call it after changing `logging`'s
/// configuration (levels, handlers) once Connect Ops has logged, so the change takes effect.
#[pyfunction]
pub(crate) fn refresh_logging() {
    if let Some(handle) = RESET.get() {
        handle.reset();
    }
}
