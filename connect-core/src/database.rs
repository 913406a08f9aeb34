//! The PostgreSQL cluster run by Patroni.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::migrations::MigrationTable;
use crate::model::BackupPolicy;

/// A member's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The primary (Patroni's leader).
    Leader,
    /// A streaming replica.
    Replica,
    /// Anything else Patroni reports (standby leader, uninitialized…).
    Other,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its name (`patroni1`).
    pub name: String,
    /// Leader or replica.
    pub role: Role,
    /// Patroni's state word (`running`, `streaming`, `stopped`…).
    pub state: String,
    /// Replication lag in bytes (replicas only).
    pub lag_bytes: Option<u64>,
    /// The timeline it is on.
    pub timeline: Option<u64>,
}

impl Member {
    /// Running or streaming, as Patroni says of a healthy member.
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "streaming")
    }
}

/// A named point in the WAL to recover to (`pg_create_restore_point`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// Its name, unique to the deploy.
    pub name: String,
    /// The WAL position (`0/3000090`).
    pub lsn: String,
    /// The timeline it was made on.
    pub timeline: u64,
}

/// A verified logical backup of the app's database, as the operation's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The dump file on the server.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The entries its table of contents lists (the dump was read back whole to count them).
    pub entries: usize,
    /// How long dumping, checksumming and verifying took, in milliseconds.
    pub took_ms: u64,
    /// Older backups removed to keep the policy's number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
}

/// The database cluster.
#[async_trait]
pub trait DatabaseCluster: Send + Sync + fmt::Debug {
    /// Every member with its role, state and lag.
    async fn members(&self) -> Result<Vec<Member>>;

    /// Hands leadership to `candidate` (or to any healthy replica) and waits until done.
    async fn switchover(&self, candidate: Option<&str>) -> Result<Member>;

    /// Creates a named restore point on the leader.
    async fn restore_point(&self, name: &str) -> Result<RestorePoint>;

    /// Runs the app's check query on the leader (the runbook's `SELECT COUNT(*) FROM users`) and returns its
    /// single number.
    async fn check_query(&self) -> Result<i64>;

    /// The app's migration tables (Prisma, sqlx, Flyway: each one present), rows oldest first; `None` when
    /// this backend cannot read them. The engine refuses to migrate while one shows a failed or unfinished
    /// migration, judges a migration by them (not only by its exit code), and names what was applied when it
    /// had to stop one.
    async fn migration_tables(&self) -> Result<Option<Vec<MigrationTable>>> {
        Ok(None)
    }

    /// Takes a verified backup of the app's database named after `label` (the operation's id) within
    /// `policy.deadline`, then keeps the newest `policy.keep`; `None` when this backend is not set up to back
    /// up.
    async fn backup(&self, label: &str, policy: &BackupPolicy) -> Result<Option<BackupRecord>> {
        let _ = (label, policy);
        Ok(None)
    }
}

/// Conveniences over any [`DatabaseCluster`].
#[async_trait]
pub trait DatabaseClusterExt: DatabaseCluster {
    /// The running leader; [`ErrorKind::Unhealthy`] when there is none.
    async fn leader(&self) -> Result<Member> {
        let members = self.members().await?;
        members
            .iter()
            .find(|m| m.role == Role::Leader && m.is_running())
            .cloned()
            .ok_or_else(|| {
                let seen: Vec<String> = members
                    .iter()
                    .map(|m| format!("{} {:?} {}", m.name, m.role, m.state))
                    .collect();
                Error::new(
                    ErrorKind::Unhealthy,
                    "database.leader",
                    "cluster",
                    format!("no running leader; members: {seen:?}"),
                )
                .with_hint("check Patroni (`patronictl list`) and etcd before deploying")
            })
    }
}

impl<T: DatabaseCluster + ?Sized> DatabaseClusterExt for T {}
