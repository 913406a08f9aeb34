//! The PostgreSQL cluster run by Patroni.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

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

    /// The migrations the app's migration table (Prisma, sqlx or Flyway) lists as applied, oldest first;
    /// `None` when this backend cannot read it. What the engine reports when it had to stop a migration.
    async fn applied_migrations(&self) -> Result<Option<Vec<String>>> {
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
