//! A real two-node swarm on private daemons: a manager and a worker, each a [`SecondDaemon`] in its own
//! network namespace (with its bridge, private to that namespace), joined by a veth pair this harness
//! creates, `10.231.0.1` the manager and `10.231.0.2` the worker. The addresses exist only inside those two
//! namespaces, so parallel runs do not collide and the machine's network and its Docker daemon are untouched
//! (the main daemon never joins a swarm).
//!
//! The namespaces are anonymous (`unshare --net`), not `ip netns`: `ip netns exec` mounts a fresh /sys,
//! which hides the cgroup mounts dockerd needs. They go with their daemons, and the veth pair with them.

use std::path::PathBuf;
use std::time::Duration;

use bollard::models::{
    NodeSpecAvailabilityEnum, NodeState, SwarmInitRequest, SwarmJoinRequest, SwarmSpec, SwarmSpecDispatcher,
};
use bollard::query_parameters::UpdateNodeOptions;
use connect_core::model::ImageRef;
use connect_core::testing::netns::{NetNs, veth};
use connect_core::{Error, ErrorKind, Result};

use super::SecondDaemon;
use crate::{Docker, TransferOptions};

/// The manager's address on the veth pair.
pub const MANAGER_ADDR: &str = "10.231.0.1";
/// The worker's address on the veth pair.
pub const WORKER_ADDR: &str = "10.231.0.2";

/// A node's availability for new tasks (Swarm's `docker node update --availability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Takes new tasks.
    Active,
    /// Keeps its tasks, takes no new ones.
    Pause,
}

/// A manager and a worker engine joined in a swarm; stopped on drop.
#[derive(Debug)]
pub struct TestSwarm {
    manager: SecondDaemon,
    worker: Option<SecondDaemon>,
    nsenter: PathBuf,
    curl: PathBuf,
}

fn fail(what: &str, m: String) -> Error {
    Error::new(ErrorKind::Failed, "testing.swarm", what, m)
}

impl TestSwarm {
    /// Starts both daemons, links their namespaces, runs `swarm init` on the manager (heartbeat 1 s, so a
    /// stopped node is seen down in seconds) and joins the worker; waits until both nodes are ready. `None`
    /// (with a loud SKIP) when `dockerd`, `ip`, `nsenter` or `curl` is missing and real tests are not
    /// required.
    pub async fn start(test: &str) -> Option<TestSwarm> {
        let need = |p: &str, at: &[&str]| connect_core::testing::require_program(test, p, at);
        // `ip` links the namespaces (`connect_core::testing::netns::veth`).
        need("ip", &["/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip"])?;
        let nsenter = need("nsenter", &["/usr/bin/nsenter"])?;
        let curl = need("curl", &["/usr/bin/curl"])?;
        // Started together: each takes a few seconds, mostly waiting for its containerd.
        let (manager, worker) = tokio::join!(SecondDaemon::start_node(test), SecondDaemon::start_node(test));
        let (manager, worker) = (manager?, worker?);
        let swarm = TestSwarm {
            manager,
            worker: Some(worker),
            nsenter,
            curl,
        };
        match swarm.join().await {
            Ok(()) => Some(swarm),
            Err(e) => panic!("{test}: cannot form the swarm: {e}"),
        }
    }

