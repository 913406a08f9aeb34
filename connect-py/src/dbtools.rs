//! The database chores of an ops script around a deploy: verify and prune logical backups, check the
//! migration tables before and after a migration, lint migration SQL. Each is one call of `connect_db`.

use connect_db::backup;
use connect_db::migrations;
use pyo3::prelude::*;
use serde_json::json;

use crate::bridge::block;
use crate::convert::{typed, typed_list, whole};
use crate::errors::py as core_py;
use crate::hosts::any_host;
use crate::services::{backup_config, pg_target};

/// Checks a dump on `host` with `pg_restore --list` (`BackupListing`: the database it was dumped from and
/// its table-of-contents entries); `CorruptError` when it is damaged or not a `pg_dump -Fc` archive.
#[pyfunction]
#[pyo3(signature = (host, path, *, dir, bin_dir=None))]
pub(crate) fn verify_backup(
    py: Python<'_>,
    host: &Bound<'_, PyAny>,
    path: String,
    dir: &str,
    bin_dir: Option<&str>,
) -> PyResult<Py<PyAny>> {
    let host = any_host("host", host)?;
    let config = backup_config(dir, bin_dir, 7);
    let listing = block(py, async move {
        core_py(backup::list_dump(host.as_ref(), &config, &path).await)
    })?;
    typed(
        py,
        "BackupListing",
        &json!({"database": listing.database, "entries": listing.entries}),
    )
}

/// Removes all but the newest `keep` logical backups of `database` in `dir` on `host` (and their `.sha256`
/// files); returns the removed paths. Nothing else in the directory is touched.
#[pyfunction]
#[pyo3(signature = (host, dir, database, *, keep))]
pub(crate) fn prune_backups(
    py: Python<'_>,
    host: &Bound<'_, PyAny>,
    dir: &str,
    database: String,
    keep: i64,
) -> PyResult<Vec<String>> {
    let host = any_host("host", host)?;
    let config = backup_config(dir, None, whole("keep", keep, "a count of 1 or more")?);
    block(py, async move {
        core_py(backup::prune_backups(host.as_ref(), &config, &database).await)
    })
}

/// Reads the migration tables (Prisma, sqlx, Flyway) of the database `target` names and raises
/// `ConflictError` while a migration is unfinished or failed, naming it and quoting its logs; otherwise
/// returns the tables (`MigrationTable`). Run it before a migration and after it.
#[pyfunction]
pub(crate) fn check_migrations(py: Python<'_>, target: &Bound<'_, PyAny>) -> PyResult<Vec<Py<PyAny>>> {
    let target = pg_target(target)?;
    let tables = block(
        py,
        async move { core_py(migrations::check_migrations(&target).await) },
    )?;
    typed_list(py, "MigrationTable", &tables)
}

/// The statements of migration SQL that break the color still running the old code (`DestructiveChange`:
/// drops, renames, a new NOT NULL without default, a type change); comments, string literals and
/// dollar-quoted bodies are skipped.
#[pyfunction]
pub(crate) fn lint_sql(py: Python<'_>, sql: &str) -> PyResult<Vec<Py<PyAny>>> {
    typed_list(py, "DestructiveChange", &migrations::lint_sql(sql))
}
