//! Several app hosts in one deploy (issue 18.1): each host runs its own blue and green slots behind the one
//! HAProxy backend, which has a server per host and color.
//!
//! ```text
//! lock every host ─► per host, in parallel: settle, reconcile, preflight, [ship], stage
//!   ─► migrate (once, on the first host) ─► per host, in parallel: (intent) start idle, health gate,
//!      the router's check sees it up (server in drain) ─► decide: every host healthy, or at least
//!      `min_healthy_hosts` (the others settled and left out of rotation) ─► switch every host in ONE
//!      router exchange ─► per host: drain, verify ─► [watch every host's new color at once: the first
//!      regression stops the others and puts every host back in one exchange] ─► record in every host's journal
//! ```
//!
//! Each host keeps its own journal and lock in its state directory, written by its own
//! [`Deployer`], which sees only its two servers (`scoped.rs`): the one-host steps, the
//! intent and the settling are today's, unchanged, and one host alone is deployed by a plain `Deployer`.
//! What the fleet adds is the order (every host ready before any traffic moves), the one switch, and the
//! policy for a host that fails before it.
//!
//! A host's [`Role`] is web (the above) or worker (`worker.rs`: jobs, no server in HAProxy). A worker's new
//! color is started and gated with the web hosts', takes no part in the switch, and its old color is stopped
//! (with the stop grace, so the job in hand finishes) once the web hosts' switch is verified and watched.
//! A host whose role changed in the config since its last operation takes its new role at the next deploy
//! (`role_change.rs`): out of HAProxy's rotation, or into it, in that deploy's one exchange.

mod abort;
mod deploy;
mod deploy_steps;
mod hooks;
mod host;
mod locks;
mod resume;
mod role_change;
mod rollback;
mod scoped;
mod status;
mod validate;
mod watch;
mod worker;
mod worker_steps;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Backends, DeployConfig, Deployer};
use crate::cache::Cache;
use crate::database::DatabaseCluster;
use crate::error::Result;
use crate::host::Host;
use crate::layers::{CallPolicy, Guarded};
use crate::model::{AppSpec, Topology};
use crate::router::TrafficRouter;
use crate::runtime::ContainerRuntime;
use scoped::ScopedRouter;
use worker::WorkerRouter;

pub use host::{FleetReport, HostOutcome};
pub use status::{FleetStatus, HostStatus};
pub use worker::Role;

/// One app server of the fleet: its name, its machine and Docker engine, and its two slots.
#[derive(Debug, Clone)]
pub struct AppHost {
    /// The host's name in the fleet (`web1`): in messages, records and the default server names.
    pub name: String,
    /// The machine (journal, lock, health probes): usually an `SshHost`, one connection per host.
    pub host: Arc<dyn Host>,
    /// Its Docker engine.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Its blue and green slots; the server names must be unique across the fleet.
    pub topology: Topology,
    /// Where its journal and lock live, when not the config's `state_dir` (hosts sharing a filesystem).
    pub state_dir: Option<String>,
    /// Web (behind HAProxy) or worker (jobs, no server).
    pub role: Role,
    /// How the app runs on this host, when not the config's (a worker's command, environment and health).
    /// `None`: the config's app, run as a worker ([`AppSpec::as_worker`]) on a worker host.
    pub app: Option<AppSpec>,
}

impl AppHost {
    /// The runbook's slots on host `name`: containers `connect_app1`/`connect_app2` on ports 3000/3001, and
    /// HAProxy servers `<name>_blue`/`<name>_green`.
    pub fn topology_for(name: &str) -> Topology {
        let mut topology = Topology::runbook();
        topology.blue.server = format!("{name}_blue");
        topology.green.server = format!("{name}_green");
        topology
    }
}

/// What the fleet shares: the HAProxy backend every host's servers are in, the database and the cache.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The HAProxy backend with a server per host and color.
    pub router: Arc<dyn TrafficRouter>,
    /// The Patroni cluster.
    pub database: Arc<dyn DatabaseCluster>,
    /// Redis.
    pub cache: Arc<dyn Cache>,
}

/// How many hosts must be ready for the switch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetPolicy {
    /// `None`: every host, so a host failing before the switch aborts the deploy everywhere. `Some(n)`: the
    /// deploy switches when at least `n` web hosts are ready; the others are settled and left out of
    /// rotation (no server of theirs takes traffic), which their journals and the report say. Workers are
    /// always required (see [`Role::Worker`]).
    #[serde(default)]
    pub min_healthy_hosts: Option<usize>,
}

