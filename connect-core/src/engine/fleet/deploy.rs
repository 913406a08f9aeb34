//! The deploy over several hosts: every host made ready in parallel, one switch, then drain and verify.

use std::time::SystemTime;

use futures::future::join_all;

use super::Fleet;
use super::abort::DEPLOY;
use super::deploy_steps::{begin, drain_and_verify, prepare, start_and_gate};
use super::hooks::prune;
use super::host::{FleetReport, HostOutcome, HostRun, failed_step, ok_step, recorded};
use super::role_change::leaving;
use super::watch::baseline_error;
use super::worker_steps::{not_retired, retire_old_worker};
use crate::engine::hooks::HookPoint;
use crate::engine::journal::{SlotRecord, now_unix_ms};
use crate::error::{Error, Result};
use crate::model::{Color, OldColorPolicy, Release};
use crate::router::AdminState;
use crate::ship::ReleaseSource;
use crate::vocabulary::{OperationKind, Step};

impl Fleet {
    /// Deploys `release` to every host: shipped and staged everywhere, started and health-gated on each
    /// host's idle color, then every host's servers switched together in one router exchange, drained and
    /// verified. A host failing before the switch aborts the deploy on every host (traffic never moved), or,
    /// with [`FleetPolicy::min_healthy_hosts`](super::FleetPolicy), the others switch and it is left out of
    /// rotation. A verify failing after the switch puts every host back on its old color in one exchange.
    pub async fn deploy(&self, release: Release) -> Result<FleetReport> {
        self.deploy_inner(release, None).await
    }

    /// [`Fleet::deploy`], shipping the release from `source` to every host first, in parallel (each host's
    /// own ship step over its own connection: only the layers it lacks).
    pub async fn deploy_from(&self, release: Release, source: ReleaseSource) -> Result<FleetReport> {
        self.deploy_inner(release, Some(source)).await
    }

    async fn deploy_inner(&self, release: Release, source: Option<ReleaseSource>) -> Result<FleetReport> {
        self.with_locks(OperationKind::Deploy, move |helds| {
            Box::pin(async move {
                let hosts = self
                    .members
                    .iter()
                    .zip(helds)
                    .map(|(m, held)| HostRun::new(m, held, release.clone()))
                    .collect();
                self.deploy_locked(hosts, source.as_ref()).await
            })
        })
        .await
    }

