//! Migrations: the state of the app's migration table, and a linter for changes that break the old color.
//!
//! The engine runs the app's own migration command in a one-off container of the NEW release
//! (`ContainerRuntime::run_once`); around it, [`check_migrations`] reads the table before (refusing to go on
//! while a migration is unfinished or failed) and after (naming what was applied), and [`lint_sql`] warns about
//! statements that must wait until the old color is retired (expand/contract).

use std::fmt;

use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::postgres::{PgTarget, connect, pg_error};

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

/// A statement the old color may not survive while both colors run (expand/contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructiveChange {
    /// What kind of change.
    pub kind: DestructiveKind,
    /// The 1-based line where the statement starts.
    pub line: usize,
    /// The statement, shortened.
    pub statement: String,
}

/// Kinds of destructive change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestructiveKind {
    /// `DROP TABLE`, `DROP COLUMN`, `DROP SCHEMA`, `DROP VIEW`, `TRUNCATE`…: the old code still reads it.
    Drop,
    /// `RENAME`: the old code still uses the old name.
    Rename,
    /// A new `NOT NULL` (column added without a default, or `SET NOT NULL`): the old code's inserts fail.
    NewNotNull,
    /// A column's type changes: the old code may read or write the wrong type.
    AlterType,
}

impl fmt::Display for DestructiveChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            DestructiveKind::Drop => "drops something the old color may still use",
            DestructiveKind::Rename => "renames something the old color still uses by its old name",
            DestructiveKind::NewNotNull => "adds a NOT NULL the old color's writes do not fill",
            DestructiveKind::AlterType => "changes a column type under the old color",
        };
        write!(f, "line {}: {why}: {}", self.line, self.statement)
    }
}

/// Finds statements in migration SQL that break the color still running the old code. Comments, string
/// literals and dollar-quoted bodies are skipped, so `-- DROP TABLE` or `'rename'` do not count.
pub fn lint_sql(sql: &str) -> Vec<DestructiveChange> {
    let mut out = Vec::new();
    for (line, stmt) in statements(sql) {
        let words: Vec<String> = stmt
            .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        let has = |seq: &[&str]| {
            words
                .windows(seq.len())
                .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
        };
        let short: String = {
            let s = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
            if s.chars().count() > 120 {
                format!("{}…", s.chars().take(120).collect::<String>())
            } else {
                s
            }
        };
        let first = words.first().map(String::as_str).unwrap_or("");
        let mut push = |kind| {
            out.push(DestructiveChange {
                kind,
                line,
                statement: short.clone(),
            })
        };
        let drops_index_only =
            has(&["DROP", "INDEX"]) || has(&["DROP", "CONSTRAINT"]) || has(&["DROP", "DEFAULT"]);
        if first == "TRUNCATE" || (first == "DROP" && !drops_index_only) {
            push(DestructiveKind::Drop);
        } else if first == "ALTER" {
            if has(&["DROP", "COLUMN"])
                || (has(&["DROP"]) && !drops_index_only && !has(&["DROP", "NOT", "NULL"]))
            {
                push(DestructiveKind::Drop);
            }
            if has(&["RENAME"]) {
                push(DestructiveKind::Rename);
            }
            if has(&["SET", "NOT", "NULL"])
                || (has(&["ADD"])
                    && has(&["NOT", "NULL"])
                    && !has(&["DEFAULT"])
                    && !has(&["ADD", "CONSTRAINT"]))
            {
                push(DestructiveKind::NewNotNull);
            }
            if has(&["TYPE"])
                && (has(&["ALTER", "COLUMN"]) || words.iter().filter(|w| *w == "ALTER").count() > 1)
            {
                push(DestructiveKind::AlterType);
            }
        }
    }
    out
}

