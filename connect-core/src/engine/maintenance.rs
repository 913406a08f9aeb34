//! Maintenance mode: the site answers its maintenance page (HAProxy's 503 with `Retry-After`)
//! for every request while some work runs (a database restore), and is back afterwards whatever the work
//! did: an error, a panic, or the caller dropping the future (best effort: the page is turned off from a
//! spawned task). The journal records the page before it is turned on, so if the process dies, the next
//! operation, which takes the lock over, turns it off.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::journal::{Journal, MaintenanceRecord, now_unix_ms};
use super::lock::Fence;
use super::operation::Held;
use super::run::Run;
use super::{Deployer, Event};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Color;
use crate::router::TrafficRouter;
use crate::vocabulary::{OperationKind, Step};

/// Turns the page off from a spawned task if the work's future is dropped with the page on.
struct OffOnDrop {
    router: Option<Arc<dyn TrafficRouter>>,
}

impl Drop for OffOnDrop {
    fn drop(&mut self) {
        if let (Some(router), Ok(handle)) = (self.router.take(), tokio::runtime::Handle::try_current()) {
            handle.spawn(async move {
                if let Err(e) = router.set_maintenance(false).await {
                    tracing::warn!(error = %e, "the maintenance page of a dropped operation stays on until the next operation");
                }
            });
        }
    }
}

impl Deployer {
    /// Runs `work` under the deploy lock with the site answering its maintenance page, and turns the page off
    /// afterwards whatever `work` returned (a panic in `work` becomes a [`ErrorKind::Failed`] error). The
    /// operation is recorded in the journal as [`OperationKind::Maintenance`]; `reason` says what for.
    ///
    /// The router must have a maintenance page ([`TrafficRouter::set_maintenance`]); if turning it on fails,
    /// `work` does not run.
    pub async fn with_maintenance<T, F, Fut>(&self, reason: &str, work: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.with_lock(OperationKind::Maintenance, |held| {
            self.maintenance_operation(held, reason, work)
        })
        .await
    }

    async fn maintenance_operation<T, F, Fut>(&self, held: Held, reason: &str, work: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut journal = self.begin(&held).await?;
        let live = journal.live;
        let mut run = Run::new(
            &self.events,
            OperationKind::Maintenance,
            None,
            live,
            live.unwrap_or(Color::Blue),
            &self.config.holder,
        );
        let record = MaintenanceRecord {
            operation: run.record.id.clone(),
            holder: self.config.holder.clone(),
            reason: reason.to_string(),
            since_unix_ms: now_unix_ms(),
        };
        let mut output = None;
        let result = run
            .step(Step::Maintenance, async {
                journal.maintenance = Some(record);
                self.store.save(&journal, &held.fence).await?;
                let router = &self.backends.router;
                if let Err(e) = router.set_maintenance(true).await {
                    // It may have applied before failing: off again, and the record cleared only then.
                    let off = self.maintenance_off(&mut journal, &held.fence).await;
                    return Err(with_off(e, off));
                }
                self.events.emit(Event::Maintenance { on: true });
                let mut guard = OffOnDrop {
                    router: Some(router.clone()),
                };
                let worked = AssertUnwindSafe(work()).catch_unwind().await;
                let off = self.maintenance_off(&mut journal, &held.fence).await;
                guard.router = None;
                let worked = worked.unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Err(Error::new(
                        ErrorKind::Failed,
                        "deploy.maintenance",
                        reason,
                        format!("the work panicked: {what}"),
                    ))
                });
                match (worked, off) {
                    (Ok(value), Ok(())) => {
                        output = Some(value);
                        Ok(format!(
                            "{reason} done behind the maintenance page; the site is back"
                        ))
                    }
                    (Ok(_), Err(off)) => Err(off),
                    (Err(e), off) => Err(with_off(e, off)),
                }
            })
            .await;
        self.record(run, journal, result, &held.fence).await?;
        output.ok_or_else(|| {
            Error::new(
                ErrorKind::Failed,
                "deploy.maintenance",
                reason,
                "the work ended without a result",
            )
        })
    }

    /// Turns the page off and clears its record; on failure the record stays, so the next operation tries.
    async fn maintenance_off(&self, journal: &mut Journal, fence: &Fence) -> Result<()> {
        self.backends.router.set_maintenance(false).await.map_err(|e| {
            Error::new(
                e.kind(),
                "deploy.maintenance",
                self.backends.router.backend(),
                format!("the maintenance page could not be turned off: {}", e.summary()),
            )
            .with_hint("the journal keeps the page's record: the next operation turns it off; or turn it off by hand")
        })?;
        self.events.emit(Event::Maintenance { on: false });
        journal.maintenance = None;
        self.store.save(journal, fence).await
    }

    /// Turns off a maintenance page whose operation died with it on (its record is in the journal and we
    /// hold the lock now).
    pub(crate) async fn settle_maintenance(&self, journal: &mut Journal, held: &Held) -> Result<()> {
        let Some(left) = journal.maintenance.clone() else {
            return Ok(());
        };
        self.maintenance_off(journal, &held.fence).await?;
        self.events.warn(
            Step::Reconcile,
            format!(
                "turned off the maintenance page {} ({}, {}) left on",
                left.operation, left.reason, left.holder
            ),
        );
        Ok(())
    }
}

/// The work's error, saying whether the page went off.
fn with_off(e: Error, off: Result<()>) -> Error {
    match off {
        Ok(()) => e,
        Err(off) => Error::new(
            e.kind(),
            "deploy.maintenance",
            "",
            format!("{}; and {}", e.summary(), off.summary()),
        )
        .with_hint("the journal keeps the page's record: the next operation turns it off"),
    }
}
