//! The stage of the Swarm tests (issue 18.2): a real two-node swarm of the test's own (`TestSwarm`), the test
//! app's v1 and v2 on both nodes, and a real HAProxy in the manager's network namespace with a server per
//! node and color in front of the services' host-mode ports.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use connect_core::layers::{GroupedRouter, ServerGroup};
use connect_core::model::Topology;
use connect_core::testing::{Sshd, TcpProxy};
use connect_docker::Docker;
use connect_docker::testing::{TestScope, TestSwarm, WORKER_ADDR};
use connect_haproxy::ServerSpec;
use connect_haproxy::testing::HaproxyProcess;

/// The nodes' names in their HAProxy servers (`manager_blue`, `worker_green`), manager first.
pub const SWARM_NODES: [&str; 2] = ["manager", "worker"];

/// Blue's and green's ports, published in host mode on the node running each color's task.
pub const SWARM_PORTS: (u16, u16) = (3000, 3001);

/// A swarm with v1 and v2 on both nodes (same image ids), both active, so Swarm places each task where it
/// likes; HAProxy has `<node>_blue` (port 3000) and `<node>_green` (3001) per node (the manager's on its
/// loopback, the worker's at its address on the swarm's veth pair), all in maintenance: the first deploy starts from nothing live. Dropped in field
/// order: the front proxy and HAProxy first, the swarm last.
#[derive(Debug)]
pub struct SwarmStage {
    /// From 127.0.0.1 here to HAProxy's frontend in the manager's namespace: where customers come in.
    pub front: TcpProxy,
    /// HAProxy, run in the manager's namespace.
    pub haproxy: HaproxyProcess,
    /// The manager's engine.
    pub manager: Docker,
    /// The test's names and releases (`scope.release("v1")`).
    pub scope: TestScope,
    /// The swarm.
    pub swarm: TestSwarm,
}

impl SwarmStage {
    /// Starts it; `None` when a program the swarm needs is missing (with `CONNECT_REAL_TESTS=1`, a failure).
    /// Panics on a failure to build or start: this is a test's setup.
    pub async fn start(test: &str, haproxy_bin: &Path) -> Option<SwarmStage> {
        let swarm = TestSwarm::start(test).await?;
        let scope = TestScope::new(test);
        let manager = swarm.manager().await.expect("the manager's engine answers");
        // Each release answers `/` with its name (the load counts answers by release).
        let base = scope.build_app(&manager, "base").await.expect("the app builds");
        for version in ["v1", "v2"] {
            scope
                .build_on(&manager, version, &base, &[("RELEASE", version)])
                .await
                .expect("the release builds");
        }
        for version in ["v1", "v2"] {
            swarm
                .load_on_worker(&scope.release(version).image)
                .await
                .expect("the worker gets the release");
        }
        let mut servers = Vec::new();
        // HAProxy runs in the manager's namespace: the manager's ports are on its loopback there (which,
        // unlike its end of the veth pair, outlives a stopped worker), the worker's at its address.
        let worker: std::net::IpAddr = WORKER_ADDR.parse().expect("the harness's address");
        for (node, ip) in SWARM_NODES
            .iter()
            .zip([std::net::Ipv4Addr::LOCALHOST.into(), worker])
        {
            for (color, port) in [("blue", SWARM_PORTS.0), ("green", SWARM_PORTS.1)] {
                let mut spec = ServerSpec::new(&format!("{node}_{color}"), SocketAddr::new(ip, port));
                spec.disabled = true;
                servers.push(spec);
            }
        }
        let haproxy =
            HaproxyProcess::start_with_servers_via(&swarm.in_manager_namespace(), haproxy_bin, servers)
                .await
                .expect("HAProxy starts in the manager's namespace");
        let front = TcpProxy::start_to(swarm.manager_netns(), haproxy.http_addr())
            .await
            .expect("the front proxy listens");
        Some(SwarmStage {
            front,
            haproxy,
            manager,
            scope,
            swarm,
        })
    }

