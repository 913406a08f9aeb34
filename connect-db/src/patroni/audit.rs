//! Whether Patroni's REST API guards its unsafe endpoints: `PATCH /config` with an empty object, sent
//! without credentials. Patroni checks access before it reads the body, so a guarded API answers 401 (or
//! 403: an allowlist, a client certificate); an open one reads `{}`, finds nothing to patch and answers
//! 400, having changed nothing. Nothing else about the request can change the cluster.

use async_trait::async_trait;
use connect_core::audit::{AuditCheck, AuditSource, Finding, Severity};
use connect_core::{Error, ErrorKind, Result};
use serde_json::json;

use super::Patroni;

/// What one node's REST API did with an unauthenticated unsafe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestAccess {
    /// 401/403: credentials (or an allowlist, a client certificate) are required.
    Guarded,
    /// It would have acted on the request.
    Open,
}

impl Patroni {
    /// Probes `node`'s guard on unsafe endpoints without credentials (see the module's docs); changes
    /// nothing either way.
    pub async fn rest_access(&self, node: &str) -> Result<RestAccess> {
        let op = "patroni.audit";
        let mut anonymous = self.clone();
        anonymous.auth = None;
        let url = format!("{node}/config");
        let (status, body) = anonymous
            .send(op, "PATCH", &url, Some(&json!({})), self.read_timeout)
            .await?;
        match status {
            401 | 403 => Ok(RestAccess::Guarded),
            400 => Ok(RestAccess::Open),
            other => Err(Error::new(
                ErrorKind::Unsupported,
                op,
                &url,
                format!(
                    "PATCH /config {{}} answered {other}: {}",
                    String::from_utf8_lossy(&body).trim()
                ),
            )
            .with_hint("is this Patroni 2.x or 3.x (the audit reads its access check)?")),
        }
    }
}

#[async_trait]
impl AuditSource for Patroni {
    fn audit_target(&self) -> String {
        self.nodes.join(", ")
    }

    async fn audit(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        for node in &self.nodes {
            match self.rest_access(node).await {
                Ok(RestAccess::Guarded) => {}
                Ok(RestAccess::Open) => findings.push(Finding::weak(
                    AuditCheck::PatroniRestAuth,
                    Severity::High,
                    node.as_str(),
                    "the REST API takes unsafe requests without credentials: whoever reaches it can switch \
                     over, restart, or rewrite the cluster's configuration",
                    "set restapi.authentication (username, password) in every node's patroni.yml, reload \
                     Patroni, and give them to connect.toml as patroni_username/patroni_password",
                )),
                Err(e) => findings.push(Finding::not_checked(
                    AuditCheck::PatroniRestAuth,
                    node.as_str(),
                    &e,
                )),
            }
        }
        findings
    }
}
