//! Migrations on PostgreSQL: reading the app's migration table. What its rows mean and the SQL linter are
//! connect-core's ([`connect_core::migrations`]), re-exported here.
//!
//! The engine runs the app's own migration command in a one-off container of the NEW release
//! (`ContainerRuntime::run_once`); around it the engine reads the table through
//! [`DatabaseCluster::migration_tables`](connect_core::database::DatabaseCluster::migration_tables) before
//! (refusing to go on while a migration is unfinished or failed) and after (every migration applied, none
//! failed).

use connect_core::Result;
use tokio_postgres::Client;

use crate::postgres::{PgTarget, connect, pg_error};

pub use connect_core::migrations::{
    DestructiveChange, DestructiveKind, Migration, MigrationState, MigrationTable, MigrationTool,
    ensure_clean, lint_sql,
};

/// The query reading `tool`'s table as (name, state, logs, started unix time) rows.
fn query(tool: MigrationTool) -> &'static str {
    match tool {
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
            .query(query(tool), &[])
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

/// Reads the migration tables of `target` and refuses
/// ([`ErrorKind::Conflict`](connect_core::ErrorKind::Conflict)) while any migration is unfinished or
/// failed, naming it and quoting its logs. Call it before the migration (do not start on a
/// broken state) and after it (the migration command may exit 0 and still leave a failed row).
pub async fn check_migrations(target: &PgTarget) -> Result<Vec<MigrationTable>> {
    let client = connect(target).await?;
    let tables = read_migration_tables(&client, target).await?;
    ensure_clean(&tables)?;
    Ok(tables)
}
