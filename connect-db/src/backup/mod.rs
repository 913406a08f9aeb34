//! Backups before every migration: a restore point unique to the deploy and a checked logical backup.
//!
//! `pg_dump` and `pg_restore` run through a [`Host`], so the same code backs up a local server or one
//! reached over SSH; the dump is written by `pg_dump` straight into the backup directory (never through
//! memory), then checksummed by streaming it back and verified with `pg_restore --list`.
//!
//! Backups are private: the directory is made 0700 and every program runs under `umask 077`, whatever the
//! server's umask; the password reaches `pg_dump`/`pg_restore` on stdin, never in argv or a file (see
//! `pg_tools`); every name is passed inside a quoted connection string, so none is read as one.

mod files;

use std::time::{Duration, Instant, SystemTime};

use connect_core::database::{DatabaseCluster, RestorePoint};
use connect_core::host::{Host, PutOptions};
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::names::check_label;
use crate::pg_tools::{check_wrapper, private_command, run_bounded, run_pg_tool};
use crate::postgres::PgTarget;
use crate::util::{sha256_file, stderr_tail, utc_stamp_millis};

pub(crate) use files::{ensure_private_dir, read_small, remove_stale_passfiles, scratch_path};
pub use files::{list_backups, prune_backups};

/// Where backups go and how many to keep.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// The backup directory on the host (`/opt/connect/backups`).
    pub dir: String,
    /// How many logical backups of the database to keep; older ones are removed after a good backup.
    pub keep: usize,
    /// The `pg_dump` program (`pg_dump`, or `/usr/lib/postgresql/15/bin/pg_dump`).
    pub pg_dump: String,
    /// The `pg_restore` program.
    pub pg_restore: String,
    /// How long one `pg_dump` or `pg_restore` run may take before it is stopped ([`ErrorKind::Timeout`]).
    pub deadline: Duration,
}

impl BackupConfig {
    /// Backups in `dir`, keeping the last 7, with `pg_dump`/`pg_restore` from `PATH`.
    pub fn new(dir: &str) -> BackupConfig {
        BackupConfig {
            dir: dir.trim_end_matches('/').to_string(),
            keep: 7,
            pg_dump: "pg_dump".into(),
            pg_restore: "pg_restore".into(),
            deadline: Duration::from_secs(2 * 3600),
        }
    }

    /// The bound of the small programs around a backup (`mkdir`, `ls`, `pg_restore --list`): a minute, or
    /// the whole deadline when that is shorter.
    pub(crate) fn small_deadline(&self) -> Duration {
        self.deadline.min(Duration::from_secs(60))
    }

    /// Uses the programs of one PostgreSQL installation (`/usr/lib/postgresql/15/bin`).
    pub fn bin_dir(mut self, dir: &str) -> BackupConfig {
        let dir = dir.trim_end_matches('/');
        self.pg_dump = format!("{dir}/pg_dump");
        self.pg_restore = format!("{dir}/pg_restore");
        self
    }
}

/// A verified logical backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogicalBackup {
    /// The dump file on the host.
    pub path: String,
    /// Its SHA-256 (also written beside it as `<path>.sha256`).
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// The database it holds.
    pub database: String,
    /// Entries `pg_restore --list` found in it.
    pub toc_entries: usize,
    /// How long dumping, checksumming and verifying took.
    pub took: Duration,
}

/// What [`backup_before_migration`] made: the restore point (for point-in-time recovery) and the dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployBackup {
    /// The restore point, named after the deploy, with LSN and timeline for the journal.
    pub restore_point: RestorePoint,
    /// The logical backup.
    pub backup: LogicalBackup,
    /// Older backups removed to keep the last N.
    pub pruned: Vec<String>,
}

/// The restore point name for a deploy: `connect-<deploy id>`, checked to fit PostgreSQL's 63 bytes.
pub fn restore_point_name(deploy_id: &str) -> Result<String> {
    validate_deploy_id(deploy_id)?;
    let name = format!("connect-{deploy_id}");
    if name.len() > 63 {
        return Err(Error::invalid(
            "backup.restore_point",
            deploy_id,
            "the deploy id is longer than 55 bytes",
        ));
    }
    Ok(name)
}

