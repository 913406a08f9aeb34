//! Backups before every migration: a restore point unique to the deploy and a checked logical backup.
//!
//! `pg_dump` and `pg_restore` run through a [`Host`], so the same code backs up a local server or one
//! reached over SSH; the dump is written by `pg_dump` straight into the backup directory (never through
//! memory), then checksummed by streaming it back and verified with `pg_restore --list`.

use std::time::{Duration, Instant, SystemTime};

use connect_core::database::{DatabaseCluster, RestorePoint};
use connect_core::host::{Command, Host, HostExt, PutOptions};
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::postgres::PgTarget;
use crate::util::{run_pg, sha256_file, stderr_tail, utc_stamp_millis};

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
}

impl BackupConfig {
    /// Backups in `dir`, keeping the last 7, with `pg_dump`/`pg_restore` from `PATH`.
    pub fn new(dir: &str) -> BackupConfig {
        BackupConfig {
            dir: dir.trim_end_matches('/').to_string(),
            keep: 7,
            pg_dump: "pg_dump".into(),
            pg_restore: "pg_restore".into(),
        }
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
    if deploy_id.is_empty()
        || !deploy_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(
            Error::invalid("backup", deploy_id, "a deploy id is letters, digits, - _ and .")
                .with_hint("use the release tag or a timestamp, e.g. 20251013-1400"),
        );
    }
    Ok(())
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

/// `pg_dump -Fc` of `source` into `<dir>/<db>-<UTC stamp in ms>-<label>.dump`, with its SHA-256, verified by
/// `pg_restore --list`. A dump that fails verification is removed and reported [`ErrorKind::Corrupt`].
pub async fn logical_backup(
    host: &dyn Host,
    source: &PgTarget,
    label: &str,
    config: &BackupConfig,
) -> Result<LogicalBackup> {
    validate_deploy_id(label)?;
    let started = Instant::now();
    let name = format!(
        "{}-{}-{label}.dump",
        source.dbname,
        utc_stamp_millis(SystemTime::now())
    );
    let path = format!("{}/{name}", config.dir);
    let partial = format!("{}/.{name}.partial", config.dir);
    host.run_checked(&Command::new(["mkdir", "-p", &config.dir]))
        .await?;
    let pass = PassFile::write(host, &config.dir, source).await?;
    let out = run_pg(
        host,
        pass.path(),
        vec![
            config.pg_dump.clone(),
            "-Fc".into(),
            "--no-password".into(),
            "-h".into(),
            source.host.clone(),
            "-p".into(),
            source.port.to_string(),
            "-U".into(),
            source.user.clone(),
            "-d".into(),
            source.dbname.clone(),
            "-f".into(),
            partial.clone(),
        ],
    )
    .await;
    pass.remove(host).await;
    let out = out?;
    if !out.success() {
        let _ = host.remove_file(&partial).await;
        let tail = stderr_tail(&out, 5);
        let kind = if tail.contains("password authentication failed") {
            ErrorKind::PermissionDenied
        } else if tail.contains("does not exist") {
            ErrorKind::NotFound
        } else {
            ErrorKind::Failed
        };
        return Err(Error::new(kind, "backup.pg_dump", source.to_string(), tail)
            .with_hint("check the login, the database name and that pg_dump's major version is at least the server's"));
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
pub async fn list_dump(host: &dyn Host, config: &BackupConfig, path: &str) -> Result<DumpListing> {
    let out = host
        .run(&Command::new([config.pg_restore.as_str(), "--list", path]))
        .await?;
    if !out.success() {
        return Err(
            Error::new(ErrorKind::Corrupt, "backup.verify", path, stderr_tail(&out, 3))
                .with_hint("the dump is damaged or not a pg_dump -Fc archive; take a new backup"),
        );
    }
    Ok(parse_listing(&out.stdout_text()))
}

pub(crate) fn parse_listing(text: &str) -> DumpListing {
    let mut listing = DumpListing::default();
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix(';') {
            let rest = rest.trim();
            if let Some(db) = rest.strip_prefix("dbname:") {
                listing.database = Some(db.trim().to_string());
            }
        } else if !l.is_empty() {
            listing.entries += 1;
        }
    }
    listing
}

/// Removes all but the newest `config.keep` backups of `database` (and their checksum files).
pub async fn prune_backups(host: &dyn Host, config: &BackupConfig, database: &str) -> Result<Vec<String>> {
    let mut backups = list_backups(host, config, database).await?;
    if backups.len() <= config.keep.max(1) {
        return Ok(Vec::new());
    }
    let old: Vec<String> = backups.drain(..backups.len() - config.keep.max(1)).collect();
    for p in &old {
        host.remove_file(p).await?;
        let _ = host.remove_file(&format!("{p}.sha256")).await;
    }
    Ok(old)
}

/// The backups of `database` in the backup directory, oldest first.
pub async fn list_backups(host: &dyn Host, config: &BackupConfig, database: &str) -> Result<Vec<String>> {
    let out = host.run(&Command::new(["ls", "-1", &config.dir])).await?;
    if !out.success() {
        return Err(Error::new(
            ErrorKind::NotFound,
            "backup.list",
            &config.dir,
            stderr_tail(&out, 2),
        ));
    }
    let prefix = format!("{database}-");
    let mut names: Vec<String> = out
        .stdout_text()
        .lines()
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".dump"))
        // `<db>-<stamp>-…`: a database whose name extends this one's (connect-staging) has no stamp here.
        .filter(|n| {
            n.as_bytes()[prefix.len()..]
                .first()
                .is_some_and(u8::is_ascii_digit)
        })
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| format!("{}/{n}", config.dir)).collect())
}

/// A `.pgpass` file for one program run, mode 0600, removed right after.
pub(crate) struct PassFile(Option<String>);

impl PassFile {
    pub(crate) async fn write(host: &dyn Host, dir: &str, target: &PgTarget) -> Result<PassFile> {
        let Some(pw) = &target.password else {
            return Ok(PassFile(None));
        };
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        let line = format!("*:*:*:{}:{}\n", esc(&target.user), esc(pw));
        let nonce = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = format!("{dir}/.pgpass-{}-{nonce}", std::process::id());
        host.put_file(
            &path,
            Box::pin(std::io::Cursor::new(line.into_bytes())),
            PutOptions {
                mode: 0o600,
                create_new: true,
            },
        )
        .await?;
        Ok(PassFile(Some(path)))
    }

    pub(crate) fn path(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub(crate) async fn remove(self, host: &dyn Host) {
        if let Some(p) = self.0 {
            let _ = host.remove_file(&p).await;
        }
    }
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
