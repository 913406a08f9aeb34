//! One operation in progress: its record, its timings, its events.

use std::future::Future;

use tokio::time::Instant;
use tracing::Instrument;

use super::events::{Event, Events};
use super::journal::{OperationRecord, StepRecord, now_unix_ms};
use crate::error::Result;
use crate::model::{Color, Release};
use crate::vocabulary::{OperationKind, Outcome, Step, StepStatus};

/// The operation being run: every step goes through [`Run::step`], which times it, records it, emits its
/// events and gives it a tracing span.
pub(crate) struct Run {
    pub(crate) record: OperationRecord,
    pub(crate) events: Events,
    started: Instant,
}

impl Run {
    pub(crate) fn new(
        events: &Events,
        kind: OperationKind,
        release: Option<Release>,
        live_before: Option<Color>,
        target: Color,
        holder: &str,
    ) -> Run {
        let started_unix_ms = now_unix_ms();
        let tag = release
            .as_ref()
            .map_or_else(|| format!("{kind:?}").to_lowercase(), |r| r.version.clone());
        let record = OperationRecord {
            id: format!("{started_unix_ms}-{tag}"),
            kind,
            release: release.clone(),
            live_before,
            live_after: live_before,
            holder: holder.to_string(),
            started_unix_ms,
            duration_ms: 0,
            outcome: Outcome::Succeeded,
            steps: Vec::new(),
            restore_point: None,
            backup: None,
            as_worker: false,
        };
        events.emit(Event::OperationStarted {
            id: record.id.clone(),
            kind,
            release,
            target,
        });
        Run {
            record,
            events: events.clone(),
            started: Instant::now(),
        }
    }

    /// Runs one step. `fut` yields a one-line summary for the journal.
    pub(crate) async fn step<F>(&mut self, step: Step, fut: F) -> Result<()>
    where
        F: Future<Output = Result<String>>,
    {
        self.events.emit(Event::StepStarted { step });
        let t = Instant::now();
        let result = fut
            .instrument(tracing::info_span!("step", step = step.as_str(), id = %self.record.id))
            .await;
        let duration = t.elapsed();
        let (status, detail) = match &result {
            Ok(detail) => {
                self.events.emit(Event::StepFinished {
                    step,
                    duration,
                    detail: detail.clone(),
                });
                (StepStatus::Ok, detail.clone())
            }
            Err(e) => {
                tracing::warn!(step = step.as_str(), error = %e, "step failed");
                self.events.emit(Event::StepFailed {
                    step,
                    duration,
                    error: e.to_string(),
                });
                (StepStatus::Failed, e.to_string())
            }
        };
        self.record.steps.push(StepRecord {
            step,
            duration_ms: duration.as_millis() as u64,
            status,
            detail,
        });
        result.map(drop)
    }

    pub(crate) fn skip(&mut self, step: Step, reason: &str) {
        self.events.emit(Event::StepSkipped {
            step,
            reason: reason.to_string(),
        });
        self.record.steps.push(StepRecord {
            step,
            duration_ms: 0,
            status: StepStatus::Skipped,
            detail: reason.into(),
        });
    }

    /// The step that failed last, for the outcome.
    pub(crate) fn failed_step(&self) -> Step {
        self.record
            .steps
            .iter()
            .rev()
            .find(|s| s.status == StepStatus::Failed)
            .map_or(Step::Lock, |s| s.step)
    }

    /// The finished record; the caller emits [`Event::OperationFinished`] once the journal holds it.
    pub(crate) fn finish(mut self) -> (OperationRecord, std::time::Duration) {
        let elapsed = self.started.elapsed();
        self.record.duration_ms = elapsed.as_millis() as u64;
        (self.record, elapsed)
    }
}
