//! The journal: which color is live, which release each color runs, and every operation with its steps.
//! Stored on the server beside the deploy lock, so any later process (or person) can read it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub(crate) use super::clock::now_unix_ms;
use super::intent::Intent;
use super::lock::Fence;
use crate::database::{BackupRecord, RestorePoint};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt, PutOptions};
use crate::model::{Color, Release};
use crate::vocabulary::{OperationKind, Outcome, Step, StepStatus};

/// The journal format this code writes and reads.
pub const JOURNAL_FORMAT: u32 = 1;
/// Operations kept in the journal; older ones are dropped.
const HISTORY_KEPT: usize = 100;

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Which.
    pub step: Step,
    /// How long, in milliseconds.
    pub duration_ms: u64,
    /// Ok, skipped or failed.
    pub status: StepStatus,
    /// A summary, or the error.
    pub detail: String,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// Unique id (`20261127T042800Z-v2`).
    pub id: String,
    /// What it was.
    pub kind: OperationKind,
    /// The release it deployed, if any.
    pub release: Option<Release>,
    /// The live color before.
    pub live_before: Option<Color>,
    /// The live color after.
    pub live_after: Option<Color>,
    /// Who ran it.
    pub holder: String,
    /// Unix milliseconds when it began.
    pub started_unix_ms: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
    /// The restore point made before its migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<RestorePoint>,
    /// The verified backup taken before its migration (or on every deploy, as the policy says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRecord>,
    /// It ran a fleet's host as a worker (one color taking jobs, no server in HAProxy's rotation): how a host
    /// made a web host in the config since is told from one whose servers are merely out of rotation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub as_worker: bool,
}

impl OperationRecord {
    /// The record of `step`, if the operation reached it.
    pub fn step(&self, step: Step) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step)
    }
}

/// What runs on a color.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The release.
    pub release: Release,
    /// The container's name.
    pub container: String,
    /// Unix milliseconds when it was started.
    pub since_unix_ms: u64,
}

/// The recorded state of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Always [`JOURNAL_FORMAT`].
    pub format: u32,
    /// The color taking traffic.
    pub live: Option<Color>,
    /// Both colors serve (the runbook's balanced mode).
    #[serde(default)]
    pub balanced: bool,
    /// What each color runs.
    pub slots: BTreeMap<Color, SlotRecord>,
    /// When the standby is to be retired (unix milliseconds), under a retire-after policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_until_unix_ms: Option<u64>,
    /// What the operation holding the lock is about to do, written before its first irreversible action
    /// (start a container, switch, remove) and cleared when it records its outcome. Found by a later
    /// operation, it says that one was interrupted, and what to finish or undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
    /// The maintenance page an operation turned on, recorded before it did: found by a later operation, it
    /// says the page's owner died with the page on, and the later operation turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceRecord>,
    /// Operations, oldest first.
    pub history: Vec<OperationRecord>,
}

/// Who turned the maintenance page on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceRecord {
    /// The operation's id.
    pub operation: String,
    /// Who runs it.
    pub holder: String,
    /// What the maintenance is for (`database restore`).
    pub reason: String,
    /// Unix milliseconds when the page was turned on.
    pub since_unix_ms: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            format: JOURNAL_FORMAT,
            live: None,
            balanced: false,
            slots: BTreeMap::new(),
            standby_until_unix_ms: None,
            intent: None,
            maintenance: None,
            history: Vec::new(),
        }
    }
}

impl Journal {
    /// Appends an operation, keeping the last hundred.
    pub fn push(&mut self, record: OperationRecord) {
        self.history.push(record);
        let excess = self.history.len().saturating_sub(HISTORY_KEPT);
        self.history.drain(..excess);
    }

    /// Adds `records` (another journal's history: a lost server's, on the server recovered in its place)
    /// that this history lacks (by id), in the order they started, keeping the last hundred. Returns how
    /// many were added. Only the history: the live color and the slots describe containers this server
    /// does not have.
    pub fn merge_history(&mut self, records: &[OperationRecord]) -> usize {
        let known: std::collections::HashSet<&str> = self.history.iter().map(|r| r.id.as_str()).collect();
        let new: Vec<OperationRecord> = records
            .iter()
            .filter(|r| !known.contains(r.id.as_str()))
            .cloned()
            .collect();
        let added = new.len();
        self.history.extend(new);
        // Stable: records that started in the same millisecond keep their order.
        self.history.sort_by_key(|r| r.started_unix_ms);
        let excess = self.history.len().saturating_sub(HISTORY_KEPT);
        self.history.drain(..excess);
        added
    }

    /// The standby color, when the live color has a running partner that takes no traffic.
    pub fn standby(&self) -> Option<Color> {
        let live = self.live?;
        (!self.balanced && self.slots.contains_key(&live.other())).then(|| live.other())
    }

