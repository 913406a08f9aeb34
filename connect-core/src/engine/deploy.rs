//! The operations a caller runs — deploy, full rollback, instant rollback, retire — and the blue-green
//! orchestrator: the steps in the runbook's order (one file each in `steps/`), around the machinery every
//! operation shares (`operation.rs`: the lock, the intent, recording, undo).

use super::Deployer;
use super::hooks::HookPoint;
use super::journal::{Journal, OperationRecord, SlotRecord, now_unix_ms};
use super::lock::Fence;
use super::operation::Held;
use super::run::Run;
use super::steps::watch::{Baseline, Watched};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Color, OldColorPolicy, Release};
use crate::ship::ReleaseSource;
use crate::vocabulary::{OperationKind, Step};

impl Deployer {
    /// Deploys `release` blue-green: the idle color starts it, the health gate waits for it, traffic switches,
    /// and the old color stays up, drained, as a warm standby (or as the policy says).
    pub async fn deploy(&self, release: Release) -> Result<OperationRecord> {
        self.with_lock(OperationKind::Deploy, |held| {
            self.blue_green(OperationKind::Deploy, release, None, held)
        })
        .await
    }

    /// Deploys `release` as [`Deployer::deploy`] does, shipping its image from `source` first (the `ship`
    /// step, after preflight): built where the source says, only the layers the server lacks sent and
    /// verified, nothing done when the server has the image. A failed ship fails the deploy before anything
    /// that runs or serves changed, and leaves nothing tagged.
    pub async fn deploy_from(&self, release: Release, source: ReleaseSource) -> Result<OperationRecord> {
        self.with_lock(OperationKind::Deploy, |held| {
            self.blue_green(OperationKind::Deploy, release, Some(&source), held)
        })
        .await
    }

    /// Full rollback: redeploys a release recorded in the journal through the same health-gated path, from
    /// the image the journal recorded (a tag that now points at another image is refused).
    pub async fn rollback_to(&self, version: &str) -> Result<OperationRecord> {
        let journal = self.store.load().await?;
        let release = journal.find_release(version).ok_or_else(|| {
            let mut known: Vec<String> = journal
                .history
                .iter()
                .filter_map(|r| r.release.as_ref().map(|r| r.version.clone()))
                .collect();
            let mut seen = std::collections::HashSet::new();
            known.retain(|v| seen.insert(v.clone()));
            Error::new(
                ErrorKind::NotFound,
                "deploy.rollback_to",
                version,
                format!("the journal knows no release {version:?}; it knows {known:?}"),
            )
            .with_hint("pick a version from the status's recent operations")
        })?;
        self.with_lock(OperationKind::FullRollback, |held| {
            self.blue_green(OperationKind::FullRollback, release, None, held)
        })
        .await
    }

    /// Instant rollback: traffic back to the warm standby with one router call. The release that was live stays
    /// up, drained, so rolling forward again is as fast.
    pub async fn rollback(&self) -> Result<OperationRecord> {
        self.with_lock(OperationKind::InstantRollback, |held| self.instant_rollback(held))
            .await
    }

    /// Stops and removes the standby color now, whatever the policy.
    pub async fn retire_standby(&self) -> Result<OperationRecord> {
        self.with_lock(OperationKind::Retire, |held| self.retire_operation(held))
            .await
    }

