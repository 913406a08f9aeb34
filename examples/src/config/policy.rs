//! `[policy]` (deadlines, thresholds, what happens to the old color), its `[policy.backup]`,
//! `[policy.watch]` and `[policy.canary]` tables, and `[[webhooks]]`: how carefully a deploy goes, turned
//! into the engine's [`DeployPolicy`].

use std::time::Duration;

use connect_core::engine::Webhook;
use connect_core::model::{CanaryPolicy, DeployPolicy, OldColorPolicy};
use serde::Deserialize;

use super::{Secret, duration, from_empty, optional_duration};

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// How long the new color gets to become healthy.
    #[serde(default = "defaults::health_deadline", with = "duration")]
    pub health_deadline: Duration,
    /// How long the migration may run.
    #[serde(default = "defaults::migration_deadline", with = "duration")]
    pub migration_deadline: Duration,
    /// How long the old color's requests get to finish.
    #[serde(default = "defaults::drain_deadline", with = "duration")]
    pub drain_deadline: Duration,
    /// How long HAProxy gets to see a server live.
    #[serde(default = "defaults::router_deadline", with = "duration")]
    pub router_deadline: Duration,
    /// How long the deploy lock outlives a process that died holding it.
    #[serde(default = "defaults::lock_lease", with = "duration")]
    pub lock_lease: Duration,
    /// Disk use (%) above which preflight warns.
    #[serde(default = "defaults::disk_warn")]
    pub disk_warn_percent: u8,
    /// Disk use (%) above which preflight refuses.
    #[serde(default = "defaults::disk_fail")]
    pub disk_fail_percent: u8,
    /// The disks preflight checks.
    #[serde(default = "defaults::disk_paths")]
    pub disk_paths: Vec<String>,
    /// Error lines in the new color's log above which verify fails.
    #[serde(default = "defaults::max_error_lines")]
    pub max_error_lines: usize,
    /// What happens to the old color after a deploy.
    #[serde(default)]
    pub old_color: OldColor,
    /// With `old_color = "retire_after"`: how long the standby is kept.
    #[serde(default, with = "optional_duration")]
    pub retire_after: Option<Duration>,
    /// Let a migration drop, rename or retype what the old color still uses (see the template).
    #[serde(default)]
    pub allow_destructive_migrations: bool,
    /// After a deploy succeeded, release images beyond the newest this many are removed (never the live or
    /// standby one). Unset, nothing is removed.
    #[serde(default)]
    pub keep_releases: Option<usize>,
    /// `[policy.backup]`: when the deploy backs up the database, and how many backups it keeps.
    #[serde(default)]
    pub backup: BackupPolicyConfig,
    /// `[policy.watch]`: the new color watched after the switch, rolled back on a breach.
    #[serde(default)]
    pub watch: WatchConfig,
    /// `[policy.canary]`: traffic moved in steps of weight, each held under the watch. Absent, the switch
    /// moves all traffic at once.
    #[serde(default)]
    pub canary: Option<CanaryConfig>,
}

/// `[policy.backup]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicyConfig {
    /// Back up before a migration (the runbook's "backup verified").
    #[serde(default = "defaults::backup_before_migration")]
    pub before_migration: bool,
    /// Back up on every deploy, a migration or not.
    #[serde(default)]
    pub every_deploy: bool,
    /// How many backups are kept.
    #[serde(default = "defaults::backups_kept")]
    pub keep: usize,
    /// How long one backup may take.
    #[serde(default = "defaults::backup_deadline", with = "duration")]
    pub deadline: Duration,
}

/// `[policy.watch]`: the thresholds of [`WatchPolicy`](connect_core::model::WatchPolicy), each defaulting to the engine's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// How long the new color is watched after the switch. Unset, there is no watch (as in the runbook).
    #[serde(default, with = "optional_duration")]
    pub window: Option<Duration>,
    /// Time between two samples.
    #[serde(default = "defaults::watch_interval", with = "duration")]
    pub interval: Duration,
    /// A breach when the new color's 5xx share exceeds the old color's by more than this many points.
    #[serde(default = "defaults::max_5xx_increase_percent")]
    pub max_5xx_increase_percent: f64,
    /// The 5xx share is judged from this many answers on.
    #[serde(default = "defaults::min_responses")]
    pub min_responses: u64,
    /// A breach when the average response time exceeds the old color's times this…
    #[serde(default = "defaults::max_response_time_factor")]
    pub max_response_time_factor: f64,
    /// …and is above this floor.
    #[serde(default = "defaults::response_time_floor", with = "duration")]
    pub response_time_floor: Duration,
    /// A breach when the container restarts more often than this during the watch.
    #[serde(default = "defaults::max_restarts")]
    pub max_restarts: u32,
    /// A breach when it logs more error lines than the old color did in as long a time, plus this.
    #[serde(default = "defaults::max_error_lines_increase")]
    pub max_error_lines_increase: usize,
}

/// `[policy.canary]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The new color's share of the traffic at each step, in percent, rising, each below 100.
    #[serde(default = "defaults::canary_steps")]
    pub steps: Vec<u8>,
    /// How long each step is held and watched.
    #[serde(default = "defaults::canary_hold", with = "duration")]
    pub hold: Duration,
}

/// One `[[webhooks]]` entry: the record of every operation is POSTed there as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL, usually from the environment (`"${DEPLOY_WEBHOOK}"`): chat services put a secret in it.
    pub url: Secret,
    /// How long one delivery may take.
    #[serde(default = "defaults::webhook_timeout", with = "duration")]
    pub timeout: Duration,
}

