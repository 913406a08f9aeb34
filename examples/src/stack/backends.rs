//! The stack's backends and deploy configuration: everything a [`Deployer`] gets goes through the stack's one
//! SSH connection.

use std::sync::Arc;
use std::time::Duration;

use connect_core::engine::{Backends, DeployConfig, Deployer};
use connect_core::host::Endpoint;
use connect_core::model::{AppSpec, Color, DeployPolicy, Slot, Topology};
use connect_core::{Host, Result};
use connect_db::PatroniCluster;
use connect_db::backup::BackupConfig;
use connect_db::testing::pg_bin;
use connect_docker::{HOST_NETWORK, HealthProbe, Restart, SlotOptions};
use connect_haproxy::{Haproxy, RuntimeApi, Socket, StateFile};

use super::{DATABASE, Stack};

impl Stack {
    /// The HAProxy backend through the SSH connection: admin socket, master CLI and state file on the server.
    pub fn router(&self) -> Haproxy {
        let host: Arc<dyn Host> = self.ssh.clone();
        let unix = |path: &std::path::Path| {
            RuntimeApi::new(Socket::Host(
                host.clone(),
                Endpoint::Unix(path.display().to_string()),
            ))
        };
        Haproxy::new(unix(&self.haproxy.admin_socket), &self.haproxy.config.backend)
            .expect("the harness's backend name is valid")
            .with_state_file(StateFile::Host(
                host.clone(),
                self.haproxy.state_file.display().to_string(),
            ))
            .with_master(unix(&self.haproxy.master_socket))
    }

    /// The Patroni cluster through the SSH connection, logging in to the app's database; its check query
    /// counts the app's customers (the runbook counts its users).
    pub fn database(&self) -> PatroniCluster {
        self.cluster
            .client(DATABASE)
            .with_check_query("SELECT count(*) FROM customers")
            .through(self.ssh.clone())
    }

    /// Redis through the SSH connection.
    pub fn cache(&self) -> connect_db::Redis {
        self.redis.client().through(self.ssh.clone())
    }

    /// The five backends, all through the one SSH connection.
    pub fn backends(&self) -> Backends {
        Backends {
            host: self.ssh.clone(),
            runtime: Arc::new(self.docker.clone()),
            router: Arc::new(self.router()),
            database: Arc::new(self.database()),
            cache: Arc::new(self.cache()),
        }
    }

    /// The app's database URL as the containers see it: every Patroni node, the writable one chosen, so a
    /// failover needs no redeploy.
    pub fn database_url(&self) -> String {
        let hosts: Vec<String> = self
            .cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.pg_port))
            .collect();
        format!(
            "postgresql://postgres:{}@{}/{DATABASE}?target_session_attrs=read-write&connect_timeout=2",
            connect_db::testing::PG_PASSWORD,
            hosts.join(",")
        )
    }

    /// The deploy configuration of this stack: the demo app with its migration, this stack's containers and
    /// ports, deadlines for a machine under test load, the journal in the stack's temp dir.
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
            ("REDIS_URL", format!("redis://127.0.0.1:{}", self.redis.port)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let policy = DeployPolicy {
            health_deadline: Duration::from_secs(60),
            drain_deadline: Duration::from_secs(10),
            router_deadline: Duration::from_secs(10),
            disk_paths: vec![self.state_dir(), self.backup_dir()],
            // Short, so a test whose deploy was cut off waits seconds, not half a minute, for the takeover.
            lock_lease: Duration::from_secs(5),
            ..DeployPolicy::default()
        };
        DeployConfig {
            app,
            topology: Topology {
                blue: slot(Color::Blue, 1, self.ports.0),
                green: slot(Color::Green, 2, self.ports.1),
            },
            policy,
            state_dir: self.state_dir(),
            holder: format!("e2e {} pid {}", self.prefix, std::process::id()),
        }
    }

    /// A deployer over [`Stack::backends`] and [`Stack::deploy_config`].
    pub fn deployer(&self) -> Result<Deployer> {
        Deployer::new(self.backends(), self.deploy_config())
    }

    /// Where the journal and the lock live on the server.
    pub fn state_dir(&self) -> String {
        self.dir.path().join("state").display().to_string()
    }

    /// Where backups go on the server.
    pub fn backup_dir(&self) -> String {
        self.dir.path().join("backups").display().to_string()
    }

    /// Backups with this machine's PostgreSQL 15 programs.
    pub fn backup_config(&self) -> BackupConfig {
        let bin = pg_bin("pg_dump");
        let bin_dir = bin
            .parent()
            .map_or_else(|| "/usr/bin".into(), |d| d.display().to_string());
        BackupConfig::new(&self.backup_dir()).bin_dir(&bin_dir)
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
