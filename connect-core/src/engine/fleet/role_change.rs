//! A host whose role changed in the config since its last operation.
//!
//! Its journal was written in its old role while its `Deployer` sees it through its new role's router, so
//! reconcile would read the change as drift. A deploy carries the change out instead:
//! - **web to worker** (`HostRun::leaving`): the host's servers still in HAProxy's rotation are drained by
//!   the deploy's one exchange, in which the web hosts' new colors are made ready first (so they are never
//!   the last live servers), and set to maint once every host is verified; its warm standby is stopped
//!   before it starts its worker color, and its last web color is retired with a worker's old color, once
//!   the deploy is recorded. A switch back puts its servers back as they were.
//! - **worker to web** (`HostRun::joining`): its journal's live color runs the worker's jobs and none of its
//!   servers takes traffic. Its new color is started and gated as any web host's and made ready by the
//!   exchange, while the worker color's server stays in maint (it answers no HTTP); the worker color is
//!   retired once the deploy is recorded. A deploy given up removes the new color and leaves the worker
//!   color running, as it was.

use super::Fleet;
use super::Role;
use super::host::{HostRun, failed_step, ok_step};
use crate::engine::Status;
use crate::engine::journal::{Journal, OperationRecord};
use crate::error::{Error, ErrorKind};
use crate::model::Topology;
use crate::router::{AdminState, ServerStatus};
use crate::vocabulary::{Outcome, Step};

/// Whether the host's last completed operation ran it as a worker.
fn was_worker(journal: &Journal) -> bool {
    ran_as_worker(journal.history.iter().rev())
}

/// [`was_worker`] over records newest first.
fn ran_as_worker<'a>(mut newest_first: impl Iterator<Item = &'a OperationRecord>) -> bool {
    newest_first
        .find(|r| r.outcome == Outcome::Succeeded)
        .is_some_and(|r| r.as_worker)
}

/// What `status` says of a host whose role changed and no deploy carried out yet, in place of the drift its
/// new role's view reads: what runs, and that the next deploy changes it. `None` for any other host.
pub(super) fn pending(
    name: &str,
    role: Role,
    topology: &Topology,
    status: &Status,
    servers: &[ServerStatus],
) -> Option<String> {
    let mine = [&topology.blue.server, &topology.green.server];
    let theirs: Vec<&ServerStatus> = servers.iter().filter(|s| mine.contains(&&s.name)).collect();
    match role {
        Role::Worker => {
            let serving: Vec<&str> = theirs
                .iter()
                .filter(|s| s.admin == AdminState::Ready)
                .map(|s| s.name.as_str())
                .collect();
            (!serving.is_empty()).then(|| {
                format!(
                    "a worker in the config, still a web host in HAProxy's rotation ({}): the next deploy takes it \
                     out and runs it as a worker",
                    serving.join(", ")
                )
            })
        }
        Role::Web => {
            let out = theirs.iter().all(|s| s.admin == AdminState::Maint);
            let live = status.live?;
            (out && ran_as_worker(status.recent.iter())).then(|| {
                format!(
                    "a web host in the config, still running as the worker it was ({live}): the next deploy brings \
                     {name} into rotation"
                )
            })
        }
    }
}

/// The host's two servers in HAProxy, blue's and green's.
fn own_servers(h: &HostRun<'_>) -> [String; 2] {
    crate::model::Color::ALL.map(|c| h.server(c))
}

/// A worker's servers that HAProxy still has in (or draining from) rotation, with their state: it was a
/// web host, and this deploy takes them out.
pub(super) fn leaving(h: &HostRun<'_>, servers: &[ServerStatus]) -> Vec<(String, AdminState)> {
    if !h.is_worker() {
        return Vec::new();
    }
    let mine = own_servers(h);
    servers
        .iter()
        .filter(|s| mine.contains(&s.name) && s.admin != AdminState::Maint)
        .map(|s| (s.name.clone(), s.admin))
        .collect()
}

/// Whether a web host runs a worker's color that no server of it serves: it was a worker, and this deploy
/// brings it into rotation. Recorded as its reconcile step (reconcile would read its maint servers as drift).
pub(super) async fn joining(h: &mut HostRun<'_>, servers: &[ServerStatus]) -> bool {
    let (Some(journal), false) = (h.journal.as_ref(), h.is_worker()) else {
        return false;
    };
    let mine = own_servers(h);
    let in_rotation = servers
        .iter()
        .any(|s| mine.contains(&s.name) && s.admin != AdminState::Maint);
    let (Some(live), false) = (journal.live, in_rotation) else {
        return false;
    };
    if !was_worker(journal) {
        return false;
    }
    let name = h.name().to_string();
    let Some(run) = h.run.as_mut() else {
        return false;
    };
    run.record.steps.push(ok_step(
        Step::Reconcile,
        &format!(
            "{name} was a worker: {live} runs its jobs and none of its servers is in rotation; it joins the web \
             hosts at this deploy's switch, and {live} is retired once the deploy is recorded"
        ),
        std::time::Duration::ZERO,
    ));
    true
}

