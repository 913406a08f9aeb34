//! The blue-green switch in three round trips, confirmed from `show stat`: HAProxy's override of
//! [`TrafficRouter::switch`](connect_core::TrafficRouter::switch).

use std::time::Duration;

use connect_core::router::{
    AdminState, ServerStatus, SwitchReport, both_serve, check_before, check_names, confirm, not_live,
    together_done,
};
use connect_core::{Error, ErrorKind, Result};
use tokio::time::Instant;

use crate::command::Command;
use crate::haproxy::{Haproxy, POLL, status_of};
use crate::stat::StatRow;

impl Haproxy {
    /// [`TrafficRouter::switch`] with the same steps and errors, in three round trips: `show stat`, then
    /// `set … ready` and `set … drain` each sent with `show stat` in the same connection, so every step is
    /// confirmed by the reply to the change itself. One state-file save at the end.
    pub(crate) async fn switch_in_three(
        &self,
        from: Option<&str>,
        to: &str,
        deadline: Duration,
    ) -> Result<SwitchReport> {
        let started = Instant::now();
        let target = format!("{}/{to}", self.backend);
        let from = from.filter(|f| *f != to);
        let (backend, server) = self.server_command(to)?;
        if let Some(from) = from {
            self.server_command(from)?;
        }
        let before = self.stat().await?;
        let previous = check_before(&self.backend, &statuses(&before), from, to)?;
        let mut rows = before;
        if previous != AdminState::Ready {
            rows = self
                .change_then_stat(&Command::SetState {
                    backend: backend.clone(),
                    server: server.clone(),
                    state: AdminState::Ready,
                })
                .await?;
        }
        if !is_live(&rows, to) {
            let seen = poll_fast("haproxy.switch", &target, deadline, || async {
                Ok(match self.stat().await {
                    Ok(rows) if is_live(&rows, to) => Ok(rows),
                    Ok(rows) => Err(match rows.iter().find(|r| r.name == to) {
                        Some(r) => format!("status {}, weight {}", r.status, r.weight),
                        None => "gone from `show stat`".to_string(),
                    }),
                    // A lost `show stat` is not a verdict on the server: poll again until the deadline.
                    Err(e) if e.is_retryable() => Err(format!("reading `show stat` failed: {e}")),
                    Err(e) => return Err(e),
                })
            })
            .await;
            rows = match seen {
                Ok(rows) => rows,
                Err(e) => {
                    let undone = if previous == AdminState::Ready {
                        String::new()
                    } else {
                        let undo = self
                            .api
                            .execute(&Command::SetState {
                                backend,
                                server,
                                state: previous,
                            })
                            .await;
                        match undo {
                            Ok(_) => format!("; {to} is back in {previous}"),
                            Err(u) => {
                                format!("; putting {to} back in {previous} failed too ({u}): it is ready")
                            }
                        }
                    };
                    return Err(not_live(&target, from, to, &e, &undone));
                }
            };
        }
        let mut drained = Vec::new();
        if let Some(from) = from {
            let changed = self
                .change_then_stat(&Command::SetState {
                    backend: backend.clone(),
                    server: from.to_string(),
                    state: AdminState::Drain,
                })
                .await;
            rows = match changed {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = self.save_state().await;
                    return Err(both_serve(&target, from, to, &e));
                }
            };
            drained.push(from.to_string());
        }
        // Confirmed from the `show stat` that came with the last change (or the poll that saw `to` live).
        let servers = statuses(&rows);
        confirm(&target, to, &servers)?;
        let took = started.elapsed();
        self.persist_after(&format!("switch to {to}")).await?;
        Ok(SwitchReport {
            live: to.to_string(),
            drained,
            took,
            servers,
        })
    }
}

