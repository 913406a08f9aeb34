//! Instant rollback over every host: each web host's warm standby back in rotation, all in one switch; then
//! each worker starts the release the web hosts went back to.

use futures::future::join_all;

use super::Fleet;
use super::host::{FleetReport, HostOutcome, HostRun, ok_step, recorded};
use super::resume::interrupted_target;
use super::role_change::refuse_rollback;
use super::worker_steps::{aim_worker, begin_worker_rollback, roll_back_worker, rollback_release};
use crate::engine::hooks::HookPoint;
use crate::error::{Error, ErrorKind, Result};
use crate::router::ServerStatus;
use crate::vocabulary::{OperationKind, Step};

impl Fleet {
    /// Instant rollback on every host in rotation: each web host's warm standby is checked serving, every
    /// host's intent is declared, then one router exchange makes every standby ready and drains every live
    /// color. Refused, nothing changed, unless every web host in rotation has a standby that serves and the
    /// web hosts go back to one release. Hosts out of rotation stay out.
    ///
    /// Workers keep no standby: once the web hosts' traffic is back, each starts that release on its idle
    /// color, health-gates it and stops the color it leaves. A worker that fails is settled on the release
    /// it ran, and the error names it (the web hosts are back either way). A worker without that release's
    /// image (it joined the fleet later) keeps its own: the rollback succeeds, and its [`HostOutcome`]
    /// error, its record (failed at `stage_image`, `not_found`) and the web hosts' switch step say so and
    /// how to bring it along.
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
        // A host whose role changed since its last operation is refused before anything is touched.
        let servers = self.router.servers().await.unwrap_or_default();
        let servers = &servers;
        join_all(hosts.iter_mut().map(|h| async move {
            if h.is_worker() {
                begin_worker_rollback(h, servers).await;
            } else {
                check_standby(h, servers).await;
            }
        }))
        .await;
        let mut in_rotation: Vec<usize> = (0..hosts.len())
            .filter(|i| hosts[*i].from.is_some() && !hosts[*i].is_worker())
            .collect();
        // Web hosts an interrupted rollback already brought to its release stay there.
        let mut already = Vec::new();
        if hosts.iter().all(|h| h.failed.is_none()) {
            match interrupted_target(&hosts, &in_rotation) {
                Ok(Some(target)) => {
                    for &i in &in_rotation {
                        let h = &mut hosts[i];
                        let live = h.journal.as_ref().and_then(|j| j.slots.get(&j.live?));
                        if live.is_some_and(|s| s.release == target) {
                            h.to = h.from.unwrap_or(h.to);
                            if let Some(run) = h.run.as_mut() {
                                run.record.release = Some(target.clone());
                            }
                            already.push(i);
                        }
                    }
                    in_rotation.retain(|i| !already.contains(i));
                }
                Ok(None) => {}
                Err(e) => return Err(self.abort("fleet.rollback", hosts, &e.to_string()).await),
            }
        }
        let workers: Vec<usize> = (0..hosts.len())
            .filter(|i| hosts[*i].from.is_some() && hosts[*i].is_worker())
            .collect();
        if !workers.is_empty() && hosts.iter().all(|h| h.failed.is_none()) {
            match rollback_release(&hosts, &in_rotation) {
                Ok(release) => {
                    join_all(
                        hosts
                            .iter_mut()
                            .enumerate()
                            .filter(|(i, _)| workers.contains(i))
                            .map(|(_, h)| aim_worker(h, &release)),
                    )
                    .await;
                }
                Err(e) => return Err(self.abort("fleet.rollback", hosts, &e.to_string()).await),
            }
        }
        // Workers without the release's image keep theirs: the web hosts go back all the same.
        let staying: Vec<String> = hosts
            .iter()
            .filter(|h| h.stays.is_some())
            .map(|h| format!("{} keeps {}", h.name(), kept(h)))
            .collect();
        let mut workers = workers;
        workers.retain(|i| hosts[*i].stays.is_none());
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
        for &i in in_rotation.iter().chain(&workers) {
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
        let mut detail = format!(
            "every host's standby made live in one router exchange ({} servers)",
            up.len()
        );
        if !staying.is_empty() {
            detail.push_str(&format!(
                "; {} (not on the release the web hosts went back to)",
                staying.join(", ")
            ));
        }
        // Traffic is back. Each web host drains its old color and each worker starts the release the web
        // hosts went back to, all at once: a drain deadline or a worker's health gate is waited once.
        let finishing = hosts.iter_mut().enumerate().map(|(i, h)| {
            let (web, worker) = (in_rotation.contains(&i), workers.contains(&i));
            let detail = &detail;
            let there = already.contains(&i);
            async move {
                if h.stays.is_some() {
                    // Its record is the failed image check `aim_worker` wrote.
                    return None;
                }
                if worker {
                    return roll_back_worker(h).await.err().map(|e| (i, e));
                }
                let d = &h.member.deployer;
                let (from, to) = (h.from, h.to);
                if there {
                    if let Some(run) = h.run.as_mut() {
                        run.skip(
                            Step::Switch,
                            "already on the release: an interrupted rollback finished here",
                        );
                    }
                } else if !web {
                    if let Some(run) = h.run.as_mut() {
                        run.skip(Step::Switch, "out of rotation: nothing to roll back");
                    }
                } else if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) {
                    run.record.steps.push(ok_step(Step::Switch, detail, took));
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
                None
            }
        });
        let worker_failures: Vec<(usize, Error)> = join_all(finishing).await.into_iter().flatten().collect();
        if !worker_failures.is_empty() {
            return Err(self.workers_behind(hosts, worker_failures).await);
        }
        // Traffic is back: an after_rollback hook's failure is its step's only.
        let names: Vec<String> = in_rotation
            .iter()
            .map(|&i| hosts[i].member.name.clone())
            .collect();
        let env = [("CONNECT_HOSTS".to_string(), names.join(","))];
        let _ = self.fleet_hooks(&mut hosts, HookPoint::AfterRollback, &env).await;
        // Every journal takes its record over its own connection, in parallel.
        let outcomes = join_all(hosts.iter_mut().map(|h| h.finish())).await;
        recorded("rollback", &mut hosts, FleetReport { hosts: outcomes })
    }
}

