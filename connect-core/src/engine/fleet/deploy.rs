//! The deploy over several hosts: every host made ready in parallel, one switch, then drain and verify.

use std::time::SystemTime;

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::{Fleet, Member};
use crate::engine::journal::{Journal, OperationRecord, SlotRecord, now_unix_ms};
use crate::engine::operation::Held;
use crate::engine::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Color, OldColorPolicy, Release};
use crate::router::{AdminState, CheckState};
use crate::ship::ReleaseSource;
use crate::vocabulary::{OperationKind, Step};
use crate::wait::poll_until;

/// How one host ended a fleet operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOutcome {
    /// The host's name.
    pub host: String,
    /// Whether one of its servers takes traffic after the operation.
    pub in_rotation: bool,
    /// Its live color per its journal after the operation (`None` when it was left out of rotation).
    pub live: Option<Color>,
    /// Its operation record, as its journal holds it (`None` when the journal could not be written).
    pub record: Option<OperationRecord>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What a fleet deploy or rollback did on every host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetReport {
    /// Every host, in the fleet's order.
    pub hosts: Vec<HostOutcome>,
}

impl FleetReport {
    /// The hosts whose servers take traffic.
    pub fn in_rotation(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| h.in_rotation)
            .map(|h| h.host.as_str())
            .collect()
    }

    /// The hosts left out of rotation because they failed before the switch.
    pub fn left_out(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| !h.in_rotation)
            .map(|h| h.host.as_str())
            .collect()
    }
}

/// One host's part of the operation in progress.
pub(super) struct HostRun<'a> {
    pub(super) member: &'a Member,
    pub(super) held: Held,
    pub(super) journal: Option<Journal>,
    pub(super) run: Option<Run>,
    pub(super) from: Option<Color>,
    pub(super) to: Color,
    pub(super) release: Release,
    pub(super) failed: Option<Error>,
    /// Why this host's journal could not take the operation's outcome, though traffic moved as the others'.
    pub(super) unrecorded: Option<Error>,
}

