//! One app host of the fleet stack, and the wrappers that put a program on a machine of the stack's own: a
//! new network namespace (HAProxy's), or a host's namespace with its engine's socket where a host's is (sshd).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use connect_core::Result;
use connect_core::model::Topology;
use connect_core::ssh::SshHost;
use connect_core::testing::netns::NetNs;
use connect_core::testing::{Sshd, TcpProxy};
use connect_docker::Docker;
use connect_docker::testing::SecondDaemon;

use super::fail;
use crate::stack::DOCKER_SOCKET;

/// One app host: its engine, its sshd (stopped to take the host away, started again to bring it back), the
/// proxy in front of it, its connection.
pub struct FleetHost {
    /// The host's name (`web1`).
    pub name: String,
    /// Its address in its namespace ([`host_addr`](super::host_addr)).
    pub address: Ipv4Addr,
    /// Its OpenSSH server: stopped by [`FleetStack::take_down`](super::FleetStack::take_down), started
    /// again by [`FleetStack::bring_back`](super::FleetStack::bring_back).
    pub sshd: Sshd,
    /// Between the client (on 127.0.0.1) and sshd (at the host's address).
    pub proxy: TcpProxy,
    /// The one SSH connection.
    pub ssh: Arc<SshHost>,
    /// Its slots: containers `<prefix>_blue|green` on [`APP_PORTS`](super::APP_PORTS), servers
    /// `<name>_blue|green`.
    pub topology: Topology,
    /// Its journal and lock.
    pub state_dir: String,
    /// Its Docker Engine, in its network namespace (the host's network).
    pub engine: SecondDaemon,
}

impl FleetHost {
    /// The host's network namespace.
    pub fn netns(&self) -> Result<NetNs> {
        self.engine
            .netns()
            .ok_or_else(|| fail(&self.name, "the host's engine was stopped"))
    }

    /// Takes `port` on the host (all its addresses), as another program there would: a slot on that port
    /// cannot listen while the listener lives.
    pub fn take_port(&self, port: u16) -> Result<std::net::TcpListener> {
        self.netns()?
            .listen(SocketAddr::from(([0, 0, 0, 0], port)))
            .map_err(|e| fail(&self.name, e))
    }

    /// The host's engine, from this machine (for assertions; the deploy goes through SSH).
    pub async fn docker(&self) -> Result<Docker> {
        self.engine.docker().await
    }
}

impl std::fmt::Debug for FleetHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetHost")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("topology", &self.topology)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// `unshare --net -- sh -c 'ip link set lo up && exec "$0" "$@"'`: the program (appended by the harness)
/// in a new network namespace whose loopback is up, the namespace living as long as it does.
pub(super) fn new_namespace(unshare: &std::path::Path) -> Vec<OsString> {
    [
        unshare.as_os_str(),
        "--net".as_ref(),
        "--".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        r#"ip link set lo up && exec "$0" "$@""#.as_ref(),
    ]
    .map(OsString::from)
    .to_vec()
}

/// Runs the program appended inside `ns` with `socket` mounted at [`DOCKER_SOCKET`] in a mount namespace of
/// its own (private, so the machine's socket stays the machine's): sshd sees its host's engine where a real
/// host's is.
pub(super) fn inside_host(ns: &NetNs, unshare: &std::path::Path, socket: &str) -> Vec<OsString> {
    let mut argv = ns.command_prefix();
    argv.extend(
        [
            unshare.as_os_str(),
            "--mount".as_ref(),
            "--".as_ref(),
            "sh".as_ref(),
            "-c".as_ref(),
            r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#.as_ref(),
            "sh".as_ref(),
            socket.as_ref(),
            DOCKER_SOCKET.as_ref(),
        ]
        .map(OsString::from),
    );
    argv
}
