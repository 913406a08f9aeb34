//! One host's part of a fleet deploy, step by step: settle and reconcile, prepare (preflight, ship, stage),
//! start and gate the idle color, then drain and verify after the switch. The fleet runs each over every
//! host in parallel (`deploy.rs`).

use std::time::SystemTime;

use super::host::HostRun;
use super::role_change::{joining, leaving};
use super::worker_steps::retire_leftover;
use crate::error::Error;
use crate::router::{AdminState, CheckState, ServerStatus};
use crate::ship::ReleaseSource;
use crate::vocabulary::{OperationKind, Step};
use crate::wait::poll_until;

/// Settles what an interrupted operation left on one host and reconciles its journal. `servers`: the shared
/// backend's servers before the deploy, for a host whose role changed (`role_change.rs`).
pub(super) async fn begin(h: &mut HostRun<'_>, servers: &[ServerStatus]) {
    if !h.begin(OperationKind::Deploy, Some(h.release.clone())).await {
        return;
    }
    h.leaving = leaving(h, servers);
    if joining(h, servers).await {
        h.joining = true;
        return;
    }
    if h.is_worker() {
        retire_leftover(h).await;
        if h.failed.is_some() {
            return;
        }
    }
    let d = &h.member.deployer;
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return;
    };
    if let Err(e) = run.step(Step::Reconcile, d.reconcile(journal)).await {
        h.failed = Some(e);
    }
}

/// Preflights, ships and stages one host.
pub(super) async fn prepare(h: &mut HostRun<'_>, source: Option<&ReleaseSource>) {
    let d = &h.member.deployer;
    let (Some(run), Some(_)) = (h.run.as_mut(), h.journal.as_ref()) else {
        return;
    };
    let events = run.events.clone();
    let release = h.release.clone();
    let result = async {
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
pub(super) async fn start_and_gate(h: &mut HostRun<'_>) {
    let d = &h.member.deployer;
    let (to, from) = (h.to, h.from);
    let server = h.server(to);
    let worker = h.is_worker();
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
            if worker {
                // No server: a worker's new color takes jobs as soon as it runs.
                return Ok(gate);
            }
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
pub(super) async fn drain_and_verify(h: &mut HostRun<'_>, since: SystemTime) -> Option<(String, Error)> {
    let d = &h.member.deployer;
    // A worker's old color stays until every host is verified: it is stopped then, not drained now; a host
    // joining the web hosts has no old color in rotation to drain.
    let from = h.from.filter(|_| !h.is_worker() && !h.joining);
    let to = h.to;
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
