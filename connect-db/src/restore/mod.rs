//! Restore from a logical backup: `pg_restore --exit-on-error -j N` into a fresh database, then swapped in by
//! rename. The live database is only ever renamed, never dropped, so a failed restore leaves it in place; a
//! restore interrupted half-way leaves a record the next one (or [`recover_restore`]) uses to finish or undo
//! it (see [`recovery`]).

pub mod recovery;

use std::time::{Duration, Instant, SystemTime};

use connect_core::host::Host;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::backup::{BackupConfig, ensure_private_dir, list_dump, read_small, remove_stale_passfiles};
use crate::failpoint;
use crate::pg_tools::run_pg_tool;
use crate::postgres::{PgTarget, connect_via, pg_error, quote_ident};
use crate::util::{sha256_file, stderr_tail, utc_stamp_millis};
pub use recovery::{
    InterruptedRestore, RecoveryAction, RestoreMarker, RestorePhase, recover_restore, restore_status,
};
use recovery::{remove_marker, settle, write_marker};

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `pg_restore -j N`: parallel jobs (1 = serial).
    pub jobs: u32,
    /// The SHA-256 the dump must have (from the backup record); `None` reads `<dump>.sha256` when present.
    pub expected_sha256: Option<String>,
    /// Restore a dump made from a database with another name (refused by default: restoring the wrong
    /// database is the classic mistake).
    pub allow_other_database: bool,
    /// The maintenance database to connect to for CREATE/RENAME DATABASE.
    pub maintenance_db: String,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            jobs: 2,
            expected_sha256: None,
            allow_other_database: false,
            maintenance_db: "postgres".into(),
        }
    }
}

/// What a restore did, with its measured recovery time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The database that now holds the restored data (the live name).
    pub database: String,
    /// The previous live database, renamed and kept (drop it once the restore is confirmed).
    pub previous_kept_as: Option<String>,
    /// The dump restored.
    pub dump: String,
    /// Verification, `pg_restore` and the swap, end to end: the measured recovery time.
    pub took: Duration,
    /// `pg_restore` alone.
    pub pg_restore_took: Duration,
}

/// Restores `dump` (a `pg_dump -Fc` file on `host`) as `target.dbname`: checks the checksum and that it is a
/// dump of that database, restores into `<db>_restoring_<stamp>` with `pg_restore --exit-on-error`, then
/// renames the live database to `<db>_before_<stamp>` and the fresh one to the live name. Connections to the
/// live database are ended for the swap; replicas follow through the WAL. Every connection goes through `host`,
/// so `target` names the server as `host` sees it (over SSH: the one connection).
///
/// First, a restore of the same database that was interrupted is finished or undone ([`recover_restore`]).
/// Any error before the swap drops the fresh database and leaves the live one untouched; a failed swap puts
/// the live database back. While it runs, a record in `config.dir` says how far it got, so that even a crash
/// between taking the live database offline and the rename is repaired by the next call.
pub async fn restore_logical(
    host: &dyn Host,
    target: &PgTarget,
    dump: &str,
    config: &BackupConfig,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let op = "restore";
    let started = Instant::now();
    let live = target.dbname.clone();
    target.validate(op)?;
    if options.jobs == 0 {
        return Err(Error::invalid(op, dump, "jobs must be at least 1"));
    }
    ensure_private_dir(host, &config.dir, config.deadline).await?;
    remove_stale_passfiles(host, config).await;
    recover_restore(host, target, config, &options.maintenance_db).await?;

    // 1. The dump is what we think it is.
    let expected = match &options.expected_sha256 {
        Some(s) => Some(s.clone()),
        None => read_sidecar(host, dump).await?,
    };
    if let Some(expected) = expected {
        let (actual, _) = sha256_file(host, dump).await?;
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                op,
                dump,
                format!("SHA-256 {actual} is not the recorded {expected}"),
            )
            .with_hint("the dump changed since it was taken; restore another backup"));
        }
    }
    let listing = list_dump(host, config, dump).await?;
    if let Some(db) = &listing.database
        && *db != live
        && !options.allow_other_database
    {
        return Err(Error::new(
            ErrorKind::Refused,
            op,
            dump,
            format!("this is a dump of database {db:?}, not {live:?}"),
        )
        .with_hint("pick a backup of this database, or set allow_other_database if that is really meant"));
    }

    // 2. Restore into a fresh database, the record written first.
    // Milliseconds: two restores of one database within a second must not pick the same names.
    let stamp = utc_stamp_millis(SystemTime::now())
        .replace('.', "")
        .to_lowercase();
    let admin = target.database(&options.maintenance_db);
    // Through the host that runs pg_restore: `target` is the server as that host sees it, and over SSH this
    // is the same connection as everything else.
    let client = connect_via(&admin, Some(host)).await?;
    let owner: Option<String> = client
        .query_opt(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
            &[&live],
        )
        .await
        .map_err(|e| pg_error(op, &admin, e))?
        .map(|r| r.get(0));
    let mut marker = RestoreMarker {
        database: live.clone(),
        fresh: db_name(&live, &format!("_restoring_{stamp}")),
        previous: db_name(&live, &format!("_before_{stamp}")),
        live_existed: owner.is_some(),
        phase: RestorePhase::Restoring,
        dump: dump.to_string(),
    };
    write_marker(host, config, &marker).await?;
    let restore_started = Instant::now();
    let restored = async {
        let owner_sql = owner
            .as_deref()
            .map(|o| format!(" OWNER {}", quote_ident(o)))
            .unwrap_or_default();
        client
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0{owner_sql}",
                quote_ident(&marker.fresh)
            ))
            .await
            .map_err(|e| pg_error(op, &admin, e))?;
        failpoint::hit("restore.restoring", &live).await;
        run_restore(host, target, &marker.fresh, dump, config, options).await
    }
    .await;
    let pg_restore_took = restore_started.elapsed();
    if let Err(e) = restored {
        return Err(undo(host, config, &client, &admin, marker, e).await);
    }

    // 3. Swap by rename, the record saying so first. Connections are refused before they are ended, or an app
    //    reconnecting between "terminate" and "rename" would make the rename fail.
    marker.phase = RestorePhase::Swapping;
    if let Err(e) = write_marker(host, config, &marker).await {
        marker.phase = RestorePhase::Restoring;
        return Err(undo(host, config, &client, &admin, marker, e).await);
    }
    if let Err(e) = swap(&client, &marker).await {
        let e = pg_error(op, &admin, e);
        return Err(undo(host, config, &client, &admin, marker, e).await);
    }
    // Done: a failure to remove the record only means the next restore finds the swap complete.
    if let Err(e) = remove_marker(host, config, &live).await {
        tracing::warn!(error = %e, "could not remove the restore record; the next restore will clear it");
    }
    Ok(RestoreReport {
        database: live,
        previous_kept_as: marker.live_existed.then_some(marker.previous),
        dump: dump.to_string(),
        took: started.elapsed(),
        pg_restore_took,
    })
}

