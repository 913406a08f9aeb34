//! The restore's write-ahead record and what the next call does with it.
//!
//! Before it creates the fresh database, a restore writes a marker next to the backups
//! (`<dir>/.restore-<db>.json`, 0600) naming the three databases (live, fresh, previous); before it takes the
//! live one offline it marks the phase `swapping`. It removes the marker when it is done, or when it has
//! undone its own work. A marker still there means a restore was interrupted (the process died, its future
//! was dropped, the connection broke): [`restore_status`] tells what it left, [`recover_restore`] (which
//! every restore runs first) repairs it, deciding from what the cluster shows now, never from the phase
//! alone:
//!
//! - the fresh copy was still being filled: it is dropped (the live database was never touched);
//! - the live database still has its name: it is put back online and the fresh copy dropped (undo);
//! - the live one was renamed aside and the fresh one is complete (`swapping`): the fresh one takes the live
//!   name (finish), as the interrupted restore was about to;
//! - the live one was renamed aside and the fresh one is gone: the previous one gets its name back (undo).
//!
//! Either way the live name exists and accepts connections afterwards. Anything else is left alone and
//! reported [`ErrorKind::Drift`] for an operator.

use connect_core::host::{Host, PutOptions};
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::backup::{BackupConfig, read_small};
use crate::names::file_component;
use crate::postgres::{PgTarget, connect_via, pg_error, quote_ident};

/// How far an interrupted restore got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestorePhase {
    /// Creating and filling the fresh database: the live one was not touched yet.
    Restoring,
    /// The fresh database is complete; the live one is being taken offline and renamed aside.
    Swapping,
}

/// The record a restore keeps while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMarker {
    /// The live database's name.
    pub database: String,
    /// The fresh database the dump is restored into.
    pub fresh: String,
    /// The name the live database is renamed to.
    pub previous: String,
    /// Whether there was a live database to swap out.
    pub live_existed: bool,
    /// How far it got.
    pub phase: RestorePhase,
    /// The dump being restored.
    pub dump: String,
}

/// What repairing an interrupted restore does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryAction {
    /// The fresh copy was still being filled: drop it; the live database was not touched.
    DropFresh,
    /// The live database kept its name: allow connections to it again, drop the fresh copy.
    PutLiveBack,
    /// The live one was renamed aside and the restored copy is complete: give it the live name.
    FinishSwap,
    /// The live one was renamed aside and the fresh copy is gone: give the previous one its name back.
    RenamePreviousBack,
    /// The swap had finished: only the marker is left to remove.
    ClearMarker,
    /// The cluster shows something no restore leaves; nothing is touched.
    NeedsOperator(String),
}

/// An interrupted restore: its record, what the cluster shows, and what [`recover_restore`] does about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptedRestore {
    /// The record it left.
    pub marker: RestoreMarker,
    /// Whether a database has the live name now.
    pub live_exists: bool,
    /// Whether the fresh database exists.
    pub fresh_exists: bool,
    /// Whether the renamed-aside database exists.
    pub previous_exists: bool,
    /// The repair.
    pub action: RecoveryAction,
}

pub(crate) fn marker_path(config: &BackupConfig, database: &str) -> String {
    format!("{}/.restore-{}.json", config.dir, file_component(database))
}

pub(crate) async fn write_marker(
    host: &dyn Host,
    config: &BackupConfig,
    marker: &RestoreMarker,
) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(marker).map_err(|e| {
        Error::new(
            ErrorKind::Failed,
            "restore.marker",
            &marker.database,
            e.to_string(),
        )
        .with_source(e)
    })?;
    host.put_file(
        &marker_path(config, &marker.database),
        Box::pin(std::io::Cursor::new(bytes)),
        PutOptions {
            mode: 0o600,
            create_new: false,
        },
    )
    .await
    .map(|_| ())
}

pub(crate) async fn remove_marker(host: &dyn Host, config: &BackupConfig, database: &str) -> Result<()> {
    match host.remove_file(&marker_path(config, database)).await {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

async fn read_marker(
    host: &dyn Host,
    config: &BackupConfig,
    database: &str,
) -> Result<Option<RestoreMarker>> {
    let path = marker_path(config, database);
    let Some(bytes) = read_small(host, &path, 64 * 1024).await? else {
        return Ok(None);
    };
    let marker: RestoreMarker = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            "restore.marker",
            &path,
            format!("unreadable restore record: {e}"),
        )
        .with_hint("check the databases by hand (\\l), then remove the record")
        .with_source(e)
    })?;
    if marker.database != database {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "restore.marker",
            &path,
            "the record names another database",
        ));
    }
    Ok(Some(marker))
}

