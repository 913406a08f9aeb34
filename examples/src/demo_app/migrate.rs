//! `connect-demo-app migrate`: SQL migrations recorded as Prisma records them, so the engine's migration step
//! runs against the same table and the same failure rule (`P3009`) as the Connect app's `prisma migrate deploy`.
//!
//! Layout as Prisma's: `<dir>/<name>/migration.sql`, applied in name order. Each file runs as one simple-query
//! batch (one implicit transaction, so a failing migration leaves no half-applied schema), after a row with
//! `finished_at` NULL is written; success sets `finished_at` and `applied_steps_count = 1`, failure writes the
//! error into `logs` and leaves the row unfinished, which blocks every later run until someone resolves it.

use std::path::Path;
use std::time::{Duration, Instant};

use connect_core::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};

use super::server::{connect_database, pg_error};

/// One migration: its directory name and its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The directory name, e.g. `20260101000000_create_visits`.
    pub name: String,
    /// The contents of `migration.sql`.
    pub sql: String,
}

impl Migration {
    /// The hex SHA-256 of the script, as Prisma's `checksum` column holds it.
    pub fn checksum(&self) -> String {
        data_encoding::HEXLOWER.encode(&Sha256::digest(self.sql.as_bytes()))
    }
}

/// A migration applied by this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The migration's name.
    pub name: String,
    /// How long its script took.
    pub duration: Duration,
}

/// The demo migration built into the binary, used when no directory is given.
pub fn embedded_migrations() -> Vec<Migration> {
    vec![Migration {
        name: "20260101000000_create_visits".into(),
        sql: include_str!("../../migrations/20260101000000_create_visits/migration.sql").into(),
    }]
}

/// Reads `<dir>/<name>/migration.sql` for every subdirectory, sorted by name (Prisma's layout).
pub fn load_migrations(dir: &Path) -> Result<Vec<Migration>> {
    let target = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        super::io_error("read migrations", &target, e).with_hint("pass the migrations directory")
    })?;
    let mut migrations = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| super::io_error("read migrations", &target, e))?;
        if !entry
            .file_type()
            .map_err(|e| super::io_error("read migrations", &target, e))?
            .is_dir()
        {
            continue; // migration_lock.toml and the like
        }
        let file = entry.path().join("migration.sql");
        let sql = std::fs::read_to_string(&file)
            .map_err(|e| super::io_error("read migration", &file.display().to_string(), e))?;
        migrations.push(Migration {
            name: entry.file_name().to_string_lossy().into_owned(),
            sql,
        });
    }
    // No migration at all is a release that changes no schema: like `prisma migrate deploy`, nothing to do.
    migrations.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(migrations)
}

/// Prisma's advisory lock key, so two migrators never run at once.
const LOCK_KEY: i64 = 72_707_369;

const CREATE_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)"#;

/// Applies the migrations not yet recorded as finished, in order, and returns those it applied.
///
/// Fails with `Conflict` (and applies nothing) while an earlier migration is recorded as failed, as Prisma's
/// P3009 does, and with `Failed` when a script fails (its row stays unfinished, with the error in `logs`).
pub async fn migrate(database_url: &str, migrations: &[Migration]) -> Result<Vec<Applied>> {
    let client = connect_database(database_url).await?;
    client
        .query_one("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| pg_error("lock migrations", e))?;
    // The lock is the session's: it goes when `client` is dropped, whatever happens below.
    client
        .batch_execute(CREATE_TABLE)
        .await
        .map_err(|e| pg_error("create _prisma_migrations", e))?;
    let failed = client
        .query(
            r#"SELECT "migration_name" FROM "_prisma_migrations"
               WHERE "finished_at" IS NULL AND "rolled_back_at" IS NULL ORDER BY "started_at""#,
            &[],
        )
        .await
        .map_err(|e| pg_error("read _prisma_migrations", e))?;
    if let Some(row) = failed.first() {
        let name: String = row
            .try_get(0)
            .map_err(|e| pg_error("read _prisma_migrations", e))?;
        return Err(Error::new(
            ErrorKind::Conflict,
            "migrate",
            &name,
            "P3009: a failed migration is recorded in _prisma_migrations; no new migration will be applied",
        )
        .with_hint("fix the database, then mark the row rolled back (rolled_back_at) or finished"));
    }
    let done = client
        .query(
            r#"SELECT "migration_name", "checksum" FROM "_prisma_migrations"
               WHERE "finished_at" IS NOT NULL AND "rolled_back_at" IS NULL"#,
            &[],
        )
        .await
        .map_err(|e| pg_error("read _prisma_migrations", e))?;
    let mut recorded = std::collections::HashMap::new();
    for row in &done {
        let name: String = row
            .try_get(0)
            .map_err(|e| pg_error("read _prisma_migrations", e))?;
        let checksum: String = row
            .try_get(1)
            .map_err(|e| pg_error("read _prisma_migrations", e))?;
        recorded.insert(name, checksum);
    }
    let mut applied = Vec::new();
    for m in migrations {
        let checksum = m.checksum();
        if let Some(old) = recorded.get(&m.name) {
            if *old != checksum {
                eprintln!(
                    "connect-demo-app: warning: migration {} was modified after it was applied",
                    m.name
                );
            }
            continue;
        }
        let id: String = client
            .query_one(
                r#"INSERT INTO "_prisma_migrations" ("id", "checksum", "migration_name", "started_at", "applied_steps_count")
                   VALUES (gen_random_uuid()::text, $1, $2, now(), 0) RETURNING "id""#,
                &[&checksum, &m.name],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error("record migration start", e))?;
        let started = Instant::now();
        if let Err(e) = client.batch_execute(&m.sql).await {
            let e = pg_error("apply migration", e);
            let logs = format!("Migration {} failed: {}", m.name, e.message());
            // Best effort: the failed row (finished_at NULL) is already what blocks the next run.
            let _ = client
                .execute(
                    r#"UPDATE "_prisma_migrations" SET "logs" = $1 WHERE "id" = $2"#,
                    &[&logs, &id],
                )
                .await;
            return Err(Error::new(
                ErrorKind::Failed,
                "apply migration",
                &m.name,
                e.message().to_string(),
            )
            .with_hint(
                "the row stays in _prisma_migrations with finished_at NULL; fix it before deploying again",
            ));
        }
        client
            .execute(
                r#"UPDATE "_prisma_migrations" SET "finished_at" = now(), "applied_steps_count" = 1 WHERE "id" = $1"#,
                &[&id],
            )
            .await
            .map_err(|e| pg_error("record migration end", e))?;
        applied.push(Applied {
            name: m.name.clone(),
            duration: started.elapsed(),
        });
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_migration_has_a_stable_sha256_checksum() {
        let m = Migration {
            name: "x".into(),
            sql: "abc".into(),
        };
        assert_eq!(
            m.checksum(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let embedded = embedded_migrations();
        assert_eq!(embedded.len(), 1);
        assert!(embedded[0].sql.contains("CREATE TABLE \"visits\""));
    }

    #[test]
    fn a_missing_directory_is_not_found_and_an_empty_one_has_no_migration() {
        let dir = std::env::temp_dir().join(format!("connect-demo-empty-{}", std::process::id()));
        assert_eq!(load_migrations(&dir).unwrap_err().kind(), ErrorKind::NotFound);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("migration_lock.toml"), "provider = \"postgresql\"\n").unwrap();
        let found = load_migrations(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(found.is_empty(), "{found:?}");
    }
}
