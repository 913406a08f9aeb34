//! The stack's backends and deploy configuration: everything a [`Deployer`] gets goes through the stack's one
//! SSH connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use connect_core::engine::{Backends, DeployConfig, Deployer};
use connect_core::host::Endpoint;
use connect_core::model::{AppSpec, Color, DeployPolicy, Slot, Topology};
use connect_core::ssh::{SshConfig, SshHost};
use connect_core::{Host, Result};
use connect_db::backup::BackupConfig;
use connect_db::{PatroniCluster, PgTarget};
use connect_docker::{Docker, HOST_NETWORK, HealthProbe, Restart, SlotOptions};
use connect_haproxy::{Haproxy, MapFile, RuntimeApi, Socket, StateFile};

use super::toml::pg_bin_dir;
use super::{DATABASE, DOCKER_SOCKET, Stack};

/// Where a running stack's parts are: enough for another process to drive it over its own SSH connection
/// (a deploy killed and re-run by a new process, as an operator's would be). Serialized as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackAddress {
    /// The stack's prefix (app name, containers, images).
    pub prefix: String,
    /// sshd's port (or its cuttable proxy's).
    pub ssh_port: u16,
    /// The server account.
    pub ssh_user: String,
    /// The client key.
    pub ssh_key: PathBuf,
    /// The known_hosts file that lists sshd's key for that port.
    pub known_hosts: PathBuf,
    /// HAProxy's admin socket, master CLI and state file, on the server.
    pub haproxy_admin: PathBuf,
    /// The master CLI's socket.
    pub haproxy_master: PathBuf,
    /// The server-state file.
    pub haproxy_state: PathBuf,
    /// The maintenance page's map file, when the config has the page.
    #[serde(default)]
    pub haproxy_maintenance_map: Option<PathBuf>,
    /// The app's HAProxy backend.
    pub backend: String,
    /// Patroni's REST URLs, as the server sees them.
    pub patroni: Vec<String>,
    /// PostgreSQL's ports, one per node.
    pub pg_ports: Vec<u16>,
    /// Redis's port and password.
    pub redis_port: u16,
    /// Redis's password, if any.
    pub redis_password: Option<String>,
    /// Blue's and green's ports.
    pub ports: (u16, u16),
    /// The server's directory (state and backups below it).
    pub dir: PathBuf,
}

impl StackAddress {
    /// The HAProxy backend through `host`: admin socket, master CLI and state file on the server.
    pub fn router(&self, host: Arc<dyn Host>) -> Haproxy {
        let unix = |path: &std::path::Path| {
            RuntimeApi::new(Socket::Host(
                host.clone(),
                Endpoint::Unix(path.display().to_string()),
            ))
        };
        let haproxy = Haproxy::new(unix(&self.haproxy_admin), &self.backend)
            .expect("the harness's backend name is valid")
            .with_state_file(StateFile::Host(
                host.clone(),
                self.haproxy_state.display().to_string(),
            ))
            .with_master(unix(&self.haproxy_master));
        match &self.haproxy_maintenance_map {
            Some(map) => haproxy.with_maintenance_map(MapFile {
                name: map.display().to_string(),
                file: StateFile::Host(host.clone(), map.display().to_string()),
            }),
            None => haproxy,
        }
    }

    /// Backups into the server's backup directory with this machine's PostgreSQL 15 programs.
    pub fn backup_config(&self) -> BackupConfig {
        BackupConfig::new(&self.backup_dir()).bin_dir(&pg_bin_dir())
    }

    /// The Patroni cluster through `host`, logging in to the app's database and backing it up on the
    /// server; its check query counts the app's customers (the runbook counts its users).
    pub fn database(&self, host: Arc<dyn Host>) -> PatroniCluster {
        let login = PgTarget::new("postgres", "postgres")
            .at("127.0.0.1", self.pg_ports[0])
            .password(connect_db::testing::PG_PASSWORD)
            .database(DATABASE);
        PatroniCluster::new(&self.patroni, login)
            .expect("valid test URLs")
            .with_check_query("SELECT count(*) FROM customers")
            .through(host.clone())
            .with_backups(host, self.backup_config())
    }

    /// Redis through `host`.
    pub fn cache(&self, host: Arc<dyn Host>) -> connect_db::Redis {
        connect_db::Redis::new("127.0.0.1", self.redis_port, self.redis_password.as_deref())
            .expect("valid test address")
            .through(host)
    }

    /// The five backends over a NEW SSH connection of this process.
    pub async fn connect(&self) -> Result<Backends> {
        // The stack is the test's own: whatever ~/.ssh/config says must not reroute it.
        let config = SshConfig::new("127.0.0.1", self.ssh_user.clone())
            .no_ssh_config()
            .port(self.ssh_port)
            .key_file(&self.ssh_key)
            .known_hosts(&self.known_hosts)
            .no_agent()
            .connect_timeout(Duration::from_secs(5));
        let ssh = Arc::new(SshHost::connect(config).await?);
        let docker = Docker::connect_via(ssh.clone(), DOCKER_SOCKET)
            .await?
            .with_slot_options(slot_options());
        Ok(self.backends(ssh, docker))
    }

    /// The five backends, all through `ssh`.
    pub fn backends(&self, ssh: Arc<SshHost>, docker: Docker) -> Backends {
        Backends {
            host: ssh.clone(),
            runtime: Arc::new(docker),
            router: Arc::new(self.router(ssh.clone())),
            database: Arc::new(self.database(ssh.clone())),
            cache: Arc::new(self.cache(ssh)),
        }
    }

