//! The sets already in a directory: listing them (only names that are sets), reading a manifest, keeping the
//! newest N, and the preflight's verdict on the newest one's age. Read and removal only: writing a set is
//! `writer.rs`.

use std::time::{Duration, SystemTime};

use super::{BackupManifest, MANIFEST, PROGRAM_DEADLINE, checked_dir, is_set_id, out_tail, run};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt};
use crate::vocabulary::CheckStatus;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup_set::set_id;

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
}