    async fn deploy_locked(
        &self,
        mut hosts: Vec<HostRun<'_>>,
        source: Option<&ReleaseSource>,
    ) -> Result<FleetReport> {
        let since = SystemTime::now();
        // What HAProxy has before anything changes: a host whose role changed is told by its servers there.
        let servers_before = self.router.servers().await.unwrap_or_default();
        join_all(hosts.iter_mut().map(|h| begin(h, &servers_before))).await;
        if let Err(e) = self.fleet_hooks(&mut hosts, HookPoint::BeforeDeploy, &[]).await {
            return Err(self
                .abort_with(
                    hosts,
                    &format!("a before_deploy hook failed: {}", e.summary()),
                    e.kind(),
                )
                .await);
        }
        join_all(
            hosts
                .iter_mut()
                .filter(|h| h.failed.is_none())
                .map(|h| prepare(h, source)),
        )
        .await;
        if let Err(e) = self.fleet_hooks(&mut hosts, HookPoint::AfterShip, &[]).await {
            return Err(self
                .abort_with(
                    hosts,
                    &format!("an after_ship hook failed: {}", e.summary()),
                    e.kind(),
                )
                .await);
        }

        // The database is shared: the migration runs once, from the first host that has the image.
        if let Some(first) = hosts.iter_mut().find(|h| h.failed.is_none()) {
            let d = &first.member.deployer;
            let release = first.release.clone();
            if let Some(run) = first.run.as_mut()
                && let Err(e) = d.migrate_steps(run, &release).await
            {
                let why = format!("the migration failed on {}: {}", first.member.name, e.summary());
                first.failed = Some(e);
                return Err(self.abort(DEPLOY, hosts, &why).await);
            }
        }

        join_all(
            hosts
                .iter_mut()
                .filter(|h| h.failed.is_none())
                .map(start_and_gate),
        )
        .await;

        let ready: Vec<usize> = (0..hosts.len()).filter(|i| hosts[*i].failed.is_none()).collect();
        // The web hosts move traffic; the workers only follow them.
        let (ready_web, ready_workers): (Vec<usize>, Vec<usize>) =
            ready.iter().partition(|i| !hosts[**i].is_worker());
        let failed: Vec<String> = hosts
            .iter()
            .filter_map(|h| {
                h.failed
                    .as_ref()
                    .map(|e| format!("{}: {}", h.name(), e.summary()))
            })
            .collect();
        let web_total = hosts.iter().filter(|h| !h.is_worker()).count();
        let required = self.policy.min_healthy_hosts.unwrap_or(web_total);
        let worker_failed = hosts.iter().any(|h| h.is_worker() && h.failed.is_some());
        if worker_failed || ready_web.is_empty() || ready_web.len() < required {
            let hosts_word = if web_total < hosts.len() {
                "web hosts"
            } else {
                "hosts"
            };
            let why = if worker_failed {
                format!("every worker is required; {}", failed.join("; "))
            } else {
                format!(
                    "{} of {web_total} {hosts_word} ready, {required} required; {}",
                    ready_web.len(),
                    failed.join("; ")
                )
            };
            return Err(self.abort(DEPLOY, hosts, &why).await);
        }

        let hosts_env = |names: &[&str]| vec![("CONNECT_HOSTS".to_string(), names.join(","))];
        let ready_names: Vec<&str> = ready.iter().map(|i| hosts[*i].member.name.as_str()).collect();
        let env = hosts_env(&ready_names);
        if let Err(e) = self.fleet_hooks(&mut hosts, HookPoint::BeforeSwitch, &env).await {
            return Err(self
                .abort_with(
                    hosts,
                    &format!("a before_switch hook failed: {}", e.summary()),
                    e.kind(),
                )
                .await);
        }

        // The hosts that failed are settled first (their new color removed), then left out of rotation by
        // the same exchange that moves the others.
        let mut outcomes: Vec<Option<HostOutcome>> = (0..hosts.len()).map(|_| None).collect();
        let mut left_out = Vec::new();
        // Each host settles on its own connection: in parallel, so a stop grace is waited once, not per host.
        let settling = hosts.iter_mut().enumerate().filter_map(|(i, h)| {
            let e = h.failed.take()?;
            Some(async move { (i, h.abandon(e).await) })
        });
        for (i, outcome) in join_all(settling).await {
            outcomes[i] = Some(outcome);
            left_out.push(i);
        }
        // The old colors' figures before any of their traffic moves: what each new color is held to.
        let baselines = match self.watch_baselines(&hosts, &ready_web).await {
            Ok(b) => b,
            Err((i, e)) => {
                let why = baseline_error(hosts[i].name(), &e);
                let kind = Some(e.kind());
                hosts[i].failed = Some(e);
                return Err(self
                    .abort_indices(DEPLOY, &mut hosts, &ready, outcomes, &why, kind)
                    .await);
            }
        };
        let servers_now = self.router.servers().await.unwrap_or_default();
        let mut up = Vec::new();
        let mut down = Vec::new();
        for &i in &ready_web {
            let h = &hosts[i];
            up.push(h.server(h.to));
            // A host joining the web hosts: its old color is a worker's, its server already in maint.
            if let Some(from) = h.from.filter(|f| *f != h.to && !h.joining) {
                down.push(h.server(from));
            }
        }
        // A host that became a worker leaves rotation in the same exchange, after the new colors are ready.
        // Read again here too: the read before the deploy may have failed, and a server missed would keep
        // taking requests while the worker's retire stops the container behind it.
        for &i in &ready_workers {
            for seen in leaving(&hosts[i], &servers_now) {
                if !hosts[i].leaving.iter().any(|(s, _)| *s == seen.0) {
                    hosts[i].leaving.push(seen);
                }
            }
            down.extend(hosts[i].leaving_ready());
        }
        for &i in &left_out {
            for color in Color::ALL {
                let server = hosts[i].server(color);
                if servers_now
                    .iter()
                    .any(|s| s.name == server && s.admin == AdminState::Ready)
                {
                    down.push(server);
                }
            }
        }
        let t = tokio::time::Instant::now();
        let switched = self
            .router
            .set_states_together(&up, &down, self.config.policy.router_deadline)
            .await;
        let took = t.elapsed();
        let names = |idx: &[usize]| {
            idx.iter()
                .map(|i| hosts[*i].name().to_string())
                .collect::<Vec<_>>()
        };
        let (in_names, out_names) = (names(&ready_web), names(&left_out));
        if let Err(e) = switched {
            let why = format!("the switch of {} failed: {}", in_names.join(", "), e.summary());
            for &i in &ready_web {
                let h = &mut hosts[i];
                if let Some(run) = h.run.as_mut() {
                    run.record.steps.push(failed_step(Step::Switch, &e));
                }
            }
            let kind = Some(e.kind());
            return Err(self
                .abort_indices(DEPLOY, &mut hosts, &ready, outcomes, &why, kind)
                .await);
        }

        // Traffic moved on every ready host.
        let detail = match out_names.as_slice() {
            [] => format!(
                "{} switched together in one router exchange, confirmed after {:.1} ms",
                in_names.join(", "),
                took.as_secs_f64() * 1000.0
            ),
            out => format!(
                "{} switched together in one router exchange, confirmed after {:.1} ms; left out of rotation: {}",
                in_names.join(", "),
                took.as_secs_f64() * 1000.0,
                out.join(", ")
            ),
        };
        let worker_detail = format!(
            "the new color runs beside the old until {} are verified",
            in_names.join(", ")
        );
        for &i in &ready {
            let h = &mut hosts[i];
            let (to, release) = (h.to, h.release.clone());
            let container = h.member.deployer.config.topology.slot(to).container.clone();
            let detail = if h.is_worker() { &worker_detail } else { &detail };
            if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) {
                run.record.steps.push(ok_step(Step::Switch, detail, took));
                journal.live = Some(to);
                journal.slots.insert(
                    to,
                    SlotRecord {
                        release,
                        container,
                        since_unix_ms: now_unix_ms(),
                    },
                );
            }
        }
        for &i in &left_out {
            // Its servers take no traffic now: the journal says no color is live, the slots it keeps are
            // still what runs there, and its record says why.
            let host = hosts[i].member;
            if let Ok(mut journal) = host.deployer.journal().await {
                journal.live = None;
                journal.balanced = false;
                if let Some(last) = journal.history.last_mut() {
                    last.live_after = None;
                    last.steps.push(ok_step(
                        Step::Switch,
                        &format!(
                            "left out of rotation: {} switched without it",
                            in_names.join(", ")
                        ),
                        took,
                    ));
                }
                if let Err(e) = host.deployer.store.save(&journal, &hosts[i].held.fence).await {
                    hosts[i].unrecorded = Some(e);
                }
            }
            if let Some(o) = outcomes[i].as_mut() {
                o.in_rotation = false;
                o.live = None;
            }
        }

