//! Synchronous views of a fleet in memory: which servers take traffic, which containers serve.

use connect_core::engine::Journal;
use connect_core::engine::fleet::{AppHost, Role};
use connect_core::memory::MemoryFleet;
use connect_core::model::{Color, Topology};

/// Synchronous views of the fleet, read between calls without being calls themselves.
#[derive(Clone)]
pub(crate) struct Probe {
    pub(crate) stack: MemoryFleet,
}

impl Probe {
    fn topology(host: &str) -> Topology {
        AppHost::topology_for(host)
    }

    /// Host `host`'s colors HAProxy sends traffic to now; a worker's, the colors whose container serves
    /// (it takes jobs while it runs).
    pub(crate) fn live(&self, host: &str) -> Vec<Color> {
        let topology = Self::topology(host);
        if self.stack.host(host).is_some_and(|h| h.role == Role::Worker) {
            return Color::ALL
                .into_iter()
                .filter(|c| self.serving(host, &topology.slot(*c).container))
                .collect();
        }
        let servers = self.stack.router.snapshot();
        Color::ALL
            .into_iter()
            .filter(|c| {
                let name = &topology.slot(*c).server;
                servers.iter().any(|s| &s.name == name && s.is_live())
            })
            .collect()
    }

    fn serving(&self, host: &str, container: &str) -> bool {
        self.stack
            .host(host)
            .is_some_and(|h| h.runtime.is_serving(container))
    }

    /// [`inv::SERVING`] over the fleet: some host has a live server on a serving container.
    pub(crate) fn some_server_serves(&self) -> Option<String> {
        let web = self.stack.hosts.iter().filter(|h| h.role == Role::Web);
        let ok = web.map(|h| h.name.as_str()).any(|h| {
            let topology = Self::topology(h);
            self.live(h)
                .into_iter()
                .any(|c| self.serving(h, &topology.slot(c).container))
        });
        (!ok).then(|| {
            format!(
                "no live server on a serving container on any host ({})",
                self.describe()
            )
        })
    }

    fn describe(&self) -> String {
        self.stack
            .router
            .snapshot()
            .iter()
            .map(|s| format!("{} {:?}/{:?}", s.name, s.admin, s.check))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// [`inv::CONTAINERS`]: no container on any host but that host's two slots'.
    pub(crate) fn stray_containers(&self) -> Option<String> {
        let mut stray = Vec::new();
        for h in &self.stack.hosts {
            let topology = Self::topology(&h.name);
            let slots = [&topology.blue.container, &topology.green.container];
            stray.extend(
                h.runtime
                    .container_names()
                    .into_iter()
                    .filter(|n| !slots.contains(&n))
                    .map(|n| format!("{}: {n}", h.name)),
            );
        }
        (!stray.is_empty()).then(|| format!("containers besides the slots': {stray:?}"))
    }

    /// After recovery, per host: each container is a journal slot's and serves, each slot's image is kept.
    pub(crate) fn half_made(&self, host: &str, journal: &Journal) -> Option<String> {
        let h = self.stack.host(host)?;
        let recorded: Vec<&str> = journal.slots.values().map(|s| s.container.as_str()).collect();
        let mut found: Vec<String> = h
            .runtime
            .container_names()
            .into_iter()
            .filter(|n| !recorded.contains(&n.as_str()))
            .map(|n| format!("{host}: {n} exists but the journal does not record it"))
            .collect();
        for (color, slot) in &journal.slots {
            if !h.runtime.is_serving(&slot.container) {
                found.push(format!(
                    "{host}: the journal records {} on {color} but it does not serve",
                    slot.container
                ));
            }
            if !h.runtime.has_image(&slot.release.image) {
                found.push(format!(
                    "{host}: the journal's {} ({color}) lost its image",
                    slot.release.image
                ));
            }
        }
        (!found.is_empty()).then(|| found.join("; "))
    }
}
