//! The one composition: a [`ConnectConfig`] becomes the five backends (all through one SSH connection, or on
//! this machine) and the engine's [`DeployConfig`].

use std::sync::Arc;

use connect_core::engine::{Backends, DeployConfig, Deployer, Hook, default_holder};
use connect_core::host::Endpoint;
use connect_core::layers::GroupedRouter;
use connect_core::model::{AppSpec, Color, Release, Slot, Topology};
use connect_core::ship::{BuildOn, ReleaseSource};
use connect_core::ssh::{SshConfig, SshHost};
use connect_core::{ContainerRuntime, Error, Host, LocalHost, Result, TrafficRouter};
use connect_db::backup::BackupConfig;
use connect_db::{BasicAuth, PatroniCluster, PgTarget, Redis};
use connect_docker::{Docker, HealthProbe, Secrets, SlotOptions};
use connect_haproxy::{Haproxy, RuntimeApi, Socket, StateFile};

use super::{BuildOnConfig, ConnectConfig, SlotConfig, SshConfigFile};

impl ConnectConfig {
    /// The server: one SSH connection, or this machine for `host = "local"`.
    pub async fn host(&self) -> Result<Arc<dyn Host>> {
        let s = &self.server;
        if s.host == "local" {
            return Ok(Arc::new(LocalHost::new()));
        }
        Ok(Arc::new(SshHost::connect(self.ssh_config()?).await?))
    }

    /// Another machine of the config (an `[[app_hosts]]` or `[[swarm.nodes]]` entry), reached with
    /// `[server]`'s SSH settings where the entry is silent; `host = "local"` is this machine. A failure to
    /// connect is told as `section`'s entry `name`, with `hint` when the SSH error has none.
    pub(super) async fn other_host(
        &self,
        entry: OtherHost<'_>,
        section: &str,
        name: &str,
        hint: &str,
    ) -> Result<Arc<dyn Host>> {
        if entry.host == "local" {
            return Ok(Arc::new(LocalHost::new()));
        }
        let mut other = self.clone();
        other.server.host = entry.host.to_string();
        other.server.port = entry.port.or(self.server.port);
        other.server.user = entry.user.cloned().or_else(|| self.server.user.clone());
        let ssh = SshHost::connect(other.ssh_config()?).await.map_err(|e| {
            let hint = e.hint().unwrap_or(hint).to_string();
            Error::new(e.kind(), section, name, e.to_string())
                .with_hint(hint)
                .with_source(e)
        })?;
        Ok(Arc::new(ssh))
    }

    /// `user@host:port` of the server as the connection will reach it (the ssh config file applied), with
    /// its jump hosts; `local` for this machine.
    pub fn server_address(&self) -> Result<String> {
        if self.server.host == "local" {
            return Ok("local".to_string());
        }
        let resolved = self.ssh_config()?.resolved()?;
        let jumps: Vec<String> = resolved.proxy_jump.iter().map(ToString::to_string).collect();
        Ok(if jumps.is_empty() {
            resolved.target()
        } else {
            format!("{} via {}", resolved.target(), jumps.join(","))
        })
    }

    /// The SSH connection's configuration (`[server]` over the ssh config file); refused for `local`.
    pub fn ssh_config(&self) -> Result<SshConfig> {
        let s = &self.server;
        if s.host == "local" {
            return Err(Error::invalid(
                "config.server",
                "local",
                "the server is this machine: no SSH",
            ));
        }
        // Only what the file sets is passed on: the rest is the ssh config's to say.
        let mut ssh =
            SshConfig::new(&s.host, s.user.clone().unwrap_or_default()).connect_timeout(s.connect_timeout);
        if let Some(port) = s.port {
            ssh = ssh.port(port);
        }
        match &s.ssh_config {
            SshConfigFile::Default(true) => {}
            SshConfigFile::Default(false) => ssh = ssh.no_ssh_config(),
            SshConfigFile::Path(path) => ssh = ssh.ssh_config_file(expand_home(path)),
        }
        for hop in s.proxy_jump.iter().flatten() {
            ssh = ssh.jump(hop.clone());
        }
        if let Some(key) = &s.key_file {
            ssh = ssh.key_file(expand_home(key));
        }
        if let Some(passphrase) = &s.passphrase {
            ssh = ssh.passphrase(passphrase.expose());
        }
        if let Some(known_hosts) = &s.known_hosts {
            ssh = ssh.known_hosts(expand_home(known_hosts));
        }
        Ok(ssh)
    }

