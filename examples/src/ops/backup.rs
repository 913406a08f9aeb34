//! `backup`, `backups` and `restore`: the database's verified logical backups, through connect-db over the
//! one SSH connection. A backup is a restore point on the leader (for point-in-time recovery), a `pg_dump
//! -Fc` written on the server, its SHA-256, and `pg_restore --list` of it; a restore goes into a fresh
//! database swapped in by rename, the old one kept offline.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::SystemTime;

use clap::Args;
use connect_core::database::DatabaseCluster;
use connect_core::{Error, ErrorKind, Host, Result};
use connect_db::PgTarget;
use connect_db::backup::{list_backups, logical_backup, prune_backups, restore_point_name};
use connect_db::restore::{RestoreOptions, restore_logical};

use super::Context;
use crate::config::ConnectConfig;

/// `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A label for the file and the restore point (`[A-Za-z0-9._-]`).
    #[arg(long, default_value = "manual")]
    pub label: String,
}

/// The server and the database's leader, as a backup or restore needs them.
struct Db {
    config: ConnectConfig,
    host: Arc<dyn Host>,
    leader: PgTarget,
    cluster: connect_db::PatroniCluster,
}

async fn connect(cx: &Context) -> Result<Db> {
    let config = cx.config()?;
    let host = config.host().await?;
    let cluster = config.database(host.clone())?;
    let leader = cluster.leader_postgres().await?.target().clone();
    Ok(Db {
        config,
        host,
        leader,
        cluster,
    })
}

impl BackupArgs {
    /// Restore point, dump, checksum, verification, then the backups beyond `[policy.backup] keep` removed.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        // The label is checked before anything is contacted.
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let point_name = restore_point_name(&format!("{}-{secs}", self.label)).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, "backup", &self.label, e.message()).with_hint(
                "a label is letters, digits, -, _ and . (not starting with a dot), e.g. --label before-v2",
            )
        })?;
        let progress = cx.out.progress("backup");
        progress.step("connecting");
        let db = connect(cx).await?;
        let backups = db.config.backup_config();
        progress.step("restore point");
        let point = db.cluster.restore_point(&point_name).await?;
        progress.step("pg_dump, checksum, pg_restore --list");
        let backup = logical_backup(db.host.as_ref(), &db.leader, &self.label, &backups).await?;
        progress.step("removing old backups");
        let pruned = prune_backups(db.host.as_ref(), &backups, &db.leader.dbname).await?;
        progress.finish();
        let took = progress.elapsed();
        let text = format!(
            "{}\n  size      {} bytes\n  sha256    {}\n  entries   {} (pg_restore --list)\n  restore point {} at {}\n  took      {:.1} s{}",
            backup.path,
            backup.bytes,
            backup.sha256,
            backup.toc_entries,
            point.name,
            point.lsn,
            took.as_secs_f64(),
            if pruned.is_empty() {
                String::new()
            } else {
                format!("\n  removed   {} older backups", pruned.len())
            }
        );
        cx.out.result(
            &serde_json::json!({
                "backup": backup,
                "restore_point": point,
                "pruned": pruned,
                "took_ms": took.as_millis() as u64,
            }),
            &text,
        );
        Ok(())
    }
}

/// `backups`: the database's backups on the server, newest first.
pub async fn list(cx: &Context) -> Result<()> {
    let db = connect(cx).await?;
    let mut paths = list_backups(db.host.as_ref(), &db.config.backup_config(), &db.leader.dbname).await?;
    paths.reverse();
    let text = if paths.is_empty() {
        format!(
            "no backups of {} in {}",
            db.leader.dbname, db.config.database.backup_dir
        )
    } else {
        paths.join("\n")
    };
    cx.out.result(&paths, &text);
    Ok(())
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The dump: a path on the server, or a file name in the backup directory. The newest backup when left
    /// out.
    pub backup: Option<String>,
    /// Go ahead without asking (required when no one is at a terminal to ask).
    #[arg(long, short)]
    pub yes: bool,
    /// `pg_restore -j N`.
    #[arg(long, default_value_t = 2)]
    pub jobs: u32,
}

impl RestoreArgs {
    /// Names what it replaces, asks (or needs `--yes`) before contacting anything, restores, and says where
    /// the old database is kept.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let config = cx.config()?;
        let backups = config.backup_config();
        let named = self.backup.as_ref().map(|b| {
            if b.contains('/') {
                b.clone()
            } else {
                format!("{}/{b}", backups.dir)
            }
        });
        let d = &config.database;
        let what = format!(
            "restore replaces database {:?} (server {}) with {}; the current database is kept, offline, as {}_before_<time>",
            d.dbname,
            config.server.host,
            named
                .clone()
                .unwrap_or_else(|| format!("the newest backup in {}", backups.dir)),
            d.dbname
        );
        if self.yes {
            cx.out.note(&what);
        } else {
            confirm(cx, "restore", &what, &d.dbname)?;
        }
        let progress = cx.out.progress("restore");
        progress.step("connecting, taking the deploy lock");
        super::under_deploy_lock(cx, self.restore(cx, named, &backups, &progress)).await
    }

    async fn restore(
        &self,
        cx: &Context,
        named: Option<String>,
        backups: &connect_db::backup::BackupConfig,
        progress: &super::progress::Progress,
    ) -> Result<()> {
        let db = connect(cx).await?;
        let dump = match named {
            Some(dump) => dump,
            None => list_backups(db.host.as_ref(), backups, &db.leader.dbname)
                .await?
                .pop()
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        "restore",
                        &backups.dir,
                        format!("no backup of {} there", db.leader.dbname),
                    )
                    .with_hint("make one with `connect-ops backup`, or name a dump")
                })?,
        };
        progress.step(&format!(
            "{dump}: checksum, pg_restore into a fresh database, swap"
        ));
        let options = RestoreOptions {
            jobs: self.jobs,
            ..RestoreOptions::default()
        };
        let report = restore_logical(db.host.as_ref(), &db.leader, &dump, backups, &options).await?;
        progress.finish();
        let text =
            format!(
            "restored {} into {} in {:.1} s (pg_restore {:.1} s){}",
            report.dump,
            report.database,
            report.took.as_secs_f64(),
            report.pg_restore_took.as_secs_f64(),
            report.previous_kept_as.as_ref().map_or(String::new(), |p| format!(
                "\n  the previous database is kept offline as {p}: drop it once the restore is confirmed"
            ))
        );
        cx.out.result(&report, &text);
        Ok(())
    }
}

/// Asks at the terminal, where there is one; refuses (nothing touched) where there is not.
pub(super) fn confirm(cx: &Context, op: &str, what: &str, database: &str) -> Result<()> {
    let stdin = std::io::stdin();
    if cx.out.is_json() || !stdin.is_terminal() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            op,
            database,
            format!("not confirmed: {what}"),
        )
        .with_hint(format!(
            "pass --yes to {op} without a question (no one is at a terminal to answer it)"
        )));
    }
    eprint!("{what}\ntype the database name ({database}) to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::new(ErrorKind::Failed, op, database, e.to_string()).with_source(e))?;
    if answer.trim() != database {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            op,
            database,
            "not confirmed: the answer was not the database's name",
        )
        .with_hint("run it again and type the name, or pass --yes"));
    }
    Ok(())
}