impl Fleet {
    /// The web hosts' traffic is back, but some workers could not start the release they went back to: each
    /// of those settles on the release it ran, every other host records its rollback, and the error names
    /// the workers left behind.
    async fn workers_behind(&self, mut hosts: Vec<HostRun<'_>>, failures: Vec<(usize, Error)>) -> Error {
        let lines: Vec<String> = failures
            .iter()
            .map(|(i, e)| format!("{}: {}", hosts[*i].name(), e.summary()))
            .collect();
        let names: Vec<String> = failures
            .iter()
            .map(|(i, _)| hosts[*i].name().to_string())
            .collect();
        let kind = failures[0].1.kind();
        let release = hosts[failures[0].0].release.version.clone();
        for (i, e) in failures {
            hosts[i].failed = Some(e);
        }
        let outcomes = join_all(hosts.iter_mut().map(|h| h.finish())).await;
        let where_now: Vec<String> = outcomes.iter().map(HostOutcome::where_now).collect();
        Error::new(
            kind,
            "fleet.rollback",
            names.join(","),
            format!(
                "the web hosts' traffic is back on {release}, but not every worker could follow: {}; settled: {}",
                lines.join("; "),
                where_now.join(", ")
            ),
        )
        .with_hint(format!(
            "fix the worker named, then deploy {release} again: it brings the workers along (rolling back again \
             would move the web hosts forward)"
        ))
    }
}

fn server(h: &HostRun<'_>, color: crate::model::Color) -> String {
    h.member.deployer.config.topology.slot(color).server.clone()
}

/// Reads the host's journal and checks its standby serves; a host out of rotation has nothing to roll back.
async fn check_standby(h: &mut HostRun<'_>, servers: &[ServerStatus]) {
    if !h.begin(OperationKind::InstantRollback, None).await {
        return;
    }
    if let Some(e) = refuse_rollback(h, servers) {
        h.failed = Some(e);
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

/// The release a worker that cannot follow the rollback keeps running.
fn kept(h: &HostRun<'_>) -> String {
    h.journal
        .as_ref()
        .and_then(|j| j.slots.get(&j.live?))
        .map_or("its release".to_string(), |s| s.release.version.clone())
}
