//! Timeouts, retries and tracing as wrappers that implement the same traits, so no backend repeats them.
//!
//! [`Guarded`] wraps any of the five backends. Every call gets a tracing span and a time bound; calls that
//! are safe to repeat (reads, and setting something to a value) are retried a bounded number of times on
//! a retryable error; the others (starting a container, running a program, a restore point, a
//! switchover…) never are, since a lost answer does not mean nothing happened.
//!
//! The bound of a call is [`CallPolicy::timeout`], except for calls that may legitimately last longer:
//!
//! | calls | bound |
//! | --- | --- |
//! | with a deadline of their own: `runtime.wait_healthy`, `runtime.run_once` (the job's), `runtime.stop` (the grace), the router's `wait_live`, `wait_drained`, `switch` | that deadline plus `timeout` (the calls around the wait) |
//! | `host.put_file` | `timeout` without progress: the upload is cut only when no byte of it was taken for that long, however big the file |
//! | `host.get_file` | opening it: `timeout`; the returned stream fails when no byte comes for `timeout` |
//! | `database.switchover`, `cache.save` | [`CallPolicy::long_timeout`]: they have no deadline parameter, and Patroni's switchover or a big RDB save takes minutes |
//!
//! `host.run` and `runtime.exec` run programs whose length nobody here knows; the engine runs probes with
//! them, so they get `timeout`. Run long programs (a backup) on the unguarded backend, or guard it with a
//! policy of a longer `timeout`.
//!
//! ```
//! use std::sync::Arc;
//! use connect_core::layers::{CallPolicy, Guarded};
//! use connect_core::memory::MemoryRouter;
//! use connect_core::TrafficRouter;
//!
//! let router: Arc<dyn TrafficRouter> = Arc::new(Guarded::new(MemoryRouter::new("be_app"), CallPolicy::default()));
//! // Or every backend of a deployer at once: `backends.guarded(CallPolicy::default())`.
//! ```

mod grouped;
mod host;
mod router;
mod runtime;
mod services;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

pub use grouped::{GroupedRouter, ServerGroup};

use crate::engine::Backends;
use crate::error::{Error, ErrorKind, Result};

/// How each call through a [`Guarded`] backend is bounded and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallPolicy {
    /// How long one attempt may take before it counts as [`ErrorKind::Timeout`]; for calls with a deadline
    /// of their own, what is allowed beyond that deadline.
    pub timeout: Duration,
    /// The bound of calls that take long and have no deadline parameter: a database switchover, a cache
    /// save.
    pub long_timeout: Duration,
    /// Extra attempts for calls that are safe to repeat (reads, and setting a state to a value), when the
    /// error is retryable.
    pub retries: u32,
    /// The pause before the first retry; it doubles for each further one.
    pub backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(10),
            // Patroni's own switchover wait is 90 s, then the new leader must take writes (up to 30 s).
            long_timeout: Duration::from_secs(300),
            retries: 2,
            backoff: Duration::from_millis(100),
        }
    }
}

impl CallPolicy {
    /// The bound of a call that waits up to `deadline` itself.
    fn beyond(&self, deadline: Duration) -> Duration {
        deadline.saturating_add(self.timeout)
    }
}

/// Whether a call may be sent again after a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// A read, or setting something to a value: twice is the same as once.
    Safe,
    /// Twice is not once (start, run, remove, switchover…), or the call has a deadline of its own that a
    /// second attempt would overrun.
    Never,
}

/// A backend wrapped with a [`CallPolicy`] and a tracing span per call.
///
/// It holds the backend in an [`Arc`], so a shared `Arc<dyn Trait>` can be wrapped as it is
/// ([`Guarded::shared`]) and the wrapper is itself an `Arc<dyn Trait>`'s worth of backend.
pub struct Guarded<T: ?Sized> {
    inner: Arc<T>,
    policy: CallPolicy,
}

impl<T> Guarded<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, policy: CallPolicy) -> Guarded<T> {
        Guarded::shared(Arc::new(inner), policy)
    }
}

impl<T: ?Sized> Guarded<T> {
    /// Wraps a shared backend, e.g. an `Arc<dyn Host>`.
    pub fn shared(inner: Arc<T>, policy: CallPolicy) -> Guarded<T> {
        Guarded { inner, policy }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The policy.
    pub fn policy(&self) -> CallPolicy {
        self.policy
    }

    /// A call bounded by [`CallPolicy::timeout`].
    async fn call<R, F, Fut>(&self, operation: &'static str, target: &str, repeat: Repeat, f: F) -> Result<R>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        self.call_within(operation, target, self.policy.timeout, repeat, f)
            .await
    }

    /// A call bounded by `limit`, in a span, retried when `repeat` allows and the error is retryable.
    async fn call_within<R, F, Fut>(
        &self,
        operation: &'static str,
        target: &str,
        limit: Duration,
        repeat: Repeat,
        f: F,
    ) -> Result<R>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let span = tracing::debug_span!("backend", operation, target);
        async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = match tokio::time::timeout(limit, f()).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        operation,
                        target,
                        format!("no answer within {limit:?}"),
                    )),
                };
                match result {
                    Err(e)
                        if repeat == Repeat::Safe && e.is_retryable() && attempt <= self.policy.retries =>
                    {
                        tracing::debug!(attempt, error = %e, "retrying");
                        // Backing off IS the behaviour here: give a restarting peer time to come back.
                        tokio::time::sleep(self.policy.backoff * 2u32.saturating_pow(attempt - 1)).await;
                    }
                    other => return other,
                }
            }
        }
        .instrument(span)
        .await
    }
}

impl<T: ?Sized> Clone for Guarded<T> {
    fn clone(&self) -> Self {
        Guarded {
            inner: Arc::clone(&self.inner),
            policy: self.policy,
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Guarded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Backends {
    /// Every backend wrapped in a [`Guarded`] with `policy`: each call bounded, repeatable ones retried,
    /// each in a tracing span. Wrap once: guarding guarded backends multiplies the retries.
    pub fn guarded(self, policy: CallPolicy) -> Backends {
        Backends {
            host: Arc::new(Guarded::shared(self.host, policy)),
            runtime: Arc::new(Guarded::shared(self.runtime, policy)),
            router: Arc::new(Guarded::shared(self.router, policy)),
            database: Arc::new(Guarded::shared(self.database, policy)),
            cache: Arc::new(Guarded::shared(self.cache, policy)),
        }
    }
}