fn validate_deploy_id(deploy_id: &str) -> Result<()> {
    check_label("backup", deploy_id)
}

/// The runbook's "backup before migration": a restore point unique to the deploy on the leader, then a
/// verified `pg_dump -Fc` of `login`'s database from `source` (usually the leader), then pruning to the last
/// `config.keep`.
pub async fn backup_before_migration(
    host: &dyn Host,
    cluster: &dyn DatabaseCluster,
    source: &PgTarget,
    deploy_id: &str,
    config: &BackupConfig,
) -> Result<DeployBackup> {
    let restore_point = cluster.restore_point(&restore_point_name(deploy_id)?).await?;
    let backup = logical_backup(host, source, deploy_id, config).await?;
    let pruned = prune_backups(host, config, &source.dbname).await?;
    Ok(DeployBackup {
        restore_point,
        backup,
        pruned,
    })
}

/// `pg_dump -Fc` of `source` into `<dir>/<db>-<UTC stamp in ms>-<label>.dump` (the database name encoded
/// as one file-name component), with its SHA-256, verified by `pg_restore --list`; the file is 0600 in a
/// 0700 directory. A dump that fails verification is removed and reported [`ErrorKind::Corrupt`]. A table
/// locked by someone else stops the dump after the source's `lock_timeout` (`--lock-wait-timeout`) with
/// [`ErrorKind::Timeout`], and the whole run after `config.deadline`.
pub async fn logical_backup(
    host: &dyn Host,
    source: &PgTarget,
    label: &str,
    config: &BackupConfig,
) -> Result<LogicalBackup> {
    let op = "backup.pg_dump";
    validate_deploy_id(label)?;
    source.validate(op)?;
    let started = Instant::now();
    let name = files::backup_file_name(&source.dbname, &utc_stamp_millis(SystemTime::now()), label);
    let path = format!("{}/{name}", config.dir);
    let partial = format!("{}/.{name}.partial", config.dir);
    ensure_private_dir(host, &config.dir, config.deadline).await?;
    remove_stale_passfiles(host, config).await;
    let mut argv = vec![config.pg_dump.clone(), "-Fc".into(), "--no-password".into()];
    if !source.lock_timeout.is_zero() {
        argv.push(format!(
            "--lock-wait-timeout={}",
            source.lock_timeout.as_millis().max(1)
        ));
    }
    argv.extend([
        "-f".into(),
        partial.clone(),
        "-d".into(),
        source.conninfo(&source.dbname),
    ]);
    let out = match run_pg_tool(host, source, op, argv, config.deadline).await {
        Ok(out) => out,
        Err(e) => {
            let _ = host.remove_file(&partial).await;
            return Err(e);
        }
    };
    if !out.success() {
        let _ = host.remove_file(&partial).await;
        let tail = stderr_tail(&out, 5);
        // pg_dump reports no SQLSTATE; its English messages are what there is to sort by.
        let (kind, hint) = if let Some(tls) = crate::pg_tools::tls_failure(&tail) {
            tls
        } else if tail.contains("password authentication failed") {
            (
                ErrorKind::PermissionDenied,
                "check the user and password (and pg_hba.conf)",
            )
        } else if tail.contains("LOCK TABLE") && tail.contains("canceling statement") {
            (
                ErrorKind::Timeout,
                "a table stayed locked longer than lock_timeout (a migration?); retry when it is done",
            )
        } else if tail.contains("does not exist") {
            (ErrorKind::NotFound, "check the database name")
        } else {
            (
                ErrorKind::Failed,
                "check the login, the database name and that pg_dump's major version is at least the server's",
            )
        };
        return Err(Error::new(kind, op, source.to_string(), tail).with_hint(hint));
    }
    let (sha256, bytes) = sha256_file(host, &partial).await?;
    let listing = match list_dump(host, config, &partial).await {
        Ok(l) => l,
        Err(e) => {
            let _ = host.remove_file(&partial).await;
            return Err(e);
        }
    };
    host.rename(&partial, &path).await?;
    host.put_file(
        &format!("{path}.sha256"),
        Box::pin(std::io::Cursor::new(format!("{sha256}  {name}\n").into_bytes())),
        PutOptions {
            mode: 0o600,
            create_new: false,
        },
    )
    .await?;
    Ok(LogicalBackup {
        path,
        sha256,
        bytes,
        database: listing.database.unwrap_or_else(|| source.dbname.clone()),
        toc_entries: listing.entries,
        took: started.elapsed(),
    })
}

