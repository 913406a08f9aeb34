//! Balance (runbook §4 steps 4-6): under the balanced policy the old color takes the new release too, and
//! both serve.

use crate::engine::Deployer;
use crate::engine::events::Events;
use crate::engine::journal::{Journal, SlotRecord, now_unix_ms};
use crate::error::Result;
use crate::model::{Color, Release};
use crate::router::AdminState;

impl Deployer {
    /// Replaces the old color's container with `release`, gates it, and puts it back in rotation.
    pub(crate) async fn balance(
        &self,
        journal: &mut Journal,
        events: &Events,
        color: Color,
        release: &Release,
    ) -> Result<String> {
        let (b, slot) = (&self.backends, self.config.topology.slot(color));
        self.take_down(journal, color).await?;
        b.runtime.start(&self.container_spec(color, release)).await?;
        self.health_gate(events, color).await?;
        b.router.set_state(&slot.server, AdminState::Ready).await?;
        b.router
            .wait_live(&slot.server, self.config.policy.router_deadline)
            .await?;
        journal.slots.insert(
            color,
            SlotRecord {
                release: release.clone(),
                container: slot.container.clone(),
                since_unix_ms: now_unix_ms(),
            },
        );
        journal.balanced = true;
        Ok(format!("both colors serve {}", release.version))
    }
}