    /// Connects to the server and builds every backend through it; with a `[release]` source that needs
    /// this machine's Docker Engine, connects to that too (see [`ConnectConfig::backends_shipping`]).
    pub async fn backends(&self) -> Result<Backends> {
        self.backends_shipping(self.release_source().as_ref()).await
    }

    /// [`ConnectConfig::backends`] able to ship from `source`: an image on this machine or a context built
    /// here needs this machine's engine (`DOCKER_HOST`, else its socket) as the server runtime's build
    /// machine.
    pub async fn backends_shipping(&self, source: Option<&ReleaseSource>) -> Result<Backends> {
        let host = self.host().await?;
        let build_machine = self.build_machine(source).await?;
        let runtime: Arc<dyn ContainerRuntime> = if self.is_swarm() {
            self.swarm_runtime(host.clone(), build_machine).await?
        } else {
            let mut docker = Docker::connect_via(host.clone(), &self.docker.socket)
                .await?
                .with_slot_options(self.slot_options()?);
            if let Some(local) = build_machine {
                docker = docker.with_build_machine(local);
            }
            Arc::new(docker)
        };
        Ok(Backends {
            runtime,
            router: self.app_router(host.clone())?,
            database: Arc::new(self.database(host.clone())?),
            cache: Arc::new(self.cache(host.clone())?),
            host,
        })
    }

    /// This machine's engine (`DOCKER_HOST`, else its socket) when `source` is built or stored here.
    pub(super) async fn build_machine(&self, source: Option<&ReleaseSource>) -> Result<Option<Docker>> {
        let needs_build_machine = match source {
            Some(ReleaseSource::BuildContext { build_on, .. }) => *build_on == BuildOn::Local,
            Some(_) => true,
            None => false,
        };
        if !needs_build_machine {
            return Ok(None);
        }
        let local = Docker::connect().await.map_err(|e| {
            let fix = "start Docker on this machine (or set DOCKER_HOST), or build on the server: \
                       build_on = \"server\" in [release]";
            e.with_hint(fix)
        })?;
        Ok(Some(local))
    }

    /// A [`Deployer`] over [`ConnectConfig::backends`] and [`ConnectConfig::deploy_config`].
    pub async fn deployer(&self) -> Result<Deployer> {
        Deployer::new(self.backends().await?, self.deploy_config())
    }

    /// A [`Deployer`] that can ship from `source` (see [`ConnectConfig::backends_shipping`]).
    pub async fn deployer_shipping(&self, source: Option<&ReleaseSource>) -> Result<Deployer> {
        Deployer::new(self.backends_shipping(source).await?, self.deploy_config())
    }

    /// Where `[release]` says releases come from, if anywhere.
    pub fn release_source(&self) -> Option<ReleaseSource> {
        let r = &self.release;
        let build_on = match r.build_on {
            BuildOnConfig::Local => BuildOn::Local,
            BuildOnConfig::Server => BuildOn::Server,
        };
        match (&r.context, &r.image) {
            (Some(dir), _) => Some(ReleaseSource::build_context(dir.clone(), build_on)),
            (None, Some(image)) => Some(ReleaseSource::local_image(image.clone())),
            (None, None) => None,
        }
    }

