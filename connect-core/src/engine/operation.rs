//! What every operation shares: the deploy lock and its lease around it, settling what an interrupted one
//! left, the intent recorded before each irreversible action, the record in the journal, and the undo of a
//! failure from what the backends show.

use std::future::Future;

use super::intent::Intent;
use super::journal::{Journal, OperationRecord, now_unix_ms};
use super::lock::{Fence, LockInfo};
use super::run::Run;
use super::{Deployer, Event};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Color;
use crate::runtime::labels;
use crate::vocabulary::{OperationKind, Outcome, Step};

/// The deploy lock as an operation holds it.
pub(crate) struct Held {
    pub(crate) fence: Fence,
    pub(crate) took_over: Option<LockInfo>,
}

impl Deployer {
    /// Runs `operation` under the deploy lock, renewing the lock's lease for as long as it runs. If the lease
    /// is lost, the operation is stopped where it is, as a crash would stop it: its intent in the journal
    /// lets the next operation settle what it left.
    pub(crate) async fn with_lock<T, F, Fut>(&self, kind: OperationKind, operation: F) -> Result<T>
    where
        F: FnOnce(Held) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let lease = self.config.policy.lock_lease;
        let taken = self.store.lock(&self.config.holder, kind, lease).await?;
        let fence = taken.fence.clone();
        if let Some(before) = &taken.took_over {
            self.events.warn(
                Step::Lock,
                format!(
                    "took over the deploy lock of {} ({}), whose lease expired",
                    before.holder, before.operation
                ),
            );
        }
        let held = Held {
            fence: taken.fence,
            took_over: taken.took_over,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let keep = self.store.keep_lease(&fence, lease, stopped);
        tokio::pin!(keep);
        let finished = tokio::select! {
            biased;
            result = operation(held) => Ok(result),
            lost = &mut keep => Err(lost),
        };
        let result = match finished {
            Ok(result) => {
                // A renewal in flight finishes its write before the lock goes: dropped mid-write, it would
                // leave its temporary file in the state directory (found by the real SIGKILL test).
                let _ = stop.send(true);
                let _ = keep.await;
                result
            }
            Err(lost) => Err(lost.unwrap_or_else(|| {
                Error::new(
                    ErrorKind::Failed,
                    "deploy.lock",
                    &self.store.lock_path,
                    "the lease stopped being renewed",
                )
            })),
        };
        if let Err(e) = self.store.unlock(&fence).await {
            self.events.warn(
                Step::Lock,
                format!("the deploy lock could not be released ({e}); it expires with its lease"),
            );
        }
        result
    }

    /// The journal as an operation starts from: read, and with what an interrupted operation left settled
    /// first (recorded as that operation's outcome).
    pub(crate) async fn begin(&self, held: &Held) -> Result<Journal> {
        let mut journal = self.store.load().await?;
        self.settle_pending(&mut journal, held).await?;
        self.settle_maintenance(&mut journal, held).await?;
        Ok(journal)
    }

    /// Settles the intent an interrupted operation left in `journal`, records that operation's outcome, and
    /// saves the journal.
    pub(crate) async fn settle_pending(&self, journal: &mut Journal, held: &Held) -> Result<()> {
        if held.took_over.is_some() || journal.intent.is_some() {
            // A holder died here: it may have been killed while writing the journal or the lock, or while its
            // migration ran in a one-off container.
            if let Err(e) = self.store.remove_leftover_temps().await {
                self.events.warn(
                    Step::Reconcile,
                    format!("could not remove the temporary files a killed operation left: {e}"),
                );
            }
            if let Err(e) = self.remove_leftover_one_offs().await {
                self.events.warn(
                    Step::Reconcile,
                    format!("could not remove the one-off containers a killed operation left: {e}"),
                );
            }
        }
        let Some(intent) = journal.intent.clone() else {
            return Ok(());
        };
        let settled = self.settle(journal, &intent).await.map_err(|e| {
            Error::new(
                e.kind(),
                "deploy.reconcile",
                self.store.journal_path(),
                format!(
                    "an interrupted {} ({}) left work to settle, and settling it failed: {}",
                    intent.kind,
                    intent.operation,
                    e.summary()
                ),
            )
            .with_hint("the next operation tries again once the backends answer")
        })?;
        let by = match &held.took_over {
            Some(lock) => format!("; its lock ({}) had expired", lock.holder),
            None => String::new(),
        };
        journal.push(OperationRecord {
            id: intent.operation.clone(),
            kind: intent.kind,
            release: intent.release.clone(),
            live_before: intent.from,
            live_after: settled.live,
            holder: intent.holder.clone(),
            started_unix_ms: intent.since_unix_ms,
            duration_ms: now_unix_ms().saturating_sub(intent.since_unix_ms),
            outcome: Outcome::Interrupted {
                resolution: format!("{}{by}", settled.detail),
            },
            steps: Vec::new(),
            restore_point: None,
            backup: None,
            as_worker: false,
        });
        self.store.save(journal, &held.fence).await?;
        self.events.warn(
            Step::Reconcile,
            format!(
                "{} {} by {} was interrupted; settled: {}",
                intent.kind, intent.operation, intent.holder, settled.detail
            ),
        );
        Ok(())
    }

    /// Stops and removes the app's one-off containers (migrations) a killed operation left running or stopped.
    async fn remove_leftover_one_offs(&self) -> Result<()> {
        let runtime = &self.backends.runtime;
        let app = [
            (labels::APP.to_string(), self.config.app.name.clone()),
            (labels::ONE_OFF.to_string(), "true".to_string()),
        ]
        .into();
        for left in runtime.list(&app).await? {
            self.stop_and_remove(&left.name).await?;
            self.events.warn(
                Step::Reconcile,
                format!(
                    "removed {} ({}), a one-off a killed operation left; if it was a migration, its table says \
                     how far it got",
                    left.name, left.image
                ),
            );
        }
        Ok(())
    }

