//! In-memory backends: real implementations of every trait that keep state in memory, simulate time, and
//! take injected [`Faults`]. The README's first command and the engine's scenario tests run on them.
//!
//! Time is tokio's: under `#[tokio::test(start_paused = true)]` a container's 5 s start costs no wall time.

mod cache;
mod cluster;
#[cfg(test)]
mod fault_tests;
mod faults;
mod fleet;
mod host;
mod router;
mod runtime;
mod ship;
mod stack;

pub use cache::MemoryCache;
pub use cluster::MemoryCluster;
pub use faults::{FaultKind, Faults};
pub use fleet::{MemoryAppHost, MemoryFleet};
pub use host::MemoryHost;
pub use router::MemoryRouter;
pub use runtime::{AppBehavior, MemoryRuntime};
pub use stack::MemoryStack;

/// Locks a mutex, ignoring poisoning: a panicking test thread must not turn every later call into a panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
