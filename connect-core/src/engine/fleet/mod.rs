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

mod abort;
mod deploy;
mod hooks;
mod host;
mod resume;
mod rollback;
mod scoped;
mod watch;
mod worker;
mod worker_steps;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::operation::Held;
use super::{Backends, DeployConfig, Deployer, HookSite, Status};
use crate::cache::Cache;
use crate::database::DatabaseCluster;
use crate::error::{Error, ErrorKind, Result};
use crate::host::Host;
use crate::layers::{CallPolicy, Guarded};
use crate::model::{AppSpec, OldColorPolicy, Topology};
use crate::router::TrafficRouter;
use crate::runtime::ContainerRuntime;
use crate::vocabulary::{OperationKind, Step};
use scoped::ScopedRouter;
use worker::WorkerRouter;

pub use host::{FleetReport, HostOutcome};
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
        validate(&hosts, &config, policy)?;
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

    /// Every host's status (journal against what the router and its runtime show), read in parallel; a host
    /// that cannot be read is reported with its error, the others still are.
    pub async fn status(&self) -> FleetStatus {
        let reads = self.members.iter().map(|m| async {
            let read = m.deployer.status().await;
            HostStatus {
                host: m.name.clone(),
                error: read.as_ref().err().map(Error::to_string),
                status: read.ok(),
            }
        });
        FleetStatus {
            hosts: futures::future::join_all(reads).await,
        }
    }

    /// Runs `operation` holding every host's deploy lock. The first host's is taken first, alone: two fleets
    /// over the same hosts meet there, and the one that gets it takes the others (in parallel, one round trip
    /// per host at once rather than one after another), so neither holds one the other waits for. A lock that
    /// cannot be taken releases the others and fails before anything changes.
    ///
    /// Each lease is renewed alongside the operation. Unlike one host's operation, a lease lost on one host
    /// (its connection cut) does not stop the others': that host's writes are fenced by its token, its part
    /// fails, and the policy decides the rest.
    async fn with_locks<'a, T>(
        &'a self,
        kind: OperationKind,
        operation: impl FnOnce(Vec<Held>) -> Locked<'a, T>,
    ) -> Result<T> {
        let lease = self.config.policy.lock_lease;
        let take = |m: &'a Member| async move {
            let d = &m.deployer;
            let taken = d.store.lock(&d.config.holder, kind, lease).await?;
            if let Some(before) = &taken.took_over {
                d.events.warn(
                    Step::Lock,
                    format!(
                        "took over the deploy lock of {} ({}), whose lease expired",
                        before.holder, before.operation
                    ),
                );
            }
            Ok::<_, Error>(Held {
                fence: taken.fence,
                took_over: taken.took_over,
            })
        };
        let (first, rest) = self.members.split_first().ok_or_else(|| {
            Error::invalid("fleet.lock", "app_hosts", "a fleet needs at least one app host")
        })?;
        let first_taken = take(first).await;
        let mut taken = vec![first_taken];
        if taken[0].is_ok() {
            taken.extend(futures::future::join_all(rest.iter().map(take)).await);
        }
        let mut helds: Vec<Held> = Vec::with_capacity(self.members.len());
        let mut got = Vec::new();
        let mut refused = None;
        for (m, t) in self.members.iter().zip(taken) {
            match t {
                Ok(held) => {
                    got.push((m, held.fence.clone()));
                    helds.push(held);
                }
                Err(e) if refused.is_none() => refused = Some((m, e)),
                Err(_) => {}
            }
        }
        if let Some((m, e)) = refused {
            let unlocks = got.iter().map(|(m, fence)| m.deployer.store.unlock(fence));
            // Best effort: a lock not released expires with its lease.
            let _ = futures::future::join_all(unlocks).await;
            return Err(Error::new(
                e.kind(),
                // One host's operation word, so callers (and exit codes) treat it alike.
                "deploy.lock",
                &m.name,
                format!(
                    "the deploy lock of {} could not be taken: {}",
                    m.name,
                    e.summary()
                ),
            )
            .with_hint(
                e.hint()
                    .unwrap_or("nothing was changed on any host; run again once it answers"),
            ));
        }
        let fences: Vec<_> = helds.iter().map(|h| h.fence.clone()).collect();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let keeps = self.members.iter().zip(&fences).map(|(m, fence)| {
            let stopped = stopped.clone();
            async move {
                if let Some(lost) = m.deployer.store.keep_lease(fence, lease, stopped).await {
                    m.deployer.events.warn(
                        Step::Lock,
                        format!("the lease on {} was not renewed: {lost}", m.name),
                    );
                }
            }
        });
        let run = async {
            let result = operation(helds).await;
            // Renewals in flight finish their write before the locks go.
            let _ = stop.send(true);
            result
        };
        let (result, _) = tokio::join!(run, futures::future::join_all(keeps));
        self.unlock_all_fences(&fences).await;
        result
    }

    /// Releases every host's lock, in parallel.
    async fn unlock_all_fences(&self, fences: &[super::lock::Fence]) {
        let unlocks = self.members.iter().zip(fences).map(|(m, fence)| async move {
            if let Err(e) = m.deployer.store.unlock(fence).await {
                m.deployer.events.warn(
                    Step::Lock,
                    format!("the deploy lock could not be released ({e}); it expires with its lease"),
                );
            }
        });
        futures::future::join_all(unlocks).await;
    }
}