        // Drain and verify on every switched host, in parallel.
        let checks = hosts
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| ready.contains(i))
            .map(|(_, h)| drain_and_verify(h, since));
        let verify_failed = join_all(checks).await.into_iter().flatten().next();
        if let Some((host, e)) = verify_failed {
            let why = format!("verify failed on {host}: {}", e.summary());
            let kind = e.kind();
            return Err(self
                .switch_back(&mut hosts, &ready, outcomes, &why, kind, Step::Verify)
                .await);
        }
        if let Some((i, e)) = self.watch_hosts(&mut hosts, &ready_web, &baselines).await {
            let why = format!(
                "the watch after the switch found a regression on {}: {}",
                hosts[i].name(),
                e.summary()
            );
            let kind = e.kind();
            hosts[i].failed = Some(e);
            return Err(self
                .switch_back(&mut hosts, &ready, outcomes, &why, kind, Step::Watch)
                .await);
        }
        self.take_out_leaving(&mut hosts, &ready_workers).await;
        for &i in &ready_web {
            let h = &mut hosts[i];
            if let (Some(journal), Some(_)) = (h.journal.as_mut(), h.from)
                && let OldColorPolicy::RetireAfter { window } = self.config.policy.old_color
            {
                journal.standby_until_unix_ms = Some(now_unix_ms() + window.as_millis() as u64);
            }
            if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_ref()) {
                run.record.live_after = journal.live;
            }
        }
        // Traffic moved and is verified: an after_deploy hook's failure is its step's only.
        let env = [
            ("CONNECT_HOSTS".to_string(), in_names.join(",")),
            ("CONNECT_HOSTS_LEFT_OUT".to_string(), out_names.join(",")),
        ];
        let _ = self.fleet_hooks(&mut hosts, HookPoint::AfterDeploy, &env).await;
        if let Some(keep) = self.config.policy.keep_releases {
            join_all(
                hosts
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| ready.contains(i))
                    .map(|(_, h)| prune(h, keep)),
            )
            .await;
        }
        // Every journal takes its record over its own connection, in parallel.
        let records = hosts
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| ready.contains(i))
            .map(|(i, h)| async move { (i, h.succeed().await) });
        for (i, outcome) in join_all(records).await {
            outcomes[i] = Some(outcome);
        }
        // The deploy is recorded everywhere: each worker's old color finishes its jobs and goes. A worker whose
        // record failed keeps its intent, which the next operation settles instead.
        // A host that joined the web hosts retires its worker color the same way.
        let not_retired_yet: Vec<(String, Error)> = join_all(
            ready
                .iter()
                .map(|&i| &hosts[i])
                .filter(|h| (h.is_worker() || h.joining) && h.unrecorded.is_none())
                .map(retire_old_worker),
        )
        .await
        .into_iter()
        .flatten()
        .collect();
        let report = recorded(
            "deploy",
            &mut hosts,
            FleetReport {
                hosts: outcomes.into_iter().flatten().collect(),
            },
        )?;
        if !not_retired_yet.is_empty() {
            return Err(not_retired(&report, not_retired_yet));
        }
        Ok(report)
    }
}