/// The repair for what the cluster shows, by observation (see the module documentation).
pub(crate) fn decide(m: &RestoreMarker, live: bool, fresh: bool, previous: bool) -> RecoveryAction {
    use RecoveryAction::*;
    use RestorePhase::*;
    match (m.phase, live, fresh, previous) {
        // Still filling the fresh copy: the live database was never touched; the copy may be partial.
        (Restoring, _, _, false) => DropFresh,
        // Taken offline (perhaps), not renamed aside: the live data is where it was.
        (Swapping, true, _, false) if m.live_existed => PutLiveBack,
        // Renamed aside (or there was none) and the restored copy is complete: what the restore was doing.
        (Swapping, false, true, _) => FinishSwap,
        (Swapping, false, false, true) => RenamePreviousBack,
        // The swap had completed.
        (Swapping, true, false, true) => ClearMarker,
        (Swapping, true, false, false) => ClearMarker,
        _ => NeedsOperator(format!(
            "{} exists={live}, {} exists={fresh}, {} exists={previous} in phase {:?}",
            m.database, m.fresh, m.previous, m.phase
        )),
    }
}

async fn observe(client: &Client, admin: &PgTarget, m: &RestoreMarker) -> Result<(bool, bool, bool)> {
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datname = ANY($1)",
            &[&vec![m.database.as_str(), m.fresh.as_str(), m.previous.as_str()]],
        )
        .await
        .map_err(|e| pg_error("restore.status", admin, e))?;
    let has = |n: &str| rows.iter().any(|r| r.get::<_, &str>(0) == n);
    Ok((has(&m.database), has(&m.fresh), has(&m.previous)))
}

/// What an interrupted restore of `target.dbname` left, without changing anything; `None` when no restore
/// was interrupted. Connects through `host` to `maintenance_db`, as the restore does.
pub async fn restore_status(
    host: &dyn Host,
    target: &PgTarget,
    config: &BackupConfig,
    maintenance_db: &str,
) -> Result<Option<InterruptedRestore>> {
    let Some((marker, admin, client)) = interrupted(host, target, config, maintenance_db).await? else {
        return Ok(None);
    };
    Ok(Some(status_of(&client, &admin, marker).await?))
}

/// The record of an interrupted restore of `target.dbname`, with a connection to `maintenance_db` through
/// `host` to look at (and repair) the cluster by; `None`, without connecting, when there is no record.
async fn interrupted(
    host: &dyn Host,
    target: &PgTarget,
    config: &BackupConfig,
    maintenance_db: &str,
) -> Result<Option<(RestoreMarker, PgTarget, Client)>> {
    let Some(marker) = read_marker(host, config, &target.dbname).await? else {
        return Ok(None);
    };
    let admin = target.database(maintenance_db);
    let client = connect_via(&admin, Some(host)).await?;
    Ok(Some((marker, admin, client)))
}

async fn status_of(client: &Client, admin: &PgTarget, marker: RestoreMarker) -> Result<InterruptedRestore> {
    let (live_exists, fresh_exists, previous_exists) = observe(client, admin, &marker).await?;
    let action = decide(&marker, live_exists, fresh_exists, previous_exists);
    Ok(InterruptedRestore {
        marker,
        live_exists,
        fresh_exists,
        previous_exists,
        action,
    })
}

/// Finishes or undoes an interrupted restore of `target.dbname` (see the module documentation) and removes
/// its record; `None` when there was nothing to do. [`ErrorKind::Drift`] when the cluster shows something no
/// restore leaves: nothing is touched and the record stays.
pub async fn recover_restore(
    host: &dyn Host,
    target: &PgTarget,
    config: &BackupConfig,
    maintenance_db: &str,
) -> Result<Option<InterruptedRestore>> {
    let Some((marker, admin, client)) = interrupted(host, target, config, maintenance_db).await? else {
        return Ok(None);
    };
    let state = settle(&client, &admin, marker).await?;
    remove_marker(host, config, &target.dbname).await?;
    tracing::warn!(database = %target.dbname, action = ?state.action, "repaired an interrupted restore");
    Ok(Some(state))
}