    /// The app's database URL as the containers see it: every Patroni node, the writable one chosen, so a
    /// failover needs no redeploy.
    pub fn database_url(&self) -> String {
        let hosts: Vec<String> = self
            .pg_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!(
            "postgresql://postgres:{}@{}/{DATABASE}?target_session_attrs=read-write&connect_timeout=2",
            connect_db::testing::PG_PASSWORD,
            hosts.join(",")
        )
    }

    /// Where the journal and the lock live on the server.
    pub fn state_dir(&self) -> String {
        self.dir.join("state").display().to_string()
    }

    /// Where backups go on the server.
    pub fn backup_dir(&self) -> String {
        self.dir.join("backups").display().to_string()
    }

    /// The deploy configuration of this stack: the demo app with its migration, this stack's containers and
    /// ports, deadlines for a machine under test load, the journal in the stack's temp dir; this process
    /// as the holder.
    pub fn deploy_config(&self) -> DeployConfig {
        let slot = |color: Color, n: u8, port: u16| Slot {
            color,
            container: format!("{}_app{n}", self.prefix),
            server: format!("app{n}"),
            host_port: port,
        };
        let mut app = AppSpec::connect();
        app.name = self.prefix.clone();
        app.stop_grace = Duration::from_secs(5);
        app.migration = Some(vec!["migrate".into()]);
        app.env = [
            ("BIND", "127.0.0.1".to_string()),
            ("DATABASE_URL", self.database_url()),
            ("REDIS_URL", format!("redis://127.0.0.1:{}", self.redis_port)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut policy = DeployPolicy::default();
        policy.health_deadline = Duration::from_secs(60);
        policy.drain_deadline = Duration::from_secs(10);
        policy.router_deadline = Duration::from_secs(10);
        policy.disk_paths = vec![self.state_dir(), self.backup_dir()];
        // Short, so a test whose deploy was cut off waits seconds, not half a minute, for the takeover.
        policy.lock_lease = Duration::from_secs(5);
        DeployConfig {
            app,
            topology: Topology {
                blue: slot(Color::Blue, 1, self.ports.0),
                green: slot(Color::Green, 2, self.ports.1),
            },
            policy,
            state_dir: self.state_dir(),
            holder: format!("e2e {} pid {}", self.prefix, std::process::id()),
            hooks: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

impl Stack {
    /// Where this stack's parts are, for another process.
    pub fn address(&self) -> StackAddress {
        let known_hosts = match &self.proxy {
            Some(proxy) => self.sshd.known_hosts_via(proxy.port()),
            None => self.sshd.known_hosts(),
        };
        StackAddress {
            prefix: self.prefix.clone(),
            ssh_port: self.proxy.as_ref().map_or(self.sshd.port(), |p| p.port()),
            ssh_user: self.sshd.user().to_string(),
            ssh_key: self.sshd.client_key(),
            known_hosts,
            haproxy_admin: self.haproxy.admin_socket.clone(),
            haproxy_master: self.haproxy.master_socket.clone(),
            haproxy_state: self.haproxy.state_file.clone(),
            haproxy_maintenance_map: self.haproxy.config.maintenance.as_ref().map(|m| m.map.clone()),
            backend: self.haproxy.config.backend.clone(),
            patroni: self.cluster.rest_urls(),
            pg_ports: self.cluster.nodes.iter().map(|n| n.pg_port).collect(),
            redis_port: self.redis.port,
            redis_password: self.redis.password.clone(),
            ports: self.ports,
            dir: self.dir.path().to_path_buf(),
        }
    }

    /// The HAProxy backend through the SSH connection: admin socket, master CLI and state file on the server.
    pub fn router(&self) -> Haproxy {
        self.address().router(self.ssh.clone())
    }

    /// The Patroni cluster through the SSH connection (see [`StackAddress::database`]).
    pub fn database(&self) -> PatroniCluster {
        self.address().database(self.ssh.clone())
    }

    /// Redis through the SSH connection.
    pub fn cache(&self) -> connect_db::Redis {
        self.address().cache(self.ssh.clone())
    }

    /// The five backends, all through the one SSH connection.
    pub fn backends(&self) -> Backends {
        self.address().backends(self.ssh.clone(), self.docker.clone())
    }

    /// The app's database URL as the containers see it.
    pub fn database_url(&self) -> String {
        self.address().database_url()
    }

    /// The deploy configuration of this stack (see [`StackAddress::deploy_config`]).
    pub fn deploy_config(&self) -> DeployConfig {
        self.address().deploy_config()
    }

    /// A deployer over [`Stack::backends`] and [`Stack::deploy_config`].
    pub fn deployer(&self) -> Result<Deployer> {
        Deployer::new(self.backends(), self.deploy_config())
    }

    /// Where the journal and the lock live on the server.
    pub fn state_dir(&self) -> String {
        self.address().state_dir()
    }

    /// Where backups go on the server.
    pub fn backup_dir(&self) -> String {
        self.address().backup_dir()
    }

    /// Backups with this machine's PostgreSQL 15 programs.
    pub fn backup_config(&self) -> BackupConfig {
        self.address().backup_config()
    }
}

/// The demo app's container settings: the server's network, its own `healthcheck` as the probe (the image is
/// `FROM scratch`, no curl), checked every 100 ms so the health gate sees it soon after it is ready (Engine
/// 20.10 has no separate start-up interval).
pub fn slot_options() -> SlotOptions {
    SlotOptions {
        network: Some(HOST_NETWORK.into()),
        restart: Restart::No,
        health: HealthProbe {
            command: vec![crate::demo_image::IMAGE_BINARY.into(), "healthcheck".into()],
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            retries: 3,
            start_period: Duration::ZERO,
        },
        ..SlotOptions::default()
    }
}
