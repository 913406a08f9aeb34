//! Restore point and migration (runbook §3): the migration runs in a one-off container of the NEW release,
//! after a restore point the database can be taken back to.

use crate::engine::Deployer;
use crate::engine::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Release;
use crate::runtime::OneOff;
use crate::vocabulary::Step;

impl Deployer {
    /// The restore point and the migration, or both skipped when the app has no migration.
    pub(crate) async fn migrate_steps(&self, run: &mut Run, release: &Release) -> Result<()> {
        let (b, cfg) = (&self.backends, &self.config);
        let Some(command) = &cfg.app.migration else {
            run.skip(Step::RestorePoint, "no migration configured");
            run.skip(Step::Migrate, "no migration configured");
            return Ok(());
        };
        let mut point = None;
        let name = format!("connect-{}", run.record.id);
        run.step(Step::RestorePoint, async {
            let p = b.database.restore_point(&name).await?;
            let detail = format!("{} at {} on timeline {}", p.name, p.lsn, p.timeline);
            point = Some(p);
            Ok(detail)
        })
        .await?;
        run.record.restore_point = point;
        run.step(Step::Migrate, async {
            let job = OneOff {
                image: release.image.clone(),
                command: command.clone(),
                env: cfg.app.env.clone(),
                deadline: cfg.policy.health_deadline,
            };
            let out = b.runtime.run_once(&job).await?;
            let tail = last_lines(&out.output, 5);
            if out.exit_code != 0 {
                return Err(Error::new(
                    ErrorKind::Failed,
                    "deploy.migrate",
                    command.join(" "),
                    format!("exited {}: {tail}", out.exit_code),
                )
                .with_hint("fix the migration; the database has a restore point from just before it"));
            }
            Ok(tail)
        })
        .await
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
