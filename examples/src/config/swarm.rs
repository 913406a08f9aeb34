//! `[swarm]`: the app as Docker Swarm services (issue 18.2) instead of plain containers on `[server]`. The
//! manager's engine is reached through `[server]` (its socket there, over the same SSH connection), each other
//! node's engine through its own SSH connection with `[server]`'s key, known_hosts, jump hosts and ssh config.
//! Blue and green keep `[slots]`' names and ports: each color is a one-replica service publishing its port in
//! host mode on the node that runs it, so HAProxy's backend has, per color, a server per node
//! (`<node>_blue`, `<node>_green`: the manager's and each listed node's), which the switch moves together
//! (`connect_core::layers::GroupedRouter`: to the engine, each color is still `[slots]`' one server).

use std::sync::Arc;

use connect_core::layers::ServerGroup;
use connect_core::model::{Color, Topology};
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
    /// The manager's name in its HAProxy servers (`manager_blue`, `manager_green`); default `manager`.
    #[serde(default)]
    pub manager_name: Option<String>,
    /// `[[swarm.nodes]]`: the other nodes' engines, for `exec`, `logs`, `stats` of a task running there and
    /// to ship each release to them (Swarm has no registry to pull from here), and for their servers in the
    /// HAProxy backend: list every node that may run the app's tasks, since a task on a node left out has
    /// no server to reach it.
    #[serde(default)]
    pub nodes: Vec<SwarmNodeConfig>,
}

/// One `[[swarm.nodes]]` entry: a node's engine, over SSH to its host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmNodeConfig {
    /// The node's name in its HAProxy servers (`worker1` → `worker1_blue`, `worker1_green`); default: `host`.
    #[serde(default)]
    pub name: Option<String>,
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
        let mut names = std::collections::HashSet::new();
        let slot_servers = [&self.slots.blue.server, &self.slots.green.server];
        for (i, name) in self.swarm_node_names().iter().enumerate() {
            let key = if i == 0 {
                ("swarm", "manager_name")
            } else {
                ("swarm.nodes", "name")
            };
            if !is_server_name(name) {
                return Err((
                    key.0,
                    key.1,
                    format!("{name:?} cannot name a HAProxy server (letters, digits, `_.:-`)"),
                    "give the node a name of letters, digits and `_.:-` (name = \"worker1\")",
                ));
            }
            if !names.insert(name.clone()) {
                return Err((
                    key.0,
                    key.1,
                    format!("two nodes are named {name:?}: their HAProxy servers would be the same"),
                    "give each node its own name (manager_name for the manager, name for a [[swarm.nodes]] entry)",
                ));
            }
            if let Some(taken) = [Color::Blue, Color::Green]
                .map(|c| format!("{name}_{c}"))
                .into_iter()
                .find(|member| slot_servers.contains(&member))
            {
                return Err((
                    key.0,
                    key.1,
                    format!("the node's server {taken:?} is a color's own server in [slots]"),
                    "keep [slots]' servers for the colors (app1, app2) and the nodes' names apart",
                ));
            }
        }
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

    /// Every node's name in its HAProxy servers: the manager's first, then each `[[swarm.nodes]]` entry's.
    pub fn swarm_node_names(&self) -> Vec<String> {
        let Some(swarm) = &self.swarm else {
            return Vec::new();
        };
        let manager = swarm.manager_name.clone().unwrap_or_else(|| "manager".into());
        std::iter::once(manager)
            .chain(
                swarm
                    .nodes
                    .iter()
                    .map(|n| n.name.clone().unwrap_or_else(|| n.host.clone())),
            )
            .collect()
    }

    /// Each color's servers in the HAProxy backend, one per node (`<node>_<color>`), grouped under the
    /// color's `[slots]` server; empty without `[swarm]`.
    pub fn swarm_groups(&self, topology: &Topology) -> Vec<ServerGroup> {
        if !self.is_swarm() {
            return Vec::new();
        }
        let nodes = self.swarm_node_names();
        vec![
            ServerGroup::per_node(&topology.blue, &nodes),
            ServerGroup::per_node(&topology.green, &nodes),
        ]
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

/// What HAProxy takes as a server name (and connect-haproxy checks before every command).
fn is_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 90
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}
