//! `recover-db --latest | --time T | --restore-point NAME`: point-in-time recovery of the whole Patroni
//! cluster from pgBackRest (`[database.pitr]`), the replicas rebuilt afterwards. Asks at a terminal (typing
//! the database's name) and refuses without `--yes` elsewhere, before contacting anything, as `restore` does.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use connect_core::{Error, ErrorKind, Result};
use connect_db::pitr::RecoveryTarget;

use super::Context;
use super::pitr::{checksum_text, cluster, read_checksums};

/// `recover-db`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["latest", "time", "restore_point"])))]
pub struct RecoverDbArgs {
    /// Everything archived (after losing the database: at most `archive_timeout` is lost).
    #[arg(long)]
    pub latest: bool,
    /// To this moment, with its zone (`2026-12-06 08:15:00+00`, `2026-12-06T09:15:00+01:00`).
    #[arg(long)]
    pub time: Option<String>,
    /// To a restore point: a deploy's `connect-<id>` (its LSN is taken from the journal) or one of `backup`.
    #[arg(long)]
    pub restore_point: Option<String>,
    /// The restore point's LSN, when the journal does not have it (picks the backup that ends before it).
    #[arg(long, conflicts_with_all = ["latest", "time"])]
    pub lsn: Option<String>,
    /// Compare every table's rows and checksum afterwards with these (`connect-ops --json pitr checksums`).
    #[arg(long)]
    pub verify_against: Option<PathBuf>,
    /// Go ahead without asking (required when no one is at a terminal to ask).
    #[arg(long, short)]
    pub yes: bool,
}

impl RecoverDbArgs {
    fn target(&self, lsn: Option<String>) -> RecoveryTarget {
        match (&self.time, &self.restore_point) {
            (Some(t), _) => RecoveryTarget::Time(t.clone()),
            (None, Some(name)) => RecoveryTarget::RestorePoint {
                name: name.clone(),
                lsn,
            },
            (None, None) => RecoveryTarget::Latest,
        }
    }

    /// Names what it replaces, asks (or needs `--yes`), recovers, prints each phase's time and the tables.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let config = cx.config()?;
        let expected = self.verify_against.as_ref().map(read_checksums).transpose()?;
        let what = format!(
            "recover-db replaces the whole database cluster of server {} (every database, not only {:?}) with its state at {}: \
             everything written after it is lost; the replicas are rebuilt",
            config.server.host,
            config.database.dbname,
            self.target(None)
        );
        if self.yes {
            cx.out.note(&what);
        } else {
            super::backup::confirm(cx, "recover-db", &what, &config.database.dbname)?;
        }
        let progress = cx.out.progress("recover-db");
        progress.step("connecting");
        let (_, cluster) = cluster(cx).await?;
        let mut lsn = self.lsn.clone();
        if let (Some(name), None) = (&self.restore_point, &lsn) {
            progress.step("the restore point's LSN from the journal");
            if let Ok((_, deployer)) = cx.deployer().await
                && let Ok(journal) = deployer.journal().await
            {
                lsn = journal
                    .history
                    .iter()
                    .filter_map(|r| r.restore_point.as_ref())
                    .find(|p| &p.name == name)
                    .map(|p| p.lsn.clone());
            }
        }
        let target = self.target(lsn);
        progress.step(&format!(
            "pause Patroni, restore, replay to {target}, rebuild the replicas"
        ));
        let report = cluster.recover(&target).await?;
        progress.step("row counts and checksums");
        let sums = cluster.table_checksums().await?;
        progress.finish();
        let mut text = format!(
            "recovered to {} on {} from {}: writable after {:.1} s (restore {:.1} s, replay {:.1} s), replicas {:?} rebuilt in {:.1} s\n{}",
            report.target,
            report.leader,
            report.backup,
            report.to_writable.as_secs_f64(),
            report.restore.as_secs_f64(),
            report.replay.as_secs_f64(),
            report.rebuilt,
            report.rebuild.as_secs_f64(),
            checksum_text(&sums)
        );
        let verified = expected.as_ref().map(|e| e == &sums);
        if let Some(ok) = verified {
            text.push_str(if ok {
                "\nverified: every table's rows and checksum match"
            } else {
                "\nNOT verified: the tables differ from the saved checksums"
            });
        }
        cx.out.result(
            &serde_json::json!({ "recovery": report, "tables": sums, "verified": verified }),
            &text,
        );
        match verified {
            Some(false) => Err(Error::new(
                ErrorKind::Corrupt,
                "recover_db.verify",
                &config.database.dbname,
                "the recovered tables differ from the saved checksums",
            )
            .with_hint("rows written after the checksums were taken, or before the target, differ: compare them table by table")),
            _ => Ok(()),
        }
    }
}
