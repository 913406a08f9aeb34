//! What a fleet operation does on a worker host that it does not do on a web host: retiring the old color
//! once the deploy is recorded everywhere, and, in a rollback, starting the release the web hosts went back to.

use super::host::{FleetReport, HostOutcome, HostRun, failed_step};
use super::role_change::refuse_rollback;
use crate::engine::intent::Intent;
use crate::engine::journal::{SlotRecord, now_unix_ms};
use crate::engine::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Release;
use crate::router::ServerStatus;
use crate::vocabulary::{OperationKind, Outcome, Step};

/// Stops the worker's old color with the stop grace (the job in hand finishes, no new one is taken) and
/// removes it, as a retire of its own, recorded after the deploy: the deploy is done on every host by then,
/// so nothing can move the web hosts back while the worker's old color is gone. Its intent lets an
/// interruption be finished by the next operation. A failure is this retire's only (the deploy stands): the
/// old color then still takes jobs beside the new one, which the warning, the record and `status` say, and
/// the next fleet operation retires it first. Returns the failure, with the host's name.
pub(super) async fn retire_old_worker(h: &HostRun<'_>) -> Option<(String, Error)> {
    let d = &h.member.deployer;
    let fence = &h.held.fence;
    let name = h.name().to_string();
    let mut journal = match d.journal().await {
        Ok(journal) => journal,
        Err(e) => return Some((name, e)),
    };
    let (Some(live), Some(old)) = (journal.live, journal.standby()) else {
        return None;
    };
    let mut run = Run::new(
        &d.events,
        OperationKind::Retire,
        None,
        Some(live),
        old,
        &d.config.holder,
    );
    // A host that joined the web hosts retires the color it ran as a worker; it is no worker now.
    run.record.as_worker = !h.joining;
    let intent = d.intent(&run.record, Some(live), old);
    let grace = d.config.app.stop_grace;
    let role = if h.joining {
        format!(": the color {name} ran as a worker; it serves as a web host now")
    } else {
        String::new()
    };
    let retired = run
        .step(Step::Retire, async {
            d.declare(&mut journal, fence, intent).await?;
            d.take_down(&mut journal, old).await?;
            Ok(format!(
                "{old} stopped (its jobs had {grace:?} to finish) and removed{role}"
            ))
        })
        .await;
    let result = match retired {
        Ok(()) => {
            journal.intent = None;
            Ok(())
        }
        Err(e) => {
            run.events.warn(
                Step::Retire,
                format!("{old} may still take jobs beside {live}: {}", e.summary()),
            );
            Err(d.undo(&mut run, &mut journal, e).await)
        }
    };
    let failed = result
        .as_ref()
        .err()
        .map(|e| Error::new(e.kind(), "fleet.retire", h.name(), e.summary()));
    match d.record(run, journal, result, fence).await {
        // What could not be written is settled by the next operation from the intent.
        Err(e) => Some((name, e)),
        Ok(_) => failed.map(|e| (name, e)),
    }
}

/// The deploy moved traffic and is recorded everywhere, but some workers' old colors could not be retired:
/// an error naming them, so no caller takes two colors taking jobs for a finished deploy.
pub(super) fn not_retired(report: &FleetReport, failures: Vec<(String, Error)>) -> Error {
    let lines: Vec<String> = failures
        .iter()
        .map(|(host, e)| format!("{host}: {}", e.summary()))
        .collect();
    let names: Vec<&str> = failures.iter().map(|(host, _)| host.as_str()).collect();
    let live: Vec<String> = report.hosts.iter().map(HostOutcome::where_now).collect();
    let kind = failures[0].1.kind();
    Error::new(
        kind,
        "fleet.deploy",
        names.join(","),
        format!(
            "the deploy moved traffic ({}) but the workers' old colors could not be retired, so both colors \
             take jobs there: {}",
            live.join(", "),
            lines.join("; ")
        ),
    )
    .with_hint("run the deploy again: the next fleet operation retires them first")
}

/// A worker's old color that a deploy left running (it was interrupted between its records and the retire)
/// is stopped and removed before anything else: two colors taking jobs is no state a worker stays in, and
/// reconcile would read it as drift. Under a retire intent, so a failure here is settled like any retire.
pub(super) async fn retire_leftover(h: &mut HostRun<'_>) {
    let d = &h.member.deployer;
    let fence = &h.held.fence;
    // A worker that was a web host: its old color is the warm standby it kept then.
    let why = if h.leaving.is_empty() {
        "left running by an interrupted deploy".to_string()
    } else {
        format!("{}'s warm standby from when it was a web host", h.member.name)
    };
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return;
    };
    let (Some(live), Some(old)) = (journal.live, journal.standby()) else {
        return;
    };
    let intent = Intent {
        kind: OperationKind::Retire,
        release: None,
        ..d.intent(&run.record, Some(live), old)
    };
    let retired = run
        .step(Step::Retire, async {
            d.declare(journal, fence, intent).await?;
            d.take_down(journal, old).await?;
            journal.intent = None;
            Ok(format!("{old}, {why}, stopped and removed"))
        })
        .await;
    if let Err(e) = retired {
        h.failed = Some(e);
    }
}

