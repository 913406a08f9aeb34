//! Several app hosts on this machine for the fleet's real tests and benchmark (issue 18.1): each host an
//! OpenSSH server of its own (its own state directory and one SSH connection, through a cuttable proxy), all
//! of them sharing this machine's Docker Engine with distinct container names and ports per host, and one
//! HAProxy with a server per host and color. The database and the cache are the in-memory ones: the fleet's
//! steps are what is under test, and the demo app serves without them.
//!
//! Each host does not have a Docker Engine of its own in its own network namespace: the per-namespace
//! harness (`connect_docker::testing::SecondDaemon`) would make the test start three dockerds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_core::engine::DeployConfig;
use connect_core::engine::fleet::{AppHost, Fleet, FleetPolicy, Shared};
use connect_core::memory::{MemoryCache, MemoryCluster};
use connect_core::model::{AppSpec, Color, DeployPolicy, Release, Slot, Topology};
use connect_core::ssh::SshHost;
use connect_core::testing::{Sshd, TcpProxy, free_port, require_program};
use connect_core::{Error, ErrorKind, Result};
use connect_db::testing::{TestCluster, TestClusterConfig, TestRedis};
use connect_docker::Docker;
use connect_haproxy::ServerSpec;
use connect_haproxy::testing::{HaproxyProcess, require_haproxy};

use super::{DOCKER_SOCKET, Releases, slot_options};

mod toml;
pub use toml::PG_PASSWORD_VAR;

/// One app host: its sshd (dropped to take the host away), the proxy in front of it, its connection.
pub struct FleetHost {
    /// The host's name (`web1`).
    pub name: String,
    /// Its OpenSSH server; `None` once [`FleetStack::take_down`] stopped it.
    pub sshd: Mutex<Option<Sshd>>,
    /// Between the client and sshd.
    pub proxy: TcpProxy,
    /// The one SSH connection.
    pub ssh: Arc<SshHost>,
    /// Its slots: containers `<prefix>_<name>_blue|green` on ports of their own.
    pub topology: Topology,
    /// Its journal and lock.
    pub state_dir: String,
}

/// The hosts, HAProxy and the releases.
pub struct FleetStack {
    /// Containers, images and the app's label.
    pub prefix: String,
    /// The app hosts, in order.
    pub hosts: Vec<FleetHost>,
    /// HAProxy, with `<name>_blue` and `<name>_green` per host, all in maintenance at first.
    pub haproxy: HaproxyProcess,
    /// The demo app's releases (v1, v2, v3), built on this machine's engine.
    pub releases: Releases,
    /// A one-node Patroni cluster and Redis, for `connect-ops` over the fleet ([`FleetStack::start_with_services`]).
    pub services: Option<FleetServices>,
    dir: tempfile::TempDir,
    _home: tempfile::TempDir,
}

impl std::fmt::Debug for FleetHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetHost")
            .field("name", &self.name)
            .field("topology", &self.topology)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for FleetStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStack")
            .field("prefix", &self.prefix)
            .field("hosts", &self.hosts)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// The database and the cache `connect-ops` needs (its preflight asks both): etcd with one Patroni node of
/// PostgreSQL 15, and Redis.
#[derive(Debug)]
pub struct FleetServices {
    /// etcd and one Patroni node.
    pub cluster: TestCluster,
    /// Redis.
    pub redis: TestRedis,
}

impl FleetStack {
    /// Starts `hosts` app hosts and HAProxy, and builds the releases. `None` after a loud SKIP when a program
    /// is missing and real tests are not required.
    pub async fn start(test: &str, hosts: usize) -> Result<Option<FleetStack>> {
        FleetStack::start_inner(test, hosts, false).await
    }

    /// [`FleetStack::start`] with [`FleetServices`] started meanwhile, for [`FleetStack::connect_toml`].
    pub async fn start_with_services(test: &str, hosts: usize) -> Result<Option<FleetStack>> {
        FleetStack::start_inner(test, hosts, true).await
    }

