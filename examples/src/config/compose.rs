//! The one composition: a [`ConnectConfig`] becomes the five backends (all through one SSH connection, or on
//! this machine) and the engine's [`DeployConfig`].

use std::sync::Arc;

use connect_core::engine::{Backends, DeployConfig, Deployer, Hook, default_holder};
use connect_core::host::Endpoint;
use connect_core::model::{
    AppSpec, BackupPolicy, Color, DeployPolicy, OldColorPolicy, Release, Slot, Topology,
};
use connect_core::ssh::{SshConfig, SshHost};
use connect_core::{Host, LocalHost, Result};
use connect_db::backup::BackupConfig;
use connect_db::{PatroniCluster, PgTarget, Redis};
use connect_docker::{Docker, HealthProbe, Secrets, SlotOptions};
use connect_haproxy::{Haproxy, RuntimeApi, Socket, StateFile};

use super::{ConnectConfig, OldColor, SlotConfig};

impl ConnectConfig {
    /// The server: one SSH connection, or this machine for `host = "local"`.
    pub async fn host(&self) -> Result<Arc<dyn Host>> {
        let s = &self.server;
        if s.host == "local" {
            return Ok(Arc::new(LocalHost::new()));
        }
        let mut ssh = SshConfig::new(&s.host, s.user.clone())
            .port(s.port)
            .connect_timeout(s.connect_timeout);
        if let Some(key) = &s.key_file {
            ssh = ssh.key_file(expand_home(key));
        }
        if let Some(passphrase) = &s.passphrase {
            ssh = ssh.passphrase(passphrase.expose());
        }
        if let Some(known_hosts) = &s.known_hosts {
            ssh = ssh.known_hosts(expand_home(known_hosts));
        }
        Ok(Arc::new(SshHost::connect(ssh).await?))
    }

    /// Connects to the server and builds every backend through it.
    pub async fn backends(&self) -> Result<Backends> {
        let host = self.host().await?;
        let docker = Docker::connect_via(host.clone(), &self.docker.socket)
            .await?
            .with_slot_options(self.slot_options()?);
        Ok(Backends {
            runtime: Arc::new(docker),
            router: Arc::new(self.router(host.clone())?),
            database: Arc::new(self.database(host.clone())?),
            cache: Arc::new(self.cache(host.clone())?),
            host,
        })
    }

    /// A [`Deployer`] over [`ConnectConfig::backends`] and [`ConnectConfig::deploy_config`].
    pub async fn deployer(&self) -> Result<Deployer> {
        Deployer::new(self.backends().await?, self.deploy_config())
    }

    fn router(&self, host: Arc<dyn Host>) -> Result<Haproxy> {
        let h = &self.haproxy;
        let unix = |path: &str| RuntimeApi::new(Socket::Host(host.clone(), Endpoint::Unix(path.to_string())));
        let mut router = Haproxy::new(unix(&h.admin_socket), &h.backend)?;
        if let Some(file) = &h.state_file {
            router = router.with_state_file(StateFile::Host(host.clone(), file.clone()));
        }
        if let Some(master) = &h.master_socket {
            router = router.with_master(unix(master));
        }
        Ok(router)
    }

    fn database(&self, host: Arc<dyn Host>) -> Result<PatroniCluster> {
        let d = &self.database;
        let mut login = PgTarget::new(&d.user, &d.dbname).at(&d.host, d.port);
        if let Some(password) = &d.password {
            login = login.password(password.expose());
        }
        let mut backups = BackupConfig::new(&d.backup_dir);
        if let Some(bin) = &d.pg_bin_dir {
            backups = backups.bin_dir(bin);
        }
        Ok(PatroniCluster::new(&d.patroni, login)?
            .with_check_query(&d.check_query)
            .through(host.clone())
            .with_backups(host, backups))
    }

    fn cache(&self, host: Arc<dyn Host>) -> Result<Redis> {
        let r = &self.redis;
        let password = r.password.as_ref().map(|p| p.expose());
        Ok(Redis::new(&r.host, r.port, password)?.through(host))
    }

    fn slot_options(&self) -> Result<SlotOptions> {
        let secrets = match &self.app.env_file {
            Some(path) => Secrets::from_env_file(&expand_home(path))?,
            None => Secrets::default(),
        };
        Ok(SlotOptions {
            network: self.docker.network.clone(),
            secrets,
            app_port: self.app.container_port,
            health: HealthProbe {
                command: self.docker.health_command.clone(),
                interval: self.docker.health_interval,
                ..HealthProbe::default()
            },
            ..SlotOptions::default()
        })
    }

    /// The engine's configuration: the app, blue and green, the policy, the state directory; this process as
    /// the lock's holder.
    pub fn deploy_config(&self) -> DeployConfig {
        let a = &self.app;
        let p = &self.policy;
        let slot = |color: Color, s: &SlotConfig| Slot {
            color,
            container: s.container.clone(),
            server: s.server.clone(),
            host_port: s.port,
        };
        DeployConfig {
            app: AppSpec {
                name: a.name.clone(),
                env: a
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
                container_port: a.container_port,
                health_path: a.health_path.clone(),
                stop_grace: a.stop_grace,
                migration: a.migration.clone(),
                migrations_dir: a.migrations_dir.clone(),
                smoke_paths: a.smoke_paths.clone(),
            },
            topology: Topology {
                blue: slot(Color::Blue, &self.slots.blue),
                green: slot(Color::Green, &self.slots.green),
            },
            policy: DeployPolicy {
                health_deadline: p.health_deadline,
                migration_deadline: p.migration_deadline,
                drain_deadline: p.drain_deadline,
                router_deadline: p.router_deadline,
                lock_lease: p.lock_lease,
                disk_warn_percent: p.disk_warn_percent,
                disk_fail_percent: p.disk_fail_percent,
                disk_paths: p.disk_paths.clone(),
                max_error_lines: p.max_error_lines,
                old_color: match (p.old_color, p.retire_after) {
                    (OldColor::RetireAfter, Some(window)) => OldColorPolicy::RetireAfter { window },
                    (OldColor::Balanced, _) => OldColorPolicy::Balanced,
                    // `check` refused a retire_after policy without its window when the file was read.
                    _ => OldColorPolicy::WarmStandby,
                },
                allow_destructive_migrations: p.allow_destructive_migrations,
                backup: BackupPolicy {
                    before_migration: p.backup.before_migration,
                    every_deploy: p.backup.every_deploy,
                    keep: p.backup.keep,
                    deadline: p.backup.deadline,
                },
                ..DeployPolicy::default()
            },
            state_dir: self.state_dir.clone(),
            holder: default_holder(),
            hooks: self
                .hooks
                .iter()
                .map(|h| Hook {
                    point: h.point,
                    command: h.command.clone(),
                    site: h.site,
                    timeout: h.timeout,
                })
                .collect(),
        }
    }

    /// The release `version` of the app's image (`<image>:<version>`).
    pub fn release(&self, version: &str) -> Result<Release> {
        Release::from_image(connect_core::model::ImageRef::parse(&format!(
            "{}:{version}",
            self.app.image
        ))?)
    }
}

/// `~/x` as the user's home, as ssh reads it.
fn expand_home(path: &std::path::Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => path.to_path_buf(),
    }
}