    /// The router the engine drives: HAProxy's backend, with `[swarm]` each color's server per node grouped
    /// as the color's one server (see [`ConnectConfig::swarm_groups`]).
    fn app_router(&self, host: Arc<dyn Host>) -> Result<Arc<dyn TrafficRouter>> {
        let haproxy: Arc<dyn TrafficRouter> = Arc::new(self.router(host)?);
        if !self.is_swarm() {
            return Ok(haproxy);
        }
        let groups = self.swarm_groups(&self.deploy_config().topology);
        Ok(Arc::new(GroupedRouter::new(haproxy, groups)?))
    }

    pub(super) fn router(&self, host: Arc<dyn Host>) -> Result<Haproxy> {
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

    /// The database cluster through `host` (Patroni's REST API and PostgreSQL as the server sees them).
    pub fn database(&self, host: Arc<dyn Host>) -> Result<PatroniCluster> {
        let d = &self.database;
        let mut login = PgTarget::new(&d.user, &d.dbname)
            .at(&d.host, d.port)
            .ssl_mode(d.sslmode);
        if let Some(password) = &d.password {
            login = login.password(password.expose());
        }
        if let Some(ca) = &d.ssl_root_cert {
            login = login.ssl_root_cert(expand_home(ca));
        }
        if let Some(ca) = &d.server_ssl_root_cert {
            login = login.host_ssl_root_cert(ca);
        }
        let mut cluster = PatroniCluster::new(&d.patroni, login)?.with_check_query(&d.check_query);
        if let Some(ca) = &d.patroni_ca_file {
            cluster = cluster.with_patroni_ca_file(expand_home(ca))?;
        }
        // `check` made sure the two come together.
        if let (Some(user), Some(password)) = (&d.patroni_username, &d.patroni_password) {
            cluster = cluster.with_patroni_auth(BasicAuth::new(user, password.expose()))?;
        }
        let mut cluster = cluster
            .through(host.clone())
            .with_backups(host.clone(), self.backup_config());
        if let Some(pitr) = self.pitr_config() {
            cluster = cluster.with_continuous_backups(host, pitr);
        }
        Ok(cluster)
    }

    /// `[database.pitr]` as the SDK takes it, when the file has one.
    pub fn pitr_config(&self) -> Option<connect_db::pitr::PitrConfig> {
        let d = &self.database;
        d.pitr.as_ref().map(|p| p.to_config(d.pg_bin_dir.as_deref()))
    }

    /// Redis, reached through the server (`[redis]`).
    pub fn cache(&self, host: Arc<dyn Host>) -> Result<Redis> {
        let r = &self.redis;
        let password = r.password.as_ref().map(|p| p.expose());
        Ok(Redis::new(&r.host, r.port, password)?.through(host))
    }

    pub(super) fn slot_options(&self) -> Result<SlotOptions> {
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
                command: a.command.clone(),
            },
            topology: Topology {
                blue: slot(Color::Blue, &self.slots.blue),
                green: slot(Color::Green, &self.slots.green),
            },
            policy: {
                let mut policy = self.policy.to_policy();
                policy.backup_sets = self.backup_all.as_ref().map(|b| b.policy());
                policy
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
            webhooks: self.webhooks.iter().map(|w| w.to_webhook()).collect(),
        }
    }

    /// Where backups go and the programs that make and restore them.
    pub fn backup_config(&self) -> BackupConfig {
        let d = &self.database;
        let mut config = BackupConfig::new(&d.backup_dir);
        if let Some(dir) = &d.pg_bin_dir {
            config = config.bin_dir(dir);
        }
        config.keep = self.policy.backup.keep;
        config.deadline = self.policy.backup.deadline;
        config
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

/// The SSH settings an entry for another machine may give; the rest are `[server]`'s.
#[derive(Debug, Clone, Copy)]
pub(super) struct OtherHost<'a> {
    pub(super) host: &'a str,
    pub(super) port: Option<u16>,
    pub(super) user: Option<&'a String>,
}