    /// Where customers reach HAProxy's frontend from this machine.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.front.port()))
    }

    /// The slots of the stage: containers (services) `<prefix>_app1|2`, servers `app1|2` (each a group of
    /// the nodes' servers), ports [`SWARM_PORTS`].
    pub fn topology(&self) -> Topology {
        let mut topology = Topology::runbook();
        for (slot, n) in [(&mut topology.blue, 1), (&mut topology.green, 2)] {
            slot.container = format!("{}_app{n}", self.scope.prefix);
        }
        topology.blue.host_port = SWARM_PORTS.0;
        topology.green.host_port = SWARM_PORTS.1;
        topology
    }

    /// HAProxy's backend as the engine drives it: each color one server, its nodes' servers switched together.
    pub fn router(&self) -> GroupedRouter {
        let topology = self.topology();
        let groups = vec![
            ServerGroup::per_node(&topology.blue, &SWARM_NODES),
            ServerGroup::per_node(&topology.green, &SWARM_NODES),
        ];
        GroupedRouter::new(Arc::new(self.haproxy.haproxy()), groups).expect("the stage's groups are valid")
    }
}

/// sshd's port inside a node's namespace.
const NODE_SSH_PORT: u16 = 22;

/// A node reached as a server is: an OpenSSH server of its own inside its network namespace (port 22 on its
/// loopback there), and, inside the manager's namespace, this machine's database and cache on the loopback
/// ports the server's view names (`[database]`, `[redis]` are "as the server sees them").
#[derive(Debug)]
pub struct NodeSsh {
    /// The forwards into this machine first: they go before sshd.
    forwards: Vec<TcpProxy>,
    /// From 127.0.0.1 here to sshd in the node's namespace: the port its config entry names.
    pub proxy: TcpProxy,
    /// sshd, inside the node's namespace.
    pub sshd: Sshd,
}

impl NodeSsh {
    /// The known_hosts line of sshd as reached through [`NodeSsh::proxy`], for a file listing several nodes.
    pub fn known_hosts_line(&self) -> String {
        format!(
            "[127.0.0.1]:{} {}\n",
            self.proxy.port(),
            self.sshd.host_key_line()
        )
    }

    /// How many connections the namespace made to this machine's services.
    pub fn forwarded(&self) -> usize {
        self.forwards.iter().map(TcpProxy::accepted).sum()
    }

    /// Lets the holder of `other`'s client key in too: one `key_file` for every node, as one operator's key
    /// on every server.
    pub fn authorize(&self, other: &NodeSsh) -> std::io::Result<()> {
        let public = std::fs::read_to_string(other.sshd.client_key().with_extension("pub"))?;
        let authorized = self.sshd.dir().join("authorized_keys");
        let mut keys = std::fs::read_to_string(&authorized)?;
        if !keys.contains(public.trim()) {
            keys.push_str(&public);
            std::fs::write(&authorized, keys)?;
        }
        Ok(())
    }
}

impl SwarmStage {
    /// Starts sshd in the manager's namespace, and forwards each of `ports` on 127.0.0.1 there to the same
    /// port on 127.0.0.1 here (Patroni, PostgreSQL, Redis started by the test). `None` when sshd is missing
    /// (with `CONNECT_REAL_TESTS=1`, a failure).
    pub async fn ssh_into_manager(&self, test: &str, ports: &[u16]) -> Option<NodeSsh> {
        let ns = self.swarm.manager_netns().expect("the manager runs");
        let mut forwards = Vec::new();
        for port in ports {
            let at = SocketAddr::from(([127, 0, 0, 1], *port));
            let forward = TcpProxy::start_in(&ns, at, at)
                .await
                .expect("a port forward into this machine");
            forwards.push(forward);
        }
        let mut node = ssh_into(test, ns, &self.swarm.in_manager_namespace()).await?;
        node.forwards = forwards;
        Some(node)
    }

    /// Starts sshd in the worker's namespace: the worker reached over SSH as the manager is. `None` when sshd
    /// is missing (with `CONNECT_REAL_TESTS=1`, a failure).
    pub async fn ssh_into_worker(&self, test: &str) -> Option<NodeSsh> {
        let ns = self.swarm.worker_netns().expect("the worker runs");
        ssh_into(test, ns, &self.swarm.in_worker_namespace()).await
    }
}

async fn ssh_into(
    test: &str,
    ns: connect_core::testing::NetNs,
    wrapper: &[std::ffi::OsString],
) -> Option<NodeSsh> {
    let listen = SocketAddr::from(([127, 0, 0, 1], NODE_SSH_PORT));
    let sshd = Sshd::start_via(test, wrapper, listen, "").await?;
    let proxy = TcpProxy::start_to(Some(ns), listen)
        .await
        .expect("the ssh proxy listens");
    Some(NodeSsh {
        forwards: Vec::new(),
        proxy,
        sshd,
    })
}
