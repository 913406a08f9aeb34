//! Writing a set: [`SetWriter`] takes the parts (files copied with `rsync -R`, directories synced with
//! `--link-dest` against the previous set), then hashes everything and writes the manifest. Separate from
//! the sets already on disk (`sets.rs`) because only this side runs `rsync` and `sha256sum`.

use std::time::{Instant, SystemTime};

use super::manifest;
use super::{
    BackupManifest, MANIFEST, MANIFEST_VERSION, ManifestFile, PROGRAM_DEADLINE, PartSummary, check_part,
    checked_dir, list_sets, out_tail, private_dir, run, run_checked, set_id,
};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt, PutOptions};

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
}
