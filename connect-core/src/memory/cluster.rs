//! A Patroni cluster in memory: a leader, replicas, switchover, restore points.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Faults, lock};
use sha2::{Digest, Sha256};

use crate::database::{
    BackupRecord, DatabaseCluster, DatabaseFigures, Member, ReplicaLag, RestorePoint, Role,
};
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::{Migration, MigrationState, MigrationTable, MigrationTool};
use crate::model::BackupPolicy;

#[derive(Debug)]
struct State {
    members: Vec<Member>,
    lsn: u64,
    users: i64,
    restore_points: Vec<RestorePoint>,
    migration_tables: Vec<MigrationTable>,
    backups: Vec<BackupRecord>,
    /// Transactions committed so far: every query the cluster answered, and what a test adds.
    commits: u64,
}

/// A Patroni cluster in memory: `patroni1` leads, `patroni2` replicates, as in the runbook.
#[derive(Debug, Clone)]
pub struct MemoryCluster {
    state: Arc<Mutex<State>>,
    faults: Faults,
}

impl Default for MemoryCluster {
    fn default() -> Self {
        MemoryCluster::new(&["patroni1", "patroni2"])
    }
}

impl MemoryCluster {
    /// A healthy cluster: the first name leads, the others stream from it.
    pub fn new(names: &[&str]) -> MemoryCluster {
        let members = names
            .iter()
            .enumerate()
            .map(|(i, n)| Member {
                name: n.to_string(),
                role: if i == 0 { Role::Leader } else { Role::Replica },
                state: if i == 0 {
                    "running".into()
                } else {
                    "streaming".into()
                },
                lag_bytes: if i == 0 { None } else { Some(0) },
                timeline: Some(1),
            })
            .collect();
        MemoryCluster {
            state: Arc::new(Mutex::new(State {
                members,
                lsn: 0x300_0000,
                users: 42,
                restore_points: Vec::new(),
                migration_tables: Vec::new(),
                backups: Vec::new(),
                commits: 0,
            })),
            faults: Faults::default(),
        }
    }

    /// The same cluster injecting `faults`, shared with other backends so calls are numbered across them.
    pub(crate) fn with_faults(mut self, faults: Faults) -> MemoryCluster {
        self.faults = faults;
        self
    }

    /// Counts `n` more committed transactions, as an app's traffic would.
    pub fn record_transactions(&self, n: u64) {
        lock(&self.state).commits += n;
    }

    /// The faults this cluster injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops the leader (Patroni and postmaster) without a failover: the cluster has no leader.
    pub fn kill_leader(&self) {
        for m in lock(&self.state)
            .members
            .iter_mut()
            .filter(|m| m.role == Role::Leader)
        {
            m.state = "stopped".into();
        }
    }

    /// The restore points made so far.
    pub fn restore_points(&self) -> Vec<RestorePoint> {
        lock(&self.state).restore_points.clone()
    }

    /// Sets what the app's (Prisma) migration table lists: `names` applied, nothing else.
    pub fn set_applied_migrations(&self, names: &[&str]) {
        let migrations = names
            .iter()
            .map(|n| Migration {
                name: n.to_string(),
                state: MigrationState::Applied,
                logs: None,
                started_unix: None,
            })
            .collect();
        self.set_migration_tables(vec![MigrationTable {
            tool: MigrationTool::Prisma,
            migrations,
        }]);
    }

    /// The backups kept, oldest first.
    pub fn backups(&self) -> Vec<BackupRecord> {
        lock(&self.state).backups.clone()
    }

    /// Sets the app's migration tables as a backend would read them (failed or unfinished rows included).
    pub fn set_migration_tables(&self, tables: Vec<MigrationTable>) {
        lock(&self.state).migration_tables = tables;
    }
}

#[async_trait]
impl DatabaseCluster for MemoryCluster {
    async fn members(&self) -> Result<Vec<Member>> {
        self.faults
            .around("database.members", "cluster", async {
                Ok(lock(&self.state).members.clone())
            })
            .await
    }

