//! The journal: which color is live, which release each color runs, and every operation with its steps.
//! Stored on the server beside the deploy lock, so any later process (or person) can read it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::events::Step;
use crate::database::RestorePoint;
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Host, HostExt, PutOptions};
use crate::model::{Color, Release};

/// The journal format this code writes and reads.
pub const JOURNAL_FORMAT: u32 = 1;
/// Operations kept in the journal; older ones are dropped.
const HISTORY_KEPT: usize = 100;

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// A blue-green deploy of a new release.
    Deploy,
    /// Traffic back to the warm standby.
    InstantRollback,
    /// A release from the journal redeployed through the health-gated path.
    FullRollback,
    /// The observed state recorded as the truth.
    Adopt,
    /// A standby stopped after its window.
    Retire,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Succeeded,
    /// A step failed; where traffic went is in the record's `live_after`.
    Failed {
        /// The step.
        step: Step,
        /// The error's category.
        kind: ErrorKind,
        /// The error.
        error: String,
    },
    /// Verification failed after the switch, and traffic went back to the standby.
    RolledBack {
        /// The step that failed.
        step: Step,
        /// The error's category.
        kind: ErrorKind,
        /// The error.
        error: String,
    },
}

impl Outcome {
    /// The step that failed, `None` when the operation succeeded.
    pub fn failed_step(&self) -> Option<Step> {
        match self {
            Outcome::Failed { step, .. } | Outcome::RolledBack { step, .. } => Some(*step),
            Outcome::Succeeded => None,
        }
    }
}

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Which.
    pub step: Step,
    /// How long, in milliseconds.
    pub duration_ms: u64,
    /// `ok`, `skipped` or `failed`.
    pub status: String,
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
    /// Operations, oldest first.
    pub history: Vec<OperationRecord>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            format: JOURNAL_FORMAT,
            live: None,
            balanced: false,
            slots: BTreeMap::new(),
            standby_until_unix_ms: None,
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

    /// Parses a journal, refusing other formats.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<Journal, String> {
        let journal: Journal = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if journal.format != JOURNAL_FORMAT {
            return Err(format!("format {} is not {JOURNAL_FORMAT}", journal.format));
        }
        Ok(journal)
    }
}

/// Who holds the deploy lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Who (`deploy@ci-runner pid 4242`).
    pub holder: String,
    /// What for.
    pub operation: OperationKind,
    /// Unix milliseconds when it was taken.
    pub since_unix_ms: u64,
}

/// Reads and writes the journal and the lock on the server.
#[derive(Debug, Clone)]
pub(crate) struct JournalStore {
    host: Arc<dyn Host>,
    journal_path: String,
    lock_path: String,
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

    /// The journal; an empty one when none was written yet. A damaged journal is moved aside (never
    /// overwritten) and reported.
    pub(crate) async fn load(&self) -> Result<Journal> {
        let Some(bytes) = self.host.read_file(&self.journal_path).await? else {
            return Ok(Journal::default());
        };
        match Journal::from_json(&bytes) {
            Ok(j) => Ok(j),
            Err(why) => {
                let aside = format!("{}.corrupt-{}", self.journal_path, now_unix_ms());
                self.host.rename(&self.journal_path, &aside).await?;
                Err(Error::new(
                    ErrorKind::Corrupt,
                    "journal.load",
                    &self.journal_path,
                    format!("unreadable ({why}); kept aside as {aside}"),
                )
                .with_hint("inspect the kept file; then adopt the observed state to start a new journal"))
            }
        }
    }

    pub(crate) async fn save(&self, journal: &Journal) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(journal).map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "journal.save",
                &self.journal_path,
                e.to_string(),
            )
        })?;
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

    /// Takes the deploy lock, or says who holds it and since when.
    pub(crate) async fn lock(&self, holder: &str, operation: OperationKind) -> Result<()> {
        let info = LockInfo {
            holder: holder.to_string(),
            operation,
            since_unix_ms: now_unix_ms(),
        };
        let bytes = serde_json::to_vec(&info).expect("lock info serializes");
        match self
            .host
            .write_file(
                &self.lock_path,
                bytes,
                PutOptions {
                    mode: 0o600,
                    create_new: true,
                },
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                let held = match self.holder().await {
                    Ok(Some(h)) => format!(
                        "held by {} for {:?} since {} ({} s ago)",
                        h.holder,
                        h.operation,
                        h.since_unix_ms,
                        now_unix_ms().saturating_sub(h.since_unix_ms) / 1000
                    ),
                    Ok(None) => "held (released while we looked; try again)".to_string(),
                    Err(e) => format!("held by an unreadable lock ({e})"),
                };
                Err(Error::new(ErrorKind::Conflict, "deploy.lock", &self.lock_path, format!("another operation is running: {held}"))
                    .with_hint("wait for it to finish; if its process is gone, break the lock explicitly (break_lock / --break-lock)"))
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn holder(&self) -> Result<Option<LockInfo>> {
        let Some(bytes) = self.host.read_file(&self.lock_path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                "deploy.lock",
                &self.lock_path,
                format!("unreadable lock: {e}"),
            )
            .with_hint("break the lock explicitly")
        })
    }

    pub(crate) async fn unlock(&self) -> Result<()> {
        self.host.remove_file(&self.lock_path).await
    }

    /// Removes the lock whoever holds it; returns who held it.
    pub(crate) async fn break_lock(&self) -> Result<Option<LockInfo>> {
        let holder = self.holder().await.unwrap_or(None);
        match self.host.remove_file(&self.lock_path).await {
            Ok(()) => Ok(holder),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
