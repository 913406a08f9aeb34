//! A container's resource use for the metrics: one `GET /containers/{name}/stats?stream=false&one-shot=true`.
//!
//! One-shot because the Engine otherwise waits for a second reading (about a second) to fill `precpu_stats`:
//! the sampler keeps the previous reading itself and turns the CPU totals into a share.

use bollard::query_parameters::StatsOptions;
use connect_core::Result;
use connect_core::runtime::ContainerStats;
use futures::StreamExt;

use crate::client::Docker;
use crate::error::{is_not_found, map_err};

impl Docker {
    /// The container's CPU total, memory in use (without the page cache, as `docker stats` shows it) and
    /// memory limit (the Engine reports the machine's memory for a container without one); `None` when there
    /// is no such container.
    pub async fn container_stats(&self, name: &str) -> Result<Option<ContainerStats>> {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.api.stats(name, Some(options));
        let reading = match stream.next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) if is_not_found(&e) => return Ok(None),
            Some(Err(e)) => return Err(map_err("docker.stats", name, e)),
            None => return Ok(None),
        };
        let cpu_ns = reading
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let memory = reading.memory_stats.unwrap_or_default();
        // cgroup v2 names the page cache `inactive_file`, v1 `total_inactive_file`: `docker stats` subtracts it.
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| s.get("inactive_file").or_else(|| s.get("total_inactive_file")))
            .copied()
            .unwrap_or(0);
        Ok(Some(ContainerStats {
            cpu_ns,
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.filter(|l| *l > 0),
        }))
    }
}