    async fn blue_green(
        &self,
        kind: OperationKind,
        release: Release,
        source: Option<&ReleaseSource>,
        held: Held,
    ) -> Result<OperationRecord> {
        let mut journal = self.begin(&held).await?;
        let from = journal.live;
        let to = from.map_or(Color::Blue, Color::other);
        let mut run = Run::new(
            &self.events,
            kind,
            Some(release.clone()),
            from,
            to,
            &self.config.holder,
        );
        let result = match self
            .blue_green_steps(&mut run, &mut journal, (release, source), from, to, &held.fence)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.undo(&mut run, &mut journal, e).await),
        };
        self.record(run, journal, result, &held.fence).await
    }

    async fn blue_green_steps(
        &self,
        run: &mut Run,
        journal: &mut Journal,
        (release, source): (Release, Option<&ReleaseSource>),
        from: Option<Color>,
        to: Color,
        fence: &Fence,
    ) -> Result<()> {
        let since = std::time::SystemTime::now();
        let events = run.events.clone();
        run.step(Step::Reconcile, self.reconcile(journal)).await?;
        self.run_hooks(run, HookPoint::BeforeDeploy).await?;
        run.step(Step::Preflight, self.preflight_step(&events)).await?;
        if let Some(source) = source {
            run.step(Step::Ship, async {
                Ok(self.ship_release(&events, &release, source).await?.summary())
            })
            .await?;
        }
        let mut staged = None;
        run.step(Step::StageImage, self.stage(&release, &mut staged))
            .await?;
        self.run_hooks(run, HookPoint::AfterShip).await?;
        let release = staged.unwrap_or(release);
        run.record.release = Some(release.clone());
        self.migrate_steps(run, &release).await?;

        // From here on, every action changes what runs or what serves: the journal says so first.
        let intent = self.intent(&run.record, from, to);
        run.step(Step::StartIdle, async {
            self.declare(journal, fence, intent).await?;
            self.start_idle(journal, &events, to, &release).await
        })
        .await?;
        run.step(Step::HealthGate, self.health_gate(&events, to)).await?;
        self.run_hooks(run, HookPoint::BeforeSwitch).await?;
        let watch = &self.config.policy.watch;
        // The old color's figures before any of its traffic moves: what the new color is held to.
        let mut baseline = Baseline::default();
        match (&self.config.policy.canary, from) {
            (Some(canary), Some(old)) => {
                run.step(Step::Canary, async {
                    baseline = self.watch_baseline(from).await?;
                    self.canary(journal, fence, &events, canary, (old, to), &baseline)
                        .await
                })
                .await?
            }
            (Some(_), None) => run.skip(Step::Canary, "first deploy: no traffic to share"),
            (None, _) => {}
        }
        run.step(Step::Switch, async {
            if watch.enabled() && self.config.policy.canary.is_none() {
                baseline = self.watch_baseline(from).await?;
            }
            self.switch_traffic(&events, from, to).await
        })
        .await?;
        journal.live = Some(to);
        journal.slots.insert(
            to,
            SlotRecord {
                release: release.clone(),
                container: self.config.topology.slot(to).container.clone(),
                since_unix_ms: now_unix_ms(),
            },
        );
        match from {
            Some(old) => run.step(Step::Drain, self.drain(&events, old)).await?,
            None => run.skip(Step::Drain, "first deploy: no old color"),
        }
        run.step(Step::Verify, self.verify_step(to, since)).await?;
        if watch.enabled() {
            let watched = Watched {
                events: &events,
                color: to,
                share: 100,
                window: watch.window,
                baseline: &baseline,
            };
            run.step(Step::Watch, self.watch(watched)).await?;
        }

        if let Some(old) = from {
            match self.config.policy.old_color {
                OldColorPolicy::WarmStandby => {}
                OldColorPolicy::RetireAfter { window } => {
                    journal.standby_until_unix_ms = Some(now_unix_ms() + window.as_millis() as u64);
                }
                OldColorPolicy::Balanced => {
                    // The new release is verified and live; what changes now is the old color, so the intent
                    // says so: settling keeps `to` and removes a half-made `old`.
                    let intent = self.intent(&run.record, Some(to), old);
                    run.step(Step::Balance, async {
                        self.declare(journal, fence, intent).await?;
                        self.balance(journal, &events, old, &release).await
                    })
                    .await?;
                }
            }
        }
        journal.intent = None;
        run.record.live_after = Some(to);
        let after = match run.record.kind {
            OperationKind::FullRollback => HookPoint::AfterRollback,
            _ => HookPoint::AfterDeploy,
        };
        self.run_hooks(run, after).await?;
        if let Some(keep) = self.config.policy.keep_releases {
            // Traffic moved and is verified: a failed prune is recorded as its step's and changes nothing
            // else (the next deploy's prune removes what this one left).
            let _ = run
                .step(Step::Prune, async {
                    let report = self
                        .prune_images(journal, release.image.repository(), keep, false)
                        .await?;
                    Ok(report.summary())
                })
                .await;
        }
        Ok(())
    }
}
