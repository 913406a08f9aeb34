//! `pgbackrest info --output=json`: the backups in the repository and the WAL range archived.

use std::time::{Duration, UNIX_EPOCH};

use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RecoveryTarget;
use super::target::{parse_lsn, parse_time};

/// One base backup in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackrestBackup {
    /// pgBackRest's label (`20261206-081500F`).
    pub label: String,
    /// `full`, `diff` or `incr`.
    pub kind: String,
    /// When it started and finished (unix seconds).
    pub start_unix: u64,
    /// When it finished.
    pub stop_unix: u64,
    /// The WAL position where it started (`0/2000028`).
    pub lsn_start: Option<String>,
    /// The WAL position where it became consistent: the earliest point it can recover to.
    pub lsn_stop: Option<String>,
    /// The database's size it copied, in bytes.
    pub size_bytes: u64,
    /// What it takes in the repository (compressed, and only the changes for diff/incr).
    pub repo_bytes: u64,
    /// The first and last WAL segment it needs.
    pub wal_start: Option<String>,
    /// The last WAL segment it needs.
    pub wal_stop: Option<String>,
}

/// The stanza's state in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackrestInfo {
    /// The stanza.
    pub stanza: String,
    /// pgBackRest's status code (0 ok, 2 no valid backups…) and message.
    pub status_code: i64,
    /// Its message.
    pub status_message: String,
    /// The backups, oldest first.
    pub backups: Vec<BackrestBackup>,
    /// The oldest WAL segment archived.
    pub wal_min: Option<String>,
    /// The newest WAL segment archived.
    pub wal_max: Option<String>,
    /// The system identifier of the database the stanza backs up (its newest `db` entry): a cluster whose
    /// own differs is another database, e.g. a fresh server's.
    #[serde(default)]
    pub system_id: Option<String>,
}

