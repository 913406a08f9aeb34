//! The words every part of Connect Ops shares: the runbook's steps, what an operation was and how it ended,
//! and the verdicts of checks. Events, the journal, the in-memory backends and the host preflight all import
//! this module, and it imports none of them, so no module depends on one that depends back on it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// A step of a deploy or rollback, in the runbook's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// Take the deploy lock.
    Lock,
    /// Compare the journal with what the router and the runtime show, and finish or undo what an
    /// interrupted operation left.
    Reconcile,
    /// Server, disks, database and cache (runbook §1).
    Preflight,
    /// Build the release where configured and send the layers the server lacks, verified (runbook §2's
    /// build and upload); a no-op when the server has the image. Only when a release source is given.
    Ship,
    /// The release's image is on the server (runbook §2).
    StageImage,
    /// The migration table shows nothing failed or unfinished, and the release's pending migrations hold
    /// nothing the old color cannot survive (expand/contract).
    CheckMigrations,
    /// A verified backup (dump, checksum, listing) before the migration.
    Backup,
    /// A restore point before the migration.
    RestorePoint,
    /// The migration command in a one-off container of the new release (runbook §3).
    Migrate,
    /// Start the idle color on the new release (runbook §4 step 1).
    StartIdle,
    /// Wait until it is healthy (runbook §4 step 2).
    HealthGate,
    /// Move a share of the traffic to it by weight, step by step, each step watched (canary policy).
    Canary,
    /// Move traffic to it (runbook §4 step 3).
    Switch,
    /// Let the old color finish its requests.
    Drain,
    /// Post-deployment checks (runbook §5).
    Verify,
    /// Watch the new color's figures for a window against the old color's, rolling back on a breach.
    Watch,
    /// Move traffic back after a failure, to a single healthy live color.
    SwitchBack,
    /// The old color also takes the new release and traffic (runbook §4 steps 4-6).
    Balance,
    /// Stop and remove a standby whose window has passed.
    Retire,
    /// Remove release images beyond the newest N, never the live or standby one (after a deploy succeeded).
    Prune,
    /// One of the operator's hooks.
    Hook,
    /// The site answers its maintenance page while an operation (a database restore) runs.
    Maintenance,
    /// Write the journal.
    Record,
}

impl Step {
    /// The step's name as in journals and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Lock => "lock",
            Step::Reconcile => "reconcile",
            Step::Preflight => "preflight",
            Step::Ship => "ship",
            Step::StageImage => "stage_image",
            Step::CheckMigrations => "check_migrations",
            Step::Backup => "backup",
            Step::RestorePoint => "restore_point",
            Step::Migrate => "migrate",
            Step::StartIdle => "start_idle",
            Step::HealthGate => "health_gate",
            Step::Canary => "canary",
            Step::Switch => "switch",
            Step::Drain => "drain",
            Step::Verify => "verify",
            Step::Watch => "watch",
            Step::SwitchBack => "switch_back",
            Step::Balance => "balance",
            Step::Retire => "retire",
            Step::Prune => "prune",
            Step::Hook => "hook",
            Step::Maintenance => "maintenance",
            Step::Record => "record",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How one step of an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It did what it was for.
    Ok,
    /// It was not needed (no migration configured, no old color…).
    Skipped,
    /// It failed; the record's detail holds the error.
    Failed,
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            StepStatus::Ok => "ok",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
        })
    }
}

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
    /// Old release images removed (never the live or standby one); holds the lock, is not recorded.
    Prune,
    /// Work of the caller's own under the deploy lock between operations: behind the maintenance page
    /// ([`crate::engine::Deployer::with_maintenance`]), or with the lock alone (`Deployer::hold_lock`: a
    /// database restore, a change by hand).
    Maintenance,
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OperationKind::Deploy => "deploy",
            OperationKind::InstantRollback => "instant rollback",
            OperationKind::FullRollback => "full rollback",
            OperationKind::Adopt => "adopt",
            OperationKind::Retire => "retire",
            OperationKind::Prune => "prune",
            OperationKind::Maintenance => "maintenance",
        })
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Done.
    Succeeded,
    /// A step failed and traffic never moved to the new release; where traffic is, is the record's
    /// `live_after`.
    Failed {
        /// The step.
        step: Step,
        /// The error's category.
        kind: ErrorKind,
        /// The error.
        error: String,
    },
    /// Traffic had moved to the new release, a later step failed, and traffic really went back to the
    /// standby (seen on the router, not assumed).
    RolledBack {
        /// The step that failed.
        step: Step,
        /// The error's category.
        kind: ErrorKind,
        /// The error.
        error: String,
    },
    /// The operation's process stopped before it could finish (killed, cancelled, lease lost); the next
    /// operation found its intent in the journal and undid or finished it.
    Interrupted {
        /// What the next operation found and did.
        resolution: String,
    },
}

impl Outcome {
    /// The step that failed, `None` when the operation succeeded or was interrupted.
    pub fn failed_step(&self) -> Option<Step> {
        match self {
            Outcome::Failed { step, .. } | Outcome::RolledBack { step, .. } => Some(*step),
            Outcome::Succeeded | Outcome::Interrupted { .. } => None,
        }
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Fine.
    Pass,
    /// Worth a look; does not stop a deploy.
    Warn,
    /// Stops a deploy.
    Fail,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked (`disk /opt/connect`).
    pub name: String,
    /// The verdict.
    pub status: CheckStatus,
    /// What was seen.
    pub detail: String,
}

/// A list of checks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckReport {
    /// The checks in the order they ran.
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// Adds a check.
    pub fn push(&mut self, name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            status,
            detail: detail.into(),
        });
    }

    /// Adds a check that passes with `detail(v)` when `r` is `Ok(v)` and fails with the error otherwise.
    pub fn record_result<T>(&mut self, name: &str, r: Result<T>, detail: impl FnOnce(T) -> String) {
        match r {
            Ok(v) => self.push(name, CheckStatus::Pass, detail(v)),
            Err(e) => self.push(name, CheckStatus::Fail, e.to_string()),
        }
    }

    /// Adds every check of `other`, after these.
    pub fn extend(&mut self, other: CheckReport) {
        self.checks.extend(other.checks);
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    /// The checks with this verdict.
    pub fn with_status(&self, status: CheckStatus) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(move |c| c.status == status)
    }

    /// Fails with `kind` naming every failed check, when any failed.
    pub fn into_result(self, operation: &str, kind: ErrorKind) -> Result<CheckReport> {
        if self.passed() {
            return Ok(self);
        }
        let failed: Vec<String> = self
            .with_status(CheckStatus::Fail)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        Err(Error::new(kind, operation, "", failed.join("; ")))
    }
}
