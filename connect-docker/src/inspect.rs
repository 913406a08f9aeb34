//! The Engine's inspect answers as [`ContainerInfo`], and its timestamps as [`SystemTime`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use connect_core::runtime::{ContainerInfo, ContainerState, Health};

/// How many health-check outputs an error carries.
const HEALTH_LOG_KEPT: usize = 5;

pub(crate) fn container_info(r: ContainerInspectResponse) -> ContainerInfo {
    let state = r.state.unwrap_or_default();
    let config = r.config.unwrap_or_default();
    let health = state.health.clone().unwrap_or_default();
    let health_log: Vec<String> = health
        .log
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            let out = h.output.unwrap_or_default();
            format!("exit {}: {}", h.exit_code.unwrap_or(-1), out.trim())
        })
        .collect();
    let skip = health_log.len().saturating_sub(HEALTH_LOG_KEPT);
    ContainerInfo {
        name: r.name.unwrap_or_default().trim_start_matches('/').to_string(),
        id: r.id.unwrap_or_default(),
        image: config.image.unwrap_or_default(),
        labels: config
            .labels
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        state: match state.status {
            Some(ContainerStateStatusEnum::RUNNING) | Some(ContainerStateStatusEnum::PAUSED) => {
                ContainerState::Running
            }
            Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
            _ => ContainerState::Exited,
        },
        health: match health.status {
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            _ => Health::None,
        },
        health_log: health_log.into_iter().skip(skip).collect(),
        started_at: state.started_at.as_deref().and_then(parse_rfc3339),
        restart_count: r.restart_count.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
    }
}

/// What went wrong with a container that is not serving, for an error message: its state, exit code and
/// last health outputs.
pub(crate) fn why_not_serving(r: &ContainerInspectResponse) -> String {
    let state = r.state.clone().unwrap_or_default();
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    let mut why = format!("state {status}");
    if matches!(
        state.status,
        Some(
            ContainerStateStatusEnum::EXITED
                | ContainerStateStatusEnum::RESTARTING
                | ContainerStateStatusEnum::DEAD
        )
    ) {
        why.push_str(&format!(", exit code {}", state.exit_code.unwrap_or(-1)));
        if let Some(e) = state.error.filter(|e| !e.is_empty()) {
            why.push_str(&format!(", error: {e}"));
        }
    }
    if let Some(h) = state.health {
        why.push_str(&format!(
            ", health {} after {} failing checks",
            h.status.map(|s| s.to_string()).unwrap_or_default(),
            h.failing_streak.unwrap_or(0)
        ));
    }
    let info = container_info(r.clone());
    if !info.health_log.is_empty() {
        why.push_str("; last health checks: ");
        why.push_str(&info.health_log.join(" | "));
    }
    why
}

/// Parses the Engine's RFC 3339 timestamps (`2025-10-13T14:00:00.123456789Z`, or with an offset). The zero
/// time Docker uses for "never" (`0001-01-01T00:00:00Z`) is `None`.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    // humantime reads UTC only: an offset (`+02:00`) is read here and taken off the time it gives.
    let offset = s
        .len()
        .checked_sub(6)
        .and_then(|i| Some(i).zip(s.get(i..)))
        .filter(|(_, o)| (o.starts_with('+') || o.starts_with('-')) && o.as_bytes()[3] == b':');
    let (utc, offset_secs) = match offset {
        Some((i, o)) => {
            let h: u64 = o[1..3].parse().ok()?;
            let m: u64 = o[4..6].parse().ok()?;
            (format!("{}Z", &s[..i]), (o.starts_with('+'), h * 3600 + m * 60))
        }
        None => (s.to_string(), (true, 0)),
    };
    // Before 1970 (Docker's zero time for "never") is an error there, so `None` here.
    let t = humantime::parse_rfc3339_weak(&utc).ok()?;
    match offset_secs {
        (true, secs) => t.checked_sub(Duration::from_secs(secs)),
        (false, secs) => t.checked_add(Duration::from_secs(secs)),
    }
    .filter(|t| *t >= UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_timestamps() {
        let t = parse_rfc3339("2026-11-27T04:47:38.695144348Z").expect("parses");
        let d = t.duration_since(UNIX_EPOCH).expect("after epoch");
        assert_eq!(d.as_secs(), 1_795_754_858);
        assert_eq!(d.subsec_nanos(), 695_144_348);
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(
            parse_rfc3339("2026-11-27T06:47:38+02:00"),
            parse_rfc3339("2026-11-27T04:47:38Z")
        );
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
