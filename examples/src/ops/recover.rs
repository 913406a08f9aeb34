//! `recover [--dry-run] [--from DIR] [--set ID] [--force] [--yes]`: a whole server back from the newest backup
//! set's off-host copy and the pgBackRest repository (see [`crate::recover`]). `--dry-run` lists the steps and
//! the backups they use (names, ages, sizes) and changes nothing; otherwise it asks like `restore` (typing the
//! database's name) or needs `--yes`.

use std::path::PathBuf;

use clap::Args;
use connect_core::Result;

use super::Context;
use crate::recover::{Plan, RecoverOptions, RecoverReport};

/// `recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// List what would be done and from which backups; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The directory of the sets' copies on this machine (`[backup_all] copy_to` by default).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// The set to recover from (the newest by default).
    #[arg(long)]
    pub set: Option<String>,
    /// Recover even onto a server that is not fresh (its live deploy and database are replaced).
    #[arg(long)]
    pub force: bool,
    /// Go ahead without asking (required when no one is at a terminal to ask).
    #[arg(long, short)]
    pub yes: bool,
}

impl RecoverArgs {
    fn options(&self) -> RecoverOptions {
        RecoverOptions {
            from: self.from.clone(),
            set: self.set.clone(),
            force: self.force,
        }
    }

    /// The dry run, or the recovery with each step on the spinner and its time in the result.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let config = cx.config()?;
        if self.dry_run {
            let deployer = config.deployer().await?;
            let plan = crate::recover::plan(&config, &self.options(), &deployer).await?;
            cx.out.result(&plan, &plan_text(&plan));
            return Ok(());
        }
        let what = format!(
            "recover replaces everything on server {}: the configs from the set, the whole database cluster (every database, not only {:?}), Redis and the uploads, then deploys the set's live release",
            config.server.host, config.database.dbname
        );
        if self.yes {
            cx.out.note(&what);
        } else {
            super::backup::confirm(cx, "recover", &what, &config.database.dbname)?;
        }
        let progress = cx.out.progress("recover");
        let on_step = |s: &str| progress.step(s);
        let report = crate::recover::recover(&config, &self.options(), &on_step).await;
        progress.finish();
        let report = report?;
        cx.out.result(&report, &report_text(&report));
        Ok(())
    }
}

fn plan_text(p: &Plan) -> String {
    let mut lines = vec![
        format!(
            "recover server {} from set {} ({}, {} old, {} bytes) in {}",
            p.server,
            p.set.id,
            p.set.taken_at,
            age(p.set.age_s),
            p.set.bytes,
            p.set.dir
        ),
        format!(
            "  database from {} backup {} ({} old, {} bytes, {} in the repository {}), WAL up to {}",
            p.database.kind,
            p.database.backup,
            age(p.database.age_s),
            p.database.size_bytes,
            p.database.repo_bytes,
            p.database.repo,
            p.database.wal_max.as_deref().unwrap_or("-")
        ),
        format!(
            "  release {} (recorded as {}), deployed as {}",
            p.release.version, p.release.recorded_image, p.release.image
        ),
    ];
    if p.not_fresh.is_empty() {
        lines.push("  the server is fresh".into());
    } else {
        lines.push(format!(
            "  the server is NOT fresh ({}): recover refuses without --force",
            p.not_fresh.join("; ")
        ));
    }
    lines.push("would do (dry run: nothing was changed):".into());
    for (i, s) in p.steps.iter().enumerate() {
        lines.push(format!("  {}. {:<9} {}", i + 1, s.step, s.what));
    }
    lines.join("\n")
}

fn report_text(r: &RecoverReport) -> String {
    let mut lines = vec![format!(
        "recovered server {} from set {} and backup {} in {:.1} s; {} live",
        r.plan.server,
        r.plan.set.id,
        r.plan.database.backup,
        r.took_ms as f64 / 1000.0,
        r.plan.release.image
    )];
    for s in &r.steps {
        lines.push(format!(
            "  {:<9} {:>7.1} s  {}",
            s.step,
            s.took_ms as f64 / 1000.0,
            s.detail
        ));
    }
    lines.push(super::pitr::checksum_text(&r.tables));
    lines.join("\n")
}

fn age(secs: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}
