//! Backup sets: what the WAL archive does not hold (Redis's `dump.rdb`, the uploads directory, the journal,
//! the rendered configs), taken together on the server into `<dir>/<YYYYMMDDTHHMMSSZ>/`, one part per
//! subdirectory, with a [`BackupManifest`] (each file's size and SHA-256, when, from where) written last.
//!
//! The runbook keeps `/backups/redis`, `/backups/uploads` and copies them back with `rsync` after a disaster;
//! nothing in it schedules them or says how old they are. Here:
//! - the uploads are copied with `rsync --link-dest` against the previous set: only changed files are copied,
//!   unchanged ones are hard links, so every set is whole and costs only what changed;
//! - a set is written as `<id>.partial` and renamed once its manifest is in, so a set that exists is complete;
//! - [`copy_set`] copies a set off the host (to the machine running the command, or any other [`Host`]),
//!   sending only files whose SHA-256 differs from the copy before, checking each one's hash as it streams;
//! - [`prune_sets`] keeps the newest N (only names that are sets: nothing else in the directory is touched);
//! - [`age_check`] is the preflight's verdict on the newest set's age;
//! - [`put_back`] writes a part back onto a (fresh) server, every file checked against the manifest.
//!
//! Parts that need a backend's client (Redis's save) are written by the caller into [`SetWriter::part_dir`]:
//! this module imports no backend.

mod copy;
mod manifest;
mod restore;
mod sets;
mod writer;

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt};

pub use copy::{CopyReport, copy_set};
pub use manifest::{
    BackupManifest, FileOwner, MANIFEST, MANIFEST_VERSION, ManifestFile, PartSummary, is_set_id, set_id,
};
pub use restore::{PutBackReport, put_back};
pub use sets::{age_check, age_verdict, list_sets, newest, prune_sets, read_manifest};
pub use writer::{SetWriter, SyncReport};

/// How long one listing, hashing or copying program may run on the host.
const PROGRAM_DEADLINE: Duration = Duration::from_secs(2 * 3600);

/// `dir` made if missing and private (0700).
pub(crate) async fn private_dir(host: &dyn Host, dir: &str) -> Result<()> {
    run_checked(host, ["install", "-d", "-m", "700", "--", dir])
        .await
        .map(drop)
}

/// An absolute path without control characters, trailing slashes removed.
pub(crate) fn checked_dir(op: &str, dir: &str) -> Result<String> {
    let trimmed = dir.trim_end_matches('/');
    if !trimmed.starts_with('/') || dir.chars().any(char::is_control) || trimmed.split('/').any(|c| c == "..")
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            op,
            dir,
            "not an absolute path (or it holds `..` or a control character)",
        )
        .with_hint("give an absolute path, e.g. /backups/connect"));
    }
    Ok(trimmed.to_string())
}

fn check_part(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "backup_set.part",
            name,
            "not a part name",
        )
        .with_hint("a part is named with letters, digits, `-` and `_` (redis, uploads)"));
    }
    Ok(())
}

pub(crate) fn out_tail(out: &crate::host::Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

pub(crate) async fn run<const N: usize>(host: &dyn Host, argv: [&str; N]) -> Result<crate::host::Output> {
    host.run(&Command::new(argv).timeout(PROGRAM_DEADLINE)).await
}

pub(crate) async fn run_checked<const N: usize>(
    host: &dyn Host,
    argv: [&str; N],
) -> Result<crate::host::Output> {
    host.run_checked(&Command::new(argv).timeout(PROGRAM_DEADLINE))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parts_are_checked() {
        assert!(checked_dir("t", "relative/dir").is_err());
        assert!(checked_dir("t", "/a/../b").is_err());
        assert!(checked_dir("t", "/a\n/b").is_err());
        assert_eq!(checked_dir("t", "/backups/").unwrap(), "/backups");
        assert!(check_part("uploads").is_ok());
        assert!(check_part("../x").is_err() && check_part("").is_err());
    }
}
