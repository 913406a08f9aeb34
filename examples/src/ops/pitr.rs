//! `pitr setup | backup | info | checksums`: continuous database backups with pgBackRest (`[database.pitr]`).
//! `setup` sets WAL archiving through Patroni and creates the stanza; `backup` takes a base backup (with
//! retention); `info` lists what a recovery can reach; `checksums` prints every table's rows and checksum,
//! to keep before a risky change and compare after a `recover-db` (`--verify-against`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use connect_core::{Error, ErrorKind, Host, Result};
use connect_db::PatroniCluster;
use connect_db::pitr::BackupKind;

use super::Context;

/// `pitr`.
#[derive(Debug, Args)]
pub struct PitrArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PitrCommand,
}

/// The `pitr` subcommands.
#[derive(Debug, Subcommand)]
pub enum PitrCommand {
    /// Create the repository, set archive_command/archive_timeout through Patroni, create and check the stanza.
    Setup,
    /// Take a base backup (full by default), then expire what `retention_full` no longer keeps.
    Backup(BackupArgs),
    /// The backups in the repository and the WAL archived: what a recovery can reach.
    Info,
    /// Every table's row count and checksum on the leader (keep them before a risky change).
    Checksums,
}

/// `pitr backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Full, differential (since the last full) or incremental (since the last backup).
    #[arg(long = "type", value_enum, default_value = "full")]
    pub kind: Kind,
}

/// A base backup's kind on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Everything.
    Full,
    /// Changes since the last full backup.
    Diff,
    /// Changes since the last backup.
    Incr,
}

/// The cluster with `[database.pitr]`, reached through the server.
pub(super) async fn cluster(cx: &Context) -> Result<(Arc<dyn Host>, PatroniCluster)> {
    let config = cx.config()?;
    if config.database.pitr.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "config.check",
            cx.path().display().to_string(),
            "no [database.pitr] section: continuous backups are not configured",
        )
        .with_hint("add [database.pitr] with repo and [[database.pitr.nodes]] (see the README)"));
    }
    let host = config.host().await?;
    let cluster = config.database(host.clone())?;
    Ok((host, cluster))
}

impl PitrArgs {
    /// Runs the subcommand.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        match &self.command {
            PitrCommand::Setup => {
                let (_, cluster) = cluster(cx).await?;
                let progress = cx.out.progress("pitr setup");
                progress.step("repository, archive_command through Patroni, stanza-create, check");
                let report = cluster.configure_continuous_backups().await?;
                progress.finish();
                let text = format!(
                    "WAL archiving on: {}\n  configuration {}\n  take a full backup now: connect-ops pitr backup",
                    report.archive_command, report.config_path
                );
                cx.out.result(&report, &text);
            }
            PitrCommand::Backup(args) => {
                let (_, cluster) = cluster(cx).await?;
                let kind = match args.kind {
                    Kind::Full => BackupKind::Full,
                    Kind::Diff => BackupKind::Diff,
                    Kind::Incr => BackupKind::Incr,
                };
                let progress = cx.out.progress("pitr backup");
                progress.step("pgbackrest backup");
                let backup = cluster.base_backup(kind).await?;
                progress.finish();
                let text = format!(
                    "{} ({}): {} bytes of database, {} bytes in the repository, {:.1} s",
                    backup.label,
                    backup.kind,
                    backup.size_bytes,
                    backup.repo_bytes,
                    progress.elapsed().as_secs_f64()
                );
                cx.out.result(&backup, &text);
            }
            PitrCommand::Info => {
                let (_, cluster) = cluster(cx).await?;
                let info = cluster.continuous_backup_info().await?;
                let mut text = format!(
                    "stanza {}: {} (WAL {} .. {})",
                    info.stanza,
                    info.status_message,
                    info.wal_min.as_deref().unwrap_or("-"),
                    info.wal_max.as_deref().unwrap_or("-")
                );
                for b in &info.backups {
                    text.push_str(&format!(
                        "\n  {} {:<4} stop {} lsn {}  {} bytes",
                        b.label,
                        b.kind,
                        b.stop_unix,
                        b.lsn_stop.as_deref().unwrap_or("-"),
                        b.repo_bytes
                    ));
                }
                cx.out.result(&info, &text);
            }
            PitrCommand::Checksums => {
                let (_, cluster) = cluster(cx).await?;
                let sums = cluster.table_checksums().await?;
                cx.out.result(&sums, &checksum_text(&sums));
            }
        }
        Ok(())
    }
}

/// One line per table.
pub(super) fn checksum_text(sums: &[connect_db::pitr::TableChecksum]) -> String {
    sums.iter()
        .map(|t| format!("{:<40} {:>12} rows  {}", t.table, t.rows, t.checksum))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads checksums saved from `pitr checksums --json` (one JSON array).
pub(super) fn read_checksums(path: &PathBuf) -> Result<Vec<connect_db::pitr::TableChecksum>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            "recover_db.verify",
            path.display().to_string(),
            e.to_string(),
        )
        .with_hint("save them first: connect-ops --json pitr checksums > before.json")
    })?;
    // `--json` prints one object per line; the result is the last line.
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            "recover_db.verify",
            path.display().to_string(),
            format!("not the output of `pitr checksums --json`: {e}"),
        )
    })
}
