//! Several app hosts on this machine for the fleet's real tests and benchmark (issue 18.1), each as separate a
//! machine as one box allows: its own Docker Engine ([`SecondDaemon`]) in its own network namespace, its own
//! OpenSSH server inside that namespace on the host's address (port 22, the engine's socket at
//! `/var/run/docker.sock` in sshd's own mount namespace, as on a real host), its own state directory. HAProxy
//! runs in a namespace of its own too, the load balancer's machine, linked to each app host by a veth pair:
//!
//! ```text
//!   test process (127.0.0.1) ── TcpProxy ──► HAProxy's namespace ── veth 10.231.<n>.1 ─ 10.231.<n>.2 ─► host n
//!      customers' requests (front proxy)      HAProxy :http              (one /24 per app host)      sshd :22
//!      each host's SSH connection (cuttable)  servers <name>_blue|green at 10.231.<n>.2:3000|3001     dockerd
//! ```
//!
//! The addresses exist only in the namespaces this harness makes, so parallel runs never collide and the
//! machine's network is untouched. The test reaches the namespaces through [`TcpProxy`]s that open their
//! connections inside HAProxy's namespace: SSH crosses the same link HAProxy's checks do, and cutting a host's
//! proxy cuts its SSH as a dead network would. HAProxy's sockets are files, driven from here as usual.
//! Releases are built on this machine's engine (the build machine) and shipped to every host by the product's
//! ship path, only the layers each host lacks. The database and the cache are the in-memory ones for the SDK
//! fleet (the fleet's steps are what is under test, and the demo app serves without them), real ones for
//! `connect-ops` ([`FleetStack::start_with_services`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use connect_core::engine::DeployConfig;
use connect_core::engine::fleet::{AppHost, Fleet, FleetPolicy, Role, Shared};
use connect_core::memory::{MemoryCache, MemoryCluster};
use connect_core::model::{AppSpec, Color, DeployPolicy, Release, Slot, Topology};
use connect_core::ship::ReleaseSource;
use connect_core::ssh::SshHost;
use connect_core::testing::netns::{NetNs, veth};
use connect_core::testing::{Sshd, TcpProxy, require_program};
use connect_core::{Error, ErrorKind, Result};
use connect_db::testing::{TestCluster, TestClusterConfig, TestRedis};
use connect_docker::Docker;
use connect_docker::testing::SecondDaemon;
use connect_haproxy::ServerSpec;
use connect_haproxy::testing::{HaproxyProcess, require_haproxy};

use super::{DOCKER_SOCKET, Releases, slot_options};

mod host;
mod toml;
pub use host::FleetHost;
use host::{inside_host, new_namespace};
pub use toml::PG_PASSWORD_VAR;

/// App host `n`'s address (1-based): `10.231.<n>.2`, on its end of the veth pair to HAProxy's namespace.
/// Private, and only inside the namespaces the stack makes.
pub fn host_addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 231, n, 2)
}

/// HAProxy's address towards app host `n`: `10.231.<n>.1` (one /24 per host).
pub fn router_addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 231, n, 1)
}

/// Blue's and green's ports on every app host: the runbook's, since each host is a machine of its own.
pub const APP_PORTS: (u16, u16) = (3000, 3001);

/// sshd's port on every app host.
pub const SSH_PORT: u16 = 22;

fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Failed, "fleet stack", what, e.to_string())
}

/// The hosts, HAProxy and the releases.
pub struct FleetStack {
    /// Containers, images and the app's label.
    pub prefix: String,
    /// The app hosts, in order.
    pub hosts: Vec<FleetHost>,
    /// HAProxy, in its own network namespace, with `<name>_blue` and `<name>_green` per host, all in
    /// maintenance at first.
    pub haproxy: HaproxyProcess,
    /// From 127.0.0.1 to HAProxy's frontend in its namespace: where customers come in.
    pub front: TcpProxy,
    /// The demo app's releases (v1, v2, v3), built on this machine's engine, the build machine.
    pub releases: Releases,
    /// A one-node Patroni cluster and Redis, for `connect-ops` over the fleet ([`FleetStack::start_with_services`]).
    pub services: Option<FleetServices>,
    local: Docker,
    dir: tempfile::TempDir,
    _home: tempfile::TempDir,
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

