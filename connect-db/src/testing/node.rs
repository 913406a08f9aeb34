//! One Patroni node of the test cluster: where it listens, crash, freeze.

use std::path::PathBuf;
use std::time::Duration;

use connect_core::Result;

use super::process::{ServerProcess, alive, signal};

/// One Patroni node and where it listens.
#[derive(Debug)]
pub struct PatroniNode {
    /// Member name.
    pub name: String,
    /// REST port.
    pub rest_port: u16,
    /// PostgreSQL port.
    pub pg_port: u16,
    /// Its directory (config, data, socket, log).
    pub dir: PathBuf,
    /// Whether its REST API speaks HTTPS.
    pub https: bool,
    pub(super) process: Option<ServerProcess>,
}

impl PatroniNode {
    /// `http://127.0.0.1:<rest>` (`https` for a secure cluster).
    pub fn rest_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.rest_port)
    }

    /// The PostgreSQL data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub(super) fn start(&mut self) -> Result<()> {
        let argv = vec![
            "patroni".to_string(),
            self.dir.join("patroni.yml").display().to_string(),
        ];
        self.process = Some(ServerProcess::start(
            &self.name,
            &argv,
            &self.dir.join("patroni.log"),
            true,
            "TERM",
        )?);
        Ok(())
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Crash: SIGKILL to Patroni AND the postmaster (killing Patroni alone, without a watchdog, leaves a
    /// second primary running).
    pub fn crash(&mut self) {
        let pm = self.postmaster_pid();
        if let Some(p) = self.process.as_mut() {
            p.kill();
        }
        if let Some(pm) = pm {
            signal(pm, "KILL");
        }
    }

    /// Stops its Patroni process (SIGSTOP) until the guard is dropped: the REST port still accepts
    /// connections (the kernel does that) but nothing answers, as with a hung node. PostgreSQL keeps running.
    pub fn freeze(&self) -> Frozen {
        let pid = self.process.as_ref().and_then(ServerProcess::pid);
        if let Some(pid) = pid {
            signal(pid, "STOP");
        }
        Frozen { pid }
    }

    /// Whether its Patroni process runs.
    pub fn is_running(&self) -> bool {
        self.process
            .as_ref()
            .and_then(ServerProcess::pid)
            .is_some_and(alive)
    }

    /// The tail of Patroni's log.
    pub fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map(ServerProcess::log_tail)
            .unwrap_or_default()
    }
}

impl Drop for PatroniNode {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(20));
        }
        // A postmaster orphaned by a crashed Patroni would outlive the test.
        if let Some(pm) = self.postmaster_pid()
            && alive(pm)
        {
            signal(pm, "QUIT");
        }
    }
}

/// A Patroni node stopped by [`PatroniNode::freeze`]; dropped, it goes on.
#[derive(Debug)]
pub struct Frozen {
    pid: Option<u32>,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            signal(pid, "CONT");
        }
    }
}
