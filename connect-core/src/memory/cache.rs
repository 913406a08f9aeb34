//! Redis in memory.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Faults, lock};
use crate::cache::{Cache, CacheFigures, CacheInfo};
use crate::error::Result;

/// Redis in memory: a primary with RDB snapshots and AOF off.
#[derive(Debug, Clone)]
pub struct MemoryCache {
    info: Arc<Mutex<CacheInfo>>,
    /// Hits and misses so far, as a test's traffic records them.
    reads: Arc<Mutex<(u64, u64)>>,
    faults: Faults,
}

impl Default for MemoryCache {
    fn default() -> Self {
        MemoryCache {
            info: Arc::new(Mutex::new(CacheInfo {
                role: "master".into(),
                last_save_unix: 1_760_000_000,
                bgsave_in_progress: false,
                last_bgsave_ok: true,
                aof_enabled: false,
                keys: 128,
            })),
            reads: Arc::default(),
            faults: Faults::default(),
        }
    }
}

impl MemoryCache {
    /// The same cache injecting `faults`, shared with other backends so calls are numbered across them.
    pub(crate) fn with_faults(mut self, faults: Faults) -> MemoryCache {
        self.faults = faults;
        self
    }

    /// Counts reads as an app's traffic would: `hits` that found their key, `misses` that did not.
    pub fn record_reads(&self, hits: u64, misses: u64) {
        let mut reads = lock(&self.reads);
        reads.0 += hits;
        reads.1 += misses;
    }

    /// The faults this cache injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn ping(&self) -> Result<()> {
        self.faults.around("cache.ping", "redis", async { Ok(()) }).await
    }

    async fn info(&self) -> Result<CacheInfo> {
        self.faults
            .around("cache.info", "redis", async { Ok(lock(&self.info).clone()) })
            .await
    }

    async fn figures(&self) -> Result<CacheFigures> {
        self.faults
            .around("cache.figures", "redis", async {
                let (keyspace_hits, keyspace_misses) = *lock(&self.reads);
                Ok(CacheFigures {
                    keyspace_hits,
                    keyspace_misses,
                    // An empty Redis 7 allocates about 1 MiB; each small key adds about 100 bytes.
                    used_memory_bytes: (1 << 20) + lock(&self.info).keys * 100,
                    max_memory_bytes: None,
                    connected_clients: 1,
                    evicted_keys: 0,
                })
            })
            .await
    }

    async fn save(&self) -> Result<CacheInfo> {
        self.faults
            .around("cache.save", "redis", async {
                let mut info = lock(&self.info);
                info.last_save_unix += 1;
                info.last_bgsave_ok = true;
                Ok(info.clone())
            })
            .await
    }
}
