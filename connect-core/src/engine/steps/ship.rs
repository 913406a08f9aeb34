//! Ship (runbook §2's build and upload): the runtime builds the release where the source says and sends only
//! the layers the server lacks; the engine passes its progress on, rate-limited, and says what was done.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::engine::Deployer;
use crate::engine::events::{Event, Events, SHIP_PROGRESS_EVERY};
use crate::error::Result;
use crate::model::Release;
use crate::ship::{ReleaseSource, ShipProgress, ShipProgressFn, ShipReport};
use crate::vocabulary::Step;

impl Deployer {
    /// Ships `release`'s image from `source` to the server without deploying it: the same step a deploy with a
    /// source runs, with its events ([`Event::StepStarted`], [`Event::ShipProgress`], [`Event::Shipped`],
    /// then [`Event::StepFinished`] or [`Event::StepFailed`]). It takes no lock and writes no journal: it
    /// changes nothing that runs or serves, and the image is tagged on the server only once it is whole.
    pub async fn ship(&self, release: Release, source: ReleaseSource) -> Result<ShipReport> {
        let step = Step::Ship;
        self.events.emit(Event::StepStarted { step });
        let t = Instant::now();
        let result = self.ship_release(&self.events, &release, &source).await;
        let duration = t.elapsed();
        match &result {
            Ok(report) => self.events.emit(Event::StepFinished {
                step,
                duration,
                detail: report.summary(),
            }),
            Err(e) => self.events.emit(Event::StepFailed {
                step,
                duration,
                error: e.to_string(),
            }),
        }
        result
    }

    /// The ship step's work: the runtime's ship with its progress rate-limited into events.
    pub(crate) async fn ship_release(
        &self,
        events: &Events,
        release: &Release,
        source: &ReleaseSource,
    ) -> Result<ShipReport> {
        source.validate()?;
        let throttle = Arc::new(Throttle::new(events.clone()));
        let reporter = Arc::clone(&throttle);
        let progress: ShipProgressFn = Arc::new(move |p| reporter.report(p));
        let result = self.backends.runtime.ship(release, source, progress).await;
        // What the rate limit held back last is where the ship ended: observers see it.
        throttle.flush();
        let report = result?;
        events.emit(Event::Shipped(report.clone()));
        Ok(report)
    }
}

/// Passes progress on as [`Event::ShipProgress`]: the first report, each phase change, each layer finished
/// and each complete report at once, the rest at most every [`SHIP_PROGRESS_EVERY`]; a report that goes
/// back within a phase is dropped, so observers see counts that only grow.
struct Throttle {
    events: Events,
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    emitted: Option<(ShipProgress, Instant)>,
    held: Option<ShipProgress>,
}

impl Throttle {
    fn new(events: Events) -> Throttle {
        Throttle {
            events,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    fn report(&self, p: ShipProgress) {
        let now = Instant::now();
        let due = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let due = match s.emitted {
                None => true,
                Some((last, _)) if last == p => false,
                Some((last, _))
                    if last.phase == p.phase
                        && (p.layers_done < last.layers_done || p.bytes_done < last.bytes_done) =>
                {
                    return;
                }
                Some((last, at)) => {
                    last.phase != p.phase
                        || last.layers_done != p.layers_done
                        || p.is_complete()
                        || now.duration_since(at) >= SHIP_PROGRESS_EVERY
                }
            };
            if due {
                s.emitted = Some((p, now));
                s.held = None;
            } else {
                s.held = Some(p);
            }
            due
        };
        if due {
            self.emit(p);
        }
    }

    fn flush(&self) {
        let held = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let held = s.held.take();
            if let Some(p) = held {
                s.emitted = Some((p, Instant::now()));
            }
            held
        };
        if let Some(p) = held {
            self.emit(p);
        }
    }

    fn emit(&self, p: ShipProgress) {
        self.events.emit(Event::ShipProgress {
            phase: p.phase,
            layers_done: p.layers_done,
            layers_total: p.layers_total,
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total,
        });
    }
}
