//! The release's pending migrations linted before they run (runbook §3 "migrations tested"): while an old
//! color still serves against the same database, a change it cannot survive (DROP, RENAME, a new NOT NULL
//! without a default, a type change) is refused before anything changes, unless the policy allows it.

use crate::engine::Deployer;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::{MigrationTable, lint_sql, pending, release_migrations};
use crate::model::Release;

/// The most migration SQL read out of an image: far more than any real migrations directory.
const MAX_MIGRATION_BYTES: u64 = 64 << 20;

impl Deployer {
    /// Reads the release's migrations from `dir` in its image, keeps those no table lists as applied (all
    /// of them when the tables cannot be read), and lints them. `old_color_runs`: a color serves the old
    /// code against this database while the migration runs (every deploy but the first).
    pub(crate) async fn lint_release_migrations(
        &self,
        release: &Release,
        dir: &str,
        tables: Option<&[MigrationTable]>,
        old_color_runs: bool,
    ) -> Result<String> {
        let files = self
            .backends
            .runtime
            .read_image_dir(&release.image, dir, MAX_MIGRATION_BYTES)
            .await?;
        let all = release_migrations(&files);
        // A directory holding only the tool's own files (Prisma's `migration_lock.toml`) is a release without
        // migrations yet; nothing at all there is a path that points nowhere.
        if all.is_empty() && !files.is_empty() {
            return Ok(format!(
                "the release has no migrations yet ({} other file(s) in {dir})",
                files.len()
            ));
        }
        if all.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                "deploy.lint_migrations",
                format!("{}:{dir}", release.image),
                "the image has no migrations there, yet the app has a migration command",
            )
            .with_hint("set app.migrations_dir to where the image keeps its migration files, or unset it"));
        }
        let pending = pending(&all, tables.unwrap_or_default());
        let mut found = Vec::new();
        for m in &pending {
            for change in lint_sql(&m.sql) {
                found.push(format!("{} ({}) {change}", m.name, m.file));
            }
        }
        let summary = format!(
            "{} of the release's {} migrations pending{}",
            pending.len(),
            all.len(),
            if tables.is_none() {
                " (the table could not be read: all linted)"
            } else {
                ""
            }
        );
        if found.is_empty() {
            return Ok(format!("{summary}, none destructive"));
        }
        let policy = &self.config.policy;
        if !old_color_runs || policy.allow_destructive_migrations {
            let why = if old_color_runs {
                "allowed by the policy"
            } else {
                "no old color runs against the database"
            };
            return Ok(format!("{summary}; destructive ({why}): {}", found.join("; ")));
        }
        Err(Error::new(
            ErrorKind::Refused,
            "deploy.lint_migrations",
            release.to_string(),
            format!(
                "{summary}; the old color, still serving, cannot survive: {}",
                found.join("; ")
            ),
        )
        .with_hint(
            "ship it as expand/contract (add the new shape now, remove the old once the old color is retired), \
             or set policy.allow_destructive_migrations after retiring the old color",
        ))
    }
}
