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

use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt, PutOptions};
use crate::vocabulary::CheckStatus;

pub use copy::{CopyReport, copy_set};
pub use manifest::{
    BackupManifest, FileOwner, MANIFEST, MANIFEST_VERSION, ManifestFile, PartSummary, is_set_id, set_id,
};
pub use restore::{PutBackReport, put_back};

/// How long one listing, hashing or copying program may run on the host.
const PROGRAM_DEADLINE: Duration = Duration::from_secs(2 * 3600);

/// What one `rsync` of a directory into a set did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// The part (`uploads`).
    pub part: String,
    /// The directory copied.
    pub source: String,
    /// Regular files in it.
    pub files: u64,
    /// Files copied because they were new or changed; the others are hard links into the previous set.
    pub files_copied: u64,
    /// The set they were linked against, when there was one.
    pub linked_to: Option<String>,
}

/// A set being written on the host: parts go in, [`finish`](SetWriter::finish) hashes them, writes the
/// manifest and makes the set visible.
#[derive(Debug)]
pub struct SetWriter<'a> {
    host: &'a dyn Host,
    dir: String,
    id: String,
    partial: String,
    previous: Option<String>,
    started: Instant,
    taken_at: SystemTime,
    parts: Vec<String>,
    missing: Vec<String>,
}

