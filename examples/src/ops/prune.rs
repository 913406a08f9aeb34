//! `prune [--keep N] [--dry-run]`: old release images removed by the engine, which never removes the live
//! or standby one.

use clap::Args;
use connect_core::Result;

use super::Context;

/// `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How many of the newest release images to keep (the live and standby ones are kept whatever N is).
    /// Default: `[policy] keep_releases`, else 3.
    #[arg(long)]
    pub keep: Option<usize>,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl PruneArgs {
    /// Prunes `<image>:*` on the server.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let (config, deployer) = cx.deployer().await?;
        let keep = self.keep.or(config.policy.keep_releases).unwrap_or(3);
        let report = deployer.prune(&config.app.image, keep, self.dry_run).await?;
        let verb = if report.dry_run { "would remove" } else { "removed" };
        let mut text = String::new();
        for r in &report.removed {
            text.push_str(&format!("{verb:<12} {r}\n"));
        }
        for k in &report.kept {
            text.push_str(&format!("{:<12} {}  ({})\n", "kept", k.reference, k.reason));
        }
        text.push_str(&format!(
            "{}: {verb} {}, kept {}",
            report.repository,
            report.removed.len(),
            report.kept.len()
        ));
        cx.out.result(&report, &text);
        Ok(())
    }
}
