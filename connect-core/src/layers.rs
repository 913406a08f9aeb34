//! Timeouts, retries and tracing as wrappers that implement the same traits, so no backend repeats them.
//!
//! ```
//! use std::sync::Arc;
//! use connect_core::layers::{CallPolicy, Guarded};
//! use connect_core::memory::MemoryRouter;
//! use connect_core::TrafficRouter;
//!
//! let router: Arc<dyn TrafficRouter> = Arc::new(Guarded::new(MemoryRouter::new("be_app"), CallPolicy::default()));
//! ```

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;

use crate::cache::{Cache, CacheInfo};
use crate::database::{DatabaseCluster, Member, RestorePoint};
use crate::error::{Error, ErrorKind, Result};
use crate::router::{AdminState, ServerStatus, TrafficRouter};

/// How each call through a [`Guarded`] backend is bounded and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// How long one attempt may take before it counts as [`ErrorKind::Timeout`].
    pub timeout: Duration,
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
            retries: 2,
            backoff: Duration::from_millis(100),
        }
    }
}

/// A backend wrapped with a [`CallPolicy`] and a tracing span per call.
#[derive(Debug, Clone)]
pub struct Guarded<T> {
    inner: T,
    policy: CallPolicy,
}

impl<T> Guarded<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, policy: CallPolicy) -> Guarded<T> {
        Guarded { inner, policy }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    async fn call<R, F, Fut>(
        &self,
        operation: &'static str,
        target: &str,
        repeatable: bool,
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
                let result = match tokio::time::timeout(self.policy.timeout, f()).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        operation,
                        target,
                        format!("no answer within {:?}", self.policy.timeout),
                    )),
                };
                match result {
                    Err(e) if repeatable && e.is_retryable() && attempt <= self.policy.retries => {
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

#[async_trait]
impl<T: TrafficRouter> TrafficRouter for Guarded<T> {
    fn backend(&self) -> &str {
        self.inner.backend()
    }

    async fn servers(&self) -> Result<Vec<ServerStatus>> {
        self.call("router.servers", self.inner.backend(), true, || {
            self.inner.servers()
        })
        .await
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        // Setting a state twice is the same as once, so it may be retried.
        self.call("router.set_state", server, true, || {
            self.inner.set_state(server, state)
        })
        .await
    }

    async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
        self.call("router.set_weight", server, true, || {
            self.inner.set_weight(server, weight)
        })
        .await
    }

    async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
        self.call("router.set_address", server, true, || {
            self.inner.set_address(server, address, port)
        })
        .await
    }
}

#[async_trait]
impl<T: DatabaseCluster> DatabaseCluster for Guarded<T> {
    async fn members(&self) -> Result<Vec<Member>> {
        self.call("database.members", "cluster", true, || self.inner.members())
            .await
    }

    async fn switchover(&self, candidate: Option<&str>) -> Result<Member> {
        // A switchover is not repeatable: a second one would move leadership again. Patroni's own wait
        // takes seconds, so no timeout shorter than the caller's is imposed either.
        self.inner
            .switchover(candidate)
            .instrument(tracing::debug_span!("backend", operation = "database.switchover"))
            .await
    }

    async fn restore_point(&self, name: &str) -> Result<RestorePoint> {
        self.call("database.restore_point", name, false, || {
            self.inner.restore_point(name)
        })
        .await
    }

    async fn check_query(&self) -> Result<i64> {
        self.call("database.check_query", "cluster", true, || {
            self.inner.check_query()
        })
        .await
    }
}

#[async_trait]
impl<T: Cache> Cache for Guarded<T> {
    async fn ping(&self) -> Result<()> {
        self.call("cache.ping", "redis", true, || self.inner.ping()).await
    }

    async fn info(&self) -> Result<CacheInfo> {
        self.call("cache.info", "redis", true, || self.inner.info()).await
    }

    async fn save(&self) -> Result<CacheInfo> {
        // BGSAVE while one runs is refused by Redis, and a save may legitimately outlast the call timeout.
        self.inner
            .save()
            .instrument(tracing::debug_span!("backend", operation = "cache.save"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryCluster, MemoryRouter};

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_of_repeatable_calls_are_retried() {
        let router = MemoryRouter::new("be_app");
        router.add_server("app1", "127.0.0.1:3000");
        router
            .faults()
            .fail_times("router.servers", ErrorKind::Unavailable, 2);
        let guarded = Guarded::new(router.clone(), CallPolicy::default());
        assert_eq!(
            guarded.servers().await.unwrap().len(),
            1,
            "third attempt succeeds"
        );

        router
            .faults()
            .fail_times("router.servers", ErrorKind::Unavailable, 3);
        assert_eq!(
            guarded.servers().await.unwrap_err().kind(),
            ErrorKind::Unavailable,
            "retries are bounded"
        );

        router.faults().clear("router.servers");
        router
            .faults()
            .fail_times("router.set_state", ErrorKind::NotFound, 1);
        let e = guarded.set_state("app1", AdminState::Ready).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::NotFound,
            "a non-retryable error is returned at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn non_repeatable_calls_are_not_retried() {
        let cluster = MemoryCluster::default();
        cluster
            .faults()
            .fail_times("database.restore_point", ErrorKind::Unavailable, 1);
        let guarded = Guarded::new(cluster.clone(), CallPolicy::default());
        assert_eq!(
            guarded.restore_point("x").await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        assert!(cluster.restore_points().is_empty());
    }

    #[derive(Debug)]
    struct Silent;

    #[async_trait]
    impl Cache for Silent {
        async fn ping(&self) -> Result<()> {
            std::future::pending().await
        }
        async fn info(&self) -> Result<CacheInfo> {
            std::future::pending().await
        }
        async fn save(&self) -> Result<CacheInfo> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_backend_times_out() {
        let policy = CallPolicy {
            timeout: Duration::from_secs(2),
            retries: 1,
            backoff: Duration::from_millis(10),
        };
        let t = tokio::time::Instant::now();
        let e = Guarded::new(Silent, policy).ping().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("no answer within 2s"), "{e}");
        assert!(
            t.elapsed() >= Duration::from_secs(4),
            "two attempts of 2 s each: {:?}",
            t.elapsed()
        );
    }
}
