//! The runbook's whole server in memory, wired the way the real one is.

use std::sync::Arc;

use super::{AppBehavior, Faults, MemoryCache, MemoryCluster, MemoryHost, MemoryRouter, MemoryRuntime};
use crate::engine::Backends;
use crate::model::{Color, ImageRef, Topology};

/// One server with HAProxy, Docker, Patroni and Redis, all in memory, with HAProxy's checks probing the
/// containers of the topology's slots.
#[derive(Debug, Clone)]
pub struct MemoryStack {
    /// The server.
    pub host: MemoryHost,
    /// Docker.
    pub runtime: MemoryRuntime,
    /// HAProxy's `be_app` backend with one server per color.
    pub router: MemoryRouter,
    /// Patroni: `patroni1` (leader) and `patroni2`.
    pub cluster: MemoryCluster,
    /// Redis.
    pub cache: MemoryCache,
}

impl MemoryStack {
    /// A fresh stack for `topology`: no image, no container, both HAProxy servers in maintenance.
    ///
    /// The five backends share one [`Faults`], so calls are numbered in one sequence across all of them (for
    /// [`Faults::trap`]); each backend's `faults()` is that one, and its rules still name the backend.
    pub fn new(topology: &Topology) -> MemoryStack {
        let faults = Faults::default();
        let runtime = MemoryRuntime::new().with_faults(faults.clone());
        let router = MemoryRouter::new("be_app").with_faults(faults.clone());
        for color in Color::ALL {
            let slot = topology.slot(color);
            router.add_server_for(
                &slot.server,
                &format!("127.0.0.1:{}", slot.host_port),
                &slot.container,
                runtime.probe(),
                runtime.traffic_probe(),
            );
        }
        MemoryStack {
            host: MemoryHost::new("memory-host").with_faults(faults.clone()),
            runtime,
            router,
            cluster: MemoryCluster::default().with_faults(faults.clone()),
            cache: MemoryCache::default().with_faults(faults),
        }
    }

    /// The faults all five backends share.
    pub fn faults(&self) -> &Faults {
        self.host.faults()
    }

    /// Makes a release's image present, as a build and transfer would.
    pub fn add_image(&self, image: &ImageRef, behavior: AppBehavior) {
        self.runtime.add_image(image, behavior);
    }

    /// The backends for a [`crate::engine::Deployer`].
    pub fn backends(&self) -> Backends {
        Backends {
            host: Arc::new(self.host.clone()),
            runtime: Arc::new(self.runtime.clone()),
            router: Arc::new(self.router.clone()),
            database: Arc::new(self.cluster.clone()),
            cache: Arc::new(self.cache.clone()),
        }
    }
}
