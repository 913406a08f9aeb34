//! Watching a container: health from the Engine's event stream, and its log since a time.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bollard::query_parameters::{EventsOptions, LogsOptions};
use connect_core::runtime::{ContainerInfo, ContainerState, Health, LogQuery};
use connect_core::{Error, ErrorKind, Result};
use futures::StreamExt;
use tokio::time::Instant;

use crate::client::Docker;
use crate::containers::{LogReport, unix_secs};
use crate::error::map_err;
use crate::inspect::{container_info, parse_rfc3339, why_not_serving};

/// How many of its last log lines an error about a container that stopped serving quotes.
const LAST_LINES: usize = 5;

impl Docker {
    /// Waits until the container is healthy (or running, without a health check), woken by the Engine's
    /// events for it and confirmed by inspect. Fails `Unhealthy` when it turns unhealthy or exits, `Timeout`
    /// at the deadline; both carry its state and last health-check outputs.
    pub async fn wait_container_healthy(&self, name: &str, deadline: Duration) -> Result<ContainerInfo> {
        let until = Instant::now() + deadline;
        // Events are replayed from just before the first inspect, so a change between the two is not missed.
        let since = unix_secs(SystemTime::now()) - 1;
        let filters = HashMap::from([
            ("container".to_string(), vec![name.to_string()]),
            ("type".to_string(), vec!["container".to_string()]),
        ]);
        let mut events = self.api.events(Some(EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        }));
        loop {
            let raw = match self.api.inspect_container(name, None).await {
                Ok(r) => r,
                Err(e) => return Err(map_err("docker.wait_healthy", name, e)),
            };
            let info = container_info(raw.clone());
            match (info.state, info.health) {
                (ContainerState::Running, Health::Healthy | Health::None) => return Ok(info),
                (ContainerState::Running, Health::Unhealthy) | (ContainerState::Exited, _) => {
                    // The engine's undo removes the container, and its log with it: the error keeps the end.
                    let said = self.last_log_lines(name, LAST_LINES).await;
                    let why = match said.as_slice() {
                        [] => why_not_serving(&raw),
                        lines => format!("{}; its log ends: {}", why_not_serving(&raw), lines.join(" | ")),
                    };
                    return Err(Error::new(ErrorKind::Unhealthy, "docker.wait_healthy", name, why)
                        .with_hint(format!("read its log: docker logs {name}")));
                }
                _ => {}
            }
            match tokio::time::timeout_at(until, events.next()).await {
                Err(_) => {
                    let raw = self.api.inspect_container(name, None).await.ok().unwrap_or(raw);
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "docker.wait_healthy",
                        name,
                        format!("not healthy after {deadline:?}: {}", why_not_serving(&raw)),
                    ));
                }
                Ok(Some(Ok(_event))) => {}
                Ok(Some(Err(e))) => return Err(map_err("docker.wait_healthy", name, e)),
                Ok(None) => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "docker.wait_healthy",
                        name,
                        "the Engine closed its event stream",
                    ));
                }
            }
        }
    }

    /// The last `n` lines of the container's log; none when it cannot be read (it only adds to an error).
    async fn last_log_lines(&self, name: &str, n: usize) -> Vec<String> {
        let query = LogQuery {
            tail: Some(n),
            follow: false,
        };
        let Ok(lines) = self.container_logs(name, query).await else {
            return Vec::new();
        };
        lines.filter_map(|l| async { l.ok() }).collect().await
    }

    /// The container's log lines written since `since`, oldest first (stdout and stderr interleaved).
    pub async fn container_logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>> {
        let mut stream = self.api.logs(
            name,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                // The API filters by whole seconds; the timestamps filter the rest exactly.
                since: i32::try_from(unix_secs(since)).unwrap_or(i32::MAX),
                timestamps: true,
                tail: "all".into(),
                ..Default::default()
            }),
        );
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| map_err("docker.logs", name, e))?;
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(text
            .lines()
            .filter_map(|line| {
                let (ts, rest) = line.split_once(' ').unwrap_or((line, ""));
                match parse_rfc3339(ts) {
                    Some(t) if t < since => None,
                    Some(_) => Some(rest.to_string()),
                    None => Some(line.to_string()),
                }
            })
            .collect())
    }

    /// The log since `since` with its count of error lines.
    pub async fn log_report(&self, name: &str, since: SystemTime) -> Result<LogReport> {
        let lines = self.container_logs_since(name, since).await?;
        let error_lines = lines
            .iter()
            .filter(|l| l.to_ascii_lowercase().contains("error"))
            .count();
        Ok(LogReport { lines, error_lines })
    }
}
