//! Helpers for tests that start real programs (sshd, haproxy, patroni, redis-server…) on 127.0.0.1.
//!
//! With `CONNECT_REAL_TESTS=1` (as `.ci/run` sets it) a missing program fails the test; without it the test
//! skips and says so loudly on stderr, so a green run that skipped real tests cannot pass unnoticed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub use nix::sys::signal::Signal;

/// The servers `router` sends traffic to, by name, sorted: what a test asserts after a switch.
pub async fn live_servers(router: &dyn crate::TrafficRouter) -> crate::Result<Vec<String>> {
    let mut live: Vec<String> = router
        .servers()
        .await?
        .into_iter()
        .filter(|s| s.is_live())
        .map(|s| s.name)
        .collect();
    live.sort();
    Ok(live)
}

/// Every event `rx` has received so far, without waiting for more.
pub fn drain_events(
    rx: &mut tokio::sync::broadcast::Receiver<crate::engine::Event>,
) -> Vec<crate::engine::Event> {
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    events
}

/// The ship progress among `events`, as (phase, layers done, layers total, bytes done, bytes total).
pub fn ship_progress(
    events: &[crate::engine::Event],
) -> Vec<(crate::ship::ShipPhase, usize, usize, u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            crate::engine::Event::ShipProgress {
                phase,
                layers_done,
                layers_total,
                bytes_done,
                bytes_total,
            } => Some((*phase, *layers_done, *layers_total, *bytes_done, *bytes_total)),
            _ => None,
        })
        .collect()
}

/// Sends `signal` to the process `pid` (a server the test started): the harnesses forbid `unsafe`, and std
/// can only send SIGKILL. An error when there is no such process.
pub fn send_signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{pid} is not a process id"),
        )
    })?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(std::io::Error::from)
}

/// Whether real tests are required (`CONNECT_REAL_TESTS=1`).
pub fn real_tests_required() -> bool {
    std::env::var("CONNECT_REAL_TESTS").is_ok_and(|v| v == "1")
}

/// Finds `program` on `PATH` or at the absolute paths given in `also`. When it is missing: panics if real
/// tests are required, else prints a loud SKIP line naming `test` and returns `None`.
pub fn require_program(test: &str, program: &str, also: &[&str]) -> Option<PathBuf> {
    let found = also
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| find_on_path(program));
    if found.is_none() {
        let msg = format!("{test}: `{program}` is not installed (scripts/test.sh installs it)");
        if real_tests_required() {
            panic!("{msg}; CONNECT_REAL_TESTS=1 requires it");
        }
        eprintln!("SKIP (real test) {msg}");
    }
    found
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

pub mod netns;
mod proxy;
mod sshd;

pub use netns::NetNs;
pub use proxy::TcpProxy;
pub use sshd::Sshd;