/// Takes the live database offline, renames it aside and the fresh one in.
async fn swap(client: &Client, m: &RestoreMarker) -> std::result::Result<(), tokio_postgres::Error> {
    let live = quote_ident(&m.database);
    if m.live_existed {
        client
            .batch_execute(&format!("ALTER DATABASE {live} WITH ALLOW_CONNECTIONS false"))
            .await?;
        failpoint::hit("restore.offline", &m.database).await;
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&m.database],
            )
            .await?;
        rename_when_free(client, &m.database, &m.previous).await?;
        failpoint::hit("restore.renamed_aside", &m.database).await;
    }
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {live}",
            quote_ident(&m.fresh)
        ))
        .await
}

/// After a failure: repairs by what the cluster shows (as the next call would), then removes the record.
/// When the repair fails too, the record stays for the next call and the error says so.
async fn undo(
    host: &dyn Host,
    config: &BackupConfig,
    client: &Client,
    admin: &PgTarget,
    marker: RestoreMarker,
    cause: Error,
) -> Error {
    let live = marker.database.clone();
    match settle(client, admin, marker).await {
        Ok(state) => {
            let _ = remove_marker(host, config, &live).await;
            let what = match state.action {
                RecoveryAction::FinishSwap => "the restored copy was put in place anyway",
                _ => "the live database was left as it was",
            };
            let hint = match cause.hint() {
                Some(h) => format!("{what}; {h}"),
                None => what.to_string(),
            };
            cause.with_hint(hint)
        }
        Err(repair) => cause.with_hint(format!(
            "repairing failed too ({}); the next restore or recover_restore finishes it",
            repair.summary()
        )),
    }
}

async fn run_restore(
    host: &dyn Host,
    target: &PgTarget,
    into: &str,
    dump: &str,
    config: &BackupConfig,
    options: &RestoreOptions,
) -> Result<()> {
    let argv = vec![
        config.pg_restore.clone(),
        "--exit-on-error".into(),
        "--no-password".into(),
        "-j".into(),
        options.jobs.to_string(),
        "-d".into(),
        target.conninfo(into),
        dump.to_string(),
    ];
    let out = run_pg_tool(host, target, "restore.pg_restore", argv, config.deadline).await?;
    // pg_restore without --exit-on-error exits 1 after "errors ignored on restore"; with it, the first error
    // stops it. Either way a non-zero exit or an error line is a failed restore.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.success() || stderr.contains("error:") {
        return Err(Error::new(
            ErrorKind::Failed,
            "restore.pg_restore",
            dump,
            stderr_tail(&out, 5),
        )
        .with_hint("fix the cause and restore again"));
    }
    Ok(())
}

async fn rename_when_free(
    client: &Client,
    from: &str,
    to: &str,
) -> std::result::Result<(), tokio_postgres::Error> {
    // A terminated backend takes a moment to exit; RENAME fails with 55006 (object in use) until then.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            ))
            .await
        {
            Ok(()) => return Ok(()),
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn read_sidecar(host: &dyn Host, dump: &str) -> Result<Option<String>> {
    // A checksum line is 64 hex digits and a file name: a sidecar larger than this is not ours.
    let Some(bytes) = read_small(host, &format!("{dump}.sha256"), 4096).await? else {
        return Ok(None);
    };
    Ok(String::from_utf8_lossy(&bytes)
        .split_whitespace()
        .next()
        .map(str::to_string))
}

/// `<live><suffix>`, cut to PostgreSQL's 63 bytes on a character boundary.
fn db_name(live: &str, suffix: &str) -> String {
    let mut base = live.to_string();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// Drops a database kept by a restore (`previous_kept_as`) once the restore is confirmed, connecting through
/// `host` as the restore did.
pub async fn drop_previous(
    host: &dyn Host,
    target: &PgTarget,
    maintenance_db: &str,
    name: &str,
) -> Result<()> {
    if name == target.dbname {
        return Err(Error::invalid(
            "restore.drop_previous",
            name,
            "that is the live database",
        ));
    }
    let admin = target.database(maintenance_db);
    let client = connect_via(&admin, Some(host)).await?;
    client
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", quote_ident(name)))
        .await
        .map_err(|e| pg_error("restore.drop_previous", &admin, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgres() {
        assert_eq!(db_name("connect", "_before_x"), "connect_before_x");
        assert_eq!(db_name(&"a".repeat(70), "_restoring_20251013t140000z").len(), 63);
    }
}
