//! Migration table check, restore point, backup and migration (runbook §3): the migration runs in a one-off
//! container of the NEW release, after a restore point and a verified backup the database can be taken back
//! to, and is judged by the app's migration table as well as by its exit code.

use crate::database::BackupRecord;
use crate::engine::Deployer;
use crate::engine::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::{MigrationTable, ensure_clean};
use crate::model::Release;
use crate::runtime::{OneOff, labels};
use crate::vocabulary::Step;

impl Deployer {
    /// The migration table check, the restore point, the backup and the migration; the ones not needed are
    /// skipped (no migration configured, no backup asked for).
    pub(crate) async fn migrate_steps(&self, run: &mut Run, release: &Release) -> Result<()> {
        let (b, cfg) = (&self.backends, &self.config);
        let command = cfg.app.migration.as_ref();
        let policy = &cfg.policy.backup;
        let backs_up = (command.is_some() && policy.before_migration) || policy.every_deploy;

        let mut before = None;
        if command.is_some() {
            let old_color_runs = run.record.live_before.is_some();
            run.step(Step::CheckMigrations, async {
                // A failed or unfinished migration left by an earlier run would make this one fail or, worse,
                // half-apply on top of it: refused before anything changes.
                let tables = b.database.migration_tables().await?;
                let mut detail = match &tables {
                    Some(tables) => {
                        ensure_clean(tables)?;
                        describe_tables(tables)
                    }
                    None => "this database backend cannot read the migration table".into(),
                };
                if let Some(dir) = &cfg.app.migrations_dir {
                    let lint = self
                        .lint_release_migrations(release, dir, tables.as_deref(), old_color_runs)
                        .await?;
                    detail = format!("{detail}; {lint}");
                }
                before = tables;
                Ok(detail)
            })
            .await?;
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
        } else {
            run.skip(Step::CheckMigrations, "no migration configured");
            run.skip(Step::RestorePoint, "no migration configured");
        }

        if backs_up {
            let mut taken = None;
            let label = run.record.id.clone();
            run.step(Step::Backup, async {
                let backup = b.database.backup(&label, policy).await?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Refused,
                        "deploy.backup",
                        "database",
                        "the policy asks for a backup, and this database backend is not set up to take one",
                    )
                    .with_hint(
                        "give the cluster a backup directory (PatroniCluster::with_backups, or `[database] \
                         backup_dir` in connect.toml), or turn policy.backup.before_migration off",
                    )
                })?;
                let detail = describe_backup(&backup);
                taken = Some(backup);
                Ok(detail)
            })
            .await?;
            run.record.backup = taken;
        } else {
            run.skip(
                Step::Backup,
                if command.is_some() {
                    "the policy takes no backup before a migration"
                } else {
                    "no migration, and the policy backs up only before one"
                },
            );
        }

        let Some(command) = command else {
            run.skip(Step::Migrate, "no migration configured");
            return Ok(());
        };
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
                    let applied = match b.database.migration_tables().await {
                        Ok(Some(tables)) => {
                            let names: Vec<&str> = tables.iter().flat_map(MigrationTable::applied).collect();
                            if names.is_empty() {
                                "the migration table lists none applied".into()
                            } else {
                                format!("the migration table lists as applied: {}", names.join(", "))
                            }
                        }
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
            // Exit 0 is the migrator's word; the table is the database's. A migrator that swallowed an
            // error, or a table left with a failed row, stops the deploy before any traffic moves.
            let Some(after) = b.database.migration_tables().await? else {
                return Ok(tail);
            };
            if let Err(e) = ensure_clean(&after) {
                return Err(Error::new(
                    ErrorKind::Failed,
                    "deploy.migrate",
                    command.join(" "),
                    format!("exited 0, but the migration table says: {}", e.message()),
                )
                .with_hint(e.hint().unwrap_or("fix the migration; the database has a restore point from just before it").to_string()));
            }
            let applied = applied_since(before.as_deref().unwrap_or_default(), &after);
            Ok(if applied.is_empty() {
                format!("nothing new applied: {tail}")
            } else {
                format!("applied {}", applied.join(", "))
            })
        })
        .await
    }
}

/// `_prisma_migrations: 3 applied`, or that there is no table yet.
fn describe_tables(tables: &[MigrationTable]) -> String {
    if tables.is_empty() {
        return "no migration table yet".into();
    }
    tables
        .iter()
        .map(|t| {
            format!(
                "{}: {} applied, none failed or unfinished",
                t.tool,
                t.applied().len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The figures a reader checks a backup by.
fn describe_backup(b: &BackupRecord) -> String {
    format!(
        "{} ({} bytes, {} entries, sha256 {}) in {:.1} s{}",
        b.path,
        b.bytes,
        b.entries,
        b.sha256,
        b.took_ms as f64 / 1000.0,
        if b.pruned.is_empty() {
            String::new()
        } else {
            format!("; removed {} older", b.pruned.len())
        }
    )
}

/// Migrations applied in `after` and not in `before`, table by table.
fn applied_since(before: &[MigrationTable], after: &[MigrationTable]) -> Vec<String> {
    after
        .iter()
        .flat_map(|t| match before.iter().find(|b| b.tool == t.tool) {
            Some(b) => t.applied_since(b),
            None => t.applied().into_iter().map(str::to_string).collect(),
        })
        .collect()
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
