//! Health gate (runbook §4 step 2): wait until the new color is healthy, with a deadline.
//!
//! Two signals, whichever comes first: the runtime's health status (Docker's health check), and the app itself
//! answering its health path on the color's port, asked through the host. Docker judges every `interval`
//! (2 s by default, and Engine 20.10 has no shorter start-up interval), so an app ready in 0.2 s would wait
//! up to 2 s for Docker's word; asking the app directly lets the gate pass when the app is ready. HAProxy's
//! own check still has to see the color live before the switch moves traffic. A container without a health
//! check (Docker reports none: an image with no HTTP client, `health_probe="host"` in Python) passes only on
//! the app's answer. An app that serves no HTTP (`health_path` empty: a worker) is gated on the runtime's word
//! alone: its image's health check when it has one, else running.

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Deployer;
use crate::engine::checks::smoke;
use crate::engine::events::{Event, Events};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Color;
use crate::runtime::{ContainerState, Health};

/// How often the health gate reports an attempt while it waits.
const HEALTH_REPORT_EVERY: Duration = Duration::from_secs(1);
/// How often the gate asks the app itself, and how long one answer may take.
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl Deployer {
    /// Waits for the color's container to be healthy, reporting an attempt every second. A transient error
    /// reading its state is one more "not yet", within the deadline.
    pub(crate) async fn health_gate(&self, events: &Events, color: Color) -> Result<String> {
        let slot = self.config.topology.slot(color);
        let name = &slot.container;
        let deadline = self.config.policy.health_deadline;
        let until = Instant::now() + deadline;
        let mut answered = std::pin::pin!(self.app_answers(slot.host_port));
        // An app without HTTP (a worker) has only the runtime's word: its image's health check, or running.
        let mut probing = self.config.app.serves_http();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slice = until
                .saturating_duration_since(Instant::now())
                .min(HEALTH_REPORT_EVERY);
            let result = tokio::select! {
                biased;
                result = self.backends.runtime.wait_healthy(name, slice.max(Duration::from_millis(1))) => result,
                () = &mut answered, if probing => match self.backends.runtime.inspect(name).await? {
                    Some(info) if info.state == ContainerState::Running && info.health != Health::Unhealthy => {
                        events.emit(Event::HealthAttempt {
                            color,
                            attempt,
                            health: "answering".into(),
                        });
                        return Ok(format!(
                            "{name} answered {} on port {} after {attempt} attempt(s) (docker: {})",
                            self.config.app.health_path, slot.host_port, info.health
                        ));
                    }
                    // Something else answers on the port, or the container is on its way out: Docker decides.
                    _ => {
                        probing = false;
                        continue;
                    }
                },
            };
            let last = match result {
                // No health check in the container (Docker's `NONE`, for an image without an HTTP client):
                // the runtime's word only means "running", so the app's own answer from the host decides.
                Ok(info) if info.health == Health::None && probing => {
                    return match tokio::time::timeout_at(until, &mut answered).await {
                        Ok(()) => {
                            events.emit(Event::HealthAttempt {
                                color,
                                attempt,
                                health: "answering".into(),
                            });
                            Ok(format!(
                                "{name} answered {} on port {} (no health check in the container)",
                                self.config.app.health_path, slot.host_port
                            ))
                        }
                        Err(_) => Err(Error::new(
                            ErrorKind::Timeout,
                            "deploy.health_gate",
                            name,
                            format!(
                                "the container has no health check, and the app did not answer {} on port {} \
                                 within {deadline:?}",
                                self.config.app.health_path, slot.host_port
                            ),
                        )
                        .with_hint(
                            "read the container's logs; raise the policy's health_deadline if the app is just slow",
                        )),
                    };
                }
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
                if last.kind() == ErrorKind::Unavailable {
                    return Err(self.unreachable(name, color, deadline, &last));
                }
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

    /// The gate's error when its last attempt could not reach the server (the connection cut, the engine
    /// gone): `Unavailable`, naming the server, rather than the slow app a `Timeout` would mean.
    fn unreachable(&self, container: &str, color: Color, deadline: Duration, last: &Error) -> Error {
        let host = self.backends.host.name();
        Error::new(
            ErrorKind::Unavailable,
            "deploy.health_gate",
            container,
            format!(
                "{host} could not be reached to read {container}'s health within {deadline:?}: {}",
                last.message()
            ),
        )
        .with_hint(format!(
            "check {host}'s SSH connection and Docker engine, then deploy again: traffic never moved to {color} \
             there, and the next operation settles what this one left"
        ))
    }

    /// Resolves once the app answers its health path on `port` with a 2xx or 3xx, asked through the host
    /// every [`PROBE_EVERY`]. Refused connections and errors are "not yet".
    async fn app_answers(&self, port: u16) {
        let path = &self.config.app.health_path;
        let mut every = tokio::time::interval(PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let answer =
                tokio::time::timeout(PROBE_TIMEOUT, smoke(self.backends.host.as_ref(), port, path)).await;
            if let Ok(Ok(code)) = answer
                && (200..400).contains(&code)
            {
                return;
            }
        }
    }
}
