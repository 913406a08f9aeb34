//! `[database.pitr]`: continuous backups with pgBackRest and point-in-time recovery.

use std::time::Duration;

use connect_db::pitr::{PitrConfig, PitrNode};
use serde::Deserialize;

/// `[database.pitr]`: WAL archiving and base backups into a repository on the server's second disk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrSection {
    /// The repository (the runbook's secondary HDD).
    pub repo: String,
    /// pgBackRest's configuration, lock, log and spool directory on the server.
    #[serde(default = "state_dir")]
    pub state_dir: String,
    /// pgBackRest's stanza.
    #[serde(default = "stanza")]
    pub stanza: String,
    /// Full backups kept (older ones and the WAL only they need are expired).
    #[serde(default = "retention_full")]
    pub retention_full: u32,
    /// PostgreSQL's `archive_timeout`: the most a lost server loses.
    #[serde(default = "archive_timeout", with = "super::duration")]
    pub archive_timeout: Duration,
    /// How the login becomes the database's owner on the server (`["sudo", "-n", "-u", "postgres", "--"]`);
    /// empty when it logs in as that user.
    #[serde(default)]
    pub run_as: Vec<String>,
    /// Parallel processes for backup and restore.
    #[serde(default = "process_max")]
    pub process_max: u32,
    /// How long one base backup or restore may take.
    #[serde(default = "deadline", with = "super::duration")]
    pub deadline: Duration,
    /// etcd's client URL as the server reaches it (Patroni's `etcd3` hosts): lets `connect-ops recover` onto a
    /// fresh server reset the cluster's system id there.
    #[serde(default)]
    pub etcd: Option<String>,
    /// `[[database.pitr.nodes]]`: each Patroni member's data directory, port and socket directory.
    pub nodes: Vec<PitrNodeSection>,
}

/// One `[[database.pitr.nodes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrNodeSection {
    /// The Patroni member name.
    pub member: String,
    /// Its `postgresql.data_dir`.
    pub data_dir: String,
    /// Its PostgreSQL port.
    pub port: u16,
    /// Its `unix_socket_directories`.
    #[serde(default = "socket_dir")]
    pub socket_dir: String,
}

impl PitrSection {
    /// The SDK's configuration, with PostgreSQL's programs from `bin_dir` when given.
    pub fn to_config(&self, bin_dir: Option<&str>) -> PitrConfig {
        let nodes = self
            .nodes
            .iter()
            .map(|n| PitrNode {
                member: n.member.clone(),
                data_dir: n.data_dir.clone(),
                port: n.port,
                socket_dir: n.socket_dir.clone(),
            })
            .collect();
        let mut c = PitrConfig::new(&self.repo, &self.state_dir, nodes);
        c.stanza = self.stanza.clone();
        c.retention_full = self.retention_full;
        c.archive_timeout = self.archive_timeout;
        c.run_as = self.run_as.clone();
        c.process_max = self.process_max;
        c.deadline = self.deadline;
        c.etcd = self.etcd.clone();
        if let Some(dir) = bin_dir {
            c.bin_dir = dir.to_string();
        }
        c
    }
}

fn state_dir() -> String {
    "/var/lib/connect-ops/pgbackrest".into()
}
fn stanza() -> String {
    "connect".into()
}
fn retention_full() -> u32 {
    2
}
fn archive_timeout() -> Duration {
    Duration::from_secs(60)
}
fn process_max() -> u32 {
    2
}
fn deadline() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn socket_dir() -> String {
    "/var/run/postgresql".into()
}