    async fn start_inner(test: &str, count: usize, services: bool) -> Result<Option<FleetStack>> {
        let need = |p: &str, at: &[&str]| require_program(test, p, at);
        let (Some(_), Some(program), Some(unshare), Some(_), Some(_)) = (
            need("docker", &["/usr/bin/docker"]),
            require_haproxy(test),
            need("unshare", &["/usr/bin/unshare"]),
            need("nsenter", &["/usr/bin/nsenter"]),
            need("ip", &["/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip"]),
        ) else {
            return Ok(None);
        };
        let count = u8::try_from(count)
            .ok()
            .filter(|c| (1..=250).contains(c))
            .ok_or_else(|| fail("hosts", format!("{count} app hosts: 1 to 250")))?;
        let prefix = format!(
            "fleet-{}-{}",
            std::process::id(),
            connect_core::testing::free_port()
        );
        let temp = |what: &str| {
            tempfile::Builder::new()
                .prefix(&format!("connect-{prefix}-{what}-"))
                .tempdir()
                .map_err(|e| fail(what, e))
        };
        let (home, dir) = (temp("home")?, temp("hosts")?);
        let local = Docker::connect().await?.with_slot_options(slot_options());
        // Everything slow at once: the engines (each waits seconds for its containerd), the releases' build
        // on this machine, and Patroni's bootstrap. `None`: a program is missing (the SKIP is said).
        let engines = futures::future::join_all((0..count).map(|_| SecondDaemon::start(test)));
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
        let (engines, releases, services) = tokio::join!(
            engines,
            Releases::build(&prefix, &local, false, test),
            start_services
        );
        let (Some(engines), Some(services)) = (engines.into_iter().collect::<Option<Vec<_>>>(), services)
        else {
            return Ok(None);
        };
        let releases = releases?;
        let names: Vec<String> = (1..=count).map(|n| format!("web{n}")).collect();
        let mut servers = Vec::new();
        let mut topologies = Vec::new();
        for (n, name) in (1..=count).zip(&names) {
            let mut slot = |color: Color, port: u16| {
                let mut spec =
                    ServerSpec::new(&format!("{name}_{color}"), SocketAddr::from((host_addr(n), port)));
                spec.disabled = true;
                servers.push(spec);
                Slot {
                    color,
                    container: format!("{prefix}_{color}"),
                    server: format!("{name}_{color}"),
                    host_port: port,
                }
            };
            let blue = slot(Color::Blue, APP_PORTS.0);
            let green = slot(Color::Green, APP_PORTS.1);
            topologies.push(Topology { blue, green });
        }
        let haproxy =
            HaproxyProcess::start_with_servers_via(&new_namespace(&unshare), &program, servers).await?;
        let lan = NetNs::of_pid(haproxy.pid());
        let front = TcpProxy::start_to(Some(lan.clone()), haproxy.http_addr())
            .await
            .map_err(|e| fail("front proxy", e))?;
        // Each host: linked to HAProxy's namespace, then its sshd started there and connected to, all hosts
        // at once.
        let setup = engines.into_iter().zip(names).zip(topologies).zip(1..=count).map(
            |(((engine, name), topology), n)| {
                let (lan, unshare, home, dir) = (&lan, &unshare, home.path(), dir.path());
                async move {
                    let ns = engine.netns().ok_or_else(|| fail(&name, "its engine stopped"))?;
                    veth(
                        lan,
                        &format!("{}/24", router_addr(n)),
                        &ns,
                        &format!("{}/24", host_addr(n)),
                    )?;
                    let wrapper = inside_host(&ns, unshare, &engine.socket());
                    let listen = SocketAddr::from((host_addr(n), SSH_PORT));
                    let home = format!("SetEnv HOME={}", home.display());
                    let Some(sshd) = Sshd::start_via(test, &wrapper, listen, &home).await else {
                        return Ok(None);
                    };
                    let proxy = TcpProxy::start_to(Some(lan.clone()), listen)
                        .await
                        .map_err(|e| fail("ssh proxy", e))?;
                    let config = sshd
                        .config()
                        .port(proxy.port())
                        .known_hosts(sshd.known_hosts_via(proxy.port()));
                    let ssh = Arc::new(SshHost::connect(config).await?);
                    let state_dir = dir.join(&name).join("state");
                    std::fs::create_dir_all(&state_dir).map_err(|e| fail(&name, e))?;
                    Ok::<_, Error>(Some(FleetHost {
                        name,
                        address: host_addr(n),
                        sshd,
                        proxy,
                        ssh,
                        topology,
                        state_dir: state_dir.display().to_string(),
                        engine,
                    }))
                }
            },
        );
        let mut started = Vec::new();
        for host in futures::future::join_all(setup).await {
            let Some(host) = host? else {
                return Ok(None);
            };
            started.push(host);
        }
        Ok(Some(FleetStack {
            prefix,
            hosts: started,
            haproxy,
            front,
            releases,
            services,
            local,
            dir,
            _home: home,
        }))
    }

