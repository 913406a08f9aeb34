//! Instant rollback (one router call back to the warm standby) and retiring the standby.

use crate::engine::Deployer;
use crate::engine::HookPoint;
use crate::engine::journal::{Journal, OperationRecord};
use crate::engine::operation::Held;
use crate::engine::operation::rewrap;
use crate::engine::run::Run;
use crate::engine::steps::watch::{Baseline, Watched};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Color;
use crate::vocabulary::{OperationKind, Outcome, Step};

impl Deployer {
    pub(crate) async fn instant_rollback(&self, held: Held) -> Result<OperationRecord> {
        let mut journal = self.begin(&held).await?;
        let live = journal.live;
        let target = live.map_or(Color::Blue, Color::other);
        let mut run = Run::new(
            &self.events,
            OperationKind::InstantRollback,
            None,
            live,
            target,
            &self.config.holder,
        );
        let result = match self.instant_rollback_steps(&mut run, &mut journal, &held).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.undo(&mut run, &mut journal, e).await),
        };
        self.record(run, journal, result, &held.fence).await
    }

    async fn instant_rollback_steps(&self, run: &mut Run, journal: &mut Journal, held: &Held) -> Result<()> {
        let (b, cfg) = (&self.backends, &self.config);
        run.step(Step::Reconcile, self.reconcile(journal)).await?;
        let no_standby = |why: String| {
            Error::new(ErrorKind::Refused, "deploy.rollback", "standby", why).with_hint(
                "roll back fully instead: rollback_to(<version>) redeploys any release in the journal",
            )
        };
        let live = journal
            .live
            .ok_or_else(|| no_standby("nothing is deployed yet".into()))?;
        let standby = journal
            .standby()
            .ok_or_else(|| no_standby(format!("{live} has no warm standby")))?;
        let rec = journal.slots[&standby].clone();
        run.record.release = Some(rec.release.clone());
        let slot = cfg.topology.slot(standby);
        run.step(Step::HealthGate, async {
            match b.runtime.inspect(&slot.container).await? {
                Some(c) if c.is_serving() => {
                    Ok(format!("{} {} serves {}", c.name, c.health, rec.release.version))
                }
                Some(c) => Err(no_standby(format!("the standby {} is {}", c.name, c.health))),
                None => Err(no_standby(format!("the standby {} is gone", slot.container))),
            }
        })
        .await?;
        let intent = self.intent(&run.record, Some(live), standby);
        let events = run.events.clone();
        let watch = &cfg.policy.watch;
        let mut baseline = Baseline::default();
        run.step(Step::Switch, async {
            self.declare(journal, &held.fence, intent).await?;
            if watch.enabled() {
                baseline = self.watch_baseline(Some(live)).await?;
            }
            self.switch_traffic(&events, Some(live), standby).await?;
            Ok(format!(
                "traffic on {standby} ({}) running {}",
                slot.server, rec.release.version
            ))
        })
        .await?;
        journal.live = Some(standby);
        journal.standby_until_unix_ms = None;
        run.step(Step::Drain, async {
            self.drain(&events, live).await?;
            Ok(format!("{} kept as standby", cfg.topology.slot(live).server))
        })
        .await?;
        if watch.enabled() {
            let watched = Watched {
                events: &events,
                color: standby,
                share: 100,
                window: watch.window,
                baseline: &baseline,
            };
            if let Err(e) = run.step(Step::Watch, self.watch(watched)).await {
                return Err(self
                    .rollback_the_rollback(run, journal, held, (standby, live), e)
                    .await);
            }
        }
        journal.intent = None;
        run.record.live_after = journal.live;
        self.run_hooks(run, HookPoint::AfterRollback).await
    }

    /// The release an instant rollback went back to breached the watch: traffic goes back to the color it
    /// left, which stays up as the standby. The intent says so first, so a crash here is settled the same way.
    async fn rollback_the_rollback(
        &self,
        run: &mut Run,
        journal: &mut Journal,
        held: &Held,
        (standby, live): (Color, Color),
        e: Error,
    ) -> Error {
        let intent = self.intent(&run.record, Some(standby), live);
        let events = run.events.clone();
        let back = run
            .step(Step::SwitchBack, async {
                self.declare(journal, &held.fence, intent).await?;
                self.switch_traffic(&events, Some(standby), live).await?;
                Ok(format!("traffic back on {live}; {standby} kept as standby"))
            })
            .await;
        match back {
            Ok(()) => {
                journal.live = Some(live);
                journal.intent = None;
                run.record.outcome = Outcome::RolledBack {
                    step: Step::Watch,
                    kind: e.kind(),
                    error: e.to_string(),
                };
                rewrap(
                    &e,
                    format!(
                        "the instant rollback to {standby} was undone, traffic is on {live} again: {}",
                        e.summary()
                    ),
                )
            }
            // The undo settles from the intent just declared: towards `live` when it serves.
            Err(_) => e,
        }
    }

    pub(crate) async fn retire_operation(&self, held: Held) -> Result<OperationRecord> {
        let mut journal = self.begin(&held).await?;
        let live = journal.live;
        let mut run = Run::new(
            &self.events,
            OperationKind::Retire,
            None,
            live,
            live.unwrap_or(Color::Blue),
            &self.config.holder,
        );
        let result = match self.retire(&mut run, &mut journal, &held).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.undo(&mut run, &mut journal, e).await),
        };
        self.record(run, journal, result, &held.fence).await
    }

    /// Stops and removes the standby.
    async fn retire(&self, run: &mut Run, journal: &mut Journal, held: &Held) -> Result<()> {
        run.step(Step::Reconcile, self.reconcile(journal)).await?;
        let standby = journal.standby().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "deploy.retire",
                "standby",
                "there is no standby to retire",
            )
        })?;
        let slot = self.config.topology.slot(standby).clone();
        let intent = self.intent(&run.record, journal.live, standby);
        run.step(Step::Retire, async {
            self.declare(journal, &held.fence, intent).await?;
            self.take_down(journal, standby).await?;
            journal.standby_until_unix_ms = None;
            Ok(format!("{} retired", slot.container))
        })
        .await?;
        journal.intent = None;
        Ok(())
    }
}