/// Splits SQL into statements with their starting line, blanking comments, literals and dollar quotes.
fn statements(sql: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut line = 1;
    let mut start_line = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
            cur.push(' ');
            continue;
        }
        if c == '\'' || c == '"' {
            // Quoted identifiers keep their text (they name tables); string literals are blanked.
            let quote = c;
            let mut text = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == quote {
                    if chars.get(i + 1) == Some(&quote) {
                        text.push(quote);
                        i += 2;
                        continue;
                    }
                    break;
                }
                line += usize::from(chars[i] == '\n');
                text.push(chars[i]);
                i += 1;
            }
            i += 1;
            cur.push_str(if quote == '"' { &text } else { "''" });
            continue;
        }
        if c == '$' {
            // $tag$ … $tag$: a function body, never a statement of this migration.
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if chars.get(j) == Some(&'$') {
                let tag: String = chars[i..=j].iter().collect();
                let rest: String = chars[j + 1..].iter().collect();
                let end = rest.find(&tag).map_or(chars.len(), |p| {
                    j + 1 + rest[..p].chars().count() + tag.chars().count()
                });
                line += chars[i..end.min(chars.len())]
                    .iter()
                    .filter(|&&c| c == '\n')
                    .count();
                i = end;
                cur.push_str(" $$ ");
                continue;
            }
        }
        if c == ';' {
            if !cur.trim().is_empty() {
                out.push((start_line.unwrap_or(line), cur.trim().to_string()));
            }
            cur.clear();
            start_line = None;
            i += 1;
            continue;
        }
        if c == '\n' {
            line += 1;
        }
        if start_line.is_none() && !c.is_whitespace() {
            start_line = Some(line);
        }
        cur.push(c);
        i += 1;
    }
    if !cur.trim().is_empty() {
        out.push((start_line.unwrap_or(line), cur.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<DestructiveKind> {
        lint_sql(sql).into_iter().map(|c| c.kind).collect()
    }

    #[test]
    fn flags_what_breaks_the_old_color() {
        assert_eq!(kinds("DROP TABLE sessions;"), [DestructiveKind::Drop]);
        assert_eq!(
            kinds("ALTER TABLE users DROP COLUMN email;"),
            [DestructiveKind::Drop]
        );
        assert_eq!(
            kinds("ALTER TABLE users RENAME COLUMN a TO b;"),
            [DestructiveKind::Rename]
        );
        assert_eq!(
            kinds("ALTER TABLE \"User\" ADD COLUMN x int NOT NULL;"),
            [DestructiveKind::NewNotNull]
        );
        assert_eq!(
            kinds("ALTER TABLE users ALTER COLUMN x SET NOT NULL;"),
            [DestructiveKind::NewNotNull]
        );
        assert_eq!(
            kinds("ALTER TABLE users ALTER COLUMN x TYPE bigint;"),
            [DestructiveKind::AlterType]
        );
        assert_eq!(kinds("TRUNCATE audit;"), [DestructiveKind::Drop]);
    }

    #[test]
    fn leaves_additive_changes_alone() {
        assert!(
            kinds("CREATE TABLE t (id int NOT NULL); ALTER TABLE users ADD COLUMN x int NOT NULL DEFAULT 0;")
                .is_empty()
        );
        assert!(kinds("CREATE INDEX i ON t(x); DROP INDEX i; ALTER TABLE t DROP CONSTRAINT c;").is_empty());
        assert!(
            kinds("-- DROP TABLE users;\n/* RENAME */ INSERT INTO t VALUES ('DROP TABLE x');").is_empty()
        );
        assert!(
            kinds("CREATE FUNCTION f() RETURNS void AS $body$ DROP TABLE x; $body$ LANGUAGE sql;").is_empty()
        );
        assert!(kinds("ALTER TABLE users ALTER COLUMN x DROP NOT NULL;").is_empty());
    }

    #[test]
    fn reports_the_line() {
        let c = lint_sql("CREATE TABLE a (x int);\n\n-- now\nDROP TABLE b;");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].line, 4);
        assert_eq!(c[0].statement, "DROP TABLE b");
    }

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