/// `old_color`: what happens to the old color once the new one is live and verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OldColor {
    /// Kept running, drained, so instant rollback is one router call.
    #[default]
    WarmStandby,
    /// The runbook's step 6: both colors serve the new release.
    Balanced,
    /// Kept as a standby for `retire_after`, then retired on request.
    RetireAfter,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        from_empty()
    }
}

impl Default for BackupPolicyConfig {
    fn default() -> Self {
        from_empty()
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        from_empty()
    }
}

impl PolicyConfig {
    /// The engine's policy. `check` refused a `retire_after` policy without its window when the file was
    /// read; the engine's own validation runs on the result there too.
    pub fn to_policy(&self) -> DeployPolicy {
        // The engine's policies are `#[non_exhaustive]` (they grow): start from their defaults and set each
        // field this file states.
        let w = &self.watch;
        let mut p = DeployPolicy::default();
        p.health_deadline = self.health_deadline;
        p.migration_deadline = self.migration_deadline;
        p.drain_deadline = self.drain_deadline;
        p.router_deadline = self.router_deadline;
        p.lock_lease = self.lock_lease;
        p.disk_warn_percent = self.disk_warn_percent;
        p.disk_fail_percent = self.disk_fail_percent;
        p.disk_paths = self.disk_paths.clone();
        p.max_error_lines = self.max_error_lines;
        p.old_color = match (self.old_color, self.retire_after) {
            (OldColor::RetireAfter, Some(window)) => OldColorPolicy::RetireAfter { window },
            (OldColor::Balanced, _) => OldColorPolicy::Balanced,
            _ => OldColorPolicy::WarmStandby,
        };
        p.allow_destructive_migrations = self.allow_destructive_migrations;
        p.keep_releases = self.keep_releases;
        p.backup.before_migration = self.backup.before_migration;
        p.backup.every_deploy = self.backup.every_deploy;
        p.backup.keep = self.backup.keep;
        p.backup.deadline = self.backup.deadline;
        p.watch.window = w.window.unwrap_or(Duration::ZERO);
        p.watch.interval = w.interval;
        p.watch.max_5xx_increase_percent = w.max_5xx_increase_percent;
        p.watch.min_responses = w.min_responses;
        p.watch.max_response_time_factor = w.max_response_time_factor;
        p.watch.response_time_floor = w.response_time_floor;
        p.watch.max_restarts = w.max_restarts;
        p.watch.max_error_lines_increase = w.max_error_lines_increase;
        p.canary = self.canary.as_ref().map(|c| {
            let mut canary = CanaryPolicy::default();
            canary.steps = c.steps.clone();
            canary.hold = c.hold;
            canary
        });
        p
    }
}

impl WebhookConfig {
    /// The engine's webhook.
    pub fn to_webhook(&self) -> Webhook {
        Webhook::new(self.url.expose()).timeout(self.timeout)
    }
}

/// The engine's values, one function each (serde's `default = "…"` takes a path).
mod defaults {
    use std::time::Duration;

    use connect_core::engine::Webhook;
    use connect_core::model::{CanaryPolicy, DeployPolicy, WatchPolicy};

    pub(super) fn health_deadline() -> Duration {
        DeployPolicy::default().health_deadline
    }
    pub(super) fn migration_deadline() -> Duration {
        DeployPolicy::default().migration_deadline
    }
    pub(super) fn drain_deadline() -> Duration {
        DeployPolicy::default().drain_deadline
    }
    pub(super) fn router_deadline() -> Duration {
        DeployPolicy::default().router_deadline
    }
    pub(super) fn lock_lease() -> Duration {
        DeployPolicy::default().lock_lease
    }
    pub(super) fn disk_warn() -> u8 {
        DeployPolicy::default().disk_warn_percent
    }
    pub(super) fn disk_fail() -> u8 {
        DeployPolicy::default().disk_fail_percent
    }
    pub(super) fn disk_paths() -> Vec<String> {
        DeployPolicy::default().disk_paths
    }
    pub(super) fn max_error_lines() -> usize {
        DeployPolicy::default().max_error_lines
    }
    pub(super) fn backup_before_migration() -> bool {
        DeployPolicy::default().backup.before_migration
    }
    pub(super) fn backups_kept() -> usize {
        DeployPolicy::default().backup.keep
    }
    pub(super) fn backup_deadline() -> Duration {
        DeployPolicy::default().backup.deadline
    }
    pub(super) fn watch_interval() -> Duration {
        WatchPolicy::default().interval
    }
    pub(super) fn max_5xx_increase_percent() -> f64 {
        WatchPolicy::default().max_5xx_increase_percent
    }
    pub(super) fn min_responses() -> u64 {
        WatchPolicy::default().min_responses
    }
    pub(super) fn max_response_time_factor() -> f64 {
        WatchPolicy::default().max_response_time_factor
    }
    pub(super) fn response_time_floor() -> Duration {
        WatchPolicy::default().response_time_floor
    }
    pub(super) fn max_restarts() -> u32 {
        WatchPolicy::default().max_restarts
    }
    pub(super) fn max_error_lines_increase() -> usize {
        WatchPolicy::default().max_error_lines_increase
    }
    pub(super) fn canary_steps() -> Vec<u8> {
        CanaryPolicy::default().steps
    }
    pub(super) fn canary_hold() -> Duration {
        CanaryPolicy::default().hold
    }
    pub(super) fn webhook_timeout() -> Duration {
        Webhook::new("").timeout
    }
}
