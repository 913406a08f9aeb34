//! Restore from a logical backup: `pg_restore --exit-on-error -j N` into a fresh database, then swapped in by
//! rename. The live database is only ever renamed, never dropped, so a failed restore leaves it in place.

use std::time::{Duration, Instant, SystemTime};

use connect_core::host::Host;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::backup::{BackupConfig, PassFile, list_dump};
use crate::postgres::{PgTarget, connect_via, pg_error, quote_ident};
use crate::util::{run_pg, sha256_file, stderr_tail, utc_stamp};

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
/// Any error before the swap drops the fresh database and leaves the live one untouched; a failed swap
/// renames the live database back.
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
    if options.jobs == 0 {
        return Err(Error::invalid(op, dump, "jobs must be at least 1"));
    }

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

    // 2. Restore into a fresh database.
    let stamp = utc_stamp(SystemTime::now()).to_lowercase();
    let fresh = db_name(&live, &format!("_restoring_{stamp}"));
    let previous = db_name(&live, &format!("_before_{stamp}"));
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
    let owner_sql = owner
        .as_deref()
        .map(|o| format!(" OWNER {}", quote_ident(o)))
        .unwrap_or_default();
    client
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0{owner_sql}",
            quote_ident(&fresh)
        ))
        .await
        .map_err(|e| pg_error(op, &admin, e))?;

    let restore_started = Instant::now();
    let restored = run_restore(host, target, &fresh, dump, config, options).await;
    let pg_restore_took = restore_started.elapsed();
    if let Err(e) = restored {
        drop_quietly(&client, &fresh).await;
        return Err(e);
    }

    // 3. Swap by rename. Connections are refused first, or an app reconnecting between "terminate" and
    //    "rename" would make the rename fail.
    let live_exists = owner.is_some();
    if live_exists {
        let swap = async {
            client
                .batch_execute(&format!(
                    "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
                    quote_ident(&live)
                ))
                .await?;
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&live],
                )
                .await?;
            rename_when_free(&client, &live, &previous).await
        };
        if let Err(e) = swap.await {
            let _ = client
                .batch_execute(&format!(
                    "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                    quote_ident(&live)
                ))
                .await;
            drop_quietly(&client, &fresh).await;
            return Err(pg_error(op, &admin, e).with_hint("the live database was left as it was"));
        }
    }
    if let Err(e) = client
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(&fresh),
            quote_ident(&live)
        ))
        .await
    {
        if live_exists {
            let _ = client
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(&previous),
                    quote_ident(&live)
                ))
                .await;
            let _ = client
                .batch_execute(&format!(
                    "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                    quote_ident(&live)
                ))
                .await;
        }
        drop_quietly(&client, &fresh).await;
        return Err(pg_error(op, &admin, e).with_hint("the live database was renamed back"));
    }
    Ok(RestoreReport {
        database: live,
        previous_kept_as: live_exists.then_some(previous),
        dump: dump.to_string(),
        took: started.elapsed(),
        pg_restore_took,
    })
}

async fn run_restore(
    host: &dyn Host,
    target: &PgTarget,
    into: &str,
    dump: &str,
    config: &BackupConfig,
    options: &RestoreOptions,
) -> Result<()> {
    let dir = dump.rsplit_once('/').map_or(".", |(d, _)| d);
    let pass = PassFile::write(host, dir, target).await?;
    let out = run_pg(
        host,
        pass.path(),
        vec![
            config.pg_restore.clone(),
            "--exit-on-error".into(),
            "--no-password".into(),
            "-j".into(),
            options.jobs.to_string(),
            "-h".into(),
            target.host.clone(),
            "-p".into(),
            target.port.to_string(),
            "-U".into(),
            target.user.clone(),
            "-d".into(),
            into.to_string(),
            dump.to_string(),
        ],
    )
    .await;
    pass.remove(host).await;
    let out = out?;
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
        .with_hint("the live database was not touched; fix the cause and restore again"));
    }
    Ok(())
}

async fn rename_when_free(
    client: &tokio_postgres::Client,
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

async fn drop_quietly(client: &tokio_postgres::Client, db: &str) {
    if let Err(e) = client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(db)
        ))
        .await
    {
        tracing::warn!(database = db, error = %e, "could not drop the half-restored database");
    }
}

async fn read_sidecar(host: &dyn Host, dump: &str) -> Result<Option<String>> {
    use connect_core::host::HostExt;
    let Some(bytes) = host.read_file(&format!("{dump}.sha256")).await? else {
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