impl<'a> HostRun<'a> {
    pub(super) fn new(member: &'a Member, held: Held, release: Release) -> HostRun<'a> {
        HostRun {
            member,
            held,
            journal: None,
            run: None,
            from: None,
            to: Color::Blue,
            release,
            failed: None,
            unrecorded: None,
        }
    }

    fn name(&self) -> &str {
        &self.member.name
    }

    fn server(&self, color: Color) -> String {
        self.member.deployer.config.topology.slot(color).server.clone()
    }

    /// Reads the journal (settling what an interrupted operation left) and starts the host's record.
    pub(super) async fn begin(&mut self, kind: OperationKind, release: Option<Release>) -> bool {
        let d = &self.member.deployer;
        match d.begin(&self.held).await {
            Ok(journal) => {
                self.from = journal.live;
                self.to = match kind {
                    OperationKind::InstantRollback => journal.standby().unwrap_or(Color::Blue),
                    _ => journal.live.map_or(Color::Blue, Color::other),
                };
                self.run = Some(Run::new(
                    &d.events,
                    kind,
                    release,
                    self.from,
                    self.to,
                    &d.config.holder,
                ));
                self.journal = Some(journal);
                true
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    /// Undoes what this host changed (its own settling, from what its servers and runtime show), then
    /// writes its record; `error` is why the host did not switch.
    pub(super) async fn abandon(&mut self, error: Error) -> HostOutcome {
        let d = &self.member.deployer;
        let (Some(mut run), Some(mut journal)) = (self.run.take(), self.journal.take()) else {
            return self.unrecorded(error);
        };
        let error = d.undo(&mut run, &mut journal, error).await;
        let live = journal.live;
        let recorded = d.record(run, journal, Err(error), &self.held.fence).await;
        let record = d.journal().await.ok().and_then(|j| j.history.last().cloned());
        HostOutcome {
            host: self.name().to_string(),
            in_rotation: live.is_some(),
            live,
            record,
            error: recorded.err().map(|e| e.to_string()),
        }
    }

    fn unrecorded(&self, error: Error) -> HostOutcome {
        HostOutcome {
            host: self.name().to_string(),
            in_rotation: false,
            live: None,
            record: None,
            error: Some(error.to_string()),
        }
    }

    pub(super) async fn succeed(&mut self) -> HostOutcome {
        let d = &self.member.deployer;
        let (Some(mut run), Some(mut journal)) = (self.run.take(), self.journal.take()) else {
            return self.unrecorded(Error::new(ErrorKind::Failed, "fleet", self.name(), "no record"));
        };
        journal.intent = None;
        run.record.live_after = journal.live;
        let live = journal.live;
        let recorded = d.record(run, journal, Ok(()), &self.held.fence).await;
        let outcome = HostOutcome {
            host: self.name().to_string(),
            in_rotation: live.is_some(),
            live,
            error: recorded.as_ref().err().map(|e| e.to_string()),
            record: recorded.as_ref().ok().cloned(),
        };
        self.unrecorded = recorded.err();
        outcome
    }
}

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
        join_all(hosts.iter_mut().map(|h| prepare(h, source))).await;

        // The database is shared: the migration runs once, from the first host that has the image.
        if let Some(first) = hosts.iter_mut().find(|h| h.failed.is_none()) {
            let d = &first.member.deployer;
            let release = first.release.clone();
            if let Some(run) = first.run.as_mut()
                && let Err(e) = d.migrate_steps(run, &release).await
            {
                let why = format!("the migration failed on {}: {}", first.member.name, e.summary());
                first.failed = Some(e);
                return Err(self.abort(hosts, &why).await);
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
        let failed: Vec<String> = hosts
            .iter()
            .filter_map(|h| {
                h.failed
                    .as_ref()
                    .map(|e| format!("{}: {}", h.name(), e.summary()))
            })
            .collect();
        let required = self.policy.min_healthy_hosts.unwrap_or(hosts.len());
        if ready.is_empty() || ready.len() < required {
            let why = format!(
                "{} of {} hosts ready, {required} required; {}",
                ready.len(),
                hosts.len(),
                failed.join("; ")
            );
            return Err(self.abort(hosts, &why).await);
        }

        // The hosts that failed are settled first (their new color removed), then left out of rotation by
        // the same exchange that moves the others.
        let mut outcomes: Vec<Option<HostOutcome>> = (0..hosts.len()).map(|_| None).collect();
        let mut left_out = Vec::new();
        for (i, h) in hosts.iter_mut().enumerate() {
            if let Some(e) = h.failed.take() {
                outcomes[i] = Some(h.abandon(e).await);
                left_out.push(i);
            }
        }
        let servers_now = self.router.servers().await.unwrap_or_default();
        let mut up = Vec::new();
        let mut down = Vec::new();
        for &i in &ready {
            let h = &hosts[i];
            up.push(h.server(h.to));
            if let Some(from) = h.from.filter(|f| *f != h.to) {
                down.push(h.server(from));
            }
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
        let (in_names, out_names) = (names(&ready), names(&left_out));
        if let Err(e) = switched {
            let why = format!("the switch of {} failed: {}", in_names.join(", "), e.summary());
            for &i in &ready {
                let h = &mut hosts[i];
                if let Some(run) = h.run.as_mut() {
                    run.record.steps.push(failed_step(Step::Switch, &e));
                }
            }
            return Err(self.abort_indices(&mut hosts, &ready, outcomes, &why).await);
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
        for &i in &ready {
            let h = &mut hosts[i];
            let (to, release) = (h.to, h.release.clone());
            let container = h.member.deployer.config.topology.slot(to).container.clone();
            if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) {
                run.record.steps.push(ok_step(Step::Switch, &detail, took));
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
            // Every host back on its old color in one exchange; each host's own settling then removes the
            // unverified release (a first deploy has nothing to go back to and keeps the new color).
            let back: Vec<usize> = ready
                .iter()
                .copied()
                .filter(|i| hosts[*i].from.is_some())
                .collect();
            let up: Vec<String> = back
                .iter()
                .filter_map(|i| hosts[*i].from.map(|c| hosts[*i].server(c)))
                .collect();
            let down: Vec<String> = back.iter().map(|i| hosts[*i].server(hosts[*i].to)).collect();
            let _ = self
                .router
                .set_states_together(&up, &down, self.config.policy.router_deadline)
                .await;
            let why = format!("verify failed on {host}: {}", e.summary());
            return Err(self.abort_indices(&mut hosts, &ready, outcomes, &why).await);
        }

        for &i in &ready {
            let h = &mut hosts[i];
            if let (Some(journal), Some(_)) = (h.journal.as_mut(), h.from)
                && let OldColorPolicy::RetireAfter { window } = self.config.policy.old_color
            {
                journal.standby_until_unix_ms = Some(now_unix_ms() + window.as_millis() as u64);
            }
            outcomes[i] = Some(h.succeed().await);
        }
        recorded(
            "deploy",
            &mut hosts,
            FleetReport {
                hosts: outcomes.into_iter().flatten().collect(),
            },
        )
    }

    /// Nothing switched: every host settles what it changed and records why.
    pub(super) async fn abort(&self, mut hosts: Vec<HostRun<'_>>, why: &str) -> Error {
        let all: Vec<usize> = (0..hosts.len()).collect();
        let outcomes = (0..hosts.len()).map(|_| None).collect();
        self.abort_indices(&mut hosts, &all, outcomes, why).await
    }

    async fn abort_indices(
        &self,
        hosts: &mut [HostRun<'_>],
        which: &[usize],
        mut outcomes: Vec<Option<HostOutcome>>,
        why: &str,
    ) -> Error {
        let mut lines = Vec::new();
        for &i in which {
            let h = &mut hosts[i];
            let e = h.failed.take().unwrap_or_else(|| {
                Error::new(
                    ErrorKind::Failed,
                    "fleet.deploy",
                    h.name(),
                    format!("aborted everywhere: {why}"),
                )
            });
            let outcome = h.abandon(e).await;
            lines.push(format!(
                "{}: {}",
                outcome.host,
                outcome.record.as_ref().map_or_else(
                    || outcome.error.clone().unwrap_or_default(),
                    |r| format!("{:?}", r.outcome)
                )
            ));
            outcomes[i] = Some(outcome);
        }
        let where_now: Vec<String> = outcomes
            .iter()
            .flatten()
            .map(|o| {
                format!(
                    "{} live {}",
                    o.host,
                    o.live.map_or("none".into(), |c| c.to_string())
                )
            })
            .collect();
        Error::new(
            ErrorKind::Failed,
            "fleet.deploy",
            self.hosts().join(","),
            format!("{why}; settled: {}", where_now.join(", ")),
        )
        .with_hint(
            "read each host's journal (connect-ops status) for its record; fix the host that failed, or set \
             min_healthy_hosts to deploy without it",
        )
    }
}

/// The operation's result once traffic moved: `report`, unless some host's journal could not take its
/// outcome. Then, as on one host, the operation is an error naming those hosts: their journals still hold
/// the intent (or an outdated live color), which the next operation settles from what runs.
pub(super) fn recorded(what: &str, hosts: &mut [HostRun<'_>], report: FleetReport) -> Result<FleetReport> {
    let mut unrecorded: Vec<(String, Error)> = hosts
        .iter_mut()
        .filter_map(|h| h.unrecorded.take().map(|e| (h.name().to_string(), e)))
        .collect();
    if unrecorded.is_empty() {
        return Ok(report);
    }
    let lines: Vec<String> = unrecorded
        .iter()
        .map(|(host, e)| format!("{host}: {}", e.summary()))
        .collect();
    let live: Vec<String> = report
        .hosts
        .iter()
        .map(|o| {
            format!(
                "{} live {}",
                o.host,
                o.live.map_or("none".into(), |c| c.to_string())
            )
        })
        .collect();
    let names: Vec<String> = unrecorded.iter().map(|(host, _)| host.clone()).collect();
    let (_, first) = unrecorded.remove(0);
    Err(Error::new(
        first.kind(),
        format!("fleet.{what}"),
        names.join(","),
        format!(
            "the {what} moved traffic ({}) but a journal could not be written: {}",
            live.join(", "),
            lines.join("; ")
        ),
    )
    .with_source(first)
    .with_hint(
        "fix that server's state directory; the next operation on the fleet settles its journal from what runs",
    ))
}

/// Settles, reconciles, preflights, ships and stages one host.
async fn prepare(h: &mut HostRun<'_>, source: Option<&ReleaseSource>) {
    let kind = OperationKind::Deploy;
    if !h.begin(kind, Some(h.release.clone())).await {
        return;
    }
    let d = &h.member.deployer;
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return;
    };
    let events = run.events.clone();
    let release = h.release.clone();
    let result = async {
        run.step(Step::Reconcile, d.reconcile(journal)).await?;
        run.step(Step::Preflight, d.preflight_step(&events)).await?;
        if let Some(source) = source {
            run.step(Step::Ship, async {
                Ok(d.ship_release(&events, &release, source).await?.summary())
            })
            .await?;
        }
        let mut staged = None;
        run.step(Step::StageImage, d.stage(&release, &mut staged)).await?;
        Ok::<_, Error>(staged.unwrap_or(release.clone()))
    }
    .await;
    match result {
        Ok(staged) => {
            run.record.release = Some(staged.clone());
            h.release = staged;
        }
        Err(e) => h.failed = Some(e),
    }
}

/// Declares the intent, starts the idle color, health-gates it, and has the router's own check see it up
/// (its server in drain: checked, taking no traffic), so the switch is only a change of states.
async fn start_and_gate(h: &mut HostRun<'_>) {
    let d = &h.member.deployer;
    let (to, from) = (h.to, h.from);
    let server = h.server(to);
    let release = h.release.clone();
    let fence = h.held.fence.clone();
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return;
    };
    let events = run.events.clone();
    let intent = d.intent(&run.record, from, to);
    let result = async {
        run.step(Step::StartIdle, async {
            d.declare(journal, &fence, intent).await?;
            d.start_idle(journal, &events, to, &release).await
        })
        .await?;
        run.step(Step::HealthGate, async {
            let gate = d.health_gate(&events, to).await?;
            let router = &d.backends.router;
            router.set_state(&server, AdminState::Drain).await?;
            let deadline = d.config.policy.router_deadline;
            poll_until(
                "fleet.health_gate",
                &server,
                deadline,
                std::time::Duration::from_millis(20),
                || async {
                    Ok(match router.server(&server).await {
                        Ok(s) if matches!(s.check, CheckState::Up | CheckState::NoCheck) => Ok(()),
                        Ok(s) => Err(format!("the router's check says {:?}", s.check)),
                        Err(e) if e.is_retryable() => Err(e.to_string()),
                        Err(e) => return Err(e),
                    })
                },
            )
            .await?;
            Ok(format!("{gate}; the router's check sees {server} up"))
        })
        .await
    }
    .await;
    if let Err(e) = result {
        h.failed = Some(e);
    }
}

/// The old color's in-flight requests finish, then every post-deploy check of the new color; the error
/// of a failed verify, with the host's name.
async fn drain_and_verify(h: &mut HostRun<'_>, since: SystemTime) -> Option<(String, Error)> {
    let d = &h.member.deployer;
    let (from, to) = (h.from, h.to);
    let run = h.run.as_mut()?;
    let events = run.events.clone();
    if let Some(old) = from.filter(|f| *f != to) {
        // Past its deadline a drain only warns; an error here is the router's, and verify still decides.
        let _ = run.step(Step::Drain, d.drain(&events, old)).await;
    }
    match run.step(Step::Verify, d.verify_step(to, since)).await {
        Ok(()) => None,
        Err(e) => Some((h.member.name.clone(), e)),
    }
}

fn ok_step(step: Step, detail: &str, took: std::time::Duration) -> crate::engine::journal::StepRecord {
    crate::engine::journal::StepRecord {
        step,
        duration_ms: took.as_millis() as u64,
        status: crate::vocabulary::StepStatus::Ok,
        detail: detail.to_string(),
    }
}

fn failed_step(step: Step, e: &Error) -> crate::engine::journal::StepRecord {
    crate::engine::journal::StepRecord {
        step,
        duration_ms: 0,
        status: crate::vocabulary::StepStatus::Failed,
        detail: e.to_string(),
    }
}
