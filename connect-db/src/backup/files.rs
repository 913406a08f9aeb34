//! The backup directory: made private, listed by a strict pattern (so pruning removes only dumps and their
//! checksums), cleaned of password files older versions wrote, and bounded reads of what programs write
//! into it.

use std::time::{Duration, SystemTime};

use connect_core::host::{Command, Host};
use connect_core::{Error, ErrorKind, Result};
use tokio::io::AsyncReadExt;

use super::BackupConfig;
use crate::names::{check_label, file_component};
use crate::pg_tools::{check_wrapper, private_command, run_bounded};
use crate::util::stderr_tail;

/// Creates `dir` (and missing parents) under umask 077 and makes it 0700 even when it already existed wider
/// (a directory someone made 0777, a server whose umask is 000). A directory we cannot make private (owned
/// by another user) is refused: dumps hold every row of the database.
pub(crate) async fn ensure_private_dir(host: &dyn Host, dir: &str, deadline: Duration) -> Result<()> {
    let op = "backup.dir";
    if dir.is_empty() || dir.contains('\0') {
        return Err(Error::invalid(op, dir, "not a directory path"));
    }
    let command = private_command(
        vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p -- \"$1\" && chmod 700 -- \"$1\"".into(),
            "mkdir".into(),
            dir.into(),
        ],
        None,
    );
    let out = run_bounded(host, &command, op, dir, deadline.min(Duration::from_secs(60))).await?;
    check_wrapper(op, &command, &out)?;
    if !out.success() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            op,
            dir,
            format!(
                "the backup directory cannot be made private (0700): {}",
                stderr_tail(&out, 2)
            ),
        )
        .with_hint("give the deploy user its own backup directory, or chown it to that user"));
    }
    Ok(())
}

/// Names of the entries in `dir` that are not directories (`ls -1Ap` marks those with a `/`), bounded by
/// `config`'s small deadline.
async fn dir_names(host: &dyn Host, dir: &str, config: &BackupConfig) -> Result<Vec<String>> {
    let command = Command::new(["ls", "-1Ap", dir]);
    let out = run_bounded(host, &command, "backup.list", dir, config.small_deadline()).await?;
    if !out.success() {
        return Err(Error::new(
            ErrorKind::NotFound,
            "backup.list",
            dir,
            stderr_tail(&out, 2),
        ));
    }
    Ok(out
        .stdout_text()
        .lines()
        .filter(|n| !n.ends_with('/'))
        .map(str::to_string)
        .collect())
}

/// Removes the `.pgpass-*` files that versions before the password moved to stdin wrote into the backup
/// directory and that a crash could have left there. Best effort: a failure is logged, not fatal.
pub(crate) async fn remove_stale_passfiles(host: &dyn Host, config: &BackupConfig) {
    let names = match dir_names(host, &config.dir, config).await {
        Ok(n) => n,
        Err(e) => {
            return tracing::warn!(error = %e, "could not list the backup directory for stale password files");
        }
    };
    for n in names.iter().filter(|n| n.starts_with(".pgpass-")) {
        let path = format!("{}/{n}", config.dir);
        if let Err(e) = host.remove_file(&path).await {
            tracing::warn!(path, error = %e, "could not remove a stale password file");
        }
    }
}

/// `<db>-<YYYYMMDDTHHMMSS.mmmZ>-<label>.dump`, the database name encoded as one plain file-name component.
pub(crate) fn backup_file_name(database: &str, stamp: &str, label: &str) -> String {
    format!("{}-{stamp}-{label}.dump", file_component(database))
}

/// Whether `name` is exactly a backup of `database` as [`backup_file_name`] makes them: its prefix, a full
/// stamp, a valid label, `.dump`. Anything else in the directory (notes, another tool's dumps, a database
/// whose name extends this one's) is not ours to list or prune.
pub(crate) fn is_backup_of(name: &str, database: &str) -> bool {
    let prefix = format!("{}-", file_component(database));
    let Some(rest) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".dump")) else {
        return false;
    };
    let (Some(stamp), Some(label)) = (rest.get(..20), rest.get(20..).and_then(|l| l.strip_prefix('-')))
    else {
        return false;
    };
    is_stamp(stamp) && check_label("backup.list", label).is_ok()
}

/// `YYYYMMDDTHHMMSS.mmmZ`.
fn is_stamp(s: &str) -> bool {
    s.len() == 20
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'.',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// The backups of `database` in the backup directory, oldest first.
pub async fn list_backups(host: &dyn Host, config: &BackupConfig, database: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = dir_names(host, &config.dir, config)
        .await?
        .into_iter()
        .filter(|n| is_backup_of(n, database))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| format!("{}/{n}", config.dir)).collect())
}

/// Removes all but the newest `config.keep` backups of `database` and their `.sha256` files; nothing else
/// in the directory is touched.
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

/// A fresh hidden name in the backup directory for a program's scratch output.
pub(crate) fn scratch_path(config: &BackupConfig, what: &str) -> String {
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}/.{what}-{}-{nonce}", config.dir, std::process::id())
}

/// Reads at most `limit` bytes of a small file (a checksum sidecar); `None` when it does not exist. A larger
/// file is refused rather than read whole: it is not what we wrote.
pub(crate) async fn read_small(host: &dyn Host, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let reader = match host.get_file(path).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, "backup.read", path, e.to_string()).with_source(e))?;
    if buf.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "backup.read",
            path,
            format!("larger than {limit} bytes"),
        )
        .with_hint("this is not a file Connect Ops wrote; remove it or restore with an explicit checksum"));
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_dumps_are_backups() {
        let ours = backup_file_name("shop", "20251013T140000.042Z", "d1");
        assert_eq!(ours, "shop-20251013T140000.042Z-d1.dump");
        assert!(is_backup_of(&ours, "shop"));
        for other in [
            "shop-1.dump",
            "shop-keep-me.dump",
            "shop-20251013T140000.042Z-d1.dump.sha256",
            "shop-staging-20251013T140000.042Z-d1.dump",
            "shop-20251013T140000.042Z-.dump",
            "shop-20251013T140000.042Z-a b.dump",
            ".shop-20251013T140000.042Z-d1.dump.partial",
            "notes.txt",
        ] {
            assert!(!is_backup_of(other, "shop"), "{other}");
        }
        assert!(is_backup_of(
            "shop-staging-20251013T140000.042Z-d1.dump",
            "shop-staging"
        ));
        let odd = backup_file_name("postgresql://h/db", "20251013T140000.042Z", "x");
        assert_eq!(odd, "postgresql%3A%2F%2Fh%2Fdb-20251013T140000.042Z-x.dump");
        assert!(is_backup_of(&odd, "postgresql://h/db"));
    }
}
