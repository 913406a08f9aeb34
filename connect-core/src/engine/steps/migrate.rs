//! Restore point and migration (runbook §3): the migration runs in a one-off container of the NEW release,
//! after a restore point the database can be taken back to.

use crate::engine::Deployer;
use crate::engine::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Release;
use crate::runtime::{OneOff, labels};
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
        let name = restore_point_name(&run.record.id);
        run.step(Step::RestorePoint, async {
            let p = b.database.restore_point(&name).await?;
            let detail = format!("{} at {} on timeline {}", p.name, p.lsn, p.timeline);
            point = Some(p);
            Ok(detail)
        })
        .await?;
        run.record.restore_point = point;
        run.step(Step::Migrate, async {
            let deadline = cfg.policy.migration_deadline;
            let job = OneOff {
                image: release.image.clone(),
                command: command.clone(),
                env: cfg.app.env.clone(),
                deadline,
                labels: [(labels::APP.to_string(), cfg.app.name.clone())].into(),
            };
            let out = match b.runtime.run_once(&job).await {
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    // It was stopped mid-way: what it applied is what the migration table says, not a guess.
                    let applied = match b.database.applied_migrations().await {
                        Ok(Some(names)) if names.is_empty() => "the migration table lists none applied".into(),
                        Ok(Some(names)) => format!("the migration table lists as applied: {}", names.join(", ")),
                        Ok(None) => "this database backend cannot read the migration table".to_string(),
                        Err(read) => format!("the migration table could not be read ({})", read.summary()),
                    };
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "deploy.migrate",
                        command.join(" "),
                        format!("stopped after the {deadline:?} migration deadline ({}); {applied}", e.message()),
                    )
                    .with_hint(
                        "raise the policy's migration_deadline for a long migration; the database has a restore \
                         point from just before it",
                    ));
                }
                other => other?,
            };
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

/// PostgreSQL's limit for a restore point's name, in bytes.
const RESTORE_POINT_MAX: usize = 63;

/// `connect-<operation id>`, cut to PostgreSQL's 63 bytes for any version (a version may be 128 characters):
/// a cut name keeps a hash of the whole, so two long versions never share a name.
fn restore_point_name(operation: &str) -> String {
    let name = format!("connect-{operation}");
    if name.len() <= RESTORE_POINT_MAX {
        return name;
    }
    use std::hash::{Hash, Hasher};
    // A fixed hasher: the same operation always gets the same name.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let suffix = format!("-{:08x}", h.finish() as u32);
    let mut cut = RESTORE_POINT_MAX - suffix.len();
    // Versions are ASCII (validated), but never cut inside a character anyway.
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &name[..cut])
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::restore_point_name;

    #[test]
    fn restore_point_names_fit_postgres_for_any_version() {
        assert_eq!(restore_point_name("1796-v2"), "connect-1796-v2");
        let long = |v: &str| restore_point_name(&format!("1796053875530-{v}"));
        let (a, b) = (long(&"a".repeat(128)), long(&format!("{}b", "a".repeat(127))));
        assert_eq!(a.len(), 63, "{a}");
        assert_ne!(a, b, "two long versions keep distinct names");
        assert_eq!(a, long(&"a".repeat(128)), "stable");
    }
}
