//! Preflight checks on any [`Host`] (SSH, local or in memory), each a typed result: the server answers,
//! disks under thresholds, free inodes, the Docker daemon answering, clock skew.
//!
//! ```
//! use connect_core::memory::MemoryHost;
//! use connect_core::preflight::{HostCheckKind, PreflightConfig, preflight};
//! use connect_core::vocabulary::CheckStatus;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let host = MemoryHost::new("prod");
//! host.set_disk_usage("/opt/connect", 97);
//! let mut config = PreflightConfig::default();
//! config.docker_socket = None;
//! let report = preflight(&host, &config).await;
//! let disk = report.checks.iter().find(|c| c.kind == HostCheckKind::DiskUsage).unwrap();
//! assert_eq!(disk.status, CheckStatus::Fail);
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::host::{Command, Endpoint, Host};
use crate::model::DeployPolicy;
use crate::vocabulary::CheckStatus;

/// What a [`HostCheck`] looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostCheckKind {
    /// The server runs a program (`measured`: round trip in ms).
    Reachable,
    /// Disk usage of a path (`measured`: percent used).
    DiskUsage,
    /// Free inodes of a path's filesystem (`measured`: percent free).
    FreeInodes,
    /// The Docker daemon answers `GET /_ping` (`measured`: round trip in ms).
    Docker,
    /// The server's clock against ours (`measured`: server minus local, in ms).
    ClockSkew,
}

/// One preflight check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCheck {
    /// What was checked.
    pub kind: HostCheckKind,
    /// The path or socket checked (empty for the server as a whole).
    pub target: String,
    /// The verdict.
    pub status: CheckStatus,
    /// The measured figure (see [`HostCheckKind`] for its unit); `None` when the check could not measure.
    pub measured: Option<f64>,
    /// What was seen, and the fix when it failed.
    pub detail: String,
}

/// All checks, in the order they ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostPreflight {
    /// The checks.
    pub checks: Vec<HostCheck>,
}

impl HostPreflight {
    /// Whether no check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &HostCheck> {
        self.checks.iter().filter(|c| c.status == CheckStatus::Fail)
    }
}

/// Thresholds and targets of [`preflight`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PreflightConfig {
    /// Paths whose disks are checked (the runbook's `/` and `/opt/connect`).
    pub disk_paths: Vec<String>,
    /// Warn above this percentage used.
    pub disk_warn_percent: u8,
    /// Fail above this percentage used.
    pub disk_fail_percent: u8,
    /// Fail when fewer inodes than this percentage are free.
    pub min_free_inodes_percent: u8,
    /// The Docker daemon's socket on the server; `None` skips the check.
    pub docker_socket: Option<String>,
    /// Warn when the server's clock is further off than this.
    pub max_clock_skew: Duration,
    /// How long each network check may take.
    pub timeout: Duration,
}

impl PreflightConfig {
    /// The checks a deploy makes, with the deploy policy's thresholds: the one set of thresholds. The Docker
    /// daemon is left to the deploy's own runtime (`docker_socket: None`).
    pub fn from_policy(policy: &DeployPolicy) -> PreflightConfig {
        PreflightConfig {
            disk_paths: policy.disk_paths.clone(),
            disk_warn_percent: policy.disk_warn_percent,
            disk_fail_percent: policy.disk_fail_percent,
            min_free_inodes_percent: policy.min_free_inodes_percent,
            docker_socket: None,
            max_clock_skew: policy.max_clock_skew,
            timeout: Duration::from_secs(5),
        }
    }
}

impl Default for PreflightConfig {
    /// The default deploy policy's thresholds, and the Docker daemon at `/var/run/docker.sock`.
    fn default() -> Self {
        PreflightConfig {
            docker_socket: Some("/var/run/docker.sock".to_string()),
            ..PreflightConfig::from_policy(&DeployPolicy::default())
        }
    }
}

impl HostCheck {
    /// The check's name in a deploy's report: `server`, `disk <path>`, `inodes <path>`, `docker`, `clock`.
    pub fn name(&self) -> String {
        match self.kind {
            HostCheckKind::Reachable => "server".into(),
            HostCheckKind::DiskUsage => format!("disk {}", self.target),
            HostCheckKind::FreeInodes => format!("inodes {}", self.target),
            HostCheckKind::Docker => "docker".into(),
            HostCheckKind::ClockSkew => "clock".into(),
        }
    }
}

