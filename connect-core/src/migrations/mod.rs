//! Migrations as the engine sees them: the app's migration table (Prisma, sqlx, Flyway) and a linter for SQL
//! that breaks the color still running the old code (expand/contract). Reading the table is a backend's
//! work ([`DatabaseCluster::migration_tables`](crate::database::DatabaseCluster::migration_tables)); what it
//! means, and the linting, are here so every backend and the engine judge alike.

mod lexer;
mod lint;
mod release;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

pub use lint::{DestructiveChange, DestructiveKind, lint_sql};
pub use release::{ReleaseMigration, pending, release_migrations};

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

    /// How to unblock the next deploy once `name` failed: the tool's own repair command.
    pub fn fix_hint(self, name: &str) -> String {
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

/// Refuses ([`ErrorKind::Conflict`]) while any migration is unfinished or failed, naming it, quoting its
/// logs, and saying how the tool repairs it.
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
