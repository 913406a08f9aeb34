//! The modes of what must stay private: the Docker socket (root to whoever can write it), HAProxy's admin
//! socket (traffic), the backups (every row of the database), the journal and lock, and secrets files.
//! Read with `find` through the [`Host`], so a tree is one program run.

use std::time::Duration;

use super::{AuditCheck, Finding, SafeFix, Severity};
use crate::error::{Error, ErrorKind};
use crate::host::{Command, Host};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Entries named in a finding's message; the rest are counted.
const NAMED: usize = 5;

/// One entry `find -printf '%m %y %p\n'` printed: octal mode, type letter, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Permission bits.
    pub(crate) mode: u32,
    /// `d` directory, `f` file, `s` socket, `l` symlink…
    pub(crate) kind: char,
    /// The path.
    pub(crate) path: String,
}

/// Parses `find -printf '%m %y %p\n'` output.
pub(crate) fn parse_find(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
            let kind = parts.next()?.chars().next()?;
            let path = parts.next()?.to_string();
            Some(Entry { mode, kind, path })
        })
        .collect()
}

enum Found {
    Missing,
    Entries(Vec<Entry>),
}

/// The entries under `path` (itself included, a symlink given as `path` followed) with any of `bits` set.
async fn find_with_bits(host: &dyn Host, path: &str, bits: u32, depth: Option<u32>) -> Result<Found, Error> {
    let mut argv = vec!["find".to_string(), "-H".to_string(), path.to_string()];
    if let Some(d) = depth {
        argv.extend(["-maxdepth".to_string(), d.to_string()]);
    }
    argv.extend([
        "-perm".to_string(),
        format!("/{bits:03o}"),
        "-printf".to_string(),
        "%m %y %p\\n".to_string(),
    ]);
    let command = Command::new(argv).timeout(TIMEOUT);
    let out = host.run(&command).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.success() {
        if stderr.contains("No such file or directory") && out.stdout.is_empty() {
            return Ok(Found::Missing);
        }
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            "audit.files",
            path,
            format!("`find` exited {:?}: {}", out.status, stderr.trim()),
        )
        .with_hint("run the audit as the files' owner or root"));
    }
    Ok(Found::Entries(parse_find(&out.stdout_text())))
}

fn listing(entries: &[Entry]) -> String {
    let mut names: Vec<String> = entries
        .iter()
        .take(NAMED)
        .map(|e| format!("{} ({:o})", e.path, e.mode))
        .collect();
    if entries.len() > NAMED {
        names.push(format!("and {} more", entries.len() - NAMED));
    }
    names.join(", ")
}

/// A socket whose others bits are set: anyone on the server can use it.
pub(crate) fn judge_socket(check: AuditCheck, path: &str, entries: &[Entry]) -> Option<Finding> {
    let e = entries.first()?;
    let (severity, what) = match check {
        AuditCheck::DockerSocket => (
            Severity::Critical,
            "any user on the server can run a root container",
        ),
        _ => (
            Severity::High,
            "any user on the server can move traffic and stop servers",
        ),
    };
    Some(
        Finding::weak(
            check,
            severity,
            path,
            format!("mode {:o}: {what}", e.mode),
            "chmod o-rwx (and set the mode where the socket is made: Docker's `-G`/socket unit, HAProxy's \
             `stats socket … mode 600`)",
        )
        .with_safe_fix(SafeFix::RemoveModeBits {
            path: path.to_string(),
            bits: 0o007,
            recursive: false,
        }),
    )
}

/// A private tree with group or others bits set.
pub(crate) fn judge_private(check: AuditCheck, path: &str, entries: &[Entry]) -> Option<Finding> {
    if entries.is_empty() {
        return None;
    }
    let others = entries.iter().any(|e| e.mode & 0o007 != 0);
    let severity = match (check, others) {
        (AuditCheck::JournalFiles, false) => Severity::Low,
        (AuditCheck::JournalFiles, true) => Severity::Medium,
        (_, false) => Severity::Medium,
        (_, true) => Severity::High,
    };
    let who = if others {
        "every user on the server"
    } else {
        "the owner's group"
    };
    let what = match check {
        AuditCheck::BackupFiles => "the backups hold every row of the database",
        AuditCheck::SecretFiles => "it holds secrets",
        _ => "the journal and lock say what runs and who deploys",
    };
    let recursive = entries.iter().any(|e| e.kind == 'd');
    Some(
        Finding::weak(
            check,
            severity,
            path,
            format!("{who} can reach {}: {what}", listing(entries)),
            format!("chmod {}go-rwx {path}", if recursive { "-R " } else { "" }),
        )
        .with_safe_fix(SafeFix::RemoveModeBits {
            path: path.to_string(),
            bits: 0o077,
            recursive,
        }),
    )
}

/// The socket and private-path checks (also usable on their own, e.g. with `LocalHost` for this machine's files).
pub async fn audit_files(
    host: &dyn Host,
    sockets: &[(AuditCheck, String)],
    private: &[(AuditCheck, String)],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (check, path) in sockets {
        match find_with_bits(host, path, 0o007, Some(0)).await {
            Ok(Found::Entries(e)) => findings.extend(judge_socket(*check, path, &e)),
            Ok(Found::Missing) => findings.push(Finding::note(
                *check,
                path.as_str(),
                "no socket there: nothing to check",
                "if it lives elsewhere, set its path in connect.toml",
            )),
            Err(e) => findings.push(Finding::not_checked(*check, path.as_str(), &e)),
        }
    }
    for (check, path) in private {
        match find_with_bits(host, path, 0o077, None).await {
            Ok(Found::Entries(e)) => findings.extend(judge_private(*check, path, &e)),
            Ok(Found::Missing) => {}
            Err(e) => findings.push(Finding::not_checked(*check, path.as_str(), &e)),
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_output_parses_and_others_bits_weigh_more() {
        let e = parse_find("755 d /srv/backups\n644 f /srv/backups/a b.dump\n600 f /srv/backups/ok\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[1].mode, e[1].kind, e[1].path.as_str()),
            (0o644, 'f', "/srv/backups/a b.dump")
        );
        let f = judge_private(AuditCheck::BackupFiles, "/srv/backups", &e[..2]).expect("finding");
        assert_eq!(f.severity, Severity::High);
        assert!(matches!(
            f.safe_fix,
            Some(SafeFix::RemoveModeBits {
                recursive: true,
                bits: 0o077,
                ..
            })
        ));
        let group = parse_find("640 f /srv/state/journal.json\n");
        let f = judge_private(AuditCheck::JournalFiles, "/srv/state", &group).expect("finding");
        assert_eq!(f.severity, Severity::Low);
        assert!(judge_private(AuditCheck::SecretFiles, "/x", &[]).is_none());
    }
}
