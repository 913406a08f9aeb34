//! `[[app_hosts]]` and `[fleet]`: several app servers behind the one HAProxy (issue 18.1). `[server]` stays the
//! machine with HAProxy (and the database and Redis as it sees them); each app host runs its own blue and
//! green slots with `[slots]`' containers and ports, and its servers in the backend are `<name>_blue` and
//! `<name>_green` unless it names them.

use std::sync::Arc;

use std::collections::BTreeMap;

use connect_core::engine::DeployConfig;
use connect_core::engine::fleet::{AppHost, Fleet, FleetPolicy, Role, Shared};
use connect_core::model::AppSpec;
use connect_core::ship::ReleaseSource;
use connect_core::{Error, ErrorKind, Result};
use connect_docker::Docker;
use serde::Deserialize;

use super::ConnectConfig;
use super::compose::OtherHost;
use super::secret::Secret;

/// One `[[app_hosts]]` entry: an app server reached over SSH with `[server]`'s key, known_hosts, jump hosts
/// and ssh config (what this entry sets wins).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppHostConfig {
    /// The host's name in the fleet (`web1`): letters, digits, `_.-`.
    pub name: String,
    /// Host name, address or ssh config alias; `local` for this machine.
    pub host: String,
    /// sshd's port; default: `[server]`'s rule (the ssh config's `Port`, else 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// The account to log in as; default: `[server]`'s.
    #[serde(default)]
    pub user: Option<String>,
    /// Its blue server in the HAProxy backend; default `<name>_blue`.
    #[serde(default)]
    pub blue_server: Option<String>,
    /// Its green server; default `<name>_green`.
    #[serde(default)]
    pub green_server: Option<String>,
    /// Its blue container's port, when not `[slots.blue]`'s (hosts sharing one Docker engine or network).
    #[serde(default)]
    pub blue_port: Option<u16>,
    /// Its green container's port, when not `[slots.green]`'s.
    #[serde(default)]
    pub green_port: Option<u16>,
    /// Its blue container's name, when not `[slots.blue]`'s (hosts sharing one Docker engine).
    #[serde(default)]
    pub blue_container: Option<String>,
    /// Its green container's name, when not `[slots.green]`'s.
    #[serde(default)]
    pub green_container: Option<String>,
    /// Where its journal and lock live, when not the top-level `state_dir` (hosts sharing a filesystem).
    #[serde(default)]
    pub state_dir: Option<String>,
    /// `web` (default): behind HAProxy; `worker`: runs jobs, no HAProxy server, with `[roles.worker]`'s
    /// command.
    #[serde(default)]
    pub role: Role,
}

/// `[roles]`: how hosts of a role other than web run the app.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// `[roles.worker]`.
    #[serde(default)]
    pub worker: WorkerRoleConfig,
}

/// `[roles.worker]`: the app's image run for jobs on `role = "worker"` hosts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerRoleConfig {
    /// The worker's argv (`["bin/jobs"]`); default the image's command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Added to `[app] env` (and winning over it); values may be `${ENV_VAR}`.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// An HTTP health endpoint the worker answers on the app's port, if it has one. Default none: the
    /// image's health check, if any, else running, is its health.
    #[serde(default)]
    pub health_path: Option<String>,
}

/// `[fleet]`: what a deploy over the app hosts requires.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Unset: every host must be ready, or nothing switches. `n`: the deploy switches with at least `n`
    /// ready hosts and leaves the others out of rotation (their journals say so).
    #[serde(default)]
    pub min_healthy_hosts: Option<usize>,
}

impl ConnectConfig {
    /// Whether the app runs on several hosts (`[[app_hosts]]` listed).
    pub fn is_fleet(&self) -> bool {
        !self.app_hosts.is_empty()
    }

    /// The checks of `[[app_hosts]]` and `[fleet]` the engine would only make at connect time.
    pub(super) fn check_fleet(
        &self,
    ) -> std::result::Result<(), (&'static str, &'static str, String, &'static str)> {
        let mut names = std::collections::HashSet::new();
        for h in &self.app_hosts {
            if !names.insert(h.name.as_str()) {
                return Err((
                    "app_hosts",
                    "name",
                    format!("two app hosts are named {:?}", h.name),
                    "give each app host its own name",
                ));
            }
        }
        let web = self.app_hosts.iter().filter(|h| h.role == Role::Web).count();
        if web == 0 && !self.app_hosts.is_empty() {
            return Err((
                "app_hosts",
                "role",
                "every app host is a worker: nothing would take the requests".into(),
                "give at least one app host role = \"web\" (the default)",
            ));
        }
        if let Some(h) = self
            .app_hosts
            .iter()
            .find(|h| h.role == Role::Worker && (h.blue_server.is_some() || h.green_server.is_some()))
        {
            return Err((
                "app_hosts",
                "blue_server",
                format!("{} is a worker, which has no HAProxy server", h.name),
                "remove blue_server and green_server from the worker's entry",
            ));
        }
        if let Some(n) = self.fleet.min_healthy_hosts
            && (n == 0 || n > web)
        {
            return Err((
                "fleet",
                "min_healthy_hosts",
                format!("{n} is not between 1 and the {web} web hosts listed"),
                "leave it out to require every host (workers are always required)",
            ));
        }
        Ok(())
    }

