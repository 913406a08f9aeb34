//! The whole production setup on this machine, loopback only, from the crates' own harnesses: an OpenSSH server
//! playing the production server, the Docker Engine reached through that one SSH connection, HAProxy
//! (master-worker) in front of the blue and green demo-app containers, etcd + two Patroni nodes + PostgreSQL 15,
//! and Redis. Started by [`Stack::start`], torn down on drop.
//!
//! Every backend the [`Deployer`] gets goes through the SSH connection, as it would to `prod-host`: Docker's
//! socket, HAProxy's admin socket, master CLI and state file, Patroni's REST API, PostgreSQL and Redis.
//! The containers share the server's network (as the runbook's apps reach `127.0.0.1` services), each color
//! on its own port.

mod backends;
pub mod fleet;
mod recovery;
mod releases;
pub mod runbook;
mod toml;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use connect_core::model::Release;
use connect_core::router::{AdminState, TrafficRouter};
use connect_core::ssh::SshHost;
use connect_core::testing::{Sshd, TcpProxy, free_port, require_program};
use connect_core::{Error, ErrorKind, Result};
use connect_db::testing::{TestCluster, TestClusterConfig, TestRedis};
use connect_docker::Docker;
use connect_haproxy::testing::{HaproxyProcess, require_haproxy};

pub use backends::{StackAddress, slot_options};
pub use releases::Releases;

/// The Docker Engine's socket on the server.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The app's database.
pub const DATABASE: &str = "connect";

/// How the stack is set up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Names the stack's containers, images and temp dirs (a test's name).
    pub name: String,
    /// Reach sshd through a [`TcpProxy`] that can cut the connection ([`Stack::cut_ssh`]).
    pub cuttable_ssh: bool,
    /// Build the releases on a second Docker Engine (a build machine, in its own network namespace) and
    /// ship them to the server through SSH, as the runbook does; otherwise build them on the server.
    pub build_machine: bool,
}

impl StackOptions {
    /// A stack named `name`, releases built on the server, SSH not cuttable.
    pub fn new(name: &str) -> StackOptions {
        StackOptions {
            name: name.to_string(),
            cuttable_ssh: false,
            build_machine: false,
        }
    }
}

/// The running stack. Public fields are the harness pieces, for tests that break them on purpose.
pub struct Stack {
    /// Unique to this stack: the app's name, its containers' prefix, its images' repository.
    pub prefix: String,
    /// The OpenSSH server playing `prod-host`.
    pub sshd: Sshd,
    /// Between client and sshd when the stack was asked for a cuttable connection.
    pub proxy: Option<TcpProxy>,
    /// The one SSH connection.
    pub ssh: Arc<SshHost>,
    /// HAProxy master-worker.
    pub haproxy: HaproxyProcess,
    /// etcd + Patroni + PostgreSQL.
    pub cluster: TestCluster,
    /// Redis.
    pub redis: TestRedis,
    /// The server's Docker Engine, through SSH, with the demo app's slot options.
    pub docker: Docker,
    /// The releases: built, and where.
    pub releases: Releases,
    /// Blue's and green's ports on the server.
    pub ports: (u16, u16),
    dir: tempfile::TempDir,
    _home: tempfile::TempDir,
}

// By hand: the harness pieces' own Debug would print every temp dir and child; the prefix and ports say
// which stack a failure was in.
impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("prefix", &self.prefix)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

static STACKS: AtomicU32 = AtomicU32::new(0);

impl Stack {
    /// Starts everything and waits until each part answers. `None` (after a loud SKIP) when a program is
    /// missing and real tests are not required; with `CONNECT_REAL_TESTS=1` a missing program panics, as does
    /// a part that does not start (the harness's way; [`Stack::try_start`] returns that as an error).
    pub async fn start(options: StackOptions) -> Option<Stack> {
        let name = options.name.clone();
        Stack::try_start(options)
            .await
            .unwrap_or_else(|e| panic!("{name}: starting the stack: {e}"))
    }

