//! The worker role: an app host that runs the release for jobs (a queue's consumers), not for requests.
//!
//! A worker has no server in HAProxy: what takes work on it is whichever color's container runs. Its
//! [`Deployer`](crate::engine::Deployer) still runs the one-host steps (settle, reconcile, start idle, health
//! gate, verify, undo), against [`WorkerRouter`]: each color's "server" is that color's container as the
//! runtime shows it. Live while it runs and is healthy; drained or put in maintenance by stopping it with the
//! app's grace (SIGTERM: the job in hand finishes, no new one is taken); made ready only if it already runs,
//! since only a deploy starts a container. So an interrupted deploy is settled on a worker exactly as on a
//! web host: the color that served before is kept, the new one stopped and removed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Slot, Topology};
use crate::router::{AdminState, CheckState, ServerStatus, TrafficRouter};
use crate::runtime::{ContainerRuntime, ContainerState};

/// An app host's part in the fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Serves requests: its colors are servers of the HAProxy backend, switched with every web host's in
    /// one exchange.
    #[default]
    Web,
    /// Takes jobs, with no server in HAProxy. Its new color starts beside the old one and is health-gated
    /// with the web hosts (a worker failing aborts the deploy everywhere, whatever `min_healthy_hosts`
    /// says: a worker left behind would run the old release's jobs against the new schema). Once the web
    /// hosts' switch is verified (and watched), its old color is stopped with the stop grace and removed.
    /// It keeps no warm standby, since a running one would take jobs: a rollback starts the release the
    /// web hosts go back to.
    Worker,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Web => "web",
            Role::Worker => "worker",
        })
    }
}

/// A worker host's two colors as a router: see the module's documentation.
#[derive(Debug, Clone)]
pub(crate) struct WorkerRouter {
    /// `<host> (worker)`, for messages.
    name: String,
    runtime: Arc<dyn ContainerRuntime>,
    topology: Topology,
    grace: Duration,
}

impl WorkerRouter {
    pub(crate) fn new(
        host: &str,
        runtime: Arc<dyn ContainerRuntime>,
        topology: Topology,
        grace: Duration,
    ) -> WorkerRouter {
        WorkerRouter {
            name: format!("{host} (worker)"),
            runtime,
            topology,
            grace,
        }
    }

    fn slot(&self, server: &str) -> Result<&Slot> {
        [&self.topology.blue, &self.topology.green]
            .into_iter()
            .find(|s| s.server == server)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "router.server",
                    format!("{}/{server}", self.name),
                    "a worker's colors are its two slots; there is no such one",
                )
            })
    }

    async fn status(&self, slot: &Slot) -> Result<ServerStatus> {
        let container = self.runtime.inspect(&slot.container).await?;
        let running = container
            .as_ref()
            .is_some_and(|c| c.state == ContainerState::Running);
        let (admin, check) = match &container {
            Some(c) if c.is_serving() => (AdminState::Ready, CheckState::Up),
            Some(_) if running => (AdminState::Ready, CheckState::Down),
            _ => (AdminState::Maint, CheckState::Unknown),
        };
        Ok(ServerStatus {
            name: slot.server.clone(),
            admin,
            check,
            weight: if running { 1 } else { 0 },
            current_sessions: 0,
            address: slot.container.clone(),
        })
    }
}

#[async_trait]
impl TrafficRouter for WorkerRouter {
    fn backend(&self) -> &str {
        &self.name
    }

    async fn servers(&self) -> Result<Vec<ServerStatus>> {
        let (blue, green) = tokio::try_join!(
            self.status(&self.topology.blue),
            self.status(&self.topology.green)
        )?;
        Ok(vec![blue, green])
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        let slot = self.slot(server)?;
        match state {
            AdminState::Ready => {
                if self.status(slot).await?.admin == AdminState::Ready {
                    return Ok(());
                }
                Err(Error::new(
                    ErrorKind::Refused,
                    "router.set_state",
                    format!("{}/{server}", self.name),
                    format!(
                        "{} does not run: a worker's color takes jobs only while its container runs",
                        slot.container
                    ),
                )
                .with_hint(
                    "deploy the release you want on the workers; a worker keeps no stopped standby to resume",
                ))
            }
            // Stopping is how a worker finishes what it has and takes nothing new; one already stopped or
            // gone is what was asked.
            AdminState::Drain | AdminState::Maint => match self.runtime.inspect(&slot.container).await? {
                Some(c) if c.state == ContainerState::Running => {
                    self.runtime.stop(&slot.container, self.grace).await
                }
                _ => Ok(()),
            },
        }
    }

    async fn set_weight(&self, server: &str, _weight: u32) -> Result<()> {
        Err(self.unsupported(server, "router.set_weight", "weights"))
    }

    async fn set_address(&self, server: &str, _address: &str, _port: u16) -> Result<()> {
        Err(self.unsupported(server, "router.set_address", "addresses"))
    }
}

impl WorkerRouter {
    fn unsupported(&self, server: &str, operation: &str, what: &str) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            operation,
            format!("{}/{server}", self.name),
            format!("a worker has no HAProxy server, so no {what}"),
        )
        .with_hint("a worker runs one color at a time; canaries and weights are for web hosts")
    }
}
