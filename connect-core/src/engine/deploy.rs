//! Deploy, instant rollback, full rollback and retiring the standby.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::checks::CheckStatus;
use super::journal::{Journal, OperationKind, OperationRecord, Outcome, SlotRecord, now_unix_ms};
use super::run::Run;
use super::{Deployer, Event, Step};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Color, OldColorPolicy, Release};
use crate::router::AdminState;
use crate::runtime::{ContainerSpec, Health, OneOff, slot_labels};

/// How often the health gate reports an attempt while it waits.
const HEALTH_REPORT_EVERY: Duration = Duration::from_secs(1);

/// How far a failed deploy got, which decides what is undone.
enum Failure {
    /// Nothing was changed yet.
    Clean(Error),
    /// The idle color's container was started: remove it; traffic never moved.
    IdleStarted(Error),
    /// Traffic moved to the new color and verification failed: move it back to the standby.
    Switched(Error),
}

impl Deployer {
    /// Deploys `release` blue-green: the idle color starts it, the health gate waits for it, traffic switches,
    /// and the old color stays up, drained, as a warm standby (or as the policy says).
    pub async fn deploy(&self, release: Release) -> Result<OperationRecord> {
        self.with_lock(
            OperationKind::Deploy,
            self.blue_green(OperationKind::Deploy, release),
        )
        .await
    }