struct Member {
    name: String,
    role: Role,
    deployer: Deployer,
}

/// Deploys one release to several app hosts behind one HAProxy backend, switching them together.
///
/// ```
/// use connect_core::engine::DeployConfig;
/// use connect_core::engine::fleet::{Fleet, FleetPolicy};
/// use connect_core::memory::{AppBehavior, MemoryFleet};
/// use connect_core::model::Release;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> connect_core::Result<()> {
/// let stack = MemoryFleet::new(&["web1", "web2", "web3"]);
/// let v1 = Release::new("connect", "v1")?;
/// stack.add_image(&v1.image, AppBehavior::default());
///
/// let fleet = Fleet::new(stack.app_hosts(), stack.shared(), DeployConfig::runbook(), FleetPolicy::default())?;
/// let report = fleet.deploy(v1).await?;
/// assert_eq!(report.in_rotation(), ["web1", "web2", "web3"]);
/// # Ok(())
/// # }
/// ```
pub struct Fleet {
    members: Vec<Member>,
    router: Arc<dyn TrafficRouter>,
    config: DeployConfig,
    policy: FleetPolicy,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("hosts", &self.hosts())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet over `hosts` (in this order: the first runs the migration) sharing one router, database and
    /// cache. `config` is every host's (its topology is replaced by each host's, its app by the host's when
    /// it has one). Refuses no host, no web host, two hosts with one name or one server name, a
    /// `min_healthy_hosts` of 0 or above the web host count, and what
    /// a fleet does not do yet (canary, balanced colors, hooks on the server): `Unsupported`.
    ///
    /// Hooks run once per fleet operation on this machine, with `CONNECT_FLEET` (every host) and
    /// `CONNECT_HOSTS` (the hosts going on; after a deploy, those in rotation, and `CONNECT_HOSTS_LEFT_OUT`)
    /// in their environment; `policy.keep_releases` prunes each host in rotation after a deploy succeeds.
    pub fn new(
        hosts: Vec<AppHost>,
        shared: Shared,
        config: DeployConfig,
        policy: FleetPolicy,
    ) -> Result<Fleet> {
        validate::validate(&hosts, &config, policy)?;
        let mut members = Vec::with_capacity(hosts.len());
        for h in hosts {
            let app = h.app.unwrap_or_else(|| match h.role {
                Role::Web => config.app.clone(),
                Role::Worker => config.app.as_worker(None),
            });
            let router: Arc<dyn TrafficRouter> = match h.role {
                Role::Web => {
                    let servers = [h.topology.blue.server.clone(), h.topology.green.server.clone()];
                    Arc::new(ScopedRouter::new(shared.router.clone(), servers))
                }
                Role::Worker => Arc::new(WorkerRouter::new(
                    &h.name,
                    h.runtime.clone(),
                    h.topology.clone(),
                    app.stop_grace,
                )),
            };
            let backends = Backends {
                host: h.host,
                runtime: h.runtime,
                router,
                database: shared.database.clone(),
                cache: shared.cache.clone(),
            };
            let config = DeployConfig {
                app,
                topology: h.topology,
                state_dir: h.state_dir.unwrap_or_else(|| config.state_dir.clone()),
                ..config.clone()
            };
            members.push(Member {
                name: h.name,
                role: h.role,
                deployer: Deployer::new(backends, config)?,
            });
        }
        Ok(Fleet {
            members,
            router: Arc::new(Guarded::shared(shared.router, CallPolicy::default())),
            config,
            policy,
        })
    }

    /// The hosts' names, in order.
    pub fn hosts(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.name.as_str()).collect()
    }

    /// A host's role.
    pub fn role(&self, host: &str) -> Option<Role> {
        self.members.iter().find(|m| m.name == host).map(|m| m.role)
    }

    /// One host's deployer: its events, journal, status, adopt, and any one-host operation on it alone.
    pub fn deployer(&self, host: &str) -> Option<&Deployer> {
        self.members.iter().find(|m| m.name == host).map(|m| &m.deployer)
    }

    /// The policy.
    pub fn policy(&self) -> FleetPolicy {
        self.policy
    }
}
