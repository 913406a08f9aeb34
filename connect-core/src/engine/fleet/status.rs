//! Every host's status: its journal against what its servers and runtime show.

use serde::{Deserialize, Serialize};

use super::Fleet;
use super::role_change::pending;
use crate::engine::Status;
use crate::error::Error;

impl Fleet {
    /// Every host's status (journal against what the router and its runtime show), read in parallel; a host
    /// that cannot be read is reported with its error, the others still are.
    ///
    /// A host whose role changed in the config and no deploy carried out yet shows that as its one
    /// difference (its new role's view would read drift): what it still runs as, and that the next deploy
    /// changes it.
    pub async fn status(&self) -> FleetStatus {
        let servers = self.router.servers().await.unwrap_or_default();
        let servers = &servers;
        let reads = self.members.iter().map(|m| async move {
            let mut read = m.deployer.status().await;
            if let Ok(status) = read.as_mut()
                && !status.differences.is_empty()
            {
                let topology = &m.deployer.config.topology;
                if let Some(pending) = pending(&m.name, m.role, topology, status, servers) {
                    status.differences = vec![pending];
                }
            }
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
