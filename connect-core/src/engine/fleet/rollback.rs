//! Instant rollback over every host: each host's warm standby back in rotation, all in one switch.

use futures::future::join_all;

use super::Fleet;
use super::host::{FleetReport, HostRun, recorded};
use crate::engine::hooks::HookPoint;
use crate::error::{Error, ErrorKind, Result};
use crate::vocabulary::{OperationKind, Step};

impl Fleet {
    /// Instant rollback on every host in rotation: each host's warm standby is checked serving, every host's
    /// intent is declared, then one router exchange makes every standby ready and drains every live color.
    /// Refused, nothing changed, unless every host in rotation has a standby that serves. Hosts out of
    /// rotation stay out.
    pub async fn rollback(&self) -> Result<FleetReport> {
        // Each host's release is its standby's, filled in once its journal is read.
        let placeholder = crate::model::Release::new("connect", "rollback")?;
        self.with_locks(OperationKind::InstantRollback, move |helds| {
            Box::pin(async move {
                let hosts = self
                    .members
                    .iter()
                    .zip(helds)
                    .map(|(m, held)| HostRun::new(m, held, placeholder.clone()))
                    .collect();
                self.rollback_locked(hosts).await
            })
        })
        .await
    }

    async fn rollback_locked(&self, mut hosts: Vec<HostRun<'_>>) -> Result<FleetReport> {
        join_all(hosts.iter_mut().map(check_standby)).await;
        let in_rotation: Vec<usize> = (0..hosts.len()).filter(|i| hosts[*i].from.is_some()).collect();
        let refused: Vec<String> = hosts
            .iter()
            .filter_map(|h| {
                h.failed
                    .as_ref()
                    .map(|e| format!("{}: {}", h.member.name, e.summary()))
            })
            .collect();
        if !refused.is_empty() || in_rotation.is_empty() {
            let why = if refused.is_empty() {
                "no host is in rotation".to_string()
            } else {
                format!("not every host can roll back: {}", refused.join("; "))
            };
            return Err(self.abort("fleet.rollback", hosts, &why).await);
        }
        for &i in &in_rotation {
            let h = &mut hosts[i];
            let d = &h.member.deployer;
            let fence = h.held.fence.clone();
            if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) {
                let intent = d.intent(&run.record, h.from, h.to);
                if let Err(e) = d.declare(journal, &fence, intent).await {
                    h.failed = Some(e);
                }
            }
        }
        if hosts.iter().any(|h| h.failed.is_some()) {
            return Err(self
                .abort(
                    "fleet.rollback",
                    hosts,
                    "the intent could not be written on every host",
                )
                .await);
        }
        let up: Vec<String> = in_rotation
            .iter()
            .map(|&i| server(&hosts[i], hosts[i].to))
            .collect();
        let down: Vec<String> = in_rotation
            .iter()
            .filter_map(|&i| hosts[i].from.map(|c| server(&hosts[i], c)))
            .collect();
        let t = tokio::time::Instant::now();
        if let Err(e) = self
            .router
            .set_states_together(&up, &down, self.config.policy.router_deadline)
            .await
        {
            let why = format!("the rollback's switch failed: {}", e.summary());
            return Err(self.abort("fleet.rollback", hosts, &why).await);
        }
        let took = t.elapsed();
        for (i, h) in hosts.iter_mut().enumerate() {
            let d = &h.member.deployer;
            let (from, to) = (h.from, h.to);
            if !in_rotation.contains(&i) {
                if let Some(run) = h.run.as_mut() {
                    run.skip(Step::Switch, "out of rotation: nothing to roll back");
                }
            } else if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) {
                run.record.steps.push(crate::engine::journal::StepRecord {
                    step: Step::Switch,
                    duration_ms: took.as_millis() as u64,
                    status: crate::vocabulary::StepStatus::Ok,
                    detail: format!(
                        "every host's standby made live in one router exchange ({} servers)",
                        up.len()
                    ),
                });
                journal.live = Some(to);
                journal.standby_until_unix_ms = None;
                if let Some(old) = from {
                    let events = run.events.clone();
                    let _ = run.step(Step::Drain, d.drain(&events, old)).await;
                }
            }
            if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_ref()) {
                run.record.live_after = journal.live;
            }
        }
        // Traffic is back: an after_rollback hook's failure is its step's only.
        let names: Vec<String> = in_rotation
            .iter()
            .map(|&i| hosts[i].member.name.clone())
            .collect();
        let env = [("CONNECT_HOSTS".to_string(), names.join(","))];
        let _ = self.fleet_hooks(&mut hosts, HookPoint::AfterRollback, &env).await;
        // Every journal takes its record over its own connection, in parallel.
        let outcomes = join_all(hosts.iter_mut().map(|h| h.succeed())).await;
        recorded("rollback", &mut hosts, FleetReport { hosts: outcomes })
    }
}

fn server(h: &HostRun<'_>, color: crate::model::Color) -> String {
    h.member.deployer.config.topology.slot(color).server.clone()
}

/// Reads the host's journal and checks its standby serves; a host out of rotation has nothing to roll back.
async fn check_standby(h: &mut HostRun<'_>) {
    if !h.begin(OperationKind::InstantRollback, None).await {
        return;
    }
    let d = &h.member.deployer;
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return;
    };
    let Some(live) = journal.live else {
        return;
    };
    let standby = journal.standby();
    let result = async {
        run.step(Step::Reconcile, d.reconcile(journal)).await?;
        let no_standby = |why: String| {
            Error::new(ErrorKind::Refused, "fleet.rollback", "standby", why)
                .with_hint("roll back fully instead: deploy the release you want back")
        };
        let standby = standby.ok_or_else(|| no_standby(format!("{live} has no warm standby")))?;
        let rec = journal.slots[&standby].clone();
        run.record.release = Some(rec.release.clone());
        let container = d.config.topology.slot(standby).container.clone();
        run.step(Step::HealthGate, async {
            match d.backends.runtime.inspect(&container).await? {
                Some(c) if c.is_serving() => {
                    Ok(format!("{} {} serves {}", c.name, c.health, rec.release.version))
                }
                Some(c) => Err(no_standby(format!("the standby {} is {}", c.name, c.health))),
                None => Err(no_standby(format!("the standby {container} is gone"))),
            }
        })
        .await
    }
    .await;
    if let Err(e) = result {
        h.failed = Some(e);
    }
}
