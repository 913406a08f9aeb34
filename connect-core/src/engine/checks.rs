//! Preflight (runbook §1) and post-deployment verification (runbook §5), as typed reports.

use std::time::SystemTime;

use super::Deployer;

use crate::database::DatabaseClusterExt;
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Endpoint, Host};
use crate::model::Color;
use crate::preflight::{PreflightConfig, preflight};
use crate::runtime::{ContainerState, Health, labels};
use crate::vocabulary::{CheckReport, CheckStatus};

/// The runbook's recovery point objective (15 minutes): preflight warns when no WAL segment has been archived
/// for longer, since a loss of the server would lose that much.
const RUNBOOK_RPO: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Lines the runbook counts as errors: any line containing "error", case-insensitively. The post-deploy
/// check, the watch and the operator's views count by it.
pub fn is_error_line(line: &str) -> bool {
    line.to_ascii_lowercase().contains("error")
}

/// How long a smoke request may take, connection included.
const SMOKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET path` on the color's port, from the server itself (through the host's stream, so over SSH it is the
/// same connection): the status code of the answer.
pub(crate) async fn smoke(host: &dyn Host, port: u16, path: &str) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The path was checked by `AppSpec::validate` when the deployer was built.
    let target = format!("127.0.0.1:{port}{path}");
    let exchange = async {
        let endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let mut stream = host.connect(&endpoint).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let io =
            |e: std::io::Error| Error::new(ErrorKind::Unavailable, "verify.smoke", &target, e.to_string());
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        // The status line is all that is needed; it fits in the first read of any real server's answer,
        // but a server may send it in pieces, so read until its end of line.
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or("");
        line.split_whitespace()
            .nth(1)
            .filter(|_| line.starts_with("HTTP/"))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unhealthy,
                    "verify.smoke",
                    &target,
                    format!("not an HTTP answer: {line:?}"),
                )
            })
    };
    tokio::time::timeout(SMOKE_DEADLINE, exchange)
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "verify.smoke", &target, "no answer in 5 s"))?
}

impl Deployer {
    /// The runbook's pre-deployment checks: the server answers, disks and inodes under the policy's thresholds,
    /// its clock close to ours, Docker answers (listing the app's containers, for the record), the database
    /// cluster has a leader, the cache answers.
    pub async fn preflight(&self) -> Result<CheckReport> {
        let b = &self.backends;
        let mut report = CheckReport::default();
        // The server itself (reachable, disks, inodes, clock) with the policy's thresholds; Docker is asked
        // through the deploy's own runtime below.
        let config = PreflightConfig::from_policy(&self.config.policy);
        for c in preflight(b.host.as_ref(), &config).await.checks {
            report.push(c.name(), c.status, c.detail);
        }
        let app = [(labels::APP.to_string(), self.config.app.name.clone())].into();
        report.record_result("containers", b.runtime.list(&app).await, |cs| {
            let names: Vec<String> = cs
                .iter()
                .map(|c| format!("{} ({}, {})", c.name, c.release().unwrap_or("?"), c.health))
                .collect();
            if names.is_empty() {
                "none of the app's containers run yet".into()
            } else {
                names.join(", ")
            }
        });
        report.record_result("database", b.database.leader().await, |m| {
            format!("leader {}", m.name)
        });
        match b.database.continuous_backup().await {
            Ok(Some(state)) => {
                let (status, detail) = state.verdict(RUNBOOK_RPO);
                report.push("continuous backup", status, detail);
            }
            Ok(None) => {}
            Err(e) => report.push("continuous backup", CheckStatus::Fail, e.to_string()),
        }
        report.record_result("cache", b.cache.ping().await, |_| "PONG".into());
        if let Some(sets) = &self.config.policy.backup_sets {
            let (status, detail) =
                crate::backup_set::age_check(b.host.as_ref(), &sets.dir, sets.max_age).await;
            report.push("backup set", status, detail);
        }
        Ok(report)
    }

    /// The runbook's post-deployment check of the live color, counting error lines of the last five minutes
    /// (`docker logs --since 5m`).
    pub async fn verify(&self) -> Result<CheckReport> {
        let journal = self.store.load().await?;
        let live = journal.live.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "deploy.verify",
                "journal",
                "nothing is deployed yet",
            )
            .with_hint("deploy a release first, or adopt a running one")
        })?;
        let since = SystemTime::now() - std::time::Duration::from_secs(300);
        self.verify_color(live, since).await
    }

    /// The runbook's post-deployment checks on `color`: the container healthy, the router sending it
    /// traffic, the database's check query, the cache, and error lines logged since `since`.
    pub async fn verify_color(&self, color: Color, since: SystemTime) -> Result<CheckReport> {
        let b = &self.backends;
        let slot = self.config.topology.slot(color);
        let mut report = CheckReport::default();
        let path = &self.config.app.health_path;
        match b.runtime.inspect(&slot.container).await {
            Ok(Some(c)) if c.is_serving() => {
                report.push("health", CheckStatus::Pass, format!("{} {}", c.name, c.health))
            }
            // Docker has not judged yet (its first check is one interval after the start), but the health
            // gate may have passed on the app's own answer: ask it again.
            Ok(Some(c))
                if c.state == ContainerState::Running
                    && c.health == Health::Starting
                    && self.config.app.serves_http() =>
            {
                match smoke(b.host.as_ref(), slot.host_port, path).await {
                    Ok(code) if (200..400).contains(&code) => report.push(
                        "health",
                        CheckStatus::Pass,
                        format!(
                            "{} starting by Docker's check; GET {path} answered {code}",
                            c.name
                        ),
                    ),
                    answer => report.push(
                        "health",
                        CheckStatus::Fail,
                        format!(
                            "{} starting by Docker's check, and GET {path} answered {}",
                            c.name,
                            answer.map_or_else(|e| e.to_string(), |code| code.to_string())
                        ),
                    ),
                }
            }
            Ok(Some(c)) => report.push(
                "health",
                CheckStatus::Fail,
                format!(
                    "{} is {:?}, {}: {}",
                    c.name,
                    c.state,
                    c.health,
                    c.health_log.join("; ")
                ),
            ),
            Ok(None) => report.push(
                "health",
                CheckStatus::Fail,
                format!("{} does not exist", slot.container),
            ),
            Err(e) => report.push("health", CheckStatus::Fail, e.to_string()),
        }
        report.record_result(
            "router",
            b.router.server(&slot.server).await.and_then(|s| {
                if s.is_live() {
                    Ok(s)
                } else {
                    Err(Error::new(
                        ErrorKind::Unhealthy,
                        "router.server",
                        &slot.server,
                        format!(
                            "not live: {:?}, check {:?}, weight {}",
                            s.admin, s.check, s.weight
                        ),
                    ))
                }
            }),
            |s| format!("{}/{} live at {}", b.router.backend(), s.name, s.address),
        );
        for path in &self.config.app.smoke_paths {
            let answer = smoke(b.host.as_ref(), slot.host_port, path).await;
            let status = match &answer {
                Ok(code) if *code < 500 => CheckStatus::Pass,
                _ => CheckStatus::Fail,
            };
            let detail = match answer {
                Ok(code) => format!("GET {path} on port {} answered {code}", slot.host_port),
                Err(e) => e.to_string(),
            };
            report.push(format!("smoke {path}"), status, detail);
        }
        report.record_result("database", b.database.check_query().await, |n| {
            format!("check query answered {n}")
        });
        report.record_result("cache", b.cache.ping().await, |_| "PONG".into());
        match b.runtime.logs_since(&slot.container, since).await {
            Ok(lines) => {
                let errors: Vec<&String> = lines.iter().filter(|l| is_error_line(l)).collect();
                let max = self.config.policy.max_error_lines;
                let status = if errors.len() > max {
                    CheckStatus::Fail
                } else {
                    CheckStatus::Pass
                };
                let last = errors.last().map(|l| format!("; last: {l}")).unwrap_or_default();
                report.push(
                    "logs",
                    status,
                    format!("{} error lines (limit {max}){last}", errors.len()),
                );
            }
            Err(e) => report.push("logs", CheckStatus::Fail, e.to_string()),
        }
        Ok(report)
    }
}
