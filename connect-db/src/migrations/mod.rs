//! Migrations: the state of the app's migration table, and a linter for changes that break the old color.
//!
//! The engine runs the app's own migration command in a one-off container of the NEW release
//! (`ContainerRuntime::run_once`); around it, [`check_migrations`] reads the table before (refusing to go on
//! while a migration is unfinished or failed) and after (naming what was applied), and [`lint_sql`] warns about
//! statements that must wait until the old color is retired (expand/contract).

mod lexer;
mod lint;

use std::fmt;

use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::postgres::{PgTarget, connect, pg_error};

pub use lint::{DestructiveChange, DestructiveKind, lint_sql};

/// Whose migration table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationTool {
    /// Prisma: `_prisma_migrations`.
    Prisma,
    /// sqlx: `_sqlx_migrations`.
    Sqlx,
    /// Flyway: `flyway_schema_history`.
    Flyway,
}

impl MigrationTool {
    /// Every tool, in the order they are looked for.
    pub const ALL: [MigrationTool; 3] = [MigrationTool::Prisma, MigrationTool::Sqlx, MigrationTool::Flyway];

    /// The table it keeps its state in.
    pub fn table(self) -> &'static str {
        match self {
            MigrationTool::Prisma => "_prisma_migrations",
            MigrationTool::Sqlx => "_sqlx_migrations",
            MigrationTool::Flyway => "flyway_schema_history",
        }
    }

    fn query(self) -> &'static str {
        match self {
            MigrationTool::Prisma => {
                "SELECT migration_name, \
                 CASE WHEN rolled_back_at IS NOT NULL THEN 'rolled_back' \
                      WHEN finished_at IS NOT NULL THEN 'applied' \
                      WHEN logs IS NOT NULL AND logs <> '' THEN 'failed' \
                      ELSE 'unfinished' END, logs, \
                 extract(epoch FROM started_at)::float8 FROM _prisma_migrations ORDER BY started_at, migration_name"
            }
            MigrationTool::Sqlx => {
                "SELECT version::text || '_' || description, \
                 CASE WHEN success THEN 'applied' ELSE 'failed' END, NULL::text, \
                 extract(epoch FROM installed_on)::float8 FROM _sqlx_migrations ORDER BY version"
            }
            MigrationTool::Flyway => {
                "SELECT coalesce(version, 'R') || '_' || description, \
                 CASE WHEN success THEN 'applied' ELSE 'failed' END, NULL::text, \
                 extract(epoch FROM installed_on)::float8 FROM flyway_schema_history ORDER BY installed_rank"
            }
        }
    }

    fn fix_hint(self, name: &str) -> String {
        match self {
            MigrationTool::Prisma => format!(
                "fix the database by hand, then `prisma migrate resolve --rolled-back {name}` (or --applied)"
            ),
            MigrationTool::Sqlx => format!(
                "fix the database by hand, then delete the failed row for {name} from _sqlx_migrations"
            ),
            MigrationTool::Flyway => "fix the database by hand, then `flyway repair`".into(),
        }
    }
}

impl fmt::Display for MigrationTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.table())
    }
}

/// Where a migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Applied and finished.
    Applied,
    /// Started, not finished, no error recorded (running now, or the migrator died).
    Unfinished,
    /// Recorded as failed.
    Failed,
    /// Marked rolled back (Prisma): no longer blocks.
    RolledBack,
}

/// One row of a migration table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    /// Its name (`20251013140000_add_sessions`; sqlx and Flyway: `version_description`).
    pub name: String,
    /// Where it stands.
    pub state: MigrationState,
    /// The tool's log of it (Prisma keeps the error there).
    pub logs: Option<String>,
    /// Unix time it started.
    pub started_unix: Option<f64>,
}

/// The migration table of one tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationTable {
    /// The tool.
    pub tool: MigrationTool,
    /// Its rows, in order.
    pub migrations: Vec<Migration>,
}

impl MigrationTable {
    /// Names of applied migrations.
    pub fn applied(&self) -> Vec<&str> {
        self.migrations
            .iter()
            .filter(|m| m.state == MigrationState::Applied)
            .map(|m| m.name.as_str())
            .collect()
    }

    /// The first migration that blocks the next deploy (unfinished or failed).
    pub fn blocking(&self) -> Option<&Migration> {
        self.migrations
            .iter()
            .find(|m| matches!(m.state, MigrationState::Unfinished | MigrationState::Failed))
    }

    /// Migrations applied in `self` that were not applied in `before`: what a migration run did.
    pub fn applied_since(&self, before: &MigrationTable) -> Vec<String> {
        let old = before.applied();
        self.applied()
            .into_iter()
            .filter(|n| !old.contains(n))
            .map(str::to_string)
            .collect()
    }
}

/// Reads every migration table present in the database (none: an empty list, e.g. a first deploy).
pub async fn read_migration_tables(client: &Client, target: &PgTarget) -> Result<Vec<MigrationTable>> {
    let mut tables = Vec::new();
    for tool in MigrationTool::ALL {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&tool.table()])
            .await
            .map_err(|e| pg_error("migrations.read", target, e))?
            .get(0);
        if !exists {
            continue;
        }
        let rows = client
            .query(tool.query(), &[])
            .await
            .map_err(|e| pg_error("migrations.read", target, e))?;
        let migrations = rows
            .iter()
            .map(|r| Migration {
                name: r.get(0),
                state: match r.get::<_, &str>(1) {
                    "applied" => MigrationState::Applied,
                    "rolled_back" => MigrationState::RolledBack,
                    "failed" => MigrationState::Failed,
                    _ => MigrationState::Unfinished,
                },
                logs: r.get(2),
                started_unix: r.get(3),
            })
            .collect();
        tables.push(MigrationTable { tool, migrations });
    }
    Ok(tables)
}

/// Reads the migration tables of `target` and refuses ([`ErrorKind::Conflict`]) while any migration is
/// unfinished or failed, naming it and quoting its logs. Call it before the migration (do not start on a
/// broken state) and after it (the migration command may exit 0 and still leave a failed row).
pub async fn check_migrations(target: &PgTarget) -> Result<Vec<MigrationTable>> {
    let client = connect(target).await?;
    let tables = read_migration_tables(&client, target).await?;
    ensure_clean(&tables)?;
    Ok(tables)
}

/// The refusal of [`check_migrations`], on tables already read.
pub fn ensure_clean(tables: &[MigrationTable]) -> Result<()> {
    for t in tables {
        if let Some(m) = t.blocking() {
            let what = match m.state {
                MigrationState::Failed => "failed",
                _ => "is unfinished (still running, or its migrator died)",
            };
            let logs = m
                .logs
                .as_deref()
                .map(|l| format!("; logs: {}", l.trim()))
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Conflict,
                "migrations.check",
                format!("{}/{}", t.tool, m.name),
                format!("migration {} {what}{logs}", m.name),
            )
            .with_hint(t.tool.fix_hint(&m.name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_row_blocks_with_its_name_and_logs() {
        let t = MigrationTable {
            tool: MigrationTool::Prisma,
            migrations: vec![Migration {
                name: "20251013_add".into(),
                state: MigrationState::Failed,
                logs: Some("relation already exists".into()),
                started_unix: None,
            }],
        };
        let e = ensure_clean(&[t]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(
            e.message()
                .contains("20251013_add failed; logs: relation already exists")
        );
    }
}