type Locked<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One host's status, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host's name.
    pub host: String,
    /// Its journal and what its router servers and runtime show.
    pub status: Option<Status>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// Every host's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    /// In the fleet's order.
    pub hosts: Vec<HostStatus>,
}

impl FleetStatus {
    /// Every difference between a host's journal and what runs, and every host that could not be read, one
    /// sentence each naming the host: empty when every journal matches.
    pub fn differences(&self) -> Vec<String> {
        let mut all = Vec::new();
        for h in &self.hosts {
            match (&h.status, &h.error) {
                (Some(s), _) => all.extend(s.differences.iter().map(|d| format!("{}: {d}", h.host))),
                (None, e) => all.push(format!(
                    "{}: could not be read ({})",
                    h.host,
                    e.as_deref().unwrap_or("no answer")
                )),
            }
        }
        all
    }
}

fn validate(hosts: &[AppHost], config: &DeployConfig, policy: FleetPolicy) -> Result<()> {
    let invalid = |target: String, why: &str, hint: &str| {
        Error::invalid("fleet.new", target, why.to_string()).with_hint(hint.to_string())
    };
    if hosts.is_empty() {
        return Err(invalid(
            "app_hosts".into(),
            "a fleet needs at least one app host",
            "list the app servers under [[app_hosts]]",
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut servers = std::collections::HashSet::new();
    for h in hosts {
        let ok = !h.name.is_empty()
            && h.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(invalid(
                h.name.clone(),
                "a host's name is letters, digits, _ . -",
                "name it as HAProxy may name its servers, e.g. web1",
            ));
        }
        if !names.insert(h.name.as_str()) {
            return Err(invalid(
                h.name.clone(),
                "two hosts have this name",
                "give each host its own name",
            ));
        }
        for server in [&h.topology.blue.server, &h.topology.green.server] {
            if !servers.insert(server.as_str()) {
                return Err(invalid(
                    format!("{}/{server}", h.name),
                    "two slots share this HAProxy server",
                    "each host and color needs its own server (default <host>_blue, <host>_green)",
                ));
            }
        }
    }
    let web = hosts.iter().filter(|h| h.role == Role::Web).count();
    if web == 0 {
        return Err(invalid(
            "app_hosts".into(),
            "a fleet needs at least one web host: workers take no requests",
            "give one app host role = \"web\" (the default)",
        ));
    }
    if let Some(n) = policy.min_healthy_hosts
        && (n == 0 || n > web)
    {
        return Err(invalid(
            format!("min_healthy_hosts = {n}"),
            "min_healthy_hosts is between 1 and the number of web hosts (workers are always required)",
            "leave it unset to require every host",
        ));
    }
    let p = &config.policy;
    let unsupported = [
        (p.canary.is_some(), "a canary"),
        (p.old_color == OldColorPolicy::Balanced, "balanced colors"),
        (
            config.hooks.iter().any(|h| h.site == HookSite::Server),
            "hooks on the server (a fleet has no one server: run them locally, CONNECT_HOSTS names the hosts)",
        ),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "fleet.new",
            "policy",
            format!("a deploy over several hosts does not do {what} yet"),
        )
        .with_hint("turn it off for the fleet, or deploy each host with its own Deployer"));
    }
    Ok(())
}