fn check(
    kind: HostCheckKind,
    target: &str,
    status: CheckStatus,
    measured: Option<f64>,
    detail: String,
) -> HostCheck {
    HostCheck {
        kind,
        target: target.to_string(),
        status,
        measured,
        detail,
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs every check. An unreachable server stops the rest (they would only repeat its error).
pub async fn preflight(host: &dyn Host, config: &PreflightConfig) -> HostPreflight {
    let mut report = HostPreflight::default();
    let started = std::time::Instant::now();
    let probe = tokio::time::timeout(config.timeout, host.run(&Command::new(["true"]))).await;
    let rtt_ms = started.elapsed().as_secs_f64() * 1000.0;
    let failure = match probe {
        Ok(Ok(out)) if out.success() => None,
        Ok(Ok(out)) => Some(format!(
            "`true` failed on the server: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "no answer within {:?}; check the network and sshd",
            config.timeout
        )),
    };
    if let Some(detail) = failure {
        report.checks.push(check(
            HostCheckKind::Reachable,
            "",
            CheckStatus::Fail,
            None,
            detail,
        ));
        return report;
    }
    report.checks.push(check(
        HostCheckKind::Reachable,
        "",
        CheckStatus::Pass,
        Some(rtt_ms),
        format!("{} answered in {rtt_ms:.1} ms", host.name()),
    ));

    for path in &config.disk_paths {
        match host.disk_usage(path).await {
            Ok(usage) => {
                let pct = usage.used_percent();
                let status = if pct > config.disk_fail_percent {
                    CheckStatus::Fail
                } else if pct > config.disk_warn_percent {
                    CheckStatus::Warn
                } else {
                    CheckStatus::Pass
                };
                let detail = match status {
                    CheckStatus::Fail => format!(
                        "{pct}% used, above the {}% limit; free space before deploying (docker image prune, old backups)",
                        config.disk_fail_percent
                    ),
                    CheckStatus::Warn => {
                        format!("{pct}% used, above the {}% warning", config.disk_warn_percent)
                    }
                    CheckStatus::Pass => format!(
                        "{pct}% used, {} MiB available",
                        usage.available_bytes / (1024 * 1024)
                    ),
                };
                report.checks.push(check(
                    HostCheckKind::DiskUsage,
                    path,
                    status,
                    Some(f64::from(pct)),
                    detail,
                ));
                if usage.total_inodes > 0 {
                    let free_pct = usage.free_inodes as f64 * 100.0 / usage.total_inodes as f64;
                    let status = if free_pct < f64::from(config.min_free_inodes_percent) {
                        CheckStatus::Fail
                    } else {
                        CheckStatus::Pass
                    };
                    let detail = format!(
                        "{} of {} inodes free ({free_pct:.1}%)",
                        usage.free_inodes, usage.total_inodes
                    );
                    report.checks.push(check(
                        HostCheckKind::FreeInodes,
                        path,
                        status,
                        Some(free_pct),
                        detail,
                    ));
                }
            }
            Err(e) => report.checks.push(check(
                HostCheckKind::DiskUsage,
                path,
                CheckStatus::Fail,
                None,
                e.to_string(),
            )),
        }
    }

    if let Some(socket) = &config.docker_socket {
        report
            .checks
            .push(docker_ping(host, socket, config.timeout).await);
    }

    let local_before = now_secs();
    let clock = tokio::time::timeout(config.timeout, host.run(&Command::new(["date", "+%s.%N"]))).await;
    let local_after = now_secs();
    let text = match clock {
        Ok(Ok(out)) if out.success() => out.stdout_text(),
        _ => String::new(),
    };
    match text.trim().parse::<f64>() {
        Ok(remote) => {
            let skew_ms = (remote - (local_before + local_after) / 2.0) * 1000.0;
            let status = if skew_ms.abs() > config.max_clock_skew.as_secs_f64() * 1000.0 {
                CheckStatus::Warn
            } else {
                CheckStatus::Pass
            };
            let detail = match status {
                CheckStatus::Pass => format!("server clock {skew_ms:+.0} ms from ours"),
                _ => format!(
                    "server clock {skew_ms:+.0} ms from ours, over {:?}; enable NTP (timedatectl set-ntp true)",
                    config.max_clock_skew
                ),
            };
            report
                .checks
                .push(check(HostCheckKind::ClockSkew, "", status, Some(skew_ms), detail));
        }
        Err(_) => report.checks.push(check(
            HostCheckKind::ClockSkew,
            "",
            CheckStatus::Warn,
            None,
            format!("cannot read the server clock from {text:?} (needs GNU date)"),
        )),
    }
    report
}

async fn docker_ping(host: &dyn Host, socket: &str, timeout: Duration) -> HostCheck {
    let started = std::time::Instant::now();
    let ping = async {
        let mut stream = host
            .connect(&Endpoint::Unix(socket.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 1024];
        // Read until the body arrives or the daemon closes; a ping reply is tiny.
        while reply.len() < 8192 {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.ends_with(b"OK") {
                break;
            }
        }
        Ok::<String, String>(String::from_utf8_lossy(&reply).into_owned())
    };
    let result = tokio::time::timeout(timeout, ping).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(Ok(reply)) if reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200") => check(
            HostCheckKind::Docker,
            socket,
            CheckStatus::Pass,
            Some(ms),
            format!("the Docker daemon answered /_ping in {ms:.1} ms"),
        ),
        Ok(Ok(reply)) => check(
            HostCheckKind::Docker,
            socket,
            CheckStatus::Fail,
            None,
            format!(
                "unexpected reply to /_ping: {:?}",
                reply.lines().next().unwrap_or_default()
            ),
        ),
        Ok(Err(e)) => check(
            HostCheckKind::Docker,
            socket,
            CheckStatus::Fail,
            None,
            format!("{e}; start the daemon (systemctl start docker) and let the user reach its socket"),
        ),
        Err(_) => check(
            HostCheckKind::Docker,
            socket,
            CheckStatus::Fail,
            None,
            format!("no answer within {timeout:?}; the daemon is hung or overloaded"),
        ),
    }
}