/// A rollback refuses a host whose role changed and no deploy has carried out yet: a host that became a
/// worker still serves requests as the web host it was (rolling it back as a worker would stop the color
/// HAProxy sends to), and one that became a web host has no web color to go back to. The error names the two
/// ways out.
pub(super) fn refuse_rollback(h: &HostRun<'_>, servers: &[ServerStatus]) -> Option<Error> {
    let journal = h.journal.as_ref()?;
    let mine = own_servers(h);
    let theirs: Vec<&ServerStatus> = servers.iter().filter(|s| mine.contains(&s.name)).collect();
    let why = if h.is_worker() {
        let serving: Vec<&str> = theirs
            .iter()
            .filter(|s| s.admin == AdminState::Ready)
            .map(|s| s.name.as_str())
            .collect();
        if serving.is_empty() {
            return None;
        }
        format!(
            "{} is a worker in the config, but HAProxy still sends it requests ({})",
            h.name(),
            serving.join(", ")
        )
    } else {
        let in_rotation = theirs.iter().any(|s| s.admin != AdminState::Maint);
        if in_rotation || journal.live.is_none() || !was_worker(journal) {
            return None;
        }
        format!(
            "{} is a web host in the config, but it runs as the worker it was, with no web color to go back to",
            h.name()
        )
    };
    Some(
        Error::new(
            ErrorKind::Refused,
            "fleet.rollback",
            h.name(),
            format!("{why}: its role change takes effect at a deploy"),
        )
        .with_hint("deploy first (the deploy carries the role change out), or roll back with its old role in the config"),
    )
}

/// Undoes a deploy on a host that was joining the web hosts: its new color out of HAProxy and removed, its
/// worker color left running as the journal had it. The one-host undo would not do: it would make the
/// worker color's server ready, and that color answers no HTTP.
pub(super) async fn undo_joining(h: &mut HostRun<'_>, e: &Error) {
    let d = &h.member.deployer;
    let (from, to) = (h.from, h.to);
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return;
    };
    let intent = journal.intent.take();
    let undone = run
        .step(Step::SwitchBack, async {
            if intent.is_some() {
                d.take_down(journal, to).await?;
            }
            journal.live = from;
            Ok(format!(
                "{to} removed; {} keeps running the worker's jobs, out of rotation ({})",
                from.map_or("nothing".into(), |c| c.to_string()),
                e.summary()
            ))
        })
        .await;
    if undone.is_err() {
        // The next operation settles it from what runs.
        journal.intent = intent;
    }
}

impl Fleet {
    /// After every host is verified: each host that became a worker has its servers, drained by the switch,
    /// set to maint, recorded as its drain step. Never the last live servers: with no other server live, they
    /// stay as they are and the step says why. A failure is that step's only (they take no new requests).
    pub(super) async fn take_out_leaving(&self, hosts: &mut [HostRun<'_>], ready: &[usize]) {
        let deadline = self.config.policy.drain_deadline;
        for &i in ready {
            let h = &mut hosts[i];
            if h.leaving.is_empty() {
                continue;
            }
            let names: Vec<String> = h.leaving.iter().map(|(s, _)| s.clone()).collect();
            let host = h.name().to_string();
            let router = &self.router;
            let Some(run) = h.run.as_mut() else {
                continue;
            };
            let result = async {
                for server in &names {
                    // Past its deadline a drain only warns, as the one-host drain does.
                    if let Err(e) = router.wait_drained(server, deadline).await {
                        run.events.warn(Step::Drain, format!("{server}: {}", e.summary()));
                    }
                }
                let others_live = router
                    .servers()
                    .await?
                    .iter()
                    .any(|s| !names.contains(&s.name) && s.is_live());
                if !others_live {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        "fleet.deploy",
                        &host,
                        format!(
                            "{} are the last live servers: left as they are though {host} is a worker now",
                            names.join(", ")
                        ),
                    )
                    .with_hint("bring a web host into rotation, then deploy again"));
                }
                for server in &names {
                    router.set_state(server, AdminState::Maint).await?;
                }
                Ok(())
            }
            .await;
            let step = match result {
                Ok(()) => ok_step(
                    Step::Drain,
                    &format!(
                        "{} drained and set to maint: {host} is a worker now, out of HAProxy's rotation",
                        names.join(", ")
                    ),
                    std::time::Duration::ZERO,
                ),
                Err(e) => {
                    run.events.warn(Step::Drain, e.to_string());
                    failed_step(Step::Drain, &e)
                }
            };
            run.record.steps.push(step);
        }
    }
}