/// Reads a worker's journal for a rollback: it goes back by starting a release (it keeps no standby), so
/// its record is a full rollback. A worker with no live color has nothing to roll back.
pub(super) async fn begin_worker_rollback(h: &mut HostRun<'_>, servers: &[ServerStatus]) {
    if !h.begin(OperationKind::FullRollback, None).await {
        return;
    }
    if let Some(e) = refuse_rollback(h, servers) {
        h.failed = Some(e);
        return;
    }
    retire_leftover(h).await;
    if h.failed.is_some() {
        return;
    }
    let d = &h.member.deployer;
    if let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut())
        && journal.live.is_some()
        && let Err(e) = run.step(Step::Reconcile, d.reconcile(journal)).await
    {
        h.failed = Some(e);
    }
}

/// The release every worker goes back to: the one the web hosts in rotation go back to, which must be one
/// release (the web hosts' standbys normally are).
pub(super) fn rollback_release(hosts: &[HostRun<'_>], web: &[usize]) -> Result<Release> {
    let mut found: Vec<(&str, &Release)> = Vec::new();
    for &i in web {
        let h = &hosts[i];
        if let Some(release) = h.run.as_ref().and_then(|r| r.record.release.as_ref())
            && !found.iter().any(|(_, r)| *r == release)
        {
            found.push((h.name(), release));
        }
    }
    match found.as_slice() {
        [(_, release)] => Ok((*release).clone()),
        _ => Err(Error::new(
            ErrorKind::Refused,
            "fleet.rollback",
            "workers",
            format!(
                "the web hosts go back to different releases ({}), so the workers have no one release to go back to",
                found
                    .iter()
                    .map(|(h, r)| format!("{} on {h}", r.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("deploy the release you want back: every host, web and worker, gets it")),
    }
}

/// Makes `release` the worker's target when its image is there. A worker without it (one that joined the
/// fleet at the release being left, or whose image was removed) keeps running its release: the rollback goes
/// on without it (`stays`), rather than being refused.
///
/// Why not refuse: an instant rollback is what an operator reaches for when the release hurts users, and
/// the web hosts' standbys can take them back in one exchange. Holding that back until an image is shipped
/// to a worker (minutes) keeps users on the bad release for the sake of a host that serves none of them. The
/// worker keeping the newer release is the state the whole fleet was in a moment before, against the same
/// database (a rollback migrates nothing back), so it is no new risk; the fleet is then mixed, which its
/// record, the report and the events say, with the fix: ship the release to it and deploy it. An image
/// that cannot be looked up (the worker unreachable) still refuses: what runs there is unknown.
pub(super) async fn aim_worker(h: &mut HostRun<'_>, release: &Release) {
    let member = h.member;
    let (d, name) = (&member.deployer, member.name.as_str());
    let Some(run) = h.run.as_mut() else {
        return;
    };
    run.record.release = Some(release.clone());
    h.release = release.clone();
    let present = match d.backends.runtime.image(&release.image).await {
        Ok(image) => image.is_some(),
        Err(e) => {
            h.failed = Some(e);
            return;
        }
    };
    if present {
        return;
    }
    let journal = h.journal.as_ref();
    let running = journal
        .and_then(|j| j.slots.get(&j.live?))
        .map_or("its release".to_string(), |s| s.release.version.clone());
    let ran = journal.is_some_and(|j| {
        j.history
            .iter()
            .any(|r| r.release.as_ref() == Some(release) && r.outcome == Outcome::Succeeded)
    });
    let why = if ran {
        format!("{} is no longer on {}", release.image, name)
    } else {
        format!(
            "{} never ran {} (it joined the fleet later), so {} is not on it",
            name, release.version, release.image
        )
    };
    let e = Error::new(
        ErrorKind::NotFound,
        "fleet.rollback",
        name,
        format!(
            "{why}: it keeps {running} while the web hosts go back to {}",
            release.version
        ),
    )
    .with_hint(format!(
        "ship {} to {} and deploy {} to bring it along (a deploy with a release source ships the image where \
         it is missing); rolling back again would move the web hosts forward",
        release.image, name, release.version
    ));
    run.events.warn(Step::StageImage, e.to_string());
    run.record.steps.push(failed_step(Step::StageImage, &e));
    h.stays = Some(e);
}

/// Starts the worker's target release on its idle color, health-gates it, then stops and removes the color
/// it leaves. The intent (declared by the caller) lets a failure be settled: the current color kept, the new
/// one removed.
pub(super) async fn roll_back_worker(h: &mut HostRun<'_>) -> Result<()> {
    let d = &h.member.deployer;
    let (from, to, release) = (h.from, h.to, h.release.clone());
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return Ok(());
    };
    let events = run.events.clone();
    run.step(Step::StartIdle, d.start_idle(journal, &events, to, &release))
        .await?;
    run.step(Step::HealthGate, d.health_gate(&events, to)).await?;
    journal.live = Some(to);
    journal.slots.insert(
        to,
        SlotRecord {
            release: release.clone(),
            container: d.config.topology.slot(to).container.clone(),
            since_unix_ms: now_unix_ms(),
        },
    );
    if let Some(old) = from.filter(|f| *f != to) {
        let grace = d.config.app.stop_grace;
        run.step(Step::Drain, async {
            d.take_down(journal, old).await?;
            Ok(format!(
                "{old} stopped (its jobs had {grace:?} to finish) and removed"
            ))
        })
        .await?;
    }
    run.record.live_after = journal.live;
    Ok(())
}