    /// The app hosts as the engine takes them: one SSH connection each (or this machine), its Docker
    /// Engine through it, and its slots.
    pub async fn app_hosts(&self) -> Result<Vec<AppHost>> {
        self.app_hosts_shipping(None).await
    }

    /// [`ConnectConfig::app_hosts`] able to ship from `source`: every host's runtime gets this machine's
    /// engine as its build machine when the source needs one (see
    /// [`ConnectConfig::backends_shipping`]).
    pub async fn app_hosts_shipping(&self, source: Option<&ReleaseSource>) -> Result<Vec<AppHost>> {
        let DeployConfig {
            topology: base,
            app: base_app,
            ..
        } = self.deploy_config();
        let build_machine = self.build_machine(source).await?;
        // One after the other: connecting is a handshake each, the deploy itself runs the hosts in parallel.
        let mut hosts = Vec::with_capacity(self.app_hosts.len());
        for h in &self.app_hosts {
            let entry = OtherHost {
                host: &h.host,
                port: h.port,
                user: h.user.as_ref(),
            };
            let host = self
                .other_host(
                    entry,
                    "config.app_hosts",
                    &h.name,
                    "check the app host's SSH access",
                )
                .await?;
            let mut docker = Docker::connect_via(host.clone(), &self.docker.socket)
                .await?
                .with_slot_options(self.slot_options()?);
            if let Some(local) = &build_machine {
                docker = docker.with_build_machine(local.clone());
            }
            let mut topology = base.clone();
            topology.blue.server = h.blue_server.clone().unwrap_or(format!("{}_blue", h.name));
            topology.green.server = h.green_server.clone().unwrap_or(format!("{}_green", h.name));
            topology.blue.host_port = h.blue_port.unwrap_or(topology.blue.host_port);
            topology.green.host_port = h.green_port.unwrap_or(topology.green.host_port);
            if let Some(name) = &h.blue_container {
                topology.blue.container = name.clone();
            }
            if let Some(name) = &h.green_container {
                topology.green.container = name.clone();
            }
            hosts.push(AppHost {
                name: h.name.clone(),
                host,
                runtime: Arc::new(docker),
                topology,
                state_dir: h.state_dir.clone(),
                role: h.role,
                app: (h.role == Role::Worker).then(|| self.worker_app(&base_app)),
            });
        }
        Ok(hosts)
    }

    /// The app as `role = "worker"` hosts run it: `[app]` with `[roles.worker]`'s command, environment and
    /// health endpoint.
    pub(super) fn worker_app(&self, app: &AppSpec) -> AppSpec {
        let role = &self.roles.worker;
        let mut worker = app.as_worker(role.command.clone());
        worker
            .env
            .extend(role.env.iter().map(|(k, v)| (k.clone(), v.expose().to_string())));
        if let Some(path) = &role.health_path {
            worker.health_path = path.clone();
        }
        worker
    }

    /// The fleet: `[server]` for HAProxy, the database and Redis, and each `[[app_hosts]]` entry connected.
    pub async fn fleet(&self) -> Result<Fleet> {
        self.fleet_shipping(None).await
    }

    /// [`ConnectConfig::fleet`] able to ship from `source` to every app host.
    pub async fn fleet_shipping(&self, source: Option<&ReleaseSource>) -> Result<Fleet> {
        if !self.is_fleet() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "config.fleet",
                "app_hosts",
                "no [[app_hosts]] are listed",
            )
            .with_hint("list the app servers under [[app_hosts]], or deploy [server] alone"));
        }
        let server = self.host().await?;
        let shared = Shared {
            router: Arc::new(self.router(server.clone())?),
            database: Arc::new(self.database(server.clone())?),
            cache: Arc::new(self.cache(server)?),
        };
        let policy = FleetPolicy {
            min_healthy_hosts: self.fleet.min_healthy_hosts,
        };
        Fleet::new(
            self.app_hosts_shipping(source).await?,
            shared,
            self.deploy_config(),
            policy,
        )
    }
}