impl<'a> SetWriter<'a> {
    /// Starts a set in `dir` on `host` (made 0700: the sets hold sessions and users' files). Two sets begun
    /// in the same second are a [`ErrorKind::Conflict`].
    pub async fn begin(host: &'a dyn Host, dir: &str) -> Result<SetWriter<'a>> {
        let dir = checked_dir("backup_set.begin", dir)?;
        private_dir(host, &dir).await?;
        let previous = list_sets(host, &dir).await?.pop();
        let taken_at = SystemTime::now();
        let id = set_id(taken_at);
        let partial = format!("{dir}/{id}.partial");
        let out = run(host, ["mkdir", "-m", "700", "--", &partial]).await?;
        if !out.success() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "backup_set.begin",
                &partial,
                format!("cannot create it: {}", out_tail(&out)),
            )
            .with_hint("another backup-all is running (or ran this second): let it finish, then run again"));
        }
        Ok(SetWriter {
            host,
            previous: previous.map(|p| format!("{dir}/{p}")),
            dir,
            id,
            partial,
            started: Instant::now(),
            taken_at,
            parts: Vec::new(),
            missing: Vec::new(),
        })
    }

    /// The set's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory of part `name` inside the set being written, for parts a caller writes itself (Redis's
    /// backup): it is listed in the manifest even when left empty.
    pub fn part_dir(&mut self, name: &str) -> Result<String> {
        check_part(name)?;
        if !self.parts.iter().any(|p| p == name) {
            self.parts.push(name.to_string());
        }
        Ok(format!("{}/{name}", self.partial))
    }

    /// Copies files or directories (absolute paths) into part `name`, each under its own path
    /// (`configs/etc/haproxy/…`), so a recovery knows where it goes back. A path that does not exist is
    /// recorded as missing, not an error.
    pub async fn copy_files(&mut self, name: &str, paths: &[String]) -> Result<()> {
        let dest = self.part_dir(name)?;
        if paths.is_empty() {
            return Ok(());
        }
        // `rsync -R` keeps each whole path under the part (`cp -pR --parents` fails on coreutils 9.1).
        let mut argv: Vec<String> = ["rsync", "-aR", "--mkpath", "--"].map(String::from).to_vec();
        for path in paths {
            argv.push(checked_dir("backup_set.copy_files", path)?);
        }
        argv.push(format!("{dest}/"));
        self.missing.extend(rsync(self.host, argv, name).await?.1);
        Ok(())
    }

    /// Copies directory `source` into part `name` with `rsync -a --delete`, hard-linking files unchanged
    /// since the previous set (`--link-dest`). A missing directory is recorded as missing.
    pub async fn sync_dir(&mut self, name: &str, source: &str) -> Result<SyncReport> {
        let source = checked_dir("backup_set.sync_dir", source)?;
        let dest = self.part_dir(name)?;
        let linked_to = self.previous.as_ref().map(|p| format!("{p}/{name}"));
        let mut report = SyncReport {
            part: name.to_string(),
            source: source.clone(),
            files: 0,
            files_copied: 0,
            linked_to: linked_to.clone(),
        };
        let mut argv = vec![
            "rsync".to_string(),
            "-a".into(),
            "--delete".into(),
            "--mkpath".into(),
            "--stats".into(),
        ];
        if let Some(link) = &linked_to {
            argv.push(format!("--link-dest={link}/"));
        }
        argv.extend(["--".into(), format!("{source}/"), format!("{dest}/")]);
        let (out, missing) = rsync(self.host, argv, &source).await?;
        if !missing.is_empty() {
            self.missing.push(source);
            return Ok(report);
        }
        let stats = out.stdout_text();
        report.files = rsync_stat(&stats, "Number of files:").unwrap_or(0);
        report.files_copied = rsync_stat(&stats, "Number of regular files transferred:").unwrap_or(0);
        // "Number of files: 7 (reg: 5, dir: 2)": the regular ones are what a user calls files.
        if let Some(reg) = stats
            .lines()
            .find(|l| l.starts_with("Number of files:"))
            .and_then(|l| l.split("reg: ").nth(1))
            .and_then(|r| r.split([',', ')']).next())
        {
            report.files = reg.replace(',', "").trim().parse().unwrap_or(report.files);
        }
        Ok(report)
    }

    /// Hashes every file, writes the manifest (0600) and renames the set into place.
    pub async fn finish(self) -> Result<BackupManifest> {
        let files = hash_tree(self.host, &self.partial).await?;
        let parts = self
            .parts
            .iter()
            .map(|name| {
                let prefix = format!("{name}/");
                let of_part = files.iter().filter(|f| f.path.starts_with(&prefix));
                PartSummary {
                    name: name.clone(),
                    files: of_part.clone().count() as u64,
                    bytes: of_part.map(|f| f.bytes).sum(),
                }
            })
            .collect();
        let secs = self
            .taken_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let manifest = BackupManifest {
            version: MANIFEST_VERSION,
            id: self.id.clone(),
            taken_at_unix: secs,
            taken_at: humantime::format_rfc3339_seconds(self.taken_at).to_string(),
            took_ms: self.started.elapsed().as_millis() as u64,
            source: self.host.name().to_string(),
            parts,
            missing: self.missing,
            files,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::new(ErrorKind::Failed, "backup_set.finish", &self.id, e.to_string()))?;
        let private = PutOptions {
            mode: 0o600,
            create_new: true,
        };
        self.host
            .write_file(&format!("{}/{MANIFEST}", self.partial), json, private)
            .await?;
        let done = format!("{}/{}", self.dir, self.id);
        run_checked(self.host, ["mv", "-T", "--", &self.partial, &done]).await?;
        Ok(manifest)
    }
}

/// The complete sets in `dir` (those with a manifest), oldest first; none when `dir` does not exist.
pub async fn list_sets(host: &dyn Host, dir: &str) -> Result<Vec<String>> {
    Ok(entries(host, dir).await?.0)
}

/// One listing of `dir`: the complete sets (oldest first) and the `.partial` names.
async fn entries(host: &dyn Host, dir: &str) -> Result<(Vec<String>, Vec<String>)> {
    let dir = checked_dir("backup_set.list", dir)?;
    let out = run(
        host,
        [
            "find",
            &dir,
            "-mindepth",
            "1",
            "-maxdepth",
            "2",
            "-printf",
            "%P\\0",
        ],
    )
    .await?;
    if !out.success() {
        if String::from_utf8_lossy(&out.stderr).contains("No such file or directory") {
            return Ok((Vec::new(), Vec::new()));
        }
        return Err(
            Error::new(ErrorKind::Failed, "backup_set.list", &dir, out_tail(&out))
                .with_hint("the backup directory must be readable by the login"),
        );
    }
    let names: Vec<&str> = out
        .stdout
        .split(|b| *b == 0)
        .filter_map(|p| std::str::from_utf8(p).ok())
        .collect();
    let mut sets: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix(&format!("/{MANIFEST}")))
        .filter(|id| is_set_id(id))
        .map(str::to_string)
        .collect();
    sets.sort();
    let partials = names
        .iter()
        .filter(|n| n.strip_suffix(".partial").is_some_and(is_set_id))
        .map(|n| n.to_string())
        .collect();
    Ok((sets, partials))
}

