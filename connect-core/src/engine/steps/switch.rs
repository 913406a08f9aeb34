//! Switch (runbook §4 step 3) and drain: traffic moves to the new color without a moment with no live
//! server, then the old color finishes what it has.

use crate::engine::Deployer;
use crate::engine::events::{Event, Events};
use crate::error::{ErrorKind, Result};
use crate::model::Color;
use crate::vocabulary::Step;

impl Deployer {
    /// Moves traffic from `from` to `to` with the router's own switch (HAProxy's is three round trips).
    pub(crate) async fn switch_traffic(
        &self,
        events: &Events,
        from: Option<Color>,
        to: Color,
    ) -> Result<String> {
        let topology = &self.config.topology;
        let old = from.map(|c| topology.slot(c).server.as_str());
        let new = &topology.slot(to).server;
        let report = self
            .backends
            .router
            .switch(old, new, self.config.policy.router_deadline)
            .await?;
        events.emit(Event::TrafficSwitched {
            from,
            to,
            confirmed_after: report.took,
        });
        Ok(format!(
            "traffic on {to} ({new}), confirmed by the router after {:.1} ms",
            report.took.as_secs_f64() * 1000.0
        ))
    }

    /// Waits for the old color's in-flight requests; past the deadline they finish on their own, with a
    /// warning.
    pub(crate) async fn drain(&self, events: &Events, old: Color) -> Result<String> {
        let server = &self.config.topology.slot(old).server;
        let deadline = self.config.policy.drain_deadline;
        match self.backends.router.wait_drained(server, deadline).await {
            Ok(_) => Ok(format!("{server} drained")),
            Err(e) if e.kind() == ErrorKind::Timeout => {
                events.warn(
                    Step::Drain,
                    format!("{server} still has sessions after {deadline:?}; they finish on their own"),
                );
                Ok(format!("{server} draining"))
            }
            Err(e) => Err(e),
        }
    }
}
