//! The watch after a fleet's switch: every switched host's new color watched at once, each held to its own
//! old color's figures from before the switch; the first host to cross a threshold stops the others'
//! watches, and every host goes back to its old color in one router exchange.

use futures::future::join_all;

use super::Fleet;
use super::abort::DEPLOY;
use super::host::{HostOutcome, HostRun, failed_step, ok_step};
use crate::engine::steps::watch::{Baseline, Watched};
use crate::error::{Error, ErrorKind};
use crate::vocabulary::{Step, StepStatus};

impl Fleet {
    /// Each ready host's old color's figures before traffic leaves it, read in parallel (default figures
    /// when the watch is off). The first host whose figures cannot be read, with why.
    pub(super) async fn watch_baselines(
        &self,
        hosts: &[HostRun<'_>],
        ready: &[usize],
    ) -> std::result::Result<Vec<Baseline>, (usize, Error)> {
        let mut baselines = vec![Baseline::default(); hosts.len()];
        if !self.config.policy.watch.enabled() {
            return Ok(baselines);
        }
        let reads = ready.iter().map(|&i| {
            let h = &hosts[i];
            // A host joining the web hosts has no old color that served: the thresholds alone hold it.
            let old = h.from.filter(|_| !h.joining);
            async move { (i, h.member.deployer.watch_baseline(old).await) }
        });
        for (i, read) in join_all(reads).await {
            baselines[i] = read.map_err(|e| (i, e))?;
        }
        Ok(baselines)
    }

    /// Watches every ready host's new color for the policy's window, in parallel, each recorded as its
    /// `watch` step. The host that crossed a threshold first and its error; the others' watches stop then
    /// (their step says why), since every host goes back together.
    pub(super) async fn watch_hosts(
        &self,
        hosts: &mut [HostRun<'_>],
        ready: &[usize],
        baselines: &[Baseline],
    ) -> Option<(usize, Error)> {
        if !self.config.policy.watch.enabled() {
            return None;
        }
        let window = self.config.policy.watch.window;
        let (breached, stop) = tokio::sync::watch::channel(None::<String>);
        let watches = hosts
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| ready.contains(i))
            .map(|(i, h)| {
                let (breached, mut stop) = (&breached, stop.clone());
                let (member, to) = (h.member, h.to);
                let baseline = &baselines[i];
                async move {
                    let run = h.run.as_mut()?;
                    let events = run.events.clone();
                    let watched = Watched {
                        events: &events,
                        color: to,
                        share: 100,
                        window,
                        baseline,
                    };
                    let watching = async {
                        tokio::select! {
                            result = member.deployer.watch(watched) => result,
                            other = stop.wait_for(Option::is_some) => {
                                let other = other.ok().and_then(|o| o.clone()).unwrap_or_default();
                                Err(Error::new(
                                    ErrorKind::Failed,
                                    "fleet.watch",
                                    &member.name,
                                    format!("stopped: {other} crossed a threshold, and every host goes back"),
                                ))
                            }
                        }
                    };
                    let e = run.step(Step::Watch, watching).await.err()?;
                    let first = breached.send_if_modified(|b| {
                        let first = b.is_none();
                        if first {
                            *b = Some(member.name.clone());
                        }
                        first
                    });
                    first.then_some((i, e))
                }
            });
        join_all(watches).await.into_iter().flatten().next()
    }

    /// After a switch whose verify or watch failed: every switched host that had an old color back on it in
    /// one exchange, then each host's own settling removes the release it could not keep (a first deploy has
    /// nothing to go back to and keeps the new color). The error says why and where each host is; each
    /// host's record says the deploy was rolled back at `at` (verify, watch), the step it failed at.
    pub(super) async fn switch_back(
        &self,
        hosts: &mut [HostRun<'_>],
        ready: &[usize],
        outcomes: Vec<Option<HostOutcome>>,
        why: &str,
        kind: ErrorKind,
        at: Step,
    ) -> Error {
        // Workers have no server: each one's undo stops its new color, its old one still runs.
        // A host joining the web hosts has no old color to put back (its worker color answers no HTTP): its
        // new color only leaves. A host that became a worker gets its servers back as they were.
        let back: Vec<usize> = ready
            .iter()
            .copied()
            .filter(|i| hosts[*i].from.is_some() && !hosts[*i].is_worker() && !hosts[*i].joining)
            .collect();
        let mut up: Vec<String> = back
            .iter()
            .filter_map(|i| hosts[*i].from.map(|c| hosts[*i].server(c)))
            .collect();
        for &i in ready {
            up.extend(hosts[i].leaving_ready());
        }
        let down: Vec<String> = ready
            .iter()
            .filter(|i| back.contains(i) || hosts[**i].joining)
            .map(|i| hosts[*i].server(hosts[*i].to))
            .collect();
        // A failed exchange is settled by each host's undo, which acts on what the router shows.
        let t = tokio::time::Instant::now();
        let back_again = self
            .router
            .set_states_together(&up, &down, self.config.policy.router_deadline)
            .await;
        let took = t.elapsed();
        for &i in ready {
            let h = &mut hosts[i];
            let (name, from) = (h.name().to_string(), h.from);
            let Some(run) = h.run.as_mut() else {
                continue;
            };
            // A host whose own check passed records the step the deploy failed at, on another host: its
            // record's failed step is that one, not `lock` (the default when none of its own failed).
            if !run.record.steps.iter().any(|s| s.status == StepStatus::Failed) {
                let e = Error::new(
                    ErrorKind::Failed,
                    DEPLOY,
                    &name,
                    format!("{name}'s own {at} passed; aborted everywhere: {why}"),
                );
                run.record.steps.push(failed_step(at, &e));
            }
            let ms = took.as_secs_f64() * 1000.0;
            if back_again.is_ok()
                && back.contains(&i)
                && let Some(from) = from
            {
                let detail = format!(
                    "{from} back in rotation with every host's old color in one router exchange, confirmed after \
                     {ms:.1} ms"
                );
                h.switched_back = Some(ok_step(Step::SwitchBack, &detail, took));
            } else if back_again.is_ok() && h.joining {
                let detail = format!(
                    "{} out of rotation again with every host's old color back in one router exchange, confirmed \
                     after {ms:.1} ms: {name} stays a worker until a deploy succeeds",
                    h.to
                );
                h.switched_back = Some(ok_step(Step::SwitchBack, &detail, took));
            }
        }
        self.abort_indices(DEPLOY, hosts, ready, outcomes, why, Some(kind))
            .await
    }
}

/// The watch's figures could not be read on one host before the switch: the deploy stops there.
pub(super) fn baseline_error(host: &str, e: &Error) -> String {
    format!(
        "the watch's baseline (the old color's figures) could not be read on {host}: {}",
        e.summary()
    )
}
