//! What the engine tells its observers while it works.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::{Color, Release};

/// A step of a deploy or rollback, in the runbook's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Take the deploy lock.
    Lock,
    /// Compare the journal with what the router and the runtime show.
    Reconcile,
    /// Server, disks, database and cache (runbook §1).
    Preflight,
    /// The release's image is on the server (runbook §2).
    StageImage,
    /// A restore point before the migration.
    RestorePoint,
    /// The migration command in a one-off container of the new release (runbook §3).
    Migrate,
    /// Start the idle color on the new release (runbook §4 step 1).
    StartIdle,
    /// Wait until it is healthy (runbook §4 step 2).
    HealthGate,
    /// Move traffic to it (runbook §4 step 3).
    Switch,
    /// Let the old color finish its requests.
    Drain,
    /// Post-deployment checks (runbook §5).
    Verify,
    /// Move traffic back after a failed verification.
    SwitchBack,
    /// The old color also takes the new release and traffic (runbook §4 steps 4-6).
    Balance,
    /// Stop and remove a standby whose window has passed.
    Retire,
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
            Step::StageImage => "stage_image",
            Step::RestorePoint => "restore_point",
            Step::Migrate => "migrate",
            Step::StartIdle => "start_idle",
            Step::HealthGate => "health_gate",
            Step::Switch => "switch",
            Step::Drain => "drain",
            Step::Verify => "verify",
            Step::SwitchBack => "switch_back",
            Step::Balance => "balance",
            Step::Retire => "retire",
            Step::Record => "record",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Something that happened during an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An operation began.
    OperationStarted {
        /// The operation's id, as in the journal.
        id: String,
        /// What kind.
        kind: super::journal::OperationKind,
        /// The release it deploys, if any.
        release: Option<Release>,
        /// The color taking traffic afterwards.
        target: Color,
    },
    /// A step began.
    StepStarted {
        /// Which.
        step: Step,
    },
    /// A step finished.
    StepFinished {
        /// Which.
        step: Step,
        /// How long it took.
        #[serde(with = "crate::model::duration_ms")]
        duration: Duration,
        /// A one-line summary.
        detail: String,
    },
    /// A step was not needed.
    StepSkipped {
        /// Which.
        step: Step,
        /// Why.
        reason: String,
    },
    /// A step failed.
    StepFailed {
        /// Which.
        step: Step,
        /// How long it ran.
        #[serde(with = "crate::model::duration_ms")]
        duration: Duration,
        /// The error.
        error: String,
    },
    /// One look at the new color's health.
    HealthAttempt {
        /// The color.
        color: Color,
        /// 1, 2, …
        attempt: u32,
        /// What the health check said.
        health: String,
    },
    /// Something worth a look that does not stop the operation.
    Warning {
        /// During which step.
        step: Step,
        /// What.
        message: String,
    },
    /// The operation ended.
    OperationFinished {
        /// The operation's id.
        id: String,
        /// Whether it succeeded.
        succeeded: bool,
        /// How long it took.
        #[serde(with = "crate::model::duration_ms")]
        duration: Duration,
    },
}

/// Fans events out to any number of observers. An observer that falls more than 1024 events behind loses the
/// oldest ones (and is told so by its receiver), so a slow observer never stalls a deploy.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    tx: broadcast::Sender<Event>,
}

impl Events {
    pub(crate) fn new() -> Events {
        Events {
            tx: broadcast::channel(1024).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub(crate) fn warn(&self, step: Step, message: String) {
        tracing::warn!(step = step.as_str(), %message);
        self.emit(Event::Warning { step, message });
    }

    pub(crate) fn emit(&self, event: Event) {
        tracing::debug!(?event, "event");
        // No receiver is fine: nobody is watching.
        let _ = self.tx.send(event);
    }
}
