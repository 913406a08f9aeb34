//! The migrations a release carries, read from its image's migrations directory, and which of them the
//! database has not applied yet.

use crate::runtime::ImageFile;

use super::MigrationTable;

/// One migration of a release: its name as its tool's table records it, and its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseMigration {
    /// `20260201_add_sessions` (Prisma: its directory; sqlx: `<version>_<description>`; Flyway:
    /// `<version>_<description>`).
    pub name: String,
    /// The file it came from, below the migrations directory.
    pub file: String,
    /// Its SQL.
    pub sql: String,
}

/// The release's migrations among `files` (a migrations directory's contents), in name order:
/// Prisma's `<name>/migration.sql`, sqlx's `<version>_<description>.sql` (or `.up.sql`; `.down.sql` is
/// not a forward migration), Flyway's `V<version>__<description>.sql`. Other files (Prisma's
/// `migration_lock.toml`, READMEs) are not migrations; a file that is not UTF-8 is read lossily.
pub fn release_migrations(files: &[ImageFile]) -> Vec<ReleaseMigration> {
    let mut out: Vec<ReleaseMigration> = files
        .iter()
        .filter_map(|f| {
            let name = migration_name(&f.path)?;
            Some(ReleaseMigration {
                name,
                file: f.path.clone(),
                sql: String::from_utf8_lossy(&f.data).into_owned(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn migration_name(path: &str) -> Option<String> {
    if let Some(dir) = path.strip_suffix("/migration.sql") {
        return (!dir.contains('/')).then(|| dir.to_string());
    }
    if path.contains('/') || path.ends_with(".down.sql") {
        return None;
    }
    let stem = path
        .strip_suffix(".up.sql")
        .or_else(|| path.strip_suffix(".sql"))?;
    if let Some(flyway) = stem.strip_prefix('V')
        && let Some((version, description)) = flyway.split_once("__")
    {
        return Some(format!("{version}_{description}"));
    }
    stem.split_once('_')
        .filter(|(version, _)| !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()))
        .map(|_| stem.to_string())
}

/// The release's migrations that no table lists as applied (or rolled back and due again). Names are
/// compared as their tools write them apart: sqlx and Flyway keep a description with spaces where the
/// file has `_`, and Flyway a version with `.` where the file has `_`.
pub fn pending<'a>(release: &'a [ReleaseMigration], tables: &[MigrationTable]) -> Vec<&'a ReleaseMigration> {
    let applied: Vec<String> = tables
        .iter()
        .flat_map(MigrationTable::applied)
        .map(comparable)
        .collect();
    release
        .iter()
        .filter(|m| !applied.contains(&comparable(&m.name)))
        .collect()
}

fn comparable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, ' ' | '.' | '-') {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::{Migration, MigrationState, MigrationTool};

    fn file(path: &str, sql: &str) -> ImageFile {
        ImageFile {
            path: path.into(),
            data: sql.as_bytes().to_vec(),
        }
    }

    #[test]
    fn each_tools_layout_is_read_and_other_files_are_not_migrations() {
        let files = [
            file(
                "20260201_add_sessions/migration.sql",
                "CREATE TABLE sessions (id int);",
            ),
            file("migration_lock.toml", "provider = \"postgresql\""),
            file(
                "20260101000000_create_users.up.sql",
                "CREATE TABLE users (id int);",
            ),
            file("20260101000000_create_users.down.sql", "DROP TABLE users;"),
            file("V2_1__add_index.sql", "CREATE INDEX i ON users (id);"),
            file("README.sql", "-- not a migration"),
            file("nested/deeper/migration.sql", "-- not Prisma's layout"),
        ];
        let names: Vec<String> = release_migrations(&files).into_iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "20260101000000_create_users",
                "20260201_add_sessions",
                "2_1_add_index"
            ]
        );
    }

    #[test]
    fn pending_compares_names_as_each_tool_records_them() {
        let release = release_migrations(&[
            file("20260101000000_create_users.sql", ""),
            file("V2_1__add_index.sql", ""),
            file("20260301_add_tokens/migration.sql", ""),
        ]);
        let row = |name: &str| Migration {
            name: name.into(),
            state: MigrationState::Applied,
            logs: None,
            started_unix: None,
        };
        let tables = [
            MigrationTable {
                tool: MigrationTool::Sqlx,
                migrations: vec![row("20260101000000_create users")],
            },
            MigrationTable {
                tool: MigrationTool::Flyway,
                migrations: vec![row("2.1_add index")],
            },
        ];
        let names: Vec<&str> = pending(&release, &tables)
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["20260301_add_tokens"]);
    }
}
