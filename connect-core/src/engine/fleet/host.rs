//! One host's part of a fleet operation (`HostRun`: its lock, journal, record, colors and failure) and
//! what it ended as (`HostOutcome`, `FleetReport`).

use serde::{Deserialize, Serialize};

use super::Member;
use crate::engine::journal::{Journal, OperationRecord, StepRecord};
use crate::engine::operation::Held;
use crate::engine::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Color, Release};
use crate::router::AdminState;
use crate::vocabulary::{OperationKind, Outcome, Step, StepStatus};

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

impl HostOutcome {
    /// Where its traffic is, for errors: `web1 live blue` (`none` when it has no live color).
    pub(super) fn where_now(&self) -> String {
        let live = self.live.map_or("none".into(), |c| c.to_string());
        format!("{} live {live}", self.host)
    }
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
    /// The fleet's exchange that put this host's old color back after its traffic had moved (a verify or
    /// watch failed on some host), as its record's `switch_back` step: the host's own settling then finds
    /// its old color live already, and the record says the deploy was rolled back, not that it failed.
    pub(super) switched_back: Option<StepRecord>,
    /// A worker that cannot follow a rollback (the release's image is not on it): it keeps running its
    /// release, and this says why and how to bring it along (`worker_steps.rs`: `aim_worker`).
    pub(super) stays: Option<Error>,
    /// A worker that was a web host: its servers HAProxy still has in rotation (or draining) and their
    /// state, which the deploy takes out (`role_change.rs`).
    pub(super) leaving: Vec<(String, AdminState)>,
    /// A web host that was a worker: its live color runs jobs and none of its servers is in rotation; the
    /// deploy brings it in (`role_change.rs`).
    pub(super) joining: bool,
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
            switched_back: None,
            stays: None,
            leaving: Vec::new(),
            joining: false,
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.member.name
    }

    /// A worker: no server in HAProxy (see [`super::Role::Worker`]).
    pub(super) fn is_worker(&self) -> bool {
        self.member.role == super::Role::Worker
    }

    /// The servers of a host that became a worker that took traffic before the deploy: the switch drains
    /// them, a switch back makes them ready again.
    pub(super) fn leaving_ready(&self) -> impl Iterator<Item = String> + '_ {
        self.leaving
            .iter()
            .filter(|(_, admin)| *admin == AdminState::Ready)
            .map(|(s, _)| s.clone())
    }

    pub(super) fn server(&self, color: Color) -> String {
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
                let mut run = Run::new(&d.events, kind, release, self.from, self.to, &d.config.holder);
                run.record.as_worker = self.is_worker();
                self.run = Some(run);
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
        let switched_back = self.switched_back.take();
        if let (Some(step), Some(run)) = (&switched_back, self.run.as_mut()) {
            run.record.steps.push(step.clone());
        }
        if self.joining {
            // Its own undo: the one-host one would make the worker color's server ready.
            super::role_change::undo_joining(self, &error).await;
        }
        let (Some(mut run), Some(mut journal)) = (self.run.take(), self.journal.take()) else {
            return self.unrecorded(error);
        };
        let (kind, summary) = (error.kind(), error.summary());
        let error = if self.joining {
            error
        } else {
            d.undo(&mut run, &mut journal, error).await
        };
        let undone = run
            .record
            .steps
            .last()
            .is_none_or(|s| !(s.step == Step::SwitchBack && s.status == StepStatus::Failed));
        if switched_back.is_some() && undone && run.record.outcome == Outcome::Succeeded {
            // Traffic had moved to the new color and the fleet's exchange brought it back: a rollback at the
            // step the deploy failed at, as one host's record says it (the undo saw the old color live already).
            let step = run.failed_step();
            run.record.outcome = Outcome::RolledBack {
                step,
                kind,
                error: format!(
                    "failed at {step} and was rolled back with every host in one router exchange: {summary}"
                ),
            };
        }
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

    /// Records how the host ended a rollback: its failure settled, a worker that stays on its release
    /// recorded as not rolled back (its outcome's error says why and the fix), or its success.
    pub(super) async fn finish(&mut self) -> HostOutcome {
        if let Some(e) = self.failed.take() {
            return self.abandon(e).await;
        }
        if let Some(e) = self.stays.take() {
            let why = e.to_string();
            let mut outcome = self.abandon(e).await;
            outcome.error.get_or_insert(why);
            return outcome;
        }
        self.succeed().await
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

/// A step the fleet did for the host (the switch), as its record shows it.
pub(super) fn ok_step(step: Step, detail: &str, took: std::time::Duration) -> StepRecord {
    StepRecord {
        step,
        duration_ms: took.as_millis() as u64,
        status: StepStatus::Ok,
        detail: detail.to_string(),
    }
}

/// A step the fleet did for the host that failed.
pub(super) fn failed_step(step: Step, e: &Error) -> StepRecord {
    StepRecord {
        step,
        duration_ms: 0,
        status: StepStatus::Failed,
        detail: e.to_string(),
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
    let live: Vec<String> = report.hosts.iter().map(HostOutcome::where_now).collect();
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
