//! Several app hosts in memory behind one HAProxy backend, for the fleet's scenarios.

use std::sync::Arc;

use super::{AppBehavior, Faults, MemoryCache, MemoryCluster, MemoryHost, MemoryRouter, MemoryRuntime};
use crate::engine::fleet::{AppHost, Role, Shared};
use crate::model::{AppSpec, Color, ImageRef};

/// One app host of a [`MemoryFleet`]: its machine and its Docker engine.
#[derive(Debug, Clone)]
pub struct MemoryAppHost {
    /// The host's name (`web1`).
    pub name: String,
    /// The machine.
    pub host: MemoryHost,
    /// Its Docker engine.
    pub runtime: MemoryRuntime,
    /// Web or worker.
    pub role: Role,
    /// How the app runs on it, when not the fleet config's (a worker's).
    pub app: Option<AppSpec>,
}

/// App hosts, each with its own machine and runtime, and one router, database and cache.
///
/// Each app host's machine and runtime share a [`Faults`] of their own ([`MemoryFleet::cut`] breaks one
/// host's connection: every call to its machine and its engine fails, as over a dropped SSH connection);
/// the router, database and cache share another ([`MemoryFleet::faults`]).
#[derive(Debug, Clone)]
pub struct MemoryFleet {
    /// The app hosts, in order.
    pub hosts: Vec<MemoryAppHost>,
    /// The one HAProxy backend, with `<host>_blue` and `<host>_green` per host, each checked against its
    /// own host's container.
    pub router: MemoryRouter,
    /// Patroni.
    pub cluster: MemoryCluster,
    /// Redis.
    pub cache: MemoryCache,
}

impl MemoryFleet {
    /// A fleet of web hosts named `names`, with the slots of [`AppHost::topology_for`].
    pub fn new(names: &[&str]) -> MemoryFleet {
        let hosts: Vec<(&str, Role)> = names.iter().map(|n| (*n, Role::Web)).collect();
        MemoryFleet::with_roles(&hosts)
    }

    /// A fleet of `hosts` with their roles: a web host's servers are in the backend, a worker has none (it
    /// runs the fleet config's app as a worker, [`AppSpec::as_worker`], unless its `app` is set).
    pub fn with_roles(hosts: &[(&str, Role)]) -> MemoryFleet {
        let faults = Faults::default();
        let router = MemoryRouter::new("be_app").with_faults(faults.clone());
        let hosts = hosts
            .iter()
            .map(|&(name, role)| {
                let own = Faults::default();
                let runtime = MemoryRuntime::new().with_faults(own.clone());
                let topology = AppHost::topology_for(name);
                for color in Color::ALL.into_iter().filter(|_| role == Role::Web) {
                    let slot = topology.slot(color);
                    router.add_server_for(
                        &slot.server,
                        &format!("{name}:{}", slot.host_port),
                        &slot.container,
                        runtime.probe(),
                        runtime.traffic_probe(),
                    );
                }
                MemoryAppHost {
                    name: name.to_string(),
                    host: MemoryHost::new(name).with_faults(own),
                    runtime,
                    role,
                    app: None,
                }
            })
            .collect();
        MemoryFleet {
            hosts,
            router,
            cluster: MemoryCluster::default().with_faults(faults.clone()),
            cache: MemoryCache::default().with_faults(faults),
        }
    }

    /// The faults the router, database and cache share.
    pub fn faults(&self) -> &Faults {
        self.router.faults()
    }

    /// One app host by name.
    pub fn host(&self, name: &str) -> Option<&MemoryAppHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Cuts the connection to host `name`: every later call to its machine or its engine fails as
    /// `Unavailable` (retryable, as a dropped connection is) until [`MemoryFleet::reconnect`].
    pub fn cut(&self, name: &str) {
        if let Some(h) = self.host(name) {
            for op in Faults::OPERATIONS
                .iter()
                .filter(|op| op.starts_with("host.") || op.starts_with("runtime."))
            {
                h.host.faults().fail(op, crate::error::ErrorKind::Unavailable);
            }
        }
    }

    /// Undoes [`MemoryFleet::cut`].
    pub fn reconnect(&self, name: &str) {
        if let Some(h) = self.host(name) {
            for op in Faults::OPERATIONS {
                h.host.faults().clear(op);
            }
        }
    }

    /// Makes a release's image present on every host.
    pub fn add_image(&self, image: &ImageRef, behavior: AppBehavior) {
        for h in &self.hosts {
            h.runtime.add_image(image, behavior.clone());
        }
    }

    /// The app hosts for a [`crate::engine::fleet::Fleet`].
    pub fn app_hosts(&self) -> Vec<AppHost> {
        self.hosts
            .iter()
            .map(|h| AppHost {
                name: h.name.clone(),
                host: Arc::new(h.host.clone()),
                runtime: Arc::new(h.runtime.clone()),
                topology: AppHost::topology_for(&h.name),
                state_dir: None,
                role: h.role,
                app: h.app.clone(),
            })
            .collect()
    }

    /// What the hosts share.
    pub fn shared(&self) -> Shared {
        Shared {
            router: Arc::new(self.router.clone()),
            database: Arc::new(self.cluster.clone()),
            cache: Arc::new(self.cache.clone()),
        }
    }
}
