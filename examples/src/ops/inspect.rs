//! `check`, `status`, `history`, `verify` and `lock`: looking at the server (only `lock break` changes it).

use clap::{Args, Subcommand};
use connect_core::engine::{OperationRecord, Status};
use connect_core::model::Color;
use connect_core::{ErrorKind, Result};

use super::Context;
use super::output::{checks, summary};

/// Preflight.
pub async fn check(cx: &Context) -> Result<()> {
    let (_, deployer) = cx.deployer().await?;
    let report = deployer.preflight().await?;
    cx.out.result(&report, &checks(&report.checks));
    report.into_result("preflight", ErrorKind::Refused).map(drop)
}

/// The post-deploy checks on the live color.
pub async fn verify(cx: &Context) -> Result<()> {
    let (_, deployer) = cx.deployer().await?;
    let report = deployer.verify().await?;
    cx.out.result(&report, &checks(&report.checks));
    report.into_result("verify", ErrorKind::Unhealthy).map(drop)
}

/// The live color, each color's release, differences, the lock; with `[[app_hosts]]`, every host's.
pub async fn status(cx: &Context) -> Result<()> {
    let config = cx.config()?;
    if config.is_fleet() {
        let fleet = config.fleet().await?;
        return super::fleet::status(&fleet, &cx.out).await.map(drop);
    }
    let deployer = config.deployer().await?;
    let status = deployer.status().await?;
    cx.out.result(&status, &status_text(&status));
    Ok(())
}

/// One host's status as text: live and standby, each color's release, differences, the lock, backups.
pub fn status_text(status: &Status) -> String {
    let color = |c: Option<Color>| c.map_or("none".to_string(), |c| c.to_string());
    let mut text = format!("live {}, standby {}", color(status.live), color(status.standby));
    for (c, version) in &status.releases {
        text.push_str(&format!("\n  {c}: {version}"));
    }
    for d in &status.differences {
        text.push_str(&format!("\n  difference: {d}"));
    }
    if let Some(lock) = &status.lock {
        text.push_str(&format!("\n  locked by {} for {}", lock.holder, lock.operation));
    }
    if let Some(backups) = &status.continuous_backup {
        // The runbook's RPO (15 minutes) as the age past which a silent archive is worth a look.
        let (verdict, detail) = backups.verdict(std::time::Duration::from_secs(900));
        text.push_str(&format!("\n  continuous backup ({verdict:?}): {detail}"));
    }
    text
}

/// `history [-n N]`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub count: usize,
}

impl HistoryArgs {
    /// The journal's operations, newest first.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let (_, deployer) = cx.deployer().await?;
        let journal = deployer.journal().await?;
        let recent: Vec<&OperationRecord> = journal.history.iter().rev().take(self.count).collect();
        let text: Vec<String> = recent.iter().map(|r| summary(r)).collect();
        cx.out.result(&recent, &text.join("\n"));
        Ok(())
    }
}

/// `lock status|break`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// What to do with the lock.
    #[command(subcommand)]
    pub action: LockAction,
}

/// The lock's subcommands.
#[derive(Debug, Subcommand)]
pub enum LockAction {
    /// Who holds the lock, and until when.
    Status,
    /// Remove the lock whoever holds it (for a holder you know is gone and cannot wait out).
    Break,
}

impl LockArgs {
    /// Shows or breaks the deploy lock.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let (_, deployer) = cx.deployer().await?;
        match self.action {
            LockAction::Status => {
                let lock = deployer.status().await?.lock;
                let text = lock.as_ref().map_or("not locked".to_string(), |l| {
                    format!(
                        "locked by {} for {} since {}",
                        l.holder, l.operation, l.since_unix_ms
                    )
                });
                cx.out.result(&lock, &text);
            }
            LockAction::Break => {
                let broken = deployer.break_lock().await?;
                let text = broken.as_ref().map_or("there was no lock".to_string(), |l| {
                    format!("broke the lock of {} ({})", l.holder, l.operation)
                });
                cx.out.result(&broken, &text);
            }
        }
        Ok(())
    }
}
