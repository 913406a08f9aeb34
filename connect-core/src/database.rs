//! The PostgreSQL cluster run by Patroni.

use std::collections::BTreeMap;
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

/// A replica as the leader sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLag {
    /// Its name (`application_name`: Patroni sets the member's name).
    pub name: String,
    /// WAL the leader wrote that the replica has not replayed yet, in bytes.
    pub lag_bytes: u64,
    /// How long ago the leader wrote what the replica replayed last (`replay_lag`), in milliseconds; `None`
    /// when PostgreSQL has no figure (an idle leader sends nothing to time).
    pub replay_lag_ms: Option<u64>,
}

/// What PostgreSQL counts of its use, read on the leader, for the metrics. Transactions are totals since the
/// statistics were reset, so a reader turns two readings into transactions per second.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DatabaseFigures {
    /// Client connections by `pg_stat_activity.state` (`active`, `idle`, `idle in transaction`…).
    pub connections: BTreeMap<String, u64>,
    /// `max_connections`.
    pub max_connections: u64,
    /// Committed transactions of the app's database (`pg_stat_database.xact_commit`).
    pub commits: u64,
    /// Rolled back transactions of the app's database (`xact_rollback`).
    pub rollbacks: u64,
    /// Every streaming replica with its lag.
    pub replicas: Vec<ReplicaLag>,
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

    /// Connections by state, transactions and the replicas' lag, for the metrics. Unsupported unless a
    /// backend says otherwise.
    async fn figures(&self) -> Result<DatabaseFigures> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "database.figures",
            "cluster",
            format!("{self:?} cannot count its use"),
        )
        .with_hint("use a cluster that implements figures (connect-db's `PatroniCluster`)"))
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
