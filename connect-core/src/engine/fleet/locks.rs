//! Every host's deploy lock for the length of a fleet operation: taken first on the first host, then on the
//! rest in parallel, renewed alongside, released in parallel.

use std::future::Future;
use std::pin::Pin;

use super::{Fleet, Member};
use crate::engine::operation::Held;
use crate::error::{Error, Result};
use crate::vocabulary::{OperationKind, Step};

pub(super) type Locked<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

impl Fleet {
    /// Runs `operation` holding every host's deploy lock. The first host's is taken first, alone: two fleets
    /// over the same hosts meet there, and the one that gets it takes the others (in parallel, one round trip
    /// per host at once rather than one after another), so neither holds one the other waits for. A lock that
    /// cannot be taken releases the others and fails before anything changes.
    ///
    /// Each lease is renewed alongside the operation. Unlike one host's operation, a lease lost on one host
    /// (its connection cut) does not stop the others': that host's writes are fenced by its token, its part
    /// fails, and the policy decides the rest.
    pub(super) async fn with_locks<'a, T>(
        &'a self,
        kind: OperationKind,
        operation: impl FnOnce(Vec<Held>) -> Locked<'a, T>,
    ) -> Result<T> {
        let lease = self.config.policy.lock_lease;
        let take = |m: &'a Member| async move {
            let d = &m.deployer;
            let taken = d.store.lock(&d.config.holder, kind, lease).await?;
            if let Some(before) = &taken.took_over {
                d.events.warn(
                    Step::Lock,
                    format!(
                        "took over the deploy lock of {} ({}), whose lease expired",
                        before.holder, before.operation
                    ),
                );
            }
            Ok::<_, Error>(Held {
                fence: taken.fence,
                took_over: taken.took_over,
            })
        };
        let (first, rest) = self.members.split_first().ok_or_else(|| {
            Error::invalid("fleet.lock", "app_hosts", "a fleet needs at least one app host")
        })?;
        let first_taken = take(first).await;
        let mut taken = vec![first_taken];
        if taken[0].is_ok() {
            taken.extend(futures::future::join_all(rest.iter().map(take)).await);
        }
        let mut helds: Vec<Held> = Vec::with_capacity(self.members.len());
        let mut got = Vec::new();
        let mut refused = None;
        for (m, t) in self.members.iter().zip(taken) {
            match t {
                Ok(held) => {
                    got.push((m, held.fence.clone()));
                    helds.push(held);
                }
                Err(e) if refused.is_none() => refused = Some((m, e)),
                Err(_) => {}
            }
        }
        if let Some((m, e)) = refused {
            let unlocks = got.iter().map(|(m, fence)| m.deployer.store.unlock(fence));
            // Best effort: a lock not released expires with its lease.
            let _ = futures::future::join_all(unlocks).await;
            return Err(Error::new(
                e.kind(),
                // One host's operation word, so callers (and exit codes) treat it alike.
                "deploy.lock",
                &m.name,
                format!(
                    "the deploy lock of {} could not be taken: {}",
                    m.name,
                    e.summary()
                ),
            )
            .with_hint(
                e.hint()
                    .unwrap_or("nothing was changed on any host; run again once it answers"),
            ));
        }
        let fences: Vec<_> = helds.iter().map(|h| h.fence.clone()).collect();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let keeps = self.members.iter().zip(&fences).map(|(m, fence)| {
            let stopped = stopped.clone();
            async move {
                if let Some(lost) = m.deployer.store.keep_lease(fence, lease, stopped).await {
                    m.deployer.events.warn(
                        Step::Lock,
                        format!("the lease on {} was not renewed: {lost}", m.name),
                    );
                }
            }
        });
        let run = async {
            let result = operation(helds).await;
            // Renewals in flight finish their write before the locks go.
            let _ = stop.send(true);
            result
        };
        let (result, _) = tokio::join!(run, futures::future::join_all(keeps));
        self.unlock_all_fences(&fences).await;
        result
    }

    /// Releases every host's lock, in parallel.
    async fn unlock_all_fences(&self, fences: &[crate::engine::lock::Fence]) {
        let unlocks = self.members.iter().zip(fences).map(|(m, fence)| async move {
            if let Err(e) = m.deployer.store.unlock(fence).await {
                m.deployer.events.warn(
                    Step::Lock,
                    format!("the deploy lock could not be released ({e}); it expires with its lease"),
                );
            }
        });
        futures::future::join_all(unlocks).await;
    }
}
