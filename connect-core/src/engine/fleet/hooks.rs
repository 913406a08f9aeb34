//! Hooks and pruning over a fleet: a hook point runs once for the fleet, through the first host still going,
//! with the hosts in its environment; pruning runs on each host in rotation.

use super::Fleet;
use super::Member;
use super::host::HostRun;
use crate::engine::hooks::HookPoint;
use crate::error::Result;
use crate::vocabulary::Step;

impl Fleet {
    /// Runs the hooks at `point` once for the fleet, through the first host still going (its events), with
    /// `extra` in their environment; their steps are written into every such host's record. A gate's
    /// failure is returned.
    pub(super) async fn fleet_hooks(
        &self,
        hosts: &mut [HostRun<'_>],
        point: HookPoint,
        extra: &[(String, String)],
    ) -> Result<()> {
        if !self.config.hooks.iter().any(|h| h.point == point) {
            return Ok(());
        }
        let going: Vec<usize> = (0..hosts.len())
            .filter(|i| hosts[*i].failed.is_none() && hosts[*i].run.is_some())
            .collect();
        let Some((&first, others)) = going.split_first() else {
            return Ok(());
        };
        // CONNECT_FLEET: every host of the fleet; CONNECT_HOSTS: those still going (or the caller's).
        let mut env = vec![("CONNECT_FLEET".to_string(), self.hosts().join(","))];
        if !extra.iter().any(|(k, _)| k == "CONNECT_HOSTS") {
            let names: Vec<&str> = going.iter().map(|i| hosts[*i].member.name.as_str()).collect();
            env.push(("CONNECT_HOSTS".to_string(), names.join(",")));
        }
        env.extend(extra.iter().filter(|(k, _)| k != "CONNECT_FLEET").cloned());
        let member: &Member = hosts[first].member;
        let d = &member.deployer;
        let Some(run) = hosts[first].run.as_mut() else {
            return Ok(());
        };
        let before = run.record.steps.len();
        let result = d.run_hooks_with(run, point, &env).await;
        let steps = run.record.steps[before..].to_vec();
        for &i in others {
            if let Some(run) = hosts[i].run.as_mut() {
                run.record.steps.extend(steps.iter().cloned());
            }
        }
        result
    }
}

/// Removes one host's images beyond the newest `keep` (never its live or standby release's), as one host's
/// deploy does after success: a failure is its step's only.
pub(super) async fn prune(h: &mut HostRun<'_>, keep: usize) {
    let d = &h.member.deployer;
    let repository = h.release.image.repository().to_string();
    let (Some(run), Some(journal)) = (h.run.as_mut(), h.journal.as_mut()) else {
        return;
    };
    let _ = run
        .step(Step::Prune, async {
            let report = d.prune_images(journal, &repository, keep, false).await?;
            Ok(report.summary())
        })
        .await;
}
