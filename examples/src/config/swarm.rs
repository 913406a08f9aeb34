//! `[swarm]`: the app as Docker Swarm services (issue 18.2) instead of plain containers on `[server]`. The
//! manager's engine is reached through `[server]` (its socket there, over the same SSH connection), each other
//! node's engine through its own SSH connection with `[server]`'s key, known_hosts, jump hosts and ssh config.
//! Blue and green keep `[slots]`' names and ports: each color is a one-replica service publishing its port in
//! host mode on the node that runs it, so HAProxy's backend has, per color, a server per node.

use std::sync::Arc;

use connect_core::{ContainerRuntime, Host, Result};
use connect_docker::{Docker, Swarm};
use serde::Deserialize;

use super::ConnectConfig;
use super::compose::OtherHost;

/// `[swarm]`: where the swarm's engines are, as `[server]` and this machine reach them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmConfig {
    /// The manager's Engine socket on `[server]`; default `[docker] socket`.
    #[serde(default)]
    pub manager_socket: Option<String>,
    /// `[[swarm.nodes]]`: the other nodes' engines, for `exec`, `logs`, `stats` of a task running there and
    /// to ship each release to them (Swarm has no registry to pull from here). A node left out still runs
    /// tasks; only those calls are refused for them.
    #[serde(default)]
    pub nodes: Vec<SwarmNodeConfig>,
}

/// One `[[swarm.nodes]]` entry: a node's engine, over SSH to its host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmNodeConfig {
    /// Host name, address or ssh config alias; `local` for this machine.
    pub host: String,
    /// sshd's port; default: `[server]`'s rule (the ssh config's `Port`, else 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// The account to log in as; default: `[server]`'s.
    #[serde(default)]
    pub user: Option<String>,
    /// The Engine's socket on that host; default `[docker] socket`.
    #[serde(default)]
    pub socket: Option<String>,
}

impl ConnectConfig {
    /// Whether the app runs as Swarm services (`[swarm]` present).
    pub fn is_swarm(&self) -> bool {
        self.swarm.is_some()
    }

    /// The combinations `[swarm]` cannot work with, as `(section, key, why, fix)`.
    pub(super) fn check_swarm(
        &self,
    ) -> std::result::Result<(), (&'static str, &'static str, String, &'static str)> {
        let Some(swarm) = &self.swarm else {
            return Ok(());
        };
        if self.is_fleet() {
            return Err((
                "app_hosts",
                "host",
                "[[app_hosts]] and [swarm] both say where the app runs".into(),
                "keep [swarm] (Swarm places the services on its nodes) or [[app_hosts]] (a container per host), \
                 not both",
            ));
        }
        if self.docker.network.is_some() {
            return Err((
                "docker",
                "network",
                "a Swarm service does not join a local network: its port is published on its node".into(),
                "remove network from [docker] when [swarm] is set",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for node in &swarm.nodes {
            if node.host.is_empty() {
                return Err((
                    "swarm.nodes",
                    "host",
                    "a node without a host".into(),
                    "give each [[swarm.nodes]] entry host = \"<name or ssh alias>\"",
                ));
            }
            if !seen.insert((node.host.as_str(), node.port)) {
                return Err((
                    "swarm.nodes",
                    "host",
                    format!("the node {:?} is listed twice", node.host),
                    "list each node's engine once",
                ));
            }
        }
        Ok(())
    }

    /// The runtime `[swarm]` describes: the manager's engine through `server` (the `[server]` connection),
    /// then each node's engine over its own connection. `manager` shapes the services (its slot options,
    /// build machine); `build_machine`, when given, is every node's too, so a release shipped from this
    /// machine reaches each node.
    pub(super) async fn swarm_runtime(
        &self,
        server: Arc<dyn Host>,
        build_machine: Option<Docker>,
    ) -> Result<Arc<dyn ContainerRuntime>> {
        let swarm = self.swarm.clone().unwrap_or_default();
        let socket = swarm.manager_socket.as_deref().unwrap_or(&self.docker.socket);
        let mut manager = Docker::connect_via(server, socket)
            .await?
            .with_slot_options(self.slot_options()?);
        if let Some(local) = &build_machine {
            manager = manager.with_build_machine(local.clone());
        }
        let mut runtime = Swarm::new(manager).await?;
        // One after the other: connecting is a handshake each, and it happens once per command.
        for node in &swarm.nodes {
            let host = self.swarm_node_host(node).await?;
            let mut engine = Docker::connect_via(host, node.socket.as_deref().unwrap_or(&self.docker.socket))
                .await?
                .with_slot_options(self.slot_options()?);
            if let Some(local) = &build_machine {
                engine = engine.with_build_machine(local.clone());
            }
            runtime = runtime.with_node(engine).await?;
        }
        Ok(Arc::new(runtime))
    }

    /// A node's host: this machine, or SSH with `[server]`'s settings where the entry is silent.
    async fn swarm_node_host(&self, node: &SwarmNodeConfig) -> Result<Arc<dyn Host>> {
        let entry = OtherHost {
            host: &node.host,
            port: node.port,
            user: node.user.as_ref(),
        };
        self.other_host(
            entry,
            "config.swarm.nodes",
            &node.host,
            "check the node's SSH access",
        )
        .await
    }
}
