//! The linter for migration SQL: statements that break the color still running the old code.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::lexer::statements;

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
#[non_exhaustive]
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
/// literals (escape strings `E'…'` with their backslash escapes included) and dollar-quoted bodies are skipped,
/// so `-- DROP TABLE`, `'rename'` or `E'it\'s; DROP TABLE x'` do not count.
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
}