    /// [`Stack::start`], with a part that does not start returned as the error.
    pub async fn try_start(options: StackOptions) -> Result<Option<Stack>> {
        let test = options.name.as_str();
        let (Some(_), Some(_), Some(haproxy_program)) = (
            require_program(test, "docker", &["/usr/bin/docker"]),
            require_program(test, "dockerd", &["/usr/sbin/dockerd", "/usr/bin/dockerd"]),
            require_haproxy(test),
        ) else {
            return Ok(None);
        };
        let n = STACKS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("e2e-{}-{n}", std::process::id());
        let temp = |what: &str| {
            tempfile::Builder::new()
                .prefix(&format!("connect-{prefix}-{what}-"))
                .tempdir()
                .map_err(|e| Error::new(ErrorKind::Failed, "stack", what, e.to_string()))
        };
        // Debian's bash reads ~/.bashrc for every command sshd runs; the server's account here is this
        // machine's (root), whose ~/.bashrc may cost a quarter second per command. The server gets a HOME of
        // its own, as a deploy account would have.
        let home = temp("home")?;
        let dir = temp("server")?;
        let Some(sshd) = Sshd::start_with(test, &format!("SetEnv HOME={}", home.path().display())).await
        else {
            return Ok(None);
        };
        let Some(redis) = TestRedis::start(test, None, false).await else {
            return Ok(None);
        };
        let scope = TestClusterConfig {
            scope: prefix.clone(),
            ..TestClusterConfig::default()
        };
        let Some(cluster) = TestCluster::start(test, scope).await else {
            return Ok(None);
        };
        // The server's directories, as its setup makes them (`/opt/connect/state`, `/opt/connect/backups`).
        for sub in ["state", "backups"] {
            std::fs::create_dir_all(dir.path().join(sub))
                .map_err(|e| Error::new(ErrorKind::Failed, "stack", sub, e.to_string()))?;
        }
        let (proxy, ssh) = connect_ssh(&sshd, options.cuttable_ssh).await?;
        let ports = (free_port(), free_port());
        let haproxy = HaproxyProcess::start(
            &haproxy_program,
            SocketAddr::from(([127, 0, 0, 1], ports.0)),
            SocketAddr::from(([127, 0, 0, 1], ports.1)),
        )
        .await?;
        let docker = Docker::connect_via(ssh.clone(), DOCKER_SOCKET)
            .await?
            .with_slot_options(slot_options());
        create_database(&cluster).await?;
        let releases = Releases::build(&prefix, &docker, options.build_machine, &options.name).await?;
        let stack = Stack {
            prefix,
            sshd,
            proxy,
            ssh,
            haproxy,
            cluster,
            redis,
            docker,
            releases,
            ports,
            dir,
            _home: home,
        };
        // A fresh HAProxy serves both servers as configured; the first deploy starts from "nothing live".
        let router = stack.router();
        for server in ["app1", "app2"] {
            router.set_state(server, AdminState::Maint).await?;
        }
        Ok(Some(stack))
    }

    /// HAProxy's HTTP address: where customers (the load generator) come in.
    pub fn http_addr(&self) -> SocketAddr {
        self.haproxy.http_addr()
    }

    /// A release of the demo app built by [`Releases`].
    pub fn release(&self, version: &str) -> Release {
        self.releases.release(version)
    }

    /// Builds a release of the demo app of a test's own, with the migrations in `migrations`, on the server
    /// (or the build machine, then shipped): see [`Releases::build_extra`].
    pub async fn build_release(&self, version: &str, migrations: &std::path::Path) -> Result<Release> {
        let release = self.releases.build_extra(version, Some(migrations)).await?;
        self.releases.ship(version).await?;
        Ok(release)
    }

    /// How many SSH connections sshd accepted so far (the goal: one).
    pub fn sshd_connections(&self) -> usize {
        self.sshd.accepted_connections()
    }

    /// Cuts the SSH connection as a dead network would. New connections still get through.
    pub fn cut_ssh(&self) {
        if let Some(p) = &self.proxy {
            p.cut();
        }
    }

    /// The container names of this stack that exist on the server (one-off jobs included).
    pub async fn containers(&self) -> Result<Vec<String>> {
        let label = [(
            connect_core::runtime::labels::APP.to_string(),
            self.prefix.clone(),
        )]
        .into();
        let mut names: Vec<String> = self
            .docker
            .list_containers(&label)
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        let one_offs = [(connect_docker::ONE_OFF_LABEL.to_string(), "true".to_string())].into();
        names.extend(
            self.docker
                .list_containers(&one_offs)
                .await?
                .into_iter()
                .filter(|c| c.image.starts_with(&format!("{}:", self.prefix)))
                .map(|c| c.name),
        );
        names.sort();
        Ok(names)
    }
}

/// The one SSH connection to `sshd`, through a cuttable proxy when asked (then the server is known by the
/// proxy's port).
async fn connect_ssh(sshd: &Sshd, cuttable: bool) -> Result<(Option<TcpProxy>, Arc<SshHost>)> {
    let mut config = sshd.config();
    let proxy = if cuttable {
        let proxy = TcpProxy::start(sshd.port())
            .await
            .map_err(|e| Error::new(ErrorKind::Failed, "stack", "ssh proxy", e.to_string()))?;
        config = config
            .port(proxy.port())
            .known_hosts(sshd.known_hosts_via(proxy.port()));
        Some(proxy)
    } else {
        None
    };
    Ok((proxy, Arc::new(SshHost::connect(config).await?)))
}

async fn create_database(cluster: &TestCluster) -> Result<()> {
    let admin = cluster.client("postgres");
    let client = admin.leader_postgres().await?.connect().await?;
    client
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .map_err(|e| Error::new(ErrorKind::Failed, "create database", DATABASE, e.to_string()))
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Synchronous on purpose: drop may run outside a runtime, and the Docker CLI talks to the same engine.
        // The releases' images go with `Releases`' own drop.
        let names = [1, 2].map(|n| format!("{}_app{n}", self.prefix));
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f"])
            .args(&names)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
