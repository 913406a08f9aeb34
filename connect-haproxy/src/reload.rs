//! Reloads through the master CLI, confirmed from `show proc`.

use std::time::{Duration, Instant};

use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};

use crate::command::Command;
use crate::haproxy::{Haproxy, POLL};
use crate::stat::ProcList;

/// What a reload did, from the master's `show proc`.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    /// Workers before the reload (now finishing their connections and exiting).
    pub old_workers: Vec<u32>,
    /// The new worker(s), serving.
    pub new_workers: Vec<u32>,
    /// From the call until the new worker answered on the admin socket.
    pub took: Duration,
}

impl Haproxy {
    /// Reloads HAProxy through the master CLI: saves the server state first (so the new worker starts in
    /// it), sends `reload`, and confirms from `show proc` that a new worker runs. A reload HAProxy refused
    /// (a bad config on disk) is [`ErrorKind::Failed`] naming the old worker that still serves.
    pub async fn reload(&self, deadline: Duration) -> Result<ReloadReport> {
        let started = Instant::now();
        let master = self.master.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "haproxy.reload",
                &self.backend,
                "no master CLI configured",
            )
            .with_hint("start HAProxy with `-W -S <master.sock>` and use Haproxy::with_master")
        })?;
        self.save_state().await?;
        let target = master.socket().to_string();
        // A master still re-executing itself after an earlier reload refuses connections for a moment.
        let before = poll_until("haproxy.reload", &target, deadline, POLL * 5, || async {
            match master.show_proc().await {
                Ok(p) => Ok(Ok(p)),
                Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Corrupt) => {
                    Ok(Err(e.to_string()))
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        master.execute(&Command::Reload).await?;
        let after: ProcList = poll_until("haproxy.reload", &target, deadline, POLL * 5, || async {
            // While the master re-executes itself its CLI answers nothing or refuses connections.
            match master.show_proc().await {
                Ok(p) if p.master.reloads > before.master.reloads => Ok(Ok(p)),
                Ok(p) => Ok(Err(format!(
                    "the master has done {} reloads, waiting for {}",
                    p.master.reloads,
                    before.master.reloads + 1
                ))),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Unavailable | ErrorKind::Corrupt | ErrorKind::NotFound
                    ) =>
                {
                    Ok(Err(e.to_string()))
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        let old: Vec<u32> = before.workers.iter().map(|w| w.pid).collect();
        let new: Vec<u32> = after
            .workers
            .iter()
            .map(|w| w.pid)
            .filter(|p| !old.contains(p))
            .collect();
        if after.failed_reloads > 0 || new.is_empty() {
            return Err(Error::new(
                ErrorKind::Failed,
                "haproxy.reload",
                target,
                format!(
                    "HAProxy refused the reload ({} failed); the old worker(s) {:?} still serve with the \
                     previous configuration",
                    after.failed_reloads,
                    after.workers.iter().map(|w| w.pid).collect::<Vec<_>>()
                ),
            )
            .with_hint("run `haproxy -c -f <config>` to see what is wrong with the configuration"));
        }
        // The new worker owns the admin socket once it answers; only then do commands reach it.
        let remaining = deadline.saturating_sub(started.elapsed()).max(POLL);
        poll_until("haproxy.reload", &target, remaining, POLL * 5, || async {
            Ok(match self.api.show_stat().await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            })
        })
        .await?;
        Ok(ReloadReport {
            old_workers: old,
            new_workers: new,
            took: started.elapsed(),
        })
    }
}
