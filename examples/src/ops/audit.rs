//! `audit [--fix] [--format text|json] [--fail-on SEVERITY]`: the server's hardening, each finding with its
//! severity and fix; exit 6 when one is at or above `--fail-on` (`[audit] fail_on`), so CI can run it.
//!
//! `--fix` applies the safe fixes only: modes tightened, and sshd's settings, validated with `sshd -t`,
//! reloaded, and checked through a NEW SSH connection while this one stays open (reverted if that fails).
//! Then the server is audited again, so the report shows what is left.

use std::sync::Arc;

use clap::{Args, ValueEnum};
use connect_core::audit::audit_files;
use connect_core::audit::fix::{ConnectionProbe, apply_safe_fixes};
use connect_core::audit::{AuditCheck, AuditReport, Finding, Severity, audit};
use connect_core::{Host, LocalHost, Result};

use super::Context;
use crate::config::ConnectConfig;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One block per finding.
    Text,
    /// One JSON object: `findings` and `fixes`.
    Json,
}

/// `audit`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  connect-ops audit\n  connect-ops audit --format json --fail-on high\n  \
                        connect-ops audit --fix"
)]
pub struct AuditArgs {
    /// Apply the safe fixes (file modes; sshd, checked through a new connection and reverted if it fails).
    #[arg(long)]
    pub fix: bool,
    /// Text, or one JSON object (also with --json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 6 when a finding is at or above this severity (info, low, medium, high, critical); default:
    /// `[audit] fail_on`.
    #[arg(long, value_parser = parse_severity)]
    pub fail_on: Option<Severity>,
}

fn parse_severity(s: &str) -> std::result::Result<Severity, String> {
    Severity::parse(s).map_err(|e| e.summary())
}

impl AuditArgs {
    /// Audits (and fixes), prints the report, and fails when a finding reaches the threshold.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let config = cx.config()?;
        let report = run_audit(&config, self.fix).await?;
        let threshold = self.fail_on.unwrap_or(config.audit.fail_on);
        if self.format == Format::Json || cx.out.is_json() {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        } else {
            print!("{}", report.text());
        }
        report.into_result(threshold).map(drop)
    }
}

/// The audit of the server `config` describes; with `fix`, the safe fixes applied where each file lives (the
/// sshd one checked through a new SSH connection, none for `host = "local"`) and the server audited again, so
/// the report is what is left plus the fixes. The threshold is the caller's to apply
/// ([`AuditReport::into_result`]).
pub async fn run_audit(config: &ConnectConfig, fix: bool) -> Result<AuditReport> {
    let host = config.host().await?;
    let report = audit_once(config, host.clone()).await?;
    if !fix {
        return Ok(report);
    }
    let probe: Option<Box<dyn ConnectionProbe>> = match config.server.host.as_str() {
        "local" => None,
        _ => Some(Box::new(config.ssh_config()?)),
    };
    let (server, local) = split_local(&report);
    let mut fixes = apply_safe_fixes(host.as_ref(), &server, &config.sshd_fix(), probe.as_deref()).await;
    fixes.extend(apply_safe_fixes(&LocalHost::new(), &local, &config.sshd_fix(), None).await);
    let mut after = audit_once(config, host).await?;
    after.fixes = fixes;
    Ok(after)
}

/// This machine's files are named by a subject starting with `local:`.
const LOCAL: &str = "local:";

async fn audit_once(config: &ConnectConfig, host: Arc<dyn Host>) -> Result<AuditReport> {
    let sources = config.audit_sources(host.clone())?;
    let report = audit(host.as_ref(), &config.host_audit(), &sources).await;
    let mut findings = report.findings;
    // The app's env file is read on this machine, so its mode is checked here.
    if let Some(env) = &config.app.env_file {
        let path = env.display().to_string();
        let local = audit_files(&LocalHost::new(), &[], &[(AuditCheck::SecretFiles, path)]).await;
        findings.extend(local.into_iter().map(|mut f| {
            f.subject = format!("{LOCAL}{}", f.subject);
            f
        }));
    }
    Ok(AuditReport::new(findings))
}

/// The findings about the server and those about this machine, each fixed where it is.
fn split_local(report: &AuditReport) -> (AuditReport, AuditReport) {
    let (local, server): (Vec<Finding>, Vec<Finding>) = report
        .findings
        .iter()
        .cloned()
        .partition(|f| f.subject.starts_with(LOCAL));
    (AuditReport::new(server), AuditReport::new(local))
}
