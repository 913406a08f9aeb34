//! The master CLI's `show proc`: the master, its reload count and failures, the current and the old
//! workers. Read after a reload to tell whether it took.

use connect_core::Result;
use serde::{Deserialize, Serialize};

use super::{corrupt, line_excerpt};

/// A process listed by the master CLI's `show proc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcEntry {
    /// Process id.
    pub pid: u32,
    /// How many reloads it has lived through (for the master: how many it did).
    pub reloads: u32,
    /// Uptime as HAProxy prints it (`0d00h00m05s`).
    pub uptime: String,
}

/// The master CLI's `show proc`: the master, the current workers and the old ones still finishing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcList {
    /// The master.
    pub master: ProcEntry,
    /// Reloads that failed since the last one that worked (`[failed: N]`).
    pub failed_reloads: u32,
    /// The current workers (those that serve new connections).
    pub workers: Vec<ProcEntry>,
    /// Workers of earlier configurations still finishing their connections.
    pub old_workers: Vec<ProcEntry>,
}

/// Parses `show proc`.
pub(crate) fn parse_show_proc(reply: &str) -> Result<ProcList> {
    const OP: &str = "haproxy.show_proc";
    #[derive(PartialEq)]
    enum Section {
        Master,
        Workers,
        Old,
        Other,
    }
    let mut section = Section::Master;
    let mut master = None;
    let mut failed = 0;
    let (mut workers, mut old) = (Vec::new(), Vec::new());
    for line in reply.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("#<PID>") {
            continue;
        }
        if let Some(name) = line.strip_prefix('#') {
            section = match name.trim() {
                "workers" => Section::Workers,
                "old workers" => Section::Old,
                _ => Section::Other,
            };
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let entry = |words: &[&str]| -> Result<ProcEntry> {
            let bad = || corrupt(OP, format!("unexpected line {:?}", line_excerpt(line)));
            Ok(ProcEntry {
                pid: words.first().and_then(|p| p.parse().ok()).ok_or_else(bad)?,
                reloads: words.get(2).and_then(|r| r.parse().ok()).ok_or_else(bad)?,
                uptime: words
                    .iter()
                    .find(|w| w.contains('d') && w.ends_with('s'))
                    .map(|w| w.to_string())
                    .unwrap_or_default(),
            })
        };
        match section {
            Section::Master if words.get(1) == Some(&"master") => {
                master = Some(entry(&words)?);
                failed = line
                    .split_once("[failed:")
                    .and_then(|(_, r)| r.split(']').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
            }
            Section::Workers => workers.push(entry(&words)?),
            Section::Old => old.push(entry(&words)?),
            _ => {}
        }
    }
    let master = master.ok_or_else(|| corrupt(OP, "no master line in `show proc`"))?;
    Ok(ProcList {
        master,
        failed_reloads: failed,
        workers,
        old_workers: old,
    })
}
