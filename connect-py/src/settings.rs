//! What a deploy is, as Python states it (`_DeployConfig`): the app, its two slots' ports, the policy and the
//! safety net, from `Deployer`'s keyword arguments. One place parses them, so a `Deployer` (one server) and a
//! `Fleet` (several) read the same arguments the same way; the engine validates the whole when either is made.

use connect_core::engine::{self, DeployConfig as CoreDeployConfig};
use connect_core::model::{AppSpec, BackupPolicy, CanaryPolicy, DeployPolicy, OldColorPolicy, WatchPolicy};
use pyo3::prelude::*;

use crate::convert::{seconds, whole};
use crate::errors::invalid;

/// A deploy's configuration; `connect_ops.Deployer` and `connect_ops.Fleet` build it from their arguments.
#[pyclass(frozen, module = "connect_ops", name = "_DeployConfig")]
#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub(crate) inner: CoreDeployConfig,
}

fn old_color_policy(old_color: &str, retire_after: Option<f64>) -> PyResult<OldColorPolicy> {
    match (old_color, retire_after) {
        ("warm_standby", None) => Ok(OldColorPolicy::WarmStandby),
        ("balanced", None) => Ok(OldColorPolicy::Balanced),
        ("retire_after", Some(s)) => Ok(OldColorPolicy::RetireAfter {
            window: seconds("retire_after", s)?,
        }),
        ("retire_after", None) => Err(invalid(
            "deployer.new",
            "retire_after",
            "old_color=\"retire_after\" needs the window",
            "pass retire_after=<seconds>",
        )),
        ("warm_standby" | "balanced", Some(_)) => Err(invalid(
            "deployer.new",
            "retire_after",
            format!("retire_after only applies to old_color=\"retire_after\", not {old_color:?}"),
            "drop retire_after, or set old_color=\"retire_after\"",
        )),
        (other, _) => Err(invalid(
            "deployer.new",
            other,
            "unknown old_color policy; expected \"warm_standby\", \"retire_after\" or \"balanced\"",
            "warm_standby keeps the old color up for instant rollback",
        )),
    }
}

/// The deploy's safety net from `connect_ops._policy.safety_net` (the engine's serde shapes): the watch, the
/// canary, backups, hooks, webhooks, pruning and the destructive-migration switch. The engine validates them
/// with the rest of the policy when the deployer is made.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyNet {
    #[serde(default)]
    watch: Option<WatchPolicy>,
    #[serde(default)]
    canary: Option<CanaryPolicy>,
    #[serde(default)]
    backup: Option<BackupPolicy>,
    #[serde(default)]
    hooks: Vec<engine::Hook>,
    #[serde(default)]
    webhooks: Vec<engine::Webhook>,
    #[serde(default)]
    keep_releases: Option<usize>,
    #[serde(default)]
    allow_destructive_migrations: bool,
}

impl SafetyNet {
    fn parse(json: &str) -> PyResult<SafetyNet> {
        serde_json::from_str(json).map_err(|e| {
            invalid(
                "deployer.new",
                "safety_net",
                format!("not the engine's shape: {e}"),
                "pass WatchPolicy, CanaryPolicy, BackupPolicy, Hook and Webhook objects",
            )
        })
    }

    fn apply(self, mut config: CoreDeployConfig) -> CoreDeployConfig {
        let policy = &mut config.policy;
        if let Some(watch) = self.watch {
            policy.watch = watch;
        }
        if let Some(backup) = self.backup {
            policy.backup = backup;
        }
        policy.canary = self.canary;
        policy.keep_releases = self.keep_releases;
        policy.allow_destructive_migrations = self.allow_destructive_migrations;
        config.hooks = self.hooks;
        config.webhooks = self.webhooks;
        config
    }
}

