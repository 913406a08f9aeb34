//! Redis: the cache and session store.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

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

/// What Redis counts of its use (`INFO stats`, `memory`, `clients`): totals since it started, so a reader
/// turns two readings into a hit rate over the time between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheFigures {
    /// Reads that found their key (`keyspace_hits`).
    pub keyspace_hits: u64,
    /// Reads that did not (`keyspace_misses`).
    pub keyspace_misses: u64,
    /// Memory Redis allocated, in bytes (`used_memory`).
    pub used_memory_bytes: u64,
    /// Its `maxmemory`, when set (0 in `INFO` means none).
    pub max_memory_bytes: Option<u64>,
    /// Clients connected now (`connected_clients`), the reader included.
    pub connected_clients: u64,
    /// Keys evicted for memory (`evicted_keys`).
    pub evicted_keys: u64,
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

    /// Hits, misses, memory and clients, for the metrics. Unsupported unless a cache says otherwise.
    async fn figures(&self) -> Result<CacheFigures> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "cache.figures",
            "redis",
            format!("{self:?} cannot count its use"),
        )
        .with_hint("use a cache that implements figures (connect-db's `Redis`)"))
    }
}