    async fn join(&self) -> Result<()> {
        let worker = self.worker.as_ref().expect("the worker runs at start");
        let (Some(mpid), Some(wpid)) = (self.manager.pid(), worker.pid()) else {
            return Err(fail("veth", "a daemon is not running".into()));
        };
        veth(
            &NetNs::of_pid(mpid),
            &format!("{MANAGER_ADDR}/24"),
            &NetNs::of_pid(wpid),
            &format!("{WORKER_ADDR}/24"),
        )?;
        let manager = self.manager.docker().await?;
        manager
            .api()
            .init_swarm(SwarmInitRequest {
                listen_addr: Some(format!("{MANAGER_ADDR}:2377")),
                advertise_addr: Some(MANAGER_ADDR.into()),
                spec: Some(SwarmSpec {
                    dispatcher: Some(SwarmSpecDispatcher {
                        heartbeat_period: Some(1_000_000_000),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .map_err(|e| fail("swarm init", e.to_string()))?;
        let token = manager
            .api()
            .inspect_swarm()
            .await
            .map_err(|e| fail("swarm inspect", e.to_string()))?
            .join_tokens
            .and_then(|t| t.worker)
            .ok_or_else(|| fail("swarm inspect", "no worker join token".into()))?;
        worker
            .docker()
            .await?
            .api()
            .join_swarm(SwarmJoinRequest {
                listen_addr: Some(format!("{WORKER_ADDR}:2377")),
                advertise_addr: Some(WORKER_ADDR.into()),
                remote_addrs: Some(vec![format!("{MANAGER_ADDR}:2377")]),
                join_token: Some(token),
                ..Default::default()
            })
            .await
            .map_err(|e| fail("swarm join", e.to_string()))?;
        self.wait_nodes(2).await
    }

    /// Waits until `n` nodes are ready, as the manager sees them.
    pub async fn wait_nodes(&self, n: usize) -> Result<()> {
        let manager = self.manager.docker().await?;
        connect_core::wait::poll_until(
            "testing.swarm",
            "nodes",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || async {
                let nodes = manager
                    .api()
                    .list_nodes(None)
                    .await
                    .map_err(|e| fail("node ls", e.to_string()))?;
                let ready = nodes
                    .iter()
                    .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NodeState::READY))
                    .count();
                Ok(if ready == n {
                    Ok(())
                } else {
                    Err(format!("{ready} of {} nodes ready", nodes.len()))
                })
            },
        )
        .await
    }

    /// The manager's engine.
    pub async fn manager(&self) -> Result<Docker> {
        self.manager.docker().await
    }

    /// The manager's socket, for the `docker` command in a failure's message.
    pub fn manager_socket(&self) -> String {
        self.manager.socket()
    }

    /// The worker's engine.
    pub async fn worker(&self) -> Result<Docker> {
        match &self.worker {
            Some(w) => w.docker().await,
            None => Err(fail("worker", "the worker's engine was stopped".into())),
        }
    }

    /// The worker's socket (for a connect.toml naming its engine); `None` once it was stopped.
    pub fn worker_socket(&self) -> Option<String> {
        self.worker.as_ref().map(SecondDaemon::socket)
    }

    /// Puts an image built on the manager on the worker too, with the same id: Swarm has no registry here,
    /// and a node runs the image it has under the tag. Only the layers the worker lacks are sent.
    pub async fn load_on_worker(&self, image: &ImageRef) -> Result<()> {
        let manager = self.manager().await?;
        let worker = self.worker().await?;
        manager
            .transfer_image(&worker, image, &TransferOptions::default())
            .await
            .map(drop)
    }

    /// The manager's network namespace (where HAProxy runs in the tests), `None` once it was stopped.
    pub fn manager_netns(&self) -> Option<connect_core::testing::NetNs> {
        self.manager.netns()
    }

    /// The argv prefix that runs a program in the manager's network namespace (`nsenter -t <pid> -n`), where
    /// both nodes' addresses and the manager's published ports on 127.0.0.1 are reachable.
    pub fn in_manager_namespace(&self) -> Vec<std::ffi::OsString> {
        self.in_namespace_of(Some(&self.manager))
    }

    /// The worker's network namespace, `None` once it was stopped.
    pub fn worker_netns(&self) -> Option<connect_core::testing::NetNs> {
        self.worker.as_ref().and_then(SecondDaemon::netns)
    }

    /// The argv prefix that runs a program in the worker's network namespace, where its engine's published
    /// ports are on 127.0.0.1 (its sshd in the tests that reach it as a server).
    pub fn in_worker_namespace(&self) -> Vec<std::ffi::OsString> {
        self.in_namespace_of(self.worker.as_ref())
    }

    fn in_namespace_of(&self, daemon: Option<&SecondDaemon>) -> Vec<std::ffi::OsString> {
        let pid = daemon
            .and_then(SecondDaemon::pid)
            .map(|p| p.to_string())
            .unwrap_or_default();
        vec![
            self.nsenter.clone().into_os_string(),
            "-t".into(),
            pid.into(),
            "-n".into(),
        ]
    }

    /// Sets the manager's availability (`docker node update --availability`): pausing it puts the next task
    /// on the worker.
    pub async fn set_manager_availability(&self, availability: Availability) -> Result<()> {
        self.set_availability(&self.manager().await?, availability).await
    }

    /// Sets the worker's availability: pausing it keeps the next tasks on the manager.
    pub async fn set_worker_availability(&self, availability: Availability) -> Result<()> {
        self.set_availability(&self.worker().await?, availability).await
    }

    async fn set_availability(&self, node: &Docker, availability: Availability) -> Result<()> {
        let manager = self.manager().await?;
        let id = node
            .api()
            .info()
            .await
            .map_err(|e| fail("info", e.to_string()))?
            .swarm
            .and_then(|s| s.node_id)
            .ok_or_else(|| fail("info", "no node id".into()))?;
        let node = manager
            .api()
            .inspect_node(&id)
            .await
            .map_err(|e| fail("node inspect", e.to_string()))?;
        let mut spec = node.spec.unwrap_or_default();
        spec.availability = Some(match availability {
            Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
            Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
        });
        let version = node.version.and_then(|v| v.index).unwrap_or(0);
        manager
            .api()
            .update_node(
                &id,
                spec,
                UpdateNodeOptions {
                    version: i64::try_from(version).unwrap_or(i64::MAX),
                },
            )
            .await
            .map_err(|e| fail("node update", e.to_string()))
    }

    /// Stops the worker's engine (its containers stop with it), as a worker lost would.
    pub fn stop_worker(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
    }

    /// `GET http://<addr>:<port><path>` from inside the manager's network namespace (where both nodes'
    /// addresses are reachable): the status code and body, or the reason it failed.
    pub async fn http_get(
        &self,
        addr: &str,
        port: u16,
        path: &str,
    ) -> std::result::Result<(u16, String), String> {
        let pid = self.manager.pid().ok_or("the manager is stopped")?;
        let out = tokio::process::Command::new(&self.nsenter)
            .args(["-t", &pid.to_string(), "-n"])
            .arg(&self.curl)
            .args(["-s", "--max-time", "3", "-w", "\n%{http_code}"])
            .arg(format!("http://{addr}:{port}{path}"))
            .output()
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        match code.trim().parse::<u16>() {
            Ok(c) if c > 0 => Ok((c, body.to_string())),
            _ => Err(format!(
                "curl exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }
}