/// The manifest of set `id` in `dir`.
pub async fn read_manifest(host: &dyn Host, dir: &str, id: &str) -> Result<BackupManifest> {
    let path = format!("{}/{id}/{MANIFEST}", dir.trim_end_matches('/'));
    let bytes = host.read_file(&path).await?.ok_or_else(|| {
        Error::new(ErrorKind::NotFound, "backup_set.manifest", &path, "no manifest")
            .with_hint("the set is incomplete: use another one")
    })?;
    BackupManifest::parse(&path, &bytes)
}

/// The newest complete set's manifest, if any.
pub async fn newest(host: &dyn Host, dir: &str) -> Result<Option<BackupManifest>> {
    match list_sets(host, dir).await?.pop() {
        Some(id) => read_manifest(host, dir, &id).await.map(Some),
        None => Ok(None),
    }
}

/// Keeps the newest `keep` sets (at least one) and removes the older ones, and any `.partial` older than the
/// newest set (a run that died). Returns the removed sets.
pub async fn prune_sets(host: &dyn Host, dir: &str, keep: usize) -> Result<Vec<String>> {
    let dir = checked_dir("backup_set.prune", dir)?;
    let (sets, partials) = entries(host, &dir).await?;
    let removed: Vec<String> = sets[..sets.len().saturating_sub(keep.max(1))].to_vec();
    let mut argv: Vec<String> = ["rm", "-rf", "--"].map(String::from).to_vec();
    argv.extend(removed.iter().map(|id| format!("{dir}/{id}")));
    if let Some(newest) = sets.last() {
        argv.extend(
            partials
                .iter()
                .filter(|p| p.trim_end_matches(".partial") < newest.as_str())
                .map(|p| format!("{dir}/{p}")),
        );
    }
    if argv.len() > 3 {
        host.run_checked(&Command::new(argv).timeout(PROGRAM_DEADLINE))
            .await?;
    }
    Ok(removed)
}

/// The preflight's verdict on the newest set in `dir`: fail when there is none, or when it is older than
/// `max_age`.
pub async fn age_check(host: &dyn Host, dir: &str, max_age: Duration) -> (CheckStatus, String) {
    match newest(host, dir).await {
        Ok(newest) => age_verdict(newest.as_ref(), SystemTime::now(), max_age),
        Err(e) => (CheckStatus::Fail, e.to_string()),
    }
}

/// [`age_check`]'s rule, at `now`.
pub fn age_verdict(
    newest: Option<&BackupManifest>,
    now: SystemTime,
    max_age: Duration,
) -> (CheckStatus, String) {
    let limit = humantime::format_duration(max_age);
    match newest {
        None => (
            CheckStatus::Fail,
            format!("no backup set yet (the policy allows {limit}): run `connect-ops backup-all`"),
        ),
        Some(m) => {
            let age = Duration::from_secs(m.age(now).as_secs());
            let detail = format!(
                "newest set {} taken {} ago ({} files, {} bytes; the policy allows {limit})",
                m.id,
                humantime::format_duration(age),
                m.files.len(),
                m.bytes()
            );
            if age > max_age {
                (
                    CheckStatus::Fail,
                    format!(
                        "{detail}: check the backup-all timer (`systemctl list-timers connect-backup-all`)"
                    ),
                )
            } else {
                (CheckStatus::Pass, detail)
            }
        }
    }
}