impl Haproxy {
    /// [`TrafficRouter::set_states_together`](connect_core::TrafficRouter::set_states_together) in one
    /// exchange: the ready servers' commands first, then the drains, then `show stat` in the same connection.
    /// HAProxy runs a line's commands one after the other within one event-loop turn, so no request sees
    /// the old servers drained before the new ones are ready.
    pub(crate) async fn switch_together(
        &self,
        ready: &[String],
        drain: &[String],
        deadline: Duration,
    ) -> Result<Vec<ServerStatus>> {
        let target = format!("{}/{}", self.backend, ready.join(","));
        let mut commands = self.state_commands(ready, AdminState::Ready)?;
        commands.extend(self.state_commands(drain, AdminState::Drain)?);
        let before = statuses(&self.stat().await?);
        check_names(&self.backend, &before, ready, drain)?;
        if commands.is_empty() {
            return Ok(before);
        }
        let rows = self
            .changes_then_stat(&commands, "haproxy.set_states_together", &target)
            .await?;
        let mut servers = statuses(&rows);
        if let Err(why) = together_done(&servers, ready, drain) {
            // A server just made ready shows its check's last verdict at once; polled briefly in case a
            // check was in flight.
            servers = poll_fast("haproxy.set_states_together", &target, deadline, || async {
                Ok(match self.stat().await {
                    Ok(rows) => {
                        let now = statuses(&rows);
                        together_done(&now, ready, drain).map(|()| now)
                    }
                    Err(e) if e.is_retryable() => Err(format!("reading `show stat` failed: {e}")),
                    Err(e) => return Err(e),
                })
            })
            .await
            .map_err(|e| {
                Error::new(
                    e.kind(),
                    "haproxy.set_states_together",
                    &target,
                    format!("the changes were sent, but {why}: {}", e.message()),
                )
                .with_hint("the engine settles each host from what `show stat` shows")
            })?;
        }
        self.persist_after(&format!("switch of {} server(s)", ready.len() + drain.len()))
            .await?;
        Ok(servers)
    }
}

impl Haproxy {
    /// [`TrafficRouter::set_states`](connect_core::TrafficRouter::set_states) in one exchange: every
    /// `set server … state` line and `show stat` in the same connection, after a `show servers state` that
    /// refuses an unknown name before anything changes. One state-file save at the end.
    ///
    /// A server with checks that leaves maintenance is also marked down in the same exchange, so only a
    /// fresh check brings it up: HAProxy pauses checks in maintenance and keeps the last verdict (measured
    /// on 2.6: a server whose app went away while in maintenance, or that was never checked, reads UP when
    /// made ready, and takes requests until its next check fails). A group of servers per node, where the
    /// task may have moved while the group was in maintenance, must not send traffic to the node it left.
    pub(crate) async fn set_states_at_once(&self, servers: &[String], state: AdminState) -> Result<()> {
        let target = format!("{}/{}", self.backend, servers.join(","));
        let now = self.api.show_servers_state(Some(&self.backend)).await?;
        let mut commands = Vec::new();
        for name in servers {
            let row = now
                .rows
                .iter()
                .find(|r| &r.server == name)
                .ok_or_else(|| self.no_server("haproxy.set_states", name))?;
            let (backend, server) = self.server_command(name)?;
            commands.push(Command::SetState {
                backend: backend.clone(),
                server: server.clone(),
                state,
            });
            if state != AdminState::Maint && row.admin() == AdminState::Maint && row.checks_enabled() {
                commands.push(Command::HealthDown { backend, server });
            }
        }
        if commands.is_empty() {
            return Ok(());
        }
        self.changes_then_stat(&commands, "haproxy.set_states", &target)
            .await?;
        self.persist_after(&format!("{} server(s) {state}", servers.len()))
            .await
    }

    /// `set server <be>/<name> state <state>` for each name, every name validated first.
    fn state_commands(&self, names: &[String], state: AdminState) -> Result<Vec<Command>> {
        names
            .iter()
            .map(|name| {
                let (backend, server) = self.server_command(name)?;
                Ok(Command::SetState {
                    backend,
                    server,
                    state,
                })
            })
            .collect()
    }
}

fn statuses(rows: &[StatRow]) -> Vec<ServerStatus> {
    rows.iter().map(status_of).collect()
}

fn is_live(rows: &[StatRow], server: &str) -> bool {
    rows.iter().any(|r| r.name == server && status_of(r).is_live())
}

/// Polls a condition back to back for its first tries (each try is a socket round trip, ~0.2 ms, which
/// paces it), then every [`POLL`]: tokio's timer cannot wait less than a millisecond, and HAProxy applies a
/// state change within an event-loop turn, so the first few immediate tries usually see it.
async fn poll_fast<T, F, Fut>(operation: &str, target: &str, deadline: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<std::result::Result<T, String>>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        let why = match check().await? {
            Ok(v) => return Ok(v),
            Err(why) => why,
        };
        if started.elapsed() >= deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                operation,
                target,
                format!("not done after {deadline:?}: {why}"),
            ));
        }
        if attempt < 20 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(POLL).await;
        }
        attempt = attempt.saturating_add(1);
    }
}
