//! Every host's status: its journal against what its servers and runtime show.

use serde::{Deserialize, Serialize};

use super::Fleet;
use crate::engine::Status;
use crate::error::Error;

impl Fleet {
    /// Every host's status (journal against what the router and its runtime show), read in parallel; a host
    /// that cannot be read is reported with its error, the others still are.
    pub async fn status(&self) -> FleetStatus {
        let reads = self.members.iter().map(|m| async {
            let read = m.deployer.status().await;
            HostStatus {
                host: m.name.clone(),
                error: read.as_ref().err().map(Error::to_string),
                status: read.ok(),
            }
        });
        FleetStatus {
            hosts: futures::future::join_all(reads).await,
        }
    }
}

/// One host's status, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host's name.
    pub host: String,
    /// Its journal and what its router servers and runtime show.
    pub status: Option<Status>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// Every host's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    /// In the fleet's order.
    pub hosts: Vec<HostStatus>,
}

impl FleetStatus {
    /// Every difference between a host's journal and what runs, and every host that could not be read, one
    /// sentence each naming the host: empty when every journal matches.
    pub fn differences(&self) -> Vec<String> {
        let mut all = Vec::new();
        for h in &self.hosts {
            match (&h.status, &h.error) {
                (Some(s), _) => all.extend(s.differences.iter().map(|d| format!("{}: {d}", h.host))),
                (None, e) => all.push(format!(
                    "{}: could not be read ({})",
                    h.host,
                    e.as_deref().unwrap_or("no answer")
                )),
            }
        }
        all
    }
}
