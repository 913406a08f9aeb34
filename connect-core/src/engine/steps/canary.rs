//! Canary: before the switch, the new color takes a growing share of the traffic by HAProxy
//! weights (10 % → 50 %), each step held under the watch. The intent records both servers' weights first, so
//! the undo of a breach, or the settling after a crash, puts them back; the switch is the last step, 100 %.

use crate::engine::Deployer;
use crate::engine::events::Events;
use crate::engine::journal::Journal;
use crate::engine::lock::Fence;
use crate::engine::steps::watch::{Baseline, Watched};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{CanaryPolicy, Color};
use crate::router::AdminState;

impl Deployer {
    /// Runs the canary steps from `old` to `new`; on success both servers have their weights back and `new`
    /// is live beside `old`, ready for the switch.
    pub(crate) async fn canary(
        &self,
        journal: &mut Journal,
        fence: &Fence,
        events: &Events,
        canary: &CanaryPolicy,
        (old, new): (Color, Color),
        baseline: &Baseline,
    ) -> Result<String> {
        let router = &self.backends.router;
        let (old_server, new_server) = (
            &self.config.topology.slot(old).server,
            &self.config.topology.slot(new).server,
        );
        let old_weight = router.server(old_server).await?.weight;
        let new_weight = router.server(new_server).await?.weight;
        if old_weight == 0 {
            return Err(Error::new(
                ErrorKind::Drift,
                "deploy.canary",
                old_server,
                "the live server has weight 0: there is no share to move",
            )
            .with_hint("set its weight back (set server … weight 100), then deploy"));
        }
        // Write-ahead: whoever settles this operation restores these weights.
        if let Some(intent) = journal.intent.as_mut() {
            intent.weights = [(old_server.clone(), old_weight), (new_server.clone(), new_weight)].into();
        }
        self.store.save(journal, fence).await?;
        for (i, share) in canary.steps.iter().copied().enumerate() {
            // Shares of the old server's weight: `new` gets `share` percent of the requests.
            let to_new = (u32::from(share) * old_weight / 100).max(1);
            let to_old = old_weight.saturating_sub(to_new).max(1);
            router.set_weight(new_server, to_new).await?;
            router.set_weight(old_server, to_old).await?;
            if i == 0 {
                router.set_state(new_server, AdminState::Ready).await?;
                router
                    .wait_live(new_server, self.config.policy.router_deadline)
                    .await?;
            }
            self.watch(Watched {
                events,
                color: new,
                share,
                window: canary.hold,
                baseline,
            })
            .await?;
        }
        router.set_weight(old_server, old_weight).await?;
        router.set_weight(new_server, new_weight).await?;
        Ok(format!(
            "{new} took {:?} % of the traffic, each step held {:.1} s without a breach; weights back to \
             {old_weight}/{new_weight}",
            canary.steps,
            canary.hold.as_secs_f64()
        ))
    }
}