    async fn switchover(&self, candidate: Option<&str>) -> Result<Member> {
        self.faults
            .around("database.switchover", candidate.unwrap_or(""), async {
                let mut state = lock(&self.state);
                let leader = state
                    .members
                    .iter()
                    .position(|m| m.role == Role::Leader && m.is_running())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Refused,
                            "database.switchover",
                            "cluster",
                            "no leader to switch over from",
                        )
                    })?;
                let target = state
                    .members
                    .iter()
                    .position(|m| {
                        m.role == Role::Replica && m.is_running() && candidate.is_none_or(|c| c == m.name)
                    })
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Refused,
                            "database.switchover",
                            candidate.unwrap_or("any replica"),
                            "candidate is not a running replica of this cluster",
                        )
                    })?;
                let timeline = state.members[leader].timeline.unwrap_or(1) + 1;
                state.members[leader].role = Role::Replica;
                state.members[leader].state = "streaming".into();
                state.members[leader].lag_bytes = Some(0);
                state.members[target].role = Role::Leader;
                state.members[target].state = "running".into();
                state.members[target].lag_bytes = None;
                for m in &mut state.members {
                    m.timeline = Some(timeline);
                }
                Ok(state.members[target].clone())
            })
            .await
    }

    async fn restore_point(&self, name: &str) -> Result<RestorePoint> {
        self.faults
            .around("database.restore_point", name, async {
                if name.is_empty() || name.len() > 63 {
                    return Err(Error::invalid(
                        "database.restore_point",
                        name,
                        "a restore point name has 1 to 63 bytes",
                    ));
                }
                let mut state = lock(&self.state);
                let leader = state
                    .members
                    .iter()
                    .find(|m| m.role == Role::Leader && m.is_running())
                    .cloned()
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unhealthy,
                            "database.restore_point",
                            name,
                            "no running leader",
                        )
                    })?;
                state.lsn += 0x90;
                let point = RestorePoint {
                    name: name.to_string(),
                    lsn: format!("{:X}/{:X}", state.lsn >> 32, state.lsn & 0xffff_ffff),
                    timeline: leader.timeline.unwrap_or(1),
                };
                state.restore_points.push(point.clone());
                Ok(point)
            })
            .await
    }

    async fn migration_tables(&self) -> Result<Option<Vec<MigrationTable>>> {
        self.faults
            .around("database.migration_tables", "cluster", async {
                Ok(Some(lock(&self.state).migration_tables.clone()))
            })
            .await
    }

    async fn backup(&self, label: &str, policy: &BackupPolicy) -> Result<Option<BackupRecord>> {
        self.faults
            .around("database.backup", label, async {
                let mut state = lock(&self.state);
                if !state
                    .members
                    .iter()
                    .any(|m| m.role == Role::Leader && m.is_running())
                {
                    return Err(Error::new(
                        ErrorKind::Unhealthy,
                        "database.backup",
                        label,
                        "no running leader to dump",
                    ));
                }
                // The "dump" is what this cluster holds, so its checksum changes when the data does.
                let dump = format!(
                    "users={} lsn={:x} migrations={:?}",
                    state.users, state.lsn, state.migration_tables
                );
                let sha256 = data_encoding::HEXLOWER.encode(&Sha256::digest(dump.as_bytes()));
                let record = BackupRecord {
                    path: format!("/opt/connect/backups/connect-{label}.dump"),
                    bytes: dump.len() as u64,
                    sha256,
                    entries: 1 + state.migration_tables.len(),
                    took_ms: 0,
                    pruned: Vec::new(),
                };
                state.backups.push(record.clone());
                let excess = state.backups.len().saturating_sub(policy.keep);
                let pruned = state.backups.drain(..excess).map(|b| b.path).collect();
                Ok(Some(BackupRecord { pruned, ..record }))
            })
            .await
    }

    async fn check_query(&self) -> Result<i64> {
        self.faults
            .around("database.check_query", "cluster", async {
                let mut state = lock(&self.state);
                if !state
                    .members
                    .iter()
                    .any(|m| m.role == Role::Leader && m.is_running())
                {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "database.check_query",
                        "cluster",
                        "no running leader",
                    ));
                }
                state.commits += 1;
                Ok(state.users)
            })
            .await
    }

    async fn figures(&self) -> Result<DatabaseFigures> {
        self.faults
            .around("database.figures", "cluster", async {
                let state = lock(&self.state);
                let replicas = state
                    .members
                    .iter()
                    .filter(|m| m.role == Role::Replica && m.is_running())
                    .map(|m| ReplicaLag {
                        name: m.name.clone(),
                        lag_bytes: m.lag_bytes.unwrap_or(0),
                        replay_lag_ms: None,
                    })
                    .collect();
                Ok(DatabaseFigures {
                    // The reader's own connection, as pg_stat_activity shows it.
                    connections: BTreeMap::from([("active".to_string(), 1)]),
                    max_connections: 100,
                    commits: state.commits,
                    rollbacks: 0,
                    replicas,
                })
            })
            .await
    }
}