    /// The newest release with this version that the journal knows.
    pub fn find_release(&self, version: &str) -> Option<Release> {
        let in_slots = self.slots.values().map(|s| &s.release);
        let in_history = self.history.iter().rev().filter_map(|r| r.release.as_ref());
        in_slots.chain(in_history).find(|r| r.version == version).cloned()
    }

    /// Parses a journal: [`ErrorKind::Unsupported`] for one written in a newer format by a newer version
    /// (left exactly as it is), [`ErrorKind::Corrupt`] for one that does not parse.
    pub fn from_json(bytes: &[u8]) -> Result<Journal> {
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let corrupt = |why: String| Error::new(ErrorKind::Corrupt, "journal.parse", "journal", why);
        let format = serde_json::from_slice::<Format>(bytes)
            .map_err(|e| corrupt(e.to_string()))?
            .format;
        if format > JOURNAL_FORMAT {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "journal.parse",
                "journal",
                format!("written in format {format} by a newer Connect Ops; this version reads format {JOURNAL_FORMAT}"),
            )
            .with_hint("run the newer Connect Ops that wrote it (the journal is left untouched)"));
        }
        let journal: Journal = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if journal.format != JOURNAL_FORMAT {
            return Err(corrupt(format!(
                "format {} is not {JOURNAL_FORMAT}",
                journal.format
            )));
        }
        Ok(journal)
    }
}

/// Reads and writes the journal and the lock on the server.
#[derive(Debug, Clone)]
pub(crate) struct JournalStore {
    pub(super) host: Arc<dyn Host>,
    journal_path: String,
    pub(super) lock_path: String,
}

impl JournalStore {
    pub(crate) fn new(host: Arc<dyn Host>, state_dir: &str) -> JournalStore {
        let dir = state_dir.trim_end_matches('/');
        JournalStore {
            host,
            journal_path: format!("{dir}/journal.json"),
            lock_path: format!("{dir}/deploy.lock"),
        }
    }

    pub(crate) fn journal_path(&self) -> &str {
        &self.journal_path
    }

    /// The journal; an empty one when none was written yet. Read-only: a journal that cannot be read is
    /// reported and left where it is.
    pub(crate) async fn load(&self) -> Result<Journal> {
        let Some(bytes) = self.host.read_file(&self.journal_path).await? else {
            return Ok(Journal::default());
        };
        Journal::from_json(&bytes).map_err(|e| {
            let e = Error::new(
                e.kind(),
                "journal.load",
                &self.journal_path,
                e.message().to_string(),
            );
            match e.kind() {
                ErrorKind::Corrupt => e.with_hint(
                    "inspect it; adopting the observed state keeps it aside and starts a new journal",
                ),
                _ => e.with_hint("run the newer Connect Ops that wrote it (the journal is left untouched)"),
            }
        })
    }

    /// Under the lock, for adopting: like [`JournalStore::load`], but a journal that does not parse is moved
    /// aside (never overwritten) and an empty one returned with the place it was kept. A newer format is
    /// still refused.
    pub(crate) async fn load_or_set_aside(&self) -> Result<(Journal, Option<String>)> {
        match self.load().await {
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                let aside = format!("{}.corrupt-{}", self.journal_path, now_unix_ms());
                self.host.rename(&self.journal_path, &aside).await?;
                Ok((Journal::default(), Some(aside)))
            }
            other => other.map(|j| (j, None)),
        }
    }

    /// Removes the temporary files a holder killed while writing the journal or the lock left in the state
    /// directory (the host writes a hidden temporary, then renames it). Only a lock holder writes there, and
    /// we hold the lock.
    pub(crate) async fn remove_leftover_temps(&self) -> Result<()> {
        let (dir, journal) = self
            .journal_path
            .rsplit_once('/')
            .unwrap_or((".", self.journal_path.as_str()));
        let lock = self.lock_path.rsplit('/').next().unwrap_or("deploy.lock");
        let dir = if dir.is_empty() { "/" } else { dir };
        let find = Command::new([
            "find".to_string(),
            dir.to_string(),
            "-maxdepth".into(),
            "1".into(),
            "-type".into(),
            "f".into(),
            "(".into(),
            "-name".into(),
            format!(".{journal}.tmp-*"),
            "-o".into(),
            "-name".into(),
            format!(".{lock}*.tmp-*"),
            ")".into(),
            "-exec".into(),
            "rm".into(),
            "-f".into(),
            "{}".into(),
            "+".into(),
        ]);
        self.host.run_checked(&find).await.map(drop)
    }

    /// Writes the journal atomically, if the deploy lock is still ours.
    pub(crate) async fn save(&self, journal: &Journal, fence: &Fence) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(journal).map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "journal.save",
                &self.journal_path,
                e.to_string(),
            )
        })?;
        self.fence(fence).await?;
        self.host
            .write_file(
                &self.journal_path,
                bytes,
                PutOptions {
                    mode: 0o600,
                    create_new: false,
                },
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