    async fn start_inner(test: &str, hosts: usize, services: bool) -> Result<Option<FleetStack>> {
        let (Some(_), Some(program)) = (
            require_program(test, "docker", &["/usr/bin/docker"]),
            require_haproxy(test),
        ) else {
            return Ok(None);
        };
        let prefix = format!("fleet-{}-{}", std::process::id(), free_port());
        let temp = |what: &str| {
            tempfile::Builder::new()
                .prefix(&format!("connect-{prefix}-{what}-"))
                .tempdir()
                .map_err(|e| Error::new(ErrorKind::Failed, "fleet stack", what, e.to_string()))
        };
        let (home, dir) = (temp("home")?, temp("hosts")?);
        let mut started = Vec::new();
        let mut servers = Vec::new();
        for n in 1..=hosts {
            let name = format!("web{n}");
            let Some(sshd) = Sshd::start_with(test, &format!("SetEnv HOME={}", home.path().display())).await
            else {
                return Ok(None);
            };
            let proxy = TcpProxy::start(sshd.port())
                .await
                .map_err(|e| Error::new(ErrorKind::Failed, "fleet stack", "ssh proxy", e.to_string()))?;
            let config = sshd
                .config()
                .port(proxy.port())
                .known_hosts(sshd.known_hosts_via(proxy.port()));
            let ssh = Arc::new(SshHost::connect(config).await?);
            let mut slot = |color: Color| {
                let port = free_port();
                servers.push({
                    let mut spec = ServerSpec::new(
                        &format!("{name}_{color}"),
                        SocketAddr::from(([127, 0, 0, 1], port)),
                    );
                    spec.disabled = true;
                    spec
                });
                Slot {
                    color,
                    container: format!("{prefix}_{name}_{color}"),
                    server: format!("{name}_{color}"),
                    host_port: port,
                }
            };
            let topology = Topology {
                blue: slot(Color::Blue),
                green: slot(Color::Green),
            };
            let state_dir = dir.path().join(&name).join("state");
            std::fs::create_dir_all(&state_dir)
                .map_err(|e| Error::new(ErrorKind::Failed, "fleet stack", &name, e.to_string()))?;
            started.push(FleetHost {
                name,
                sshd: Mutex::new(Some(sshd)),
                proxy,
                ssh,
                topology,
                state_dir: state_dir.display().to_string(),
            });
        }
        let haproxy = HaproxyProcess::start_with_servers(&program, servers).await?;
        let local = Docker::connect().await?.with_slot_options(slot_options());
        // Patroni bootstraps while the releases build. `None`: a program is missing (the SKIP is said).
        let start_services = async {
            if !services {
                return Some(None);
            }
            let redis = TestRedis::start(test, None, false).await?;
            let scope = TestClusterConfig {
                scope: prefix.clone(),
                names: vec!["patroni1".into()],
                ..TestClusterConfig::default()
            };
            let cluster = TestCluster::start(test, scope).await?;
            Some(Some(FleetServices { cluster, redis }))
        };
        let (releases, services) =
            tokio::join!(Releases::build(&prefix, &local, false, test), start_services);
        let Some(services) = services else {
            return Ok(None);
        };
        Ok(Some(FleetStack {
            prefix,
            hosts: started,
            haproxy,
            releases: releases?,
            services,
            dir,
            _home: home,
        }))
    }

    /// A release of the demo app.
    pub fn release(&self, version: &str) -> Release {
        self.releases.release(version)
    }

    /// HAProxy's HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.haproxy.http_addr()
    }

    /// The deploy configuration every host shares: the demo app, deadlines for a machine under test load.
    pub fn deploy_config(&self) -> DeployConfig {
        let mut app = AppSpec::connect();
        app.name = self.prefix.clone();
        app.stop_grace = Duration::from_secs(5);
        app.env = [("BIND".to_string(), "127.0.0.1".to_string())].into();
        let mut policy = DeployPolicy::default();
        policy.health_deadline = Duration::from_secs(20);
        policy.drain_deadline = Duration::from_secs(10);
        policy.router_deadline = Duration::from_secs(10);
        policy.disk_paths = vec![self.dir.path().display().to_string()];
        policy.lock_lease = Duration::from_secs(5);
        DeployConfig {
            app,
            topology: self.hosts[0].topology.clone(),
            policy,
            state_dir: self.hosts[0].state_dir.clone(),
            holder: format!("fleet test pid {}", std::process::id()),
            hooks: Vec::new(),
            webhooks: Vec::new(),
        }
    }

    /// The first `count` hosts as a fleet under `policy`: each host's Docker Engine through its own SSH
    /// connection.
    pub async fn fleet(&self, count: usize, policy: FleetPolicy) -> Result<Fleet> {
        let mut hosts = Vec::new();
        for h in self.hosts.iter().take(count) {
            let docker = Docker::connect_via(h.ssh.clone(), DOCKER_SOCKET)
                .await?
                .with_slot_options(slot_options());
            hosts.push(AppHost {
                name: h.name.clone(),
                host: h.ssh.clone(),
                runtime: Arc::new(docker),
                topology: h.topology.clone(),
                state_dir: Some(h.state_dir.clone()),
            });
        }
        let shared = Shared {
            router: Arc::new(self.haproxy.haproxy()),
            database: Arc::new(MemoryCluster::default()),
            cache: Arc::new(MemoryCache::default()),
        };
        Fleet::new(hosts, shared, self.deploy_config(), policy)
    }

    /// Takes host `name` away as a dead network would: its sshd stops and its connection is cut, so
    /// nothing reaches it any more.
    pub fn take_down(&self, name: &str) {
        if let Some(h) = self.hosts.iter().find(|h| h.name == name) {
            drop(h.sshd.lock().unwrap_or_else(|p| p.into_inner()).take());
            h.proxy.cut();
        }
    }
}

impl Drop for FleetStack {
    /// Removes every container of the stack (through the Docker CLI: drop may run outside a runtime).
    fn drop(&mut self) {
        let names: Vec<String> = self
            .hosts
            .iter()
            .flat_map(|h| {
                [
                    h.topology.blue.container.clone(),
                    h.topology.green.container.clone(),
                ]
            })
            .collect();
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f"])
            .args(&names)
            .output();
    }
}
