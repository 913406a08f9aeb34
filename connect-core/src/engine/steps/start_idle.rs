//! Start idle color (runbook §4 step 1): the color that takes no traffic gets the new release.

use crate::engine::Deployer;
use crate::engine::events::Events;
use crate::engine::journal::Journal;
use crate::error::{ErrorKind, Result};
use crate::model::{Color, Release};
use crate::router::AdminState;
use crate::runtime::{ContainerSpec, slot_labels};
use crate::vocabulary::Step;

impl Deployer {
    /// Replaces whatever runs on `color` (a standby, a leftover, a balanced partner) with `release`.
    pub(crate) async fn start_idle(
        &self,
        journal: &mut Journal,
        events: &Events,
        color: Color,
        release: &Release,
    ) -> Result<String> {
        let (b, cfg) = (&self.backends, &self.config);
        let slot = cfg.topology.slot(color);
        // A balanced partner still takes requests: it finishes them before it goes.
        if b.router.server(&slot.server).await?.admin == AdminState::Ready {
            b.router.set_state(&slot.server, AdminState::Drain).await?;
            match b
                .router
                .wait_drained(&slot.server, cfg.policy.drain_deadline)
                .await
            {
                Err(e) if e.kind() == ErrorKind::Timeout => events.warn(
                    Step::StartIdle,
                    format!(
                        "{} still had sessions after {:?}",
                        slot.server, cfg.policy.drain_deadline
                    ),
                ),
                other => drop(other?),
            }
            journal.balanced = false;
        }
        // Maintenance also stops HAProxy probing a container that is about to be replaced.
        b.router.set_state(&slot.server, AdminState::Maint).await?;
        if let Some(old) = b.runtime.inspect(&slot.container).await? {
            self.stop_and_remove(&slot.container).await?;
            journal.slots.remove(&color);
            journal.standby_until_unix_ms = None;
            events.warn(
                Step::StartIdle,
                format!("replaced {} ({})", old.name, old.release().unwrap_or("?")),
            );
        }
        let info = b.runtime.start(&self.container_spec(color, release)).await?;
        Ok(format!("{} started ({})", info.name, info.id))
    }

    /// Takes `color` out of rotation for good: maintenance (HAProxy stops probing it), its container
    /// stopped and removed, its journal slot cleared.
    pub(crate) async fn take_down(&self, journal: &mut Journal, color: Color) -> Result<()> {
        let slot = self.config.topology.slot(color);
        self.backends
            .router
            .set_state(&slot.server, AdminState::Maint)
            .await?;
        self.stop_and_remove(&slot.container).await?;
        journal.slots.remove(&color);
        Ok(())
    }

    /// Stops a container with the app's grace and removes it; one already gone is fine (what was asked
    /// for is true).
    pub(crate) async fn stop_and_remove(&self, container: &str) -> Result<()> {
        let runtime = &self.backends.runtime;
        match runtime.stop(container, self.config.app.stop_grace).await {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            stopped => stopped?,
        }
        match runtime.remove(container).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub(crate) fn container_spec(&self, color: Color, release: &Release) -> ContainerSpec {
        let (app, slot) = (&self.config.app, self.config.topology.slot(color));
        ContainerSpec {
            name: slot.container.clone(),
            image: release.image.clone(),
            labels: slot_labels(&app.name, color, release),
            env: app.env.clone(),
            ports: vec![(app.container_port, slot.host_port)],
            command: app.command.clone(),
            health_path: app.serves_http().then(|| app.health_path.clone()),
            stop_grace: app.stop_grace,
        }
    }
}