/// Every file under `root` with its size, mode, owner and SHA-256 (two programs, whatever the number of
/// files).
async fn hash_tree(host: &dyn Host, root: &str) -> Result<Vec<ManifestFile>> {
    let listing = ["find", root, "-type", "f", "-printf", manifest::LISTING_FORMAT];
    let listed = manifest::parse_listing(&run_checked(host, listing).await?.stdout)?;
    let sums = run_checked(
        host,
        [
            "find",
            root,
            "-type",
            "f",
            "-exec",
            "sha256sum",
            "-z",
            "--",
            "{}",
            "+",
        ],
    )
    .await?;
    let sums: std::collections::HashMap<String, String> = manifest::parse_sha256sum(&sums.stdout, root)?
        .into_iter()
        .collect();
    let mut files = Vec::with_capacity(listed.len());
    for manifest::Listed {
        path,
        bytes,
        mode,
        owner,
    } in listed
    {
        let sha256 = sums.get(&path).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::Failed,
                "backup_set.hash",
                &path,
                "listed but not hashed",
            )
            .with_hint("a file changed while the set was written: take the set again")
        })?;
        files.push(ManifestFile {
            path,
            bytes,
            sha256,
            mode: Some(mode),
            owner: Some(owner),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

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

/// Runs rsync; a missing rsync is [`ErrorKind::NotFound`] naming the package. Sources that do not exist are
/// returned (rsync copies the others and exits 23 with a `link_stat` line for each); any other error fails.
async fn rsync(
    host: &dyn Host,
    argv: Vec<String>,
    source: &str,
) -> Result<(crate::host::Output, Vec<String>)> {
    let command = Command::new(argv).timeout(PROGRAM_DEADLINE);
    let out = host.run(&command).await.map_err(|e| rsync_hint(e, source))?;
    if out.status == Some(127) {
        let e = Error::new(ErrorKind::NotFound, "backup_set.rsync", source, out_tail(&out));
        return Err(rsync_hint(e, source));
    }
    if out.status == Some(23) {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("rsync:")).collect();
        let missing: Vec<String> = errors
            .iter()
            .filter(|l| l.contains("failed: No such file or directory"))
            .filter_map(|l| l.split('"').nth(1))
            .map(|p| p.trim_end_matches('/').to_string())
            .collect();
        // The summary line ("some files/attrs were not transferred") is not an error of its own.
        let others = errors
            .iter()
            .filter(|l| {
                !l.contains("failed: No such file or directory")
                    && !l.contains("some files/attrs were not transferred")
            })
            .count();
        if !missing.is_empty() && others == 0 {
            return Ok((out, missing));
        }
    }
    Ok((out.check(&command)?, Vec::new()))
}

fn rsync_stat(stats: &str, key: &str) -> Option<u64> {
    let line = stats.lines().find(|l| l.starts_with(key))?;
    let value = line[key.len()..].split_whitespace().next()?;
    value.replace(',', "").parse().ok()
}

fn rsync_hint(e: Error, source: &str) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::new(
            ErrorKind::NotFound,
            "backup_set.rsync",
            source,
            e.message().to_string(),
        )
        .with_hint("install rsync on the server (`apt-get install rsync`)")
    } else {
        e
    }
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
    fn rsync_stats_are_read_with_thousands_separators() {
        let stats =
            "Number of files: 1,204 (reg: 1,200, dir: 4)\nNumber of regular files transferred: 1,003\n";
        assert_eq!(
            rsync_stat(stats, "Number of regular files transferred:"),
            Some(1003)
        );
        assert_eq!(rsync_stat(stats, "Number of files:"), Some(1204));
        assert_eq!(rsync_stat("", "Number of files:"), None);
    }

    #[test]
    fn the_age_verdict_fails_without_a_set_and_past_the_policy() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(age_verdict(None, now, day).0, CheckStatus::Fail);
        let m = BackupManifest {
            version: 1,
            id: set_id(now - Duration::from_secs(3600)),
            taken_at_unix: 1_780_000_000 - 3600,
            taken_at: String::new(),
            took_ms: 0,
            source: "local".into(),
            parts: vec![],
            missing: vec![],
            files: vec![],
        };
        let (status, detail) = age_verdict(Some(&m), now, day);
        assert_eq!(status, CheckStatus::Pass, "{detail}");
        assert!(detail.contains("1h ago"), "{detail}");
        let (status, detail) = age_verdict(Some(&m), now, Duration::from_secs(1800));
        assert_eq!(status, CheckStatus::Fail);
        assert!(detail.contains("the policy allows 30m"), "{detail}");
    }

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
