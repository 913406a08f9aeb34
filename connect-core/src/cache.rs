//! Redis: the cache and session store.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What `INFO` says about persistence and replication.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheInfo {
    /// `master` or `slave`.
    pub role: String,
    /// Unix time of the last successful save (`LASTSAVE`).
    pub last_save_unix: i64,
    /// `rdb_bgsave_in_progress`.
    pub bgsave_in_progress: bool,
    /// `rdb_last_bgsave_status` is `ok`.
    pub last_bgsave_ok: bool,
    /// `aof_enabled`: when on, Redis restores from the AOF, not from dump.rdb.
    pub aof_enabled: bool,
    /// Keys in the current database (`DBSIZE`).
    pub keys: u64,
}

/// The cache.
#[async_trait]
pub trait Cache: Send + Sync + fmt::Debug {
    /// `PING`; Ok when Redis answered `PONG`.
    async fn ping(&self) -> Result<()>;

    /// Persistence and replication facts.
    async fn info(&self) -> Result<CacheInfo>;

    /// `BGSAVE`, then waits until `LASTSAVE` moves and the save reports ok; returns the new info.
    async fn save(&self) -> Result<CacheInfo>;
}
