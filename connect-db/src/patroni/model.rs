//! What Patroni's REST API answers: members, history, the health endpoints, and their parsers.

use connect_core::database::{Member, Role};
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::http_base_url;

/// One member as `GET /cluster` describes it, with where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatroniMember {
    /// Role, state, lag and timeline.
    pub member: Member,
    /// Its REST API (`http://patroni1.internal:8008`), without the `/patroni` suffix Patroni adds.
    pub api_url: Option<String>,
    /// Where its PostgreSQL listens.
    pub host: Option<String>,
    /// Its PostgreSQL port.
    pub port: Option<u16>,
}

/// One line of `GET /history`: a timeline switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatroniHistoryEntry {
    /// The timeline that ended.
    pub timeline: u64,
    /// The WAL position where it ended.
    pub lsn: u64,
    /// PostgreSQL's reason (`no recovery target specified`).
    pub reason: String,
    /// When, as Patroni wrote it.
    pub timestamp: Option<String>,
    /// Who became leader, when Patroni recorded it.
    pub new_leader: Option<String>,
}

/// Patroni's health endpoints, for load balancers and checks: each answers 200 when the condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// `/primary`: this node is the running leader.
    Primary,
    /// `/replica`: a running replica.
    Replica,
    /// `/replica?lag=N`: a running replica at most N bytes behind.
    ReplicaWithLag(u64),
    /// `/read-only`: leader or replica, anything that serves reads.
    ReadOnly,
    /// `/health`: PostgreSQL is running.
    Health,
    /// `/liveness`: Patroni's heartbeat loop runs.
    Liveness,
    /// `/readiness`: ready to take traffic (leader, or replica streaming).
    Readiness,
}

impl HealthCheck {
    pub(crate) fn path(&self) -> String {
        match self {
            HealthCheck::Primary => "/primary".into(),
            HealthCheck::Replica => "/replica".into(),
            HealthCheck::ReplicaWithLag(n) => format!("/replica?lag={n}"),
            HealthCheck::ReadOnly => "/read-only".into(),
            HealthCheck::Health => "/health".into(),
            HealthCheck::Liveness => "/liveness".into(),
            HealthCheck::Readiness => "/readiness".into(),
        }
    }
}

pub(crate) fn parse_cluster(v: &Value, node: &str) -> Result<Vec<PatroniMember>> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Corrupt,
            "patroni.cluster",
            node,
            format!("unexpected /cluster answer: {why}"),
        )
    };
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no members array"))?;
    members
        .iter()
        .map(|m| {
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a member without a name"))?
                .to_string();
            let role = match m.get("role").and_then(Value::as_str).unwrap_or("") {
                "leader" | "master" | "primary" => Role::Leader,
                "replica" | "sync_standby" | "quorum_standby" => Role::Replica,
                _ => Role::Other,
            };
            let state = m
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            // Patroni reports lag as a number of bytes, or the string "unknown" when it cannot tell.
            let lag_bytes = m.get("lag").and_then(Value::as_u64);
            let timeline = m.get("timeline").and_then(Value::as_u64);
            // Actions are posted to this address: only a plain http(s) base URL is taken from the answer.
            let api_url = m.get("api_url").and_then(Value::as_str).and_then(|u| {
                let base = u.trim_end_matches('/').trim_end_matches("/patroni");
                http_base_url("patroni.cluster", base)
                    .inspect_err(
                        |e| tracing::warn!(member = %name, error = %e, "ignoring the member's api_url"),
                    )
                    .ok()
            });
            Ok(PatroniMember {
                member: Member {
                    name,
                    role,
                    state,
                    lag_bytes: if role == Role::Leader { None } else { lag_bytes },
                    timeline,
                },
                api_url,
                host: m.get("host").and_then(Value::as_str).map(str::to_string),
                port: m
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok()),
            })
        })
        .collect()
}

pub(crate) fn parse_history(v: &Value, node: &str) -> Result<Vec<PatroniHistoryEntry>> {
    let bad = || {
        Error::new(
            ErrorKind::Corrupt,
            "patroni.history",
            node,
            "unexpected /history answer",
        )
    };
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|row| {
            let row = row.as_array().ok_or_else(bad)?;
            Ok(PatroniHistoryEntry {
                timeline: row.first().and_then(Value::as_u64).ok_or_else(bad)?,
                lsn: row.get(1).and_then(Value::as_u64).unwrap_or(0),
                reason: row.get(2).and_then(Value::as_str).unwrap_or("").to_string(),
                timestamp: row.get(3).and_then(Value::as_str).map(str::to_string),
                new_leader: row.get(4).and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_of_patroni_3() {
        let v: Value = serde_json::from_str(
            r#"{"members":[{"name":"node1","role":"leader","state":"running","api_url":"http://127.0.0.1:8008/patroni","host":"127.0.0.1","port":5432,"timeline":2},
            {"name":"node2","role":"replica","state":"streaming","api_url":"http://127.0.0.1:8009/patroni","host":"127.0.0.1","port":5433,"timeline":2,"lag":"unknown"}],"scope":"x"}"#,
        )
        .unwrap();
        let ms = parse_cluster(&v, "n").unwrap();
        assert_eq!(ms[0].member.role, Role::Leader);
        assert_eq!(ms[0].api_url.as_deref(), Some("http://127.0.0.1:8008"));
        assert_eq!(ms[1].member.lag_bytes, None);
        assert_eq!(ms[1].port, Some(5433));
        assert!(parse_cluster(&serde_json::json!({}), "n").is_err());
        let v = serde_json::json!({"members": [{"name": "x", "role": "leader", "state": "running",
            "api_url": "http://user:pw@evil.example:8008/patroni"}]});
        assert_eq!(
            parse_cluster(&v, "n").unwrap()[0].api_url,
            None,
            "credentials in api_url are ignored"
        );
    }
}
