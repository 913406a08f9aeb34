//! What the engine tells its observers while it works.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::{Color, Release};
use crate::ship::{ShipPhase, ShipReport};
use crate::vocabulary::OperationKind;
pub(super) use crate::vocabulary::Step;

/// Something that happened during an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// An operation began.
    OperationStarted {
        /// The operation's id, as in the journal.
        id: String,
        /// What kind.
        kind: OperationKind,
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
    /// How far a ship is, at most every [`SHIP_PROGRESS_EVERY`] (plus each layer finished and the last
    /// report): counts only grow within a phase, and a send's last event has everything done.
    ShipProgress {
        /// Building or sending.
        phase: ShipPhase,
        /// Layers sent and verified.
        layers_done: usize,
        /// Layers to send (those the server lacks).
        layers_total: usize,
        /// Bytes done.
        bytes_done: u64,
        /// Bytes to do.
        bytes_total: u64,
    },
    /// The ship step ended: what it did (`outcome` `already_present` when there was nothing to do).
    Shipped(ShipReport),
    /// The router confirmed traffic on `to`: the moment a deploy or rollback takes effect for customers.
    TrafficSwitched {
        /// The color that had the traffic, if any.
        from: Option<Color>,
        /// The color that has it now.
        to: Color,
        /// From the switch call to the router's confirmation (the bookkeeping after it, such as HAProxy's
        /// state file, not included).
        #[serde(with = "crate::model::duration_ms")]
        confirmed_after: Duration,
    },
    /// One sample of the watch after the switch: the watched color's figures since the watch began, and
    /// the old color's from before the switch they are compared with.
    WatchSample {
        /// The color watched.
        color: Color,
        /// Its share of the traffic in percent (below 100 during a canary step).
        share_percent: u8,
        /// Time since the watch (or the canary step) began.
        #[serde(with = "crate::model::duration_ms")]
        elapsed: Duration,
        /// Responses it gave since then.
        responses: u64,
        /// Of those, 5xx.
        responses_5xx: u64,
        /// The 5xx share in percent (0 before any response).
        rate_5xx_percent: f64,
        /// The old color's 5xx share before the switch, in percent.
        baseline_5xx_percent: f64,
        /// Its average response time (ms).
        response_time_ms: u64,
        /// The old color's before the switch (ms).
        baseline_response_time_ms: u64,
        /// Container restarts since the watch began.
        restarts: u32,
        /// Error lines it logged since the watch began.
        error_lines: usize,
        /// What crossed a threshold, empty when nothing did.
        breach: Option<String>,
    },
    /// The maintenance page was turned on or off.
    Maintenance {
        /// On or off now.
        on: bool,
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

/// The least time between two [`Event::ShipProgress`] of the same layer, so a fast link does not flood
/// observers (and the 1024-event buffer).
pub const SHIP_PROGRESS_EVERY: Duration = Duration::from_millis(250);

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
