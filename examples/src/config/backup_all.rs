//! `[backup_all]`: the scheduled backup sets of what the WAL archive does not hold (Redis, the uploads, the
//! journal, the rendered configs), their retention, their off-host copy, and the age preflight allows.

use std::path::PathBuf;
use std::time::Duration;

use connect_core::model::BackupSetPolicy;
use serde::Deserialize;

use super::duration;

/// `[backup_all]`: what `connect-ops backup-all` takes; absent, it refuses and preflight does not check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupAllSection {
    /// Where the sets go on the server (the runbook's secondary HDD, `/backups`).
    #[serde(default = "dir")]
    pub dir: String,
    /// Sets kept on the server (older ones removed after a good one).
    #[serde(default = "keep")]
    pub keep: usize,
    /// Preflight fails when the newest set is older than this (a daily timer, with slack).
    #[serde(default = "max_age", with = "duration")]
    pub max_age: Duration,
    /// Redis's `dump.rdb` (saved first, checked with `redis-check-rdb`).
    #[serde(default = "yes")]
    pub redis: bool,
    /// The app's uploads directory on the server, copied with `rsync` (only changed files).
    #[serde(default)]
    pub uploads_dir: Option<String>,
    /// Config files on the server (haproxy.cfg, Patroni's, pgBackRest's), kept under their own paths.
    #[serde(default)]
    pub configs: Vec<String>,
    /// A directory on the machine running `backup-all` that receives a copy of each set (only the files
    /// that changed since its previous copy are sent); unset: no off-host copy.
    #[serde(default)]
    pub copy_to: Option<PathBuf>,
    /// Copies kept there.
    #[serde(default = "copy_keep")]
    pub copy_keep: usize,
}

impl BackupAllSection {
    /// What the engine's preflight checks.
    pub fn policy(&self) -> BackupSetPolicy {
        BackupSetPolicy::new(self.dir.clone(), self.max_age)
    }

    /// What TOML cannot say: absolute paths, something kept. `(key, why, fix)` when wrong.
    pub(super) fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        let absolute = |p: &str| p.starts_with('/') && !p.split('/').any(|c| c == "..");
        if !absolute(&self.dir) {
            return Some((
                "dir",
                format!("{:?} is not an absolute path", self.dir),
                "e.g. dir = \"/backups/connect\"",
            ));
        }
        if let Some(u) = &self.uploads_dir
            && !absolute(u)
        {
            return Some((
                "uploads_dir",
                format!("{u:?} is not an absolute path"),
                "e.g. uploads_dir = \"/opt/connect/uploads\"",
            ));
        }
        if let Some(c) = self.configs.iter().find(|c| !absolute(c)) {
            return Some((
                "configs",
                format!("{c:?} is not an absolute path"),
                "list absolute paths on the server",
            ));
        }
        if self.keep == 0 || self.copy_keep == 0 {
            let key = if self.keep == 0 { "keep" } else { "copy_keep" };
            return Some((
                key,
                "keeping no set would remove the one just taken".into(),
                "keep at least 1",
            ));
        }
        if let Some(dir) = &self.copy_to
            && !dir.is_absolute()
        {
            return Some((
                "copy_to",
                format!("{} is not an absolute path", dir.display()),
                "e.g. copy_to = \"/var/backups/connect\"",
            ));
        }
        None
    }
}

fn dir() -> String {
    "/backups/connect".into()
}
fn keep() -> usize {
    7
}
fn copy_keep() -> usize {
    14
}
fn max_age() -> Duration {
    Duration::from_secs(26 * 3600)
}
fn yes() -> bool {
    true
}