#[pymethods]
impl DeployConfig {
    /// The runbook's slots on `ports`, the app and the policy as `Deployer`'s keyword arguments give them;
    /// `safety_net` is `connect_ops._policy.safety_net`'s JSON.
    #[new]
    #[pyo3(signature = (
        *, holder=None, state_dir="/opt/connect/state", app="connect", env=None, migration=None,
        container_port=3000, health_path="/api/health", smoke_paths=None, stop_grace=10.0, health_deadline=60.0,
        drain_deadline=30.0, router_deadline=10.0, disk_warn_percent=80, disk_fail_percent=95,
        disk_paths=None, max_error_lines=10, old_color="warm_standby", retire_after=None, lock_lease=30.0,
        min_free_inodes_percent=5, max_clock_skew=2.0, migration_deadline=1800.0, ports=(3000, 3001),
        safety_net=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        holder: Option<String>,
        state_dir: &str,
        app: &str,
        env: Option<std::collections::BTreeMap<String, String>>,
        migration: Option<Vec<String>>,
        container_port: i64,
        health_path: &str,
        smoke_paths: Option<Vec<String>>,
        stop_grace: f64,
        health_deadline: f64,
        drain_deadline: f64,
        router_deadline: f64,
        disk_warn_percent: i64,
        disk_fail_percent: i64,
        disk_paths: Option<Vec<String>>,
        max_error_lines: i64,
        old_color: &str,
        retire_after: Option<f64>,
        lock_lease: f64,
        min_free_inodes_percent: i64,
        max_clock_skew: f64,
        migration_deadline: f64,
        ports: (i64, i64),
        safety_net: Option<&str>,
    ) -> PyResult<DeployConfig> {
        if migration.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                "deployer.new",
                "migration",
                "an empty migration command",
                "pass the argv, e.g. [\"npx\", \"prisma\", \"migrate\", \"deploy\"], or None",
            ));
        }
        let runbook = CoreDeployConfig::runbook();
        let mut topology = runbook.topology;
        topology.blue.host_port = whole("ports[0]", ports.0, "a port from 1 to 65535")?;
        topology.green.host_port = whole("ports[1]", ports.1, "a port from 1 to 65535")?;
        if topology.blue.host_port == topology.green.host_port || topology.blue.host_port == 0 {
            return Err(invalid(
                "deployer.new",
                "ports",
                format!("blue and green need two distinct ports, not {ports:?}"),
                "e.g. ports=(3000, 3001): blue's host port, then green's",
            ));
        }
        // `DeployPolicy` is `#[non_exhaustive]` (it grows): its defaults, then each field Python states.
        let mut policy = DeployPolicy::default();
        policy.health_deadline = seconds("health_deadline", health_deadline)?;
        policy.migration_deadline = seconds("migration_deadline", migration_deadline)?;
        policy.drain_deadline = seconds("drain_deadline", drain_deadline)?;
        policy.router_deadline = seconds("router_deadline", router_deadline)?;
        policy.disk_warn_percent = whole(
            "disk_warn_percent",
            disk_warn_percent,
            "a percentage from 0 to 100",
        )?;
        policy.disk_fail_percent = whole(
            "disk_fail_percent",
            disk_fail_percent,
            "a percentage from 0 to 100",
        )?;
        if let Some(paths) = disk_paths {
            policy.disk_paths = paths;
        }
        policy.max_error_lines = whole("max_error_lines", max_error_lines, "a count of 0 or more")?;
        policy.old_color = old_color_policy(old_color, retire_after)?;
        policy.lock_lease = seconds("lock_lease", lock_lease)?;
        policy.backup = runbook.policy.backup.clone();
        policy.allow_destructive_migrations = false;
        policy.min_free_inodes_percent = whole(
            "min_free_inodes_percent",
            min_free_inodes_percent,
            "a percentage from 0 to 100",
        )?;
        policy.max_clock_skew = seconds("max_clock_skew", max_clock_skew)?;
        let config = CoreDeployConfig {
            app: AppSpec {
                name: app.to_string(),
                env: env.unwrap_or_default(),
                container_port: whole("container_port", container_port, "a port from 1 to 65535")?,
                health_path: health_path.to_string(),
                stop_grace: seconds("stop_grace", stop_grace)?,
                migration,
                migrations_dir: None,
                smoke_paths: smoke_paths.unwrap_or_default(),
                command: None,
            },
            topology,
            policy,
            state_dir: state_dir.to_string(),
            holder: holder.unwrap_or_else(engine::default_holder),
            hooks: Vec::new(),
            webhooks: Vec::new(),
        };
        let config = match safety_net {
            Some(json) => SafetyNet::parse(json)?.apply(config),
            None => config,
        };
        Ok(DeployConfig { inner: config })
    }
}
