//! [`Guarded`] for the data services: [`DatabaseCluster`] and [`Cache`].

use async_trait::async_trait;

use super::{Guarded, Repeat};
use crate::cache::{Cache, CacheFigures, CacheInfo};
use crate::database::{BackupRecord, DatabaseCluster, DatabaseFigures, Member, RestorePoint};
use crate::error::Result;
use crate::migrations::MigrationTable;
use crate::model::BackupPolicy;

#[async_trait]
impl<T: DatabaseCluster + ?Sized> DatabaseCluster for Guarded<T> {
    async fn members(&self) -> Result<Vec<Member>> {
        self.call("database.members", "cluster", Repeat::Safe, || {
            self.inner.members()
        })
        .await
    }

    async fn switchover(&self, candidate: Option<&str>) -> Result<Member> {
        // A second switchover would move leadership again; Patroni's own wait takes up to minutes.
        let limit = self.policy.long_timeout;
        let target = candidate.unwrap_or("any replica");
        self.call_within("database.switchover", target, limit, Repeat::Never, || {
            self.inner.switchover(candidate)
        })
        .await
    }

    async fn restore_point(&self, name: &str) -> Result<RestorePoint> {
        // Each call writes a WAL record of its own: two would be two restore points.
        self.call("database.restore_point", name, Repeat::Never, || {
            self.inner.restore_point(name)
        })
        .await
    }

    async fn check_query(&self) -> Result<i64> {
        self.call("database.check_query", "cluster", Repeat::Safe, || {
            self.inner.check_query()
        })
        .await
    }

    async fn backup(&self, label: &str, policy: &BackupPolicy) -> Result<Option<BackupRecord>> {
        // A dump is long and makes a file each time: a failed one is reported, not repeated behind the
        // caller's back. Its bound is the policy's deadline, past the backend's own.
        let limit = self.policy.beyond(policy.deadline);
        self.call_within("database.backup", label, limit, Repeat::Never, || {
            self.inner.backup(label, policy)
        })
        .await
    }

    async fn figures(&self) -> Result<DatabaseFigures> {
        self.call("database.figures", "cluster", Repeat::Safe, || {
            self.inner.figures()
        })
        .await
    }

    async fn migration_tables(&self) -> Result<Option<Vec<MigrationTable>>> {
        self.call("database.migration_tables", "cluster", Repeat::Safe, || {
            self.inner.migration_tables()
        })
        .await
    }
}

#[async_trait]
impl<T: Cache + ?Sized> Cache for Guarded<T> {
    async fn ping(&self) -> Result<()> {
        self.call("cache.ping", "redis", Repeat::Safe, || self.inner.ping())
            .await
    }

    async fn figures(&self) -> Result<CacheFigures> {
        self.call("cache.figures", "redis", Repeat::Safe, || self.inner.figures())
            .await
    }

    async fn info(&self) -> Result<CacheInfo> {
        self.call("cache.info", "redis", Repeat::Safe, || self.inner.info())
            .await
    }

    async fn save(&self) -> Result<CacheInfo> {
        // BGSAVE while one runs is refused by Redis, and a big dataset's save outlasts the call timeout.
        let limit = self.policy.long_timeout;
        self.call_within("cache.save", "redis", limit, Repeat::Never, || self.inner.save())
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::ErrorKind;
    use crate::layers::CallPolicy;
    use crate::memory::MemoryCluster;

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

    /// A cache that never answers, or answers a save after `save_takes`.
    #[derive(Debug)]
    struct Silent {
        save_takes: Duration,
    }

    #[async_trait]
    impl Cache for Silent {
        async fn ping(&self) -> Result<()> {
            std::future::pending().await
        }
        async fn info(&self) -> Result<CacheInfo> {
            std::future::pending().await
        }
        async fn save(&self) -> Result<CacheInfo> {
            tokio::time::sleep(self.save_takes).await;
            Ok(CacheInfo::default())
        }
    }

    fn policy() -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_secs(2),
            long_timeout: Duration::from_secs(60),
            retries: 1,
            backoff: Duration::from_millis(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_backend_times_out() {
        let t = tokio::time::Instant::now();
        let silent = Guarded::new(
            Silent {
                save_takes: Duration::MAX,
            },
            policy(),
        );
        let e = silent.ping().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("no answer within 2s"), "{e}");
        assert!(
            t.elapsed() >= Duration::from_secs(4),
            "two attempts of 2 s each: {:?}",
            t.elapsed()
        );
        let e = silent.save().await.unwrap_err();
        assert!(
            e.to_string().contains("no answer within 60s"),
            "the long bound: {e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_save_is_not_cut_by_the_call_timeout() {
        let slow = Guarded::new(
            Silent {
                save_takes: Duration::from_secs(30),
            },
            policy(),
        );
        slow.save().await.expect("30 s is within the long bound");
    }
}
