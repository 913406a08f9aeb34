//! The blue-green switch as one call, confirmed from `show stat`.

use std::time::{Duration, Instant};

use connect_core::router::AdminState;
use connect_core::{Error, ErrorKind, Result};

use crate::command::Command;
use crate::haproxy::{Haproxy, POLL, status_of};
use crate::stat::StatRow;

/// What a switch did, confirmed from `show stat`.
#[derive(Debug, Clone)]
pub struct SwitchReport {
    /// The servers that were live before and are now draining.
    pub drained: Vec<String>,
    /// The server that now takes the traffic.
    pub live: String,
    /// From the call to the confirmation.
    pub took: Duration,
    /// The backend's servers as `show stat` showed them at the confirmation.
    pub confirmed: Vec<StatRow>,
}

impl Haproxy {
    /// The blue-green switch as one call: `to` is made ready and seen live, then every other live server
    /// of the backend is drained, so there is never a moment without a live server; then `show stat` must
    /// show `to` as the only live server. Instant rollback is the same call with the other server.
    ///
    /// If `to` does not become live by the deadline, its previous state is restored and nothing else was
    /// touched. If draining an old server fails, the error says that both serve.
    pub async fn switch_to(&self, to: &str, deadline: Duration) -> Result<SwitchReport> {
        let started = Instant::now();
        let target = format!("{}/{to}", self.backend);
        let before = self.stat().await?;
        let previous = before
            .iter()
            .find(|r| r.name == to)
            .ok_or_else(|| self.no_server("haproxy.switch", to))?
            .admin;
        let old: Vec<String> = before
            .iter()
            .filter(|r| r.name != to && status_of(r).is_live())
            .map(|r| r.name.clone())
            .collect();
        let (backend, server) = self.server_command(to)?;
        let is_only_live = |rows: &[StatRow]| {
            rows.iter()
                .filter(|r| status_of(r).is_live())
                .map(|r| r.name.as_str())
                .eq([to])
        };
        let mut rows = before.clone();
        if previous != AdminState::Ready {
            rows = self
                .change_then_stat(&Command::SetState {
                    backend: backend.clone(),
                    server: server.clone(),
                    state: AdminState::Ready,
                })
                .await?;
        }
        let target_live = |rows: &[StatRow]| rows.iter().any(|r| r.name == to && status_of(r).is_live());
        let live = if target_live(&rows) {
            Ok(())
        } else {
            poll_fast("haproxy.switch", &target, deadline, || async {
                let row = self.row(to).await?;
                Ok(if status_of(&row).is_live() {
                    Ok(())
                } else {
                    Err(format!("status {}, weight {}", row.status, row.weight))
                })
            })
            .await
        };
        if let Err(e) = live {
            let undo = self
                .api
                .execute(&Command::SetState {
                    backend: backend.clone(),
                    server: server.clone(),
                    state: previous,
                })
                .await;
            let undone = match undo {
                Ok(_) => format!("{to} is back in {previous}"),
                Err(u) => format!("putting {to} back in {previous} failed too ({u}); it is ready"),
            };
            return Err(Error::new(
                e.kind(),
                "haproxy.switch",
                target,
                format!(
                    "{to} did not become live, traffic stays on {old:?}; {undone}: {}",
                    e.message()
                ),
            )
            .with_hint("check the server's health endpoint; `show stat` check_desc says why"));
        }
        let mut confirmed = None;
        for name in &old {
            let drained = self
                .change_then_stat(&Command::SetState {
                    backend: backend.clone(),
                    server: name.clone(),
                    state: AdminState::Drain,
                })
                .await;
            match drained {
                Ok(rows) => confirmed = Some(rows),
                Err(e) => {
                    let _ = self.save_state().await;
                    return Err(Error::new(
                        e.kind(),
                        "haproxy.switch",
                        target,
                        format!("{to} is live, but draining {name} failed, so both serve: {e}"),
                    ));
                }
            }
        }
        // Confirmed from the `show stat` that followed the last drain, or a fresh one.
        let confirmed = match confirmed {
            Some(rows) => rows,
            None => self.stat().await?,
        };
        if !is_only_live(&confirmed) {
            let now_live: Vec<&str> = confirmed
                .iter()
                .filter(|r| status_of(r).is_live())
                .map(|r| r.name.as_str())
                .collect();
            return Err(Error::new(
                ErrorKind::Drift,
                "haproxy.switch",
                target,
                format!("after the switch `show stat` shows {now_live:?} live, expected only {to}"),
            ));
        }
        let took = started.elapsed();
        self.persist_after(&format!("switch to {to}")).await?;
        Ok(SwitchReport {
            drained: old,
            live: to.to_string(),
            took,
            confirmed,
        })
    }
}

/// Polls a condition back to back for its first tries (each try is a socket round trip, ~0.2 ms, which
/// paces it), then every [`POLL`]: tokio's timer cannot wait less than a millisecond, and HAProxy applies a
/// state change within an event-loop turn, so the first few immediate tries usually see it.
async fn poll_fast<F, Fut>(operation: &str, target: &str, deadline: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<std::result::Result<(), String>>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        let why = match check().await? {
            Ok(()) => return Ok(()),
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