    /// Full rollback: redeploys a release recorded in the journal through the same health-gated path.
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
        self.with_lock(
            OperationKind::FullRollback,
            self.blue_green(OperationKind::FullRollback, release),
        )
        .await
    }

    /// Instant rollback: traffic back to the warm standby with one router call. The release that was live stays
    /// up, drained, so rolling forward again is as fast.
    pub async fn rollback(&self) -> Result<OperationRecord> {
        self.with_lock(OperationKind::InstantRollback, self.instant_rollback())
            .await
    }

    /// Stops and removes the standby color now, whatever the policy.
    pub async fn retire_standby(&self) -> Result<OperationRecord> {
        self.with_lock(OperationKind::Retire, async {
            let mut journal = self.store.load().await?;
            let live = journal.live;
            let mut run = Run::new(
                &self.events,
                OperationKind::Retire,
                None,
                live,
                live.unwrap_or(Color::Blue),
                &self.config.holder,
            );
            let result = self.retire(&mut run, &mut journal).await;
            self.record(run, journal, result).await
        })
        .await
    }

    async fn with_lock<T>(
        &self,
        kind: OperationKind,
        operation: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.store.lock(&self.config.holder, kind).await?;
        let result = operation.await;
        if let Err(e) = self.store.unlock().await {
            self.events.warn(
                Step::Lock,
                format!("the deploy lock could not be released ({e}); break it before the next operation"),
            );
        }
        result
    }

    /// Writes the operation into the journal, whatever its outcome, and returns it (or the error).
    async fn record(
        &self,
        mut run: Run,
        mut journal: Journal,
        result: Result<()>,
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
        let t = Instant::now();
        let saved = self.store.save(&journal).await;
        let finished = |succeeded| Event::OperationFinished {
            id: record.id.clone(),
            succeeded,
            duration: elapsed + t.elapsed(),
        };
        match saved {
            Ok(()) => {
                events.emit(Event::StepFinished {
                    step: Step::Record,
                    duration: t.elapsed(),
                    detail: format!("journal {}", self.store.journal_path()),
                });
                events.emit(finished(result.is_ok()));
            }
            Err(e) => {
                events.emit(Event::StepFailed {
                    step: Step::Record,
                    duration: t.elapsed(),
                    error: e.to_string(),
                });
                events.emit(finished(false));
                let what = if result.is_ok() {
                    "the operation succeeded"
                } else {
                    "the operation failed"
                };
                return Err(Error::new(
                    e.kind(),
                    "journal.save",
                    self.store.journal_path(),
                    format!("{what} but the journal could not be written: {e}"),
                )
                .with_hint("fix the server's state directory, then adopt the observed state"));
            }
        }
        result.map(|()| record)
    }

    async fn blue_green(&self, kind: OperationKind, release: Release) -> Result<OperationRecord> {
        let mut journal = self.store.load().await?;
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
            .blue_green_steps(&mut run, &mut journal, release, from, to)
            .await
        {
            Ok(()) => Ok(()),
            Err(failure) => Err(self.undo(&mut run, &mut journal, failure, from, to).await),
        };
        self.record(run, journal, result).await
    }

    async fn blue_green_steps(
        &self,
        run: &mut Run,
        journal: &mut Journal,
        mut release: Release,
        from: Option<Color>,
        to: Color,
    ) -> std::result::Result<(), Failure> {
        let since = SystemTime::now();
        let (b, cfg) = (&self.backends, &self.config);
        let clean = Failure::Clean;

        run.step(Step::Reconcile, self.reconcile(journal))
            .await
            .map_err(clean)?;
        if journal.balanced {
            let e = Error::new(
                ErrorKind::Refused,
                "deploy",
                "journal",
                "both colors serve (balanced mode): there is no idle color",
            )
            .with_hint("drain one color first, or adopt the state after draining one by hand");
            return Err(clean(e));
        }

        let events = run.events.clone();
        run.step(Step::Preflight, async {
            let report = self.preflight().await?;
            for c in report.with_status(CheckStatus::Warn) {
                events.warn(Step::Preflight, format!("{}: {}", c.name, c.detail));
            }
            let report = report.into_result("deploy.preflight", ErrorKind::Refused)?;
            Ok(format!("{} checks passed", report.checks.len()))
        })
        .await
        .map_err(clean)?;

        run.step(Step::StageImage, async {
            let info = b.runtime.image(&release.image).await?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "deploy.stage_image",
                    release.image.to_string(),
                    "the server has no such image",
                )
                .with_hint("build the release and transfer it to the server first")
            })?;
            release.digest = Some(info.id.clone());
            Ok(format!(
                "{} is {} ({} layers)",
                release.image,
                info.id,
                info.layers.len()
            ))
        })
        .await
        .map_err(clean)?;
        run.record.release = Some(release.clone());

        match &cfg.app.migration {
            None => {
                run.skip(Step::RestorePoint, "no migration configured");
                run.skip(Step::Migrate, "no migration configured");
            }
            Some(command) => {
                let mut point = None;
                let name = format!("connect-{}", run.record.id);
                run.step(Step::RestorePoint, async {
                    let p = b.database.restore_point(&name).await?;
                    let detail = format!("{} at {} on timeline {}", p.name, p.lsn, p.timeline);
                    point = Some(p);
                    Ok(detail)
                })
                .await
                .map_err(clean)?;
                run.record.restore_point = point;
                run.step(Step::Migrate, async {
                    let job = OneOff {
                        image: release.image.clone(),
                        command: command.clone(),
                        env: cfg.app.env.clone(),
                        deadline: cfg.policy.health_deadline,
                    };
                    let out = b.runtime.run_once(&job).await?;
                    let tail = last_lines(&out.output, 5);
                    if out.exit_code != 0 {
                        return Err(Error::new(
                            ErrorKind::Failed,
                            "deploy.migrate",
                            command.join(" "),
                            format!("exited {}: {tail}", out.exit_code),
                        )
                        .with_hint(
                            "fix the migration; the database has a restore point from just before it",
                        ));
                    }
                    Ok(tail)
                })
                .await
                .map_err(clean)?;
            }
        }

        let slot = cfg.topology.slot(to).clone();
        run.step(Step::StartIdle, async {
            // The idle color's server takes no traffic; maintenance also stops HAProxy probing a container
            // that is about to be replaced.
            b.router.set_state(&slot.server, AdminState::Maint).await?;
            if let Some(old) = b.runtime.inspect(&slot.container).await? {
                b.runtime.stop(&slot.container, cfg.app.stop_grace).await?;
                b.runtime.remove(&slot.container).await?;
                journal.slots.remove(&to);
                journal.standby_until_unix_ms = None;
                events.emit(Event::Warning {
                    step: Step::StartIdle,
                    message: format!(
                        "replaced the standby {} ({})",
                        old.name,
                        old.release().unwrap_or("?")
                    ),
                });
            }
            let spec = self.container_spec(to, &release);
            let info = b.runtime.start(&spec).await?;
            Ok(format!("{} started ({})", info.name, info.id))
        })
        .await
        .map_err(Failure::IdleStarted)?;

        run.step(Step::HealthGate, self.health_gate(&events, to))
            .await
            .map_err(Failure::IdleStarted)?;

        let old_server = from.map(|c| cfg.topology.slot(c).server.clone());
        run.step(Step::Switch, async {
            b.router
                .switch(old_server.as_deref(), &slot.server, cfg.policy.router_deadline)
                .await?;
            Ok(format!("traffic on {to} ({})", slot.server))
        })
        .await
        .map_err(Failure::IdleStarted)?;
        journal.live = Some(to);
        journal.slots.insert(
            to,
            SlotRecord {
                release: release.clone(),
                container: slot.container.clone(),
                since_unix_ms: now_unix_ms(),
            },
        );

        match &old_server {
            Some(server) => run
                .step(Step::Drain, async {
                    match b.router.wait_drained(server, cfg.policy.drain_deadline).await {
                        Ok(_) => Ok(format!("{server} drained")),
                        Err(e) if e.kind() == ErrorKind::Timeout => {
                            events.warn(
                                Step::Drain,
                                format!(
                                    "{server} still has sessions after {:?}; they finish on their own",
                                    cfg.policy.drain_deadline
                                ),
                            );
                            Ok(format!("{server} draining"))
                        }
                        Err(e) => Err(e),
                    }
                })
                .await
                .map_err(Failure::Switched)?,
            None => run.skip(Step::Drain, "first deploy: no old color"),
        }

        run.step(Step::Verify, async {
            let report = self
                .verify_color(to, since)
                .await?
                .into_result("deploy.verify", ErrorKind::Unhealthy)?;
            Ok(format!("{} checks passed", report.checks.len()))
        })
        .await
        .map_err(Failure::Switched)?;

        if let Some(old) = from {
            match cfg.policy.old_color {
                OldColorPolicy::WarmStandby => {}
                OldColorPolicy::RetireAfter { window } => {
                    journal.standby_until_unix_ms = Some(now_unix_ms() + window.as_millis() as u64);
                }
                OldColorPolicy::Balanced => {
                    let balanced = run
                        .step(Step::Balance, self.balance(journal, &events, old, &release))
                        .await;
                    if let Err(e) = balanced {
                        // The new release serves from `to`; the half-made old color goes, so the journal and
                        // the router agree on a single live color.
                        self.discard(run, journal, old).await;
                        return Err(Failure::Clean(e));
                    }
                }
            }
        }
        Ok(())
    }

    /// Undoes what a failed deploy did, records the outcome, and returns the error to report.
    async fn undo(
        &self,
        run: &mut Run,
        journal: &mut Journal,
        failure: Failure,
        from: Option<Color>,
        to: Color,
    ) -> Error {
        let step = run.failed_step();
        match failure {
            Failure::Clean(e) => e,
            Failure::IdleStarted(e) => {
                self.discard(run, journal, to).await;
                let live = from.map_or("nothing (first deploy)".to_string(), |c| c.to_string());
                rewrap(
                    &e,
                    format!("aborted at {step}; traffic stayed on {live}: {}", e.summary()),
                )
            }
            Failure::Switched(e) => {
                let Some(from) = from else {
                    run.warn(
                        Step::SwitchBack,
                        "first deploy: no standby to switch back to; the new release keeps serving".into(),
                    );
                    return e;
                };
                let (old, new) = (
                    &self.config.topology.slot(from).server,
                    &self.config.topology.slot(to).server,
                );
                let switched_back = run
                    .step(Step::SwitchBack, async {
                        self.backends
                            .router
                            .switch(Some(new), old, self.config.policy.router_deadline)
                            .await?;
                        Ok(format!("traffic back on {from} ({old})"))
                    })
                    .await;
                let outcome_err = match switched_back {
                    Ok(()) => {
                        journal.live = Some(from);
                        self.discard(run, journal, to).await;
                        rewrap(&e, format!(
                            "failed at {step} and was rolled back; traffic is on {from} again: {}",
                            e.summary()
                        ))
                    }
                    Err(back) => Error::new(
                        ErrorKind::Failed,
                        "deploy",
                        "",
                        format!("failed at {step} ({e}) and switching back to {from} failed too ({back}); traffic is on {to}"),
                    )
                    .with_hint("check HAProxy by hand; then adopt the observed state"),
                };
                run.record.outcome = Outcome::RolledBack {
                    step,
                    kind: e.kind(),
                    error: e.to_string(),
                };
                outcome_err
            }
        }
    }

    /// Removes the idle color's container after a failure; traffic is elsewhere. Best effort: what cannot be
    /// removed is reported, never hidden.
    async fn discard(&self, run: &Run, journal: &mut Journal, color: Color) {
        let slot = self.config.topology.slot(color);
        let b = &self.backends;
        if let Err(e) = b.router.set_state(&slot.server, AdminState::Maint).await {
            run.warn(
                Step::StartIdle,
                format!("could not put {} in maintenance: {e}", slot.server),
            );
        }
        let removed = async {
            if b.runtime.inspect(&slot.container).await?.is_some() {
                b.runtime
                    .stop(&slot.container, self.config.app.stop_grace)
                    .await?;
                b.runtime.remove(&slot.container).await?;
            }
            Ok::<_, Error>(())
        };
        match removed.await {
            Ok(()) => {
                journal.slots.remove(&color);
            }
            Err(e) => run.warn(
                Step::StartIdle,
                format!("could not remove {}: {e}; remove it by hand", slot.container),
            ),
        }
    }

    fn container_spec(&self, color: Color, release: &Release) -> ContainerSpec {
        let (app, slot) = (&self.config.app, self.config.topology.slot(color));
        ContainerSpec {
            name: slot.container.clone(),
            image: release.image.clone(),
            labels: slot_labels(&app.name, color, release),
            env: app.env.clone(),
            ports: vec![(app.container_port, slot.host_port)],
            command: None,
            health_path: Some(app.health_path.clone()),
            stop_grace: app.stop_grace,
        }
    }

    /// Waits for the color's container to be healthy, reporting an attempt every second.
    async fn health_gate(&self, events: &super::events::Events, color: Color) -> Result<String> {
        let name = &self.config.topology.slot(color).container;
        let deadline = self.config.policy.health_deadline;
        let until = Instant::now() + deadline;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slice = until
                .saturating_duration_since(Instant::now())
                .min(HEALTH_REPORT_EVERY);
            match self
                .backends
                .runtime
                .wait_healthy(name, slice.max(Duration::from_millis(1)))
                .await
            {
                Ok(info) => {
                    events.emit(Event::HealthAttempt {
                        color,
                        attempt,
                        health: info.health.to_string(),
                    });
                    return Ok(format!("{name} {} after {attempt} attempt(s)", info.health));
                }
                Err(e) if e.kind() == ErrorKind::Timeout && Instant::now() < until => {
                    events.emit(Event::HealthAttempt {
                        color,
                        attempt,
                        health: Health::Starting.to_string(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    return Err(Error::new(ErrorKind::Timeout, "deploy.health_gate", name, format!("not healthy after {deadline:?}: {}", e.message()))
                        .with_hint("read the container's logs; raise the policy's health_deadline if the app is just slow"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The runbook's step 6: the old color takes the new release too, and both serve.
    async fn balance(
        &self,
        journal: &mut Journal,
        events: &super::events::Events,
        color: Color,
        release: &Release,
    ) -> Result<String> {
        let (b, slot) = (&self.backends, self.config.topology.slot(color));
        b.router.set_state(&slot.server, AdminState::Maint).await?;
        b.runtime
            .stop(&slot.container, self.config.app.stop_grace)
            .await?;
        b.runtime.remove(&slot.container).await?;
        journal.slots.remove(&color);
        b.runtime.start(&self.container_spec(color, release)).await?;
        self.health_gate(events, color).await?;
        b.router.set_state(&slot.server, AdminState::Ready).await?;
        b.router
            .wait_live(&slot.server, self.config.policy.router_deadline)
            .await?;
        journal.slots.insert(
            color,
            SlotRecord {
                release: release.clone(),
                container: slot.container.clone(),
                since_unix_ms: now_unix_ms(),
            },
        );
        journal.balanced = true;
        Ok(format!("both colors serve {}", release.version))
    }

    async fn instant_rollback(&self) -> Result<OperationRecord> {
        let mut journal = self.store.load().await?;
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
        let result = self.instant_rollback_steps(&mut run, &mut journal).await;
        self.record(run, journal, result).await
    }

    async fn instant_rollback_steps(&self, run: &mut Run, journal: &mut Journal) -> Result<()> {
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
            .ok_or_else(|| no_standby(format!("{} has no warm standby", live)))?;
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
        let from = cfg.topology.slot(live).server.clone();
        run.step(Step::Switch, async {
            b.router
                .switch(Some(&from), &slot.server, cfg.policy.router_deadline)
                .await?;
            Ok(format!(
                "traffic on {standby} ({}) running {}",
                slot.server, rec.release.version
            ))
        })
        .await?;
        journal.live = Some(standby);
        journal.standby_until_unix_ms = None;
        let events = run.events.clone();
        run.step(Step::Drain, async {
            if let Err(e) = b.router.wait_drained(&from, cfg.policy.drain_deadline).await {
                events.warn(Step::Drain, format!("{from}: {e}"));
            }
            Ok(format!("{from} drained and kept as standby"))
        })
        .await
    }

    /// Stops and removes the standby when its retire window has passed.
    pub(crate) async fn retire(&self, run: &mut Run, journal: &mut Journal) -> Result<()> {
        let standby = journal.standby().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "deploy.retire",
                "standby",
                "there is no standby to retire",
            )
        })?;
        let slot = self.config.topology.slot(standby).clone();
        run.step(Step::Retire, async {
            self.backends
                .router
                .set_state(&slot.server, AdminState::Maint)
                .await?;
            self.backends
                .runtime
                .stop(&slot.container, self.config.app.stop_grace)
                .await?;
            self.backends.runtime.remove(&slot.container).await?;
            journal.slots.remove(&standby);
            journal.standby_until_unix_ms = None;
            Ok(format!("{} retired", slot.container))
        })
        .await
    }
}

/// The deploy-level error for a step's error: same kind, the step's fix kept.
fn rewrap(e: &Error, message: String) -> Error {
    let wrapped = Error::new(e.kind(), "deploy", "", message);
    match e.hint() {
        Some(hint) => wrapped.with_hint(hint),
        None => wrapped,
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
