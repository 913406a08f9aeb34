//! Continuous backups and point-in-time recovery with pgBackRest.
//!
//! PostgreSQL archives every WAL segment into a pgBackRest repository on a second directory (the runbook's
//! secondary disk) through `archive_command`, set in Patroni's dynamic configuration (`PATCH /config`), so
//! every member has it and it follows a failover; `archive_timeout` bounds how much a lost server loses.
//! Base backups (full, differential, incremental) go to the same repository, which keeps the newest
//! `retention_full` full backups and the WAL they need. [`recover()`] restores to the latest,
//! to a time, or to a deploy's restore point.
//!
//! Every program runs on the server through a [`Host`] (local or SSH), as the database's owner (`run_as`,
//! e.g. `runuser -u postgres --` when the host logs in as root): the repository, the data directories and
//! pgBackRest's lock and log files all belong to that user.

mod by_hand;
mod config;
mod info;
mod recover;
mod target;
mod verify;

use std::time::Duration;

use connect_core::host::Host;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::patroni::Patroni;

pub use config::{PitrConfig, PitrNode};
pub use info::{BackrestBackup, BackrestInfo};
pub use recover::{RecoveryReport, recover};
pub use target::RecoveryTarget;
pub use verify::{TableChecksum, table_checksums};

/// What [`configure`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigureReport {
    /// The configuration file written.
    pub config_path: String,
    /// The `archive_command` set through Patroni.
    pub archive_command: String,
    /// `pgbackrest check` passed: a segment was switched, archived and found in the repository.
    pub checked: bool,
}

/// Sets up continuous backups: the repository and pgBackRest's directories (owned by the database's owner),
/// its configuration, `archive_mode`/`archive_command`/`archive_timeout` in Patroni's dynamic configuration
/// (so every member, and the next leader after a failover, archives the same way), waits until the leader
/// runs with it, then `stanza-create` (idempotent) and `check`.
pub async fn configure(
    host: &dyn Host,
    patroni: &Patroni,
    leader: &crate::Postgres,
    config: &PitrConfig,
) -> Result<ConfigureReport> {
    let op = "pitr.configure";
    write_config(host, config).await?;
    let small = Duration::from_secs(60);
    let archive_command = config.archive_command();
    let body = serde_json::json!({
        "postgresql": { "parameters": {
            "archive_mode": "on",
            "archive_command": archive_command,
            "archive_timeout": format!("{}s", config.archive_timeout.as_secs()),
        }}
    });
    patroni.patch_config(op, &body).await?;
    // Patroni applies a change on its next loop (a reload); archive_mode needs a restart when it was off.
    let pg = leader.clone();
    connect_core::wait::poll_until(
        op,
        "archive_command",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let pg = pg.clone();
            let want = archive_command.clone();
            async move {
                match pg.setting("archive_command").await {
                    Ok(v) if v == want => Ok(Ok(())),
                    Ok(v) => Ok(Err(format!("the leader still archives with {v:?}"))),
                    Err(e) if e.is_retryable() => Ok(Err(e.to_string())),
                    Err(e) => Err(e),
                }
            }
        },
    )
    .await?;
    if leader.setting("archive_mode").await? == "off" {
        return Err(Error::new(
            ErrorKind::Conflict,
            op,
            "archive_mode",
            "archive_mode is off until PostgreSQL restarts",
        )
        .with_hint("restart each member through Patroni (`patronictl restart`), then run the setup again"));
    }
    config.backrest(host, op, &["stanza-create"], small).await?;
    config
        .backrest(host, op, &["check"], Duration::from_secs(120))
        .await?;
    Ok(ConfigureReport {
        config_path: config.config_path(),
        archive_command,
        checked: true,
    })
}

/// Makes the repository and pgBackRest's directories (owned by the database's owner) and writes its
/// configuration: what `info` and `restore` need before anything else, e.g. on a fresh server about to be
/// recovered from a repository it did not write (no `stanza-create`: the repository's stanza is another
/// cluster's until the recovery makes it this one's).
pub async fn write_config(host: &dyn Host, config: &PitrConfig) -> Result<()> {
    let op = "pitr.write_config";
    config.validate()?;
    let small = Duration::from_secs(60);
    let s = &config.state_dir;
    let dirs = [
        config.repo_path.clone(),
        s.clone(),
        format!("{s}/log"),
        format!("{s}/lock"),
        format!("{s}/spool"),
    ];
    let mut mkdir = vec![
        "mkdir".to_string(),
        "-p".into(),
        "-m".into(),
        "0750".into(),
        "--".into(),
    ];
    mkdir.extend(dirs);
    config.as_owner(host, op, &mkdir, None, small).await?;
    // Written by the owner too (`cat` into a temporary, then `mv`): a reader sees the old file or the new.
    let write = vec![
        "sh".to_string(),
        "-c".into(),
        "umask 027 && cat > \"$1.tmp\" && mv -f -- \"$1.tmp\" \"$1\"".into(),
        "connect-ops".into(),
        config.config_path(),
    ];
    config
        .as_owner(host, op, &write, Some(config.render()), small)
        .await?;

    Ok(())
}

/// A base backup's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// Everything.
    Full,
    /// What changed since the last full backup.
    Diff,
    /// What changed since the last backup of any kind.
    Incr,
}

impl BackupKind {
    fn word(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Diff => "diff",
            BackupKind::Incr => "incr",
        }
    }
}

/// Takes a base backup of the primary (pgBackRest finds it among the configured members), expiring what
/// the retention no longer keeps; returns the backup as `pgbackrest info` lists it.
pub async fn base_backup(host: &dyn Host, config: &PitrConfig, kind: BackupKind) -> Result<BackrestBackup> {
    let op = "pitr.backup";
    config.validate()?;
    let arg = format!("--type={}", kind.word());
    config
        .backrest(host, op, &["backup", &arg], config.deadline)
        .await?;
    let info = info(host, config).await?;
    info.backups.last().cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::Corrupt,
            op,
            &config.stanza,
            "the backup finished but pgbackrest info lists none",
        )
    })
}

/// `pgbackrest info --output=json` with the repository and stanza on the command line and an empty
/// configuration (`--config=/dev/null`): reads the repository and writes nothing, not even a log file, so
/// it works on a server where [`write_config`] has not run yet (a dry run of a recovery onto a fresh one).
pub async fn info_read_only(host: &dyn Host, config: &PitrConfig) -> Result<BackrestInfo> {
    config.validate()?;
    let argv = [
        "--config=/dev/null".to_string(),
        format!("--repo1-path={}", config.repo_path),
        format!("--stanza={}", config.stanza),
        "--log-level-file=off".into(),
        "--log-level-console=warn".into(),
        "info".into(),
        "--output=json".into(),
    ];
    let out = config
        .as_owner(
            host,
            "pitr.info",
            &config.program_argv(&argv),
            None,
            Duration::from_secs(60),
        )
        .await?;
    BackrestInfo::parse(&config.stanza, &out.stdout)
}

/// `pgbackrest info --output=json`, parsed.
pub async fn info(host: &dyn Host, config: &PitrConfig) -> Result<BackrestInfo> {
    let out = config
        .backrest(
            host,
            "pitr.info",
            &["info", "--output=json"],
            Duration::from_secs(60),
        )
        .await?;
    BackrestInfo::parse(&config.stanza, &out.stdout)
}