    /// What `record`'s operation is about to change: `to`, keeping `from` to go back to.
    pub(crate) fn intent(&self, record: &OperationRecord, from: Option<Color>, to: Color) -> Intent {
        Intent {
            operation: record.id.clone(),
            kind: record.kind,
            holder: self.config.holder.clone(),
            release: record.release.clone(),
            from,
            to,
            since_unix_ms: record.started_unix_ms,
            weights: Default::default(),
        }
    }

    /// Records what the operation is about to change, before it changes it. The journal in memory holds the
    /// intent even when the save fails, so the operation's undo settles whatever the save did.
    pub(crate) async fn declare(&self, journal: &mut Journal, fence: &Fence, intent: Intent) -> Result<()> {
        journal.intent = Some(intent);
        self.store.save(journal, fence).await
    }

    /// Writes the operation into the journal, whatever its outcome, and returns it (or the error).
    pub(crate) async fn record(
        &self,
        mut run: Run,
        mut journal: Journal,
        result: Result<()>,
        fence: &Fence,
    ) -> Result<OperationRecord> {
        run.record.live_after = journal.live;
        if let Err(e) = &result
            && run.record.outcome == Outcome::Succeeded
        {
            run.record.outcome = Outcome::Failed {
                step: run.failed_step(),
                kind: e.kind(),
                error: e.to_string(),
            };
        }
        let events = run.events.clone();
        let (record, elapsed) = run.finish();
        journal.push(record.clone());
        events.emit(Event::StepStarted { step: Step::Record });
        let t = tokio::time::Instant::now();
        let saved = self.store.save(&journal, fence).await;
        let save_took = t.elapsed();
        let finished = |succeeded| Event::OperationFinished {
            id: record.id.clone(),
            succeeded,
            duration: elapsed + save_took,
        };
        match saved {
            Ok(()) => {
                events.emit(Event::StepFinished {
                    step: Step::Record,
                    duration: save_took,
                    detail: format!("journal {}", self.store.journal_path()),
                });
                events.emit(finished(result.is_ok()));
                // Told once the journal has the record; the webhooks' time is not the operation's.
                self.notify(&record).await;
            }
            Err(e) => {
                events.emit(Event::StepFailed {
                    step: Step::Record,
                    duration: save_took,
                    error: e.to_string(),
                });
                events.emit(finished(false));
                // The record says what happened even though the journal could not take it.
                self.notify(&record).await;
                let what = if result.is_ok() {
                    "the operation succeeded"
                } else {
                    "the operation failed"
                };
                let settle = if journal.intent.is_some() {
                    "; the journal still holds its intent, so the next operation settles it"
                } else {
                    ""
                };
                return Err(Error::new(
                    e.kind(),
                    "journal.save",
                    self.store.journal_path(),
                    format!(
                        "{what} but the journal could not be written: {e}; {}{settle}",
                        self.where_traffic_is().await
                    ),
                )
                .with_hint(
                    "fix the server's state directory; the next operation reconciles the journal with what \
                     runs",
                ));
            }
        }
        result.map(|()| record)
    }

    /// Settles what a failed operation changed, from what the router and runtime show, and returns the error
    /// to report, saying where traffic really is.
    pub(crate) async fn undo(&self, run: &mut Run, journal: &mut Journal, e: Error) -> Error {
        let step = run.failed_step();
        let Some(intent) = journal.intent.clone() else {
            // Nothing was changed yet.
            return e;
        };
        let mut settled = None;
        let result = run
            .step(Step::SwitchBack, async {
                let s = self.settle(journal, &intent).await?;
                let detail = s.detail.clone();
                settled = Some(s);
                Ok(detail)
            })
            .await;
        match (result, settled) {
            (Ok(()), Some(s)) => {
                let deploy_like = matches!(intent.kind, OperationKind::Deploy | OperationKind::FullRollback);
                if s.moved_back && deploy_like {
                    run.record.outcome = Outcome::RolledBack {
                        step,
                        kind: e.kind(),
                        error: e.to_string(),
                    };
                    rewrap(
                        &e,
                        format!(
                            "failed at {step} and was rolled back; {}: {}",
                            s.detail,
                            e.summary()
                        ),
                    )
                } else {
                    rewrap(&e, format!("aborted at {step}; {}: {}", s.detail, e.summary()))
                }
            }
            (back, _) => {
                let back = back_error(back);
                Error::new(
                    ErrorKind::Failed,
                    "deploy",
                    "",
                    format!(
                        "{} failed at {step} ({}) and undoing it failed too ({back}); {}",
                        intent.kind,
                        e.summary(),
                        self.where_traffic_is().await
                    ),
                )
                .with_hint(
                    "the journal keeps the operation's intent: the next operation settles it by itself once the \
                     backends answer",
                )
            }
        }
    }
}

fn back_error(e: Result<()>) -> String {
    match e {
        Err(e) => e.summary(),
        Ok(()) => "no result".into(),
    }
}

/// The deploy-level error for a step's error: same kind, the step's fix kept.
pub(crate) fn rewrap(e: &Error, message: String) -> Error {
    let wrapped = Error::new(e.kind(), "deploy", "", message);
    match e.hint() {
        Some(hint) => wrapped.with_hint(hint),
        None => wrapped,
    }
}
