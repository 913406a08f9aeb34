//! `backup-all`: one backup set of what the WAL archive does not hold (runbook "Backup Strategy": Redis, the
//! uploads, plus the journal and the rendered configs), on the server under `[backup_all] dir`, with its
//! manifest; the sets beyond `keep` removed; then copied to `copy_to` on this machine (only what changed).
//! Meant for a systemd timer or cron (see the README); preflight fails when the newest set is too old.

use std::time::Instant;

use clap::Args;
use connect_core::backup_set::{BackupManifest, CopyReport, SetWriter, SyncReport, copy_set, prune_sets};
use connect_core::{Error, ErrorKind, LocalHost, Result};

use super::Context;

/// `backup-all`.
#[derive(Debug, Args)]
pub struct BackupAllArgs {
    /// Take the set on the server but do not copy it off the host, whatever `copy_to` says.
    #[arg(long)]
    pub no_copy: bool,
}

/// What one run did, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct BackupAllReport {
    /// The set's manifest.
    pub manifest: BackupManifest,
    /// Where it is on the server.
    pub path: String,
    /// The uploads' rsync, when configured.
    pub uploads: Option<SyncReport>,
    /// Sets removed on the server.
    pub pruned: Vec<String>,
    /// The off-host copy, when configured.
    pub copy: Option<CopyReport>,
    /// The whole run, measured.
    pub took_ms: u64,
}

impl BackupAllArgs {
    /// Takes the set, prunes, copies, prints what and how long.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let config = cx.config()?;
        let section = config.backup_all.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "backup_all",
                cx.path().display().to_string(),
                "no [backup_all] section",
            )
            .with_hint("add [backup_all] (see `connect-ops init`): at least dir, uploads_dir and configs")
        })?;
        let started = Instant::now();
        let progress = cx.out.progress("backup-all");
        progress.step("connecting");
        let host = config.host().await?;
        let mut set = SetWriter::begin(host.as_ref(), &section.dir).await?;
        if section.redis {
            progress.step("redis: BGSAVE, copy, redis-check-rdb");
            let dir = set.part_dir("redis")?;
            config.cache(host.clone())?.backup(host.as_ref(), &dir).await?;
        }
        let uploads = match &section.uploads_dir {
            Some(dir) => {
                progress.step(&format!("uploads: rsync {dir} (only changed files)"));
                Some(set.sync_dir("uploads", dir).await?)
            }
            None => None,
        };
        progress.step("journal and configs");
        set.copy_files(
            "journal",
            &[format!("{}/journal.json", config.state_dir.trim_end_matches('/'))],
        )
        .await?;
        set.copy_files("configs", &section.configs).await?;
        progress.step("sha256 of every file, manifest");
        let manifest = set.finish().await?;
        let path = format!("{}/{}", section.dir.trim_end_matches('/'), manifest.id);
        progress.step("removing old sets");
        let pruned = prune_sets(host.as_ref(), &section.dir, section.keep).await?;
        let copy = match (&section.copy_to, self.no_copy) {
            (Some(dir), false) => {
                progress.step(&format!("copy to {} on this machine", dir.display()));
                let local = LocalHost::new();
                let dest = dir.display().to_string();
                Some(
                    copy_set(
                        host.as_ref(),
                        &section.dir,
                        &manifest,
                        &local,
                        &dest,
                        section.copy_keep,
                    )
                    .await?,
                )
            }
            _ => None,
        };
        progress.finish();
        let report = BackupAllReport {
            path,
            uploads,
            pruned,
            copy,
            took_ms: started.elapsed().as_millis() as u64,
            manifest,
        };
        cx.out.result(&report, &text(&report));
        Ok(())
    }
}

fn text(r: &BackupAllReport) -> String {
    let m = &r.manifest;
    let mut lines = vec![format!(
        "{} ({} files, {} bytes) in {:.1} s",
        r.path,
        m.files.len(),
        m.bytes(),
        r.took_ms as f64 / 1000.0
    )];
    for p in &m.parts {
        lines.push(format!("  {:<8} {} files, {} bytes", p.name, p.files, p.bytes));
    }
    if let Some(u) = &r.uploads {
        lines.push(format!(
            "  uploads: {} of {} files copied, the rest linked to the previous set",
            u.files_copied, u.files
        ));
    }
    for missing in &m.missing {
        lines.push(format!("  missing  {missing} (not on the server)"));
    }
    if !r.pruned.is_empty() {
        lines.push(format!("  removed  {} older sets", r.pruned.len()));
    }
    if let Some(c) = &r.copy {
        lines.push(if c.already_there {
            format!("  copy     {} had it already", c.destination)
        } else {
            format!(
                "  copy     {}: {} files sent ({} bytes), {} unchanged linked",
                c.destination, c.files_sent, c.bytes_sent, c.files_linked
            )
        });
    }
    lines.join("\n")
}
