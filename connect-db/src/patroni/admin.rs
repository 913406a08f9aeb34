//! Patroni's configuration and rebuild calls, used by continuous backups and point-in-time recovery.

use std::time::Duration;

use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use serde_json::Value;

use super::http::{refusal, unreachable_all};
use super::{Patroni, REQUEST_TIMEOUT};

impl Patroni {
    /// Changes Patroni's dynamic configuration (`PATCH /config`, merged into what etcd holds): every member
    /// applies it on its next loop, and a new leader after a failover has it too.
    pub async fn patch_config(&self, op: &str, body: &Value) -> Result<()> {
        let mut last = None;
        for node in &self.nodes {
            let url = format!("{node}/config");
            match self.send(op, "PATCH", &url, Some(body), REQUEST_TIMEOUT).await {
                Ok((200..=299, _)) => return Ok(()),
                Ok((status, text)) => {
                    return Err(refusal(op, node, status, &String::from_utf8_lossy(&text)));
                }
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(unreachable_all(op, &self.nodes, last))
    }

    /// Waits until every listed member's own Patroni reports the pause (`GET /patroni`: `"pause": true`) or
    /// its end: the pause is in etcd at once, but each Patroni reads it on its next loop, and until then it
    /// would still restart a PostgreSQL that was stopped on purpose.
    pub async fn wait_paused(&self, paused: bool, deadline: Duration) -> Result<()> {
        let op = "patroni.wait_paused";
        poll_until(op, "cluster", deadline, Duration::from_millis(200), || async {
            let members = match self.cluster().await {
                Ok(m) => m,
                Err(e) if e.is_retryable() => return Ok(Err(e.to_string())),
                Err(e) => return Err(e),
            };
            for m in &members {
                let Some(url) = &m.api_url else {
                    return Ok(Err(format!("{} lists no REST address", m.member.name)));
                };
                match self.node_status(url).await {
                    Ok(v) if v["pause"].as_bool().unwrap_or(false) == paused => {}
                    Ok(_) => return Ok(Err(format!("{} has not seen it yet", m.member.name))),
                    Err(e) if e.is_retryable() => return Ok(Err(e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            Ok(Ok(()))
        })
        .await
    }

    /// Rebuilds `member` from the leader (`POST /reinitialize {"force": true}`): Patroni stops its
    /// PostgreSQL, removes its data directory and clones the leader. Refused for the leader itself.
    pub async fn reinitialize(&self, member: &str) -> Result<()> {
        let op = "patroni.reinitialize";
        let m = self.member(op, member).await?;
        let body = serde_json::json!({ "force": true });
        self.post_action(op, &m, "/reinitialize", &body)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Unavailable => Error::new(ErrorKind::Refused, op, member, e.message().to_string())
                    .with_hint("a member is rebuilt only from a running leader, and never the leader itself"),
                _ => e,
            })
    }
}

impl Patroni {
    /// Writes the cluster's system id in etcd (`<namespace>/<scope>/initialize`, through etcd's v3 JSON
    /// gateway at `etcd`): how a cluster takes a database restored from another cluster's backup (a fresh
    /// server's). Patroni caches its own database's system id while paused and reads it again when the pause
    /// ends; a member whose data then differs from this value exits, one whose data directory is empty clones
    /// the leader.
    pub async fn set_system_id(
        &self,
        etcd: &str,
        namespace: &str,
        scope: &str,
        system_id: &str,
    ) -> Result<()> {
        let op = "patroni.set_system_id";
        let key = format!("{}/{scope}/initialize", namespace.trim_end_matches('/'));
        let url = format!("{}/v3/kv/put", etcd.trim_end_matches('/'));
        let b64 = |v: &str| data_encoding::BASE64.encode(v.as_bytes());
        let body = serde_json::json!({ "key": b64(&key), "value": b64(system_id) });
        let failed = |why: String| {
            Error::new(ErrorKind::Unavailable, op, &url, why)
                .with_hint("set [database.pitr] etcd to etcd's client URL as the server reaches it (Patroni's etcd3 hosts)")
        };
        // Patroni's REST credentials are Patroni's: etcd does not get them.
        let plain = Patroni {
            auth: None,
            ..self.clone()
        };
        match plain.send(op, "POST", &url, Some(&body), REQUEST_TIMEOUT).await {
            Ok((200..=299, _)) => Ok(()),
            Ok((status, text)) => Err(failed(format!(
                "etcd answered {status}: {}",
                String::from_utf8_lossy(&text)
            ))),
            Err(e) => Err(failed(format!("etcd did not answer: {}", e.message())).with_source(e)),
        }
    }
}