/// Applies [`decide`]'s repair on `client` (connected to the maintenance database).
pub(crate) async fn settle(
    client: &Client,
    admin: &PgTarget,
    marker: RestoreMarker,
) -> Result<InterruptedRestore> {
    let op = "restore.recover";
    let mut state = status_of(client, admin, marker).await?;
    let m = state.marker.clone();
    let exec = |sql: String| async move {
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| pg_error(op, admin, e))
    };
    let (live, fresh, previous) = (
        quote_ident(&m.database),
        quote_ident(&m.fresh),
        quote_ident(&m.previous),
    );
    match &state.action {
        RecoveryAction::DropFresh => {
            exec(format!("DROP DATABASE IF EXISTS {fresh} WITH (FORCE)")).await?;
        }
        RecoveryAction::PutLiveBack => {
            exec(format!("ALTER DATABASE {live} WITH ALLOW_CONNECTIONS true")).await?;
            exec(format!("DROP DATABASE IF EXISTS {fresh} WITH (FORCE)")).await?;
        }
        RecoveryAction::FinishSwap => {
            // Should the restored copy not take the name, the previous database takes it back: the live
            // name is never left missing by a repair that can restore it.
            match exec(format!("ALTER DATABASE {fresh} RENAME TO {live}")).await {
                Ok(()) => {}
                Err(e) if state.previous_exists => {
                    tracing::warn!(error = %e, "the restored copy could not take the live name; putting the previous one back");
                    exec(format!("ALTER DATABASE {previous} RENAME TO {live}")).await?;
                    exec(format!("DROP DATABASE IF EXISTS {fresh} WITH (FORCE)")).await?;
                    state.action = RecoveryAction::RenamePreviousBack;
                }
                Err(e) => return Err(e),
            }
            exec(format!("ALTER DATABASE {live} WITH ALLOW_CONNECTIONS true")).await?;
        }
        RecoveryAction::RenamePreviousBack => {
            exec(format!("ALTER DATABASE {previous} RENAME TO {live}")).await?;
            exec(format!("ALTER DATABASE {live} WITH ALLOW_CONNECTIONS true")).await?;
        }
        RecoveryAction::ClearMarker => {}
        RecoveryAction::NeedsOperator(what) => {
            return Err(Error::new(ErrorKind::Drift, op, &m.database, format!("an interrupted restore left {what}"))
                .with_hint("look at the databases (\\l), give the live name to the right one, then remove the restore record"));
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(phase: RestorePhase, live_existed: bool) -> RestoreMarker {
        RestoreMarker {
            database: "shop".into(),
            fresh: "shop_restoring_x".into(),
            previous: "shop_before_x".into(),
            live_existed,
            phase,
            dump: "/b/shop.dump".into(),
        }
    }

    #[test]
    fn the_live_name_always_ends_up_taken() {
        use RecoveryAction::*;
        use RestorePhase::*;
        let m = marker(Restoring, true);
        assert_eq!(decide(&m, true, true, false), DropFresh);
        assert_eq!(decide(&m, true, false, false), DropFresh);
        let m = marker(Swapping, true);
        assert_eq!(
            decide(&m, true, true, false),
            PutLiveBack,
            "offline, not yet renamed aside"
        );
        assert_eq!(
            decide(&m, false, true, true),
            FinishSwap,
            "renamed aside, fresh complete"
        );
        assert_eq!(decide(&m, false, false, true), RenamePreviousBack);
        assert_eq!(decide(&m, true, false, true), ClearMarker, "swap done");
        assert!(matches!(decide(&m, true, true, true), NeedsOperator(_)));
        assert!(matches!(decide(&m, false, false, false), NeedsOperator(_)));
        let first = marker(Swapping, false);
        assert_eq!(decide(&first, false, true, false), FinishSwap);
        assert_eq!(decide(&first, true, false, false), ClearMarker);
        assert!(matches!(decide(&first, true, true, false), NeedsOperator(_)));
        assert_eq!(decide(&marker(Restoring, false), false, true, false), DropFresh);
    }
}