impl BackrestInfo {
    /// Parses the JSON for `stanza` (pgBackRest prints an array of stanzas).
    pub fn parse(stanza: &str, json: &[u8]) -> Result<BackrestInfo> {
        let op = "pitr.info";
        let corrupt = |why: String| {
            Error::new(ErrorKind::Corrupt, op, stanza, why).with_hint("is `pgbackrest` pgBackRest 2.x?")
        };
        let all: Value = serde_json::from_slice(json).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let entry = all
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"].as_str() == Some(stanza)))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    op,
                    stanza,
                    "pgbackrest info lists no such stanza",
                )
                .with_hint("run the continuous backup setup (stanza-create) first")
            })?;
        let text = |v: &Value| v.as_str().map(str::to_string);
        let backups = entry["backup"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|b| b["error"].as_bool() != Some(true))
                    .map(|b| BackrestBackup {
                        label: b["label"].as_str().unwrap_or_default().to_string(),
                        kind: b["type"].as_str().unwrap_or_default().to_string(),
                        start_unix: b["timestamp"]["start"].as_u64().unwrap_or(0),
                        stop_unix: b["timestamp"]["stop"].as_u64().unwrap_or(0),
                        lsn_start: text(&b["lsn"]["start"]),
                        lsn_stop: text(&b["lsn"]["stop"]),
                        size_bytes: b["info"]["size"].as_u64().unwrap_or(0),
                        repo_bytes: b["info"]["repository"]["delta"].as_u64().unwrap_or(0),
                        wal_start: text(&b["archive"]["start"]),
                        wal_stop: text(&b["archive"]["stop"]),
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let archive = entry["archive"].as_array().and_then(|a| a.last());
        Ok(BackrestInfo {
            stanza: stanza.to_string(),
            status_code: entry["status"]["code"].as_i64().unwrap_or(-1),
            status_message: entry["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            backups,
            wal_min: archive.and_then(|a| text(&a["min"])),
            wal_max: archive.and_then(|a| text(&a["max"])),
            system_id: entry["db"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|d| d["system-id"].as_u64())
                .map(|id| id.to_string()),
        })
    }

    /// The newest full backup.
    pub fn last_full(&self) -> Option<&BackrestBackup> {
        self.backups.iter().rev().find(|b| b.kind == "full")
    }

    /// The backup a recovery to `target` starts from: the newest that became consistent before the target.
    /// Chosen here, before anything is stopped, so that a target no backup reaches is refused while the
    /// cluster still runs (pgBackRest would find out only after the data directory was replaced).
    pub fn backup_for(&self, target: &RecoveryTarget) -> Result<&BackrestBackup> {
        let op = "pitr.recover";
        let none = |why: String| {
            Error::new(ErrorKind::NotFound, op, &self.stanza, why)
                .with_hint("take a full backup first (continuous backups need one base backup to start from)")
        };
        let newest = self
            .backups
            .last()
            .ok_or_else(|| none(format!("no base backup to recover {target} from")))?;
        let fits = |keep: &dyn Fn(&BackrestBackup) -> bool, end: fn(&BackrestBackup) -> String| {
            self.backups.iter().rev().find(|b| keep(b)).ok_or_else(|| {
                let oldest = &self.backups[0];
                Error::new(
                    ErrorKind::NotFound,
                    op,
                    &self.stanza,
                    format!(
                        "no backup ended before {target}: the oldest kept, {}, ended at {}",
                        oldest.label,
                        end(oldest)
                    ),
                )
                .with_hint("recover to a later target (or to the latest): a recovery starts from a base backup that ended before its target, and the retention keeps only the newest")
            })
        };
        match target {
            RecoveryTarget::Latest | RecoveryTarget::RestorePoint { lsn: None, .. } => Ok(newest),
            RecoveryTarget::RestorePoint { lsn: Some(lsn), .. } => {
                let want = parse_lsn(lsn)?;
                fits(
                    &|b| {
                        b.lsn_stop
                            .as_deref()
                            .and_then(|l| parse_lsn(l).ok())
                            .is_some_and(|s| s <= want)
                    },
                    |b| b.lsn_stop.clone().unwrap_or_else(|| "an unknown LSN".into()),
                )
            }
            RecoveryTarget::Time(t) => {
                // pgBackRest's rule: the stop time (whole seconds, taken after PostgreSQL's backup stop) before
                // the target's whole second; a backup that stopped within that second may not be consistent yet.
                let at = parse_time(t)?.unix;
                fits(&|b| (b.stop_unix as i64) < at, |b| {
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(b.stop_unix))
                        .to_string()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000007","min":"000000010000000000000003"}],
      "backup":[{"archive":{"start":"000000010000000000000003","stop":"000000010000000000000003"},"error":false,
        "info":{"delta":30000000,"repository":{"delta":4000000,"size":4000000},"size":30000000},
        "label":"20261206-081500F","lsn":{"start":"0/3000028","stop":"0/3000100"},"prior":null,"reference":null,
        "timestamp":{"start":1796544900,"stop":1796544905},"type":"full"},
        {"archive":{"start":"000000010000000000000005","stop":"000000010000000000000005"},"error":false,
        "info":{"delta":10000,"repository":{"delta":2000,"size":4002000},"size":30010000},
        "label":"20261206-081500F_20261206-082000I","lsn":{"start":"0/5000028","stop":"0/5000100"},
        "timestamp":{"start":1796545200,"stop":1796545202},"type":"incr"}],
      "cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7441200000000000001,"version":"15"}],
      "name":"connect","status":{"code":0,"message":"ok"}}]"#;

    #[test]
    fn parses_backups_and_the_archive_range() {
        let info = BackrestInfo::parse("connect", SAMPLE.as_bytes()).expect("parse");
        assert_eq!(info.status_code, 0);
        assert_eq!(info.backups.len(), 2);
        assert_eq!(
            info.last_full().map(|b| b.label.as_str()),
            Some("20261206-081500F")
        );
        assert_eq!(info.backups[1].kind, "incr");
        assert_eq!(info.backups[1].repo_bytes, 2000);
        assert_eq!(info.backups[0].lsn_stop.as_deref(), Some("0/3000100"));
        assert_eq!(info.wal_max.as_deref(), Some("000000010000000000000007"));
        assert_eq!(info.system_id.as_deref(), Some("7441200000000000001"));
    }

    #[test]
    fn a_recovery_starts_from_the_newest_backup_that_ended_before_its_target() {
        let info = BackrestInfo::parse("connect", SAMPLE.as_bytes()).expect("parse");
        let label = |t: RecoveryTarget| info.backup_for(&t).map(|b| b.label.clone());
        let (full, incr) = ("20261206-081500F", "20261206-081500F_20261206-082000I");
        assert_eq!(label(RecoveryTarget::Latest).unwrap(), incr);
        // The incremental stopped at 1796545202 = 2026-12-06 08:20:02 UTC.
        assert_eq!(
            label(RecoveryTarget::Time("2026-12-06 08:20:03+00".into())).unwrap(),
            incr
        );
        assert_eq!(
            label(RecoveryTarget::Time("2026-12-06 08:20:02.9+00".into())).unwrap(),
            full
        );
        let early = info
            .backup_for(&RecoveryTarget::Time("2026-12-06 08:15:05+00".into()))
            .unwrap_err();
        assert_eq!(early.kind(), ErrorKind::NotFound);
        assert!(
            early.message().contains("ended at 2026-12-06T08:15:05Z"),
            "{early}"
        );
        let point = |lsn: &str| RecoveryTarget::RestorePoint {
            name: "connect-d1".into(),
            lsn: Some(lsn.into()),
        };
        assert_eq!(label(point("0/4000000")).unwrap(), full);
        assert_eq!(label(point("0/5000100")).unwrap(), incr);
        assert!(
            label(point("0/2000000"))
                .unwrap_err()
                .message()
                .contains("0/3000100")
        );
        let empty = BackrestInfo {
            backups: vec![],
            ..info.clone()
        };
        assert_eq!(
            empty.backup_for(&RecoveryTarget::Latest).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn refuses_garbage_and_other_stanzas() {
        assert_eq!(
            BackrestInfo::parse("connect", b"nope").unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            BackrestInfo::parse("other", SAMPLE.as_bytes())
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    }
}