/// What `pg_restore --list` says about a dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DumpListing {
    /// The database it was dumped from (`; dbname: connect`).
    pub database: Option<String>,
    /// The number of table-of-contents entries listed.
    pub entries: usize,
}

/// Runs `pg_restore --list` on a dump: [`ErrorKind::Corrupt`] unless it reads as a custom-format archive.
/// The listing goes to a scratch file in the (private) backup directory and is read back as a stream, so a
/// dump of a huge schema costs no memory.
pub async fn list_dump(host: &dyn Host, config: &BackupConfig, path: &str) -> Result<DumpListing> {
    let op = "backup.verify";
    ensure_private_dir(host, &config.dir, config.deadline).await?;
    let scratch = scratch_path(config, "list");
    let argv = vec![
        config.pg_restore.clone(),
        "--list".into(),
        "-f".into(),
        scratch.clone(),
        path.to_string(),
    ];
    let command = private_command(argv, None);
    let listed = async {
        let out = run_bounded(host, &command, op, path, config.deadline).await?;
        check_wrapper(op, &command, &out)?;
        if !out.success() {
            return Err(Error::new(ErrorKind::Corrupt, op, path, stderr_tail(&out, 3))
                .with_hint("the dump is damaged or not a pg_dump -Fc archive; take a new backup"));
        }
        let mut reader = host.get_file(&scratch).await?;
        let mut parser = ListingParser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| {
                Error::new(ErrorKind::Unavailable, op, &scratch, e.to_string()).with_source(e)
            })?;
            if n == 0 {
                break Ok(parser.finish());
            }
            parser.feed(&buf[..n]);
        }
    }
    .await;
    let _ = host.remove_file(&scratch).await;
    listed
}

/// Parses `pg_restore --list` output as it streams by: one line in memory at a time, at most 4 KiB of it.
#[derive(Default)]
struct ListingParser {
    listing: DumpListing,
    line: Vec<u8>,
}

impl ListingParser {
    const MAX_LINE: usize = 4096;

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
            } else if self.line.len() < Self::MAX_LINE {
                self.line.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let l = text.trim();
        if let Some(rest) = l.strip_prefix(';') {
            if let Some(db) = rest.trim().strip_prefix("dbname:") {
                self.listing.database = Some(db.trim().to_string());
            }
        } else if !l.is_empty() {
            self.listing.entries += 1;
        }
        self.line.clear();
    }

    fn finish(mut self) -> DumpListing {
        self.end_line();
        self.listing
    }
}

#[cfg(test)]
pub(crate) fn parse_listing(text: &str) -> DumpListing {
    let mut p = ListingParser::default();
    p.feed(text.as_bytes());
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_names_the_database_and_counts_entries() {
        let l = parse_listing(
            ";\n; Archive created at 2025-10-13 14:00:00 UTC\n;     dbname: connect\n;     TOC Entries: 3\n;\n\
             215; 1259 16386 TABLE public users postgres\n3330; 0 16386 TABLE DATA public users postgres\n",
        );
        assert_eq!(l.database.as_deref(), Some("connect"));
        assert_eq!(l.entries, 2);
    }

    #[test]
    fn restore_point_names_are_checked() {
        assert_eq!(
            restore_point_name("20251013-1400").unwrap(),
            "connect-20251013-1400"
        );
        assert!(restore_point_name("").is_err());
        assert!(restore_point_name("a b").is_err());
        assert!(restore_point_name(&"x".repeat(60)).is_err());
    }
}
