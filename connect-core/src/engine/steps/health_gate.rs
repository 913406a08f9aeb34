//! Health gate (runbook §4 step 2): wait until the new color is healthy, with a deadline.

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Deployer;
use crate::engine::events::{Event, Events};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Color;
use crate::runtime::Health;

/// How often the health gate reports an attempt while it waits.
const HEALTH_REPORT_EVERY: Duration = Duration::from_secs(1);

impl Deployer {
    /// Waits for the color's container to be healthy, reporting an attempt every second. A transient error
    /// reading its state is one more "not yet", within the deadline.
    pub(crate) async fn health_gate(&self, events: &Events, color: Color) -> Result<String> {
        let name = &self.config.topology.slot(color).container;
        let deadline = self.config.policy.health_deadline;
        let until = Instant::now() + deadline;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slice = until
                .saturating_duration_since(Instant::now())
                .min(HEALTH_REPORT_EVERY);
            let result = self
                .backends
                .runtime
                .wait_healthy(name, slice.max(Duration::from_millis(1)))
                .await;
            let last = match result {
                Ok(info) => {
                    events.emit(Event::HealthAttempt {
                        color,
                        attempt,
                        health: info.health.to_string(),
                    });
                    return Ok(format!("{name} {} after {attempt} attempt(s)", info.health));
                }
                Err(e) if e.kind() == ErrorKind::Timeout || e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            if Instant::now() >= until {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "deploy.health_gate",
                    name,
                    format!("not healthy after {deadline:?}: {}", last.message()),
                )
                .with_hint(
                    "read the container's logs; raise the policy's health_deadline if the app is just slow",
                ));
            }
            events.emit(Event::HealthAttempt {
                color,
                attempt,
                health: Health::Starting.to_string(),
            });
            if last.kind() != ErrorKind::Timeout {
                // The read failed at once: wait out the slice rather than asking again in a tight loop.
                tokio::time::sleep(slice).await;
            }
        }
    }
}