    /// A release of the demo app.
    pub fn release(&self, version: &str) -> Release {
        self.releases.release(version)
    }

    /// Where customers reach HAProxy's frontend from this machine (the front proxy on 127.0.0.1).
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.front.port()))
    }

    /// Where `version` ships from: the image on this machine's engine, the build machine.
    pub fn source(&self, version: &str) -> ReleaseSource {
        ReleaseSource::local_image(self.release(version).image.to_string())
    }

    /// The deploy configuration every host shares: the demo app, deadlines for a machine under test load.
    pub fn deploy_config(&self) -> DeployConfig {
        let mut app = AppSpec::connect();
        app.name = self.prefix.clone();
        app.stop_grace = Duration::from_secs(5);
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
    /// connection, shipping from this machine's engine ([`FleetStack::source`], `Fleet::deploy_from`).
    pub async fn fleet(&self, count: usize, policy: FleetPolicy) -> Result<Fleet> {
        self.fleet_with(count, policy, self.deploy_config()).await
    }

    /// [`FleetStack::fleet`] with a deploy configuration of the test's (e.g. [`FleetStack::deploy_config`]
    /// with a shorter health deadline).
    pub async fn fleet_with(&self, count: usize, policy: FleetPolicy, config: DeployConfig) -> Result<Fleet> {
        let mut hosts = Vec::new();
        for h in self.hosts.iter().take(count) {
            let docker = Docker::connect_via(h.ssh.clone(), DOCKER_SOCKET)
                .await?
                .with_slot_options(slot_options())
                .with_build_machine(self.local.clone());
            hosts.push(AppHost {
                name: h.name.clone(),
                host: h.ssh.clone(),
                runtime: Arc::new(docker),
                topology: h.topology.clone(),
                state_dir: Some(h.state_dir.clone()),
                role: Role::Web,
                app: None,
            });
        }
        let shared = Shared {
            router: Arc::new(self.haproxy.haproxy()),
            database: Arc::new(MemoryCluster::default()),
            cache: Arc::new(MemoryCache::default()),
        };
        Fleet::new(hosts, shared, config, policy)
    }

    /// Takes host `name`'s SSH away as a dead network would: its sshd stops and its connection is cut, so
    /// no command reaches it any more (its engine and containers run on, as on a host only SSH lost).
    pub fn take_down(&self, name: &str) {
        if let Some(h) = self.hosts.iter().find(|h| h.name == name) {
            h.sshd.stop();
            h.proxy.cut();
        }
    }

    /// Brings host `name`'s SSH back after [`FleetStack::take_down`]: its sshd started again in its
    /// namespace on the same address, port and host keys, so the host's connection (and any client's
    /// known_hosts) reaches it as before; the connection reopens on its next command.
    pub async fn bring_back(&self, name: &str) -> Result<()> {
        let h = self
            .hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| fail(name, "no such app host"))?;
        h.sshd.restart().await.map_err(|e| fail(name, e))
    }
}

impl Drop for FleetStack {
    /// Asks every host's engine to stop before the fields drop one by one, so the engines stop their
    /// containers together rather than one after the other.
    fn drop(&mut self) {
        for h in &self.hosts {
            if let Some(pid) = h.engine.pid() {
                let _ = connect_core::testing::send_signal(pid, connect_core::testing::Signal::SIGTERM);
            }
        }
    }
}
