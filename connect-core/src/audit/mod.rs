//! The hardening audit's words and its engine: which checks exist ([`AuditCheck`]), how bad a finding is
//! ([`Severity`]), what was found and how to fix it ([`Finding`]), and the [`AuditReport`] a CI job judges
//! by [`AuditReport::failing`].
//!
//! Checks that need only the server run here, over the one [`Host`] (local or SSH): the effective sshd
//! settings and each `Match` block's, the firewall and the listening sockets, and the modes of sockets,
//! backups, the journal and secrets ([`audit_files`]). Their parsers and judges are private: [`audit`]'s
//! report is what a caller reads. Checks that need a backend's own client (PostgreSQL,
//! Patroni, Redis) are [`AuditSource`]s that the backend crates implement: this module imports none of them.
//!
//! A check that cannot run is a finding of its own ([`FindingStatus::NotChecked`], severity
//! [`Severity::Medium`]), never a silent pass: an audit that could not look cannot vouch.
//!
//! `--fix` applies only the safe fixes ([`SafeFix`]): file modes tightened, and the sshd settings, which
//! [`fix`] validates with `sshd -t`, applies, checks through a new connection while the old one stays open,
//! and reverts when that new connection fails.

mod files;
mod firewall;
pub mod fix;
mod network;
mod report;
mod sshd;
mod sshd_match;
mod words;

use std::sync::Arc;

use async_trait::async_trait;

use crate::host::Host;
pub use files::audit_files;
pub use network::is_loopback;
pub use report::{AuditReport, Finding, FindingStatus, FixOutcome, SafeFix};
pub use words::{AuditCheck, Severity};

/// A backend that audits itself with its own client (PostgreSQL, Patroni, Redis): the backend crates
/// implement it, so the audit's engine needs none of them.
#[async_trait]
pub trait AuditSource: Send + Sync {
    /// What is audited, for messages (`redis://127.0.0.1:6379`).
    fn audit_target(&self) -> String;

    /// The findings. A check that cannot run yields a [`FindingStatus::NotChecked`] finding, never an
    /// error and never nothing.
    async fn audit(&self) -> Vec<Finding>;
}

/// What the host checks look at: where sshd's config is, which ports are public, which sockets and files
/// must be private.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostAuditConfig {
    /// sshd's config file; `None`: sshd's own default (`/etc/ssh/sshd_config`).
    pub sshd_config: Option<String>,
    /// The `sshd` program.
    pub sshd_program: String,
    /// Ports that are meant to be reached from outside (the runbook's ufw rules: 22, 80, 443).
    pub public_ports: Vec<u16>,
    /// Sockets whose others bits must be clear: (check, path).
    pub sockets: Vec<(AuditCheck, String)>,
    /// Directories and files that must be private to their owner: (check, path).
    pub private_paths: Vec<(AuditCheck, String)>,
}

impl Default for HostAuditConfig {
    fn default() -> Self {
        HostAuditConfig {
            sshd_config: None,
            sshd_program: "sshd".to_string(),
            public_ports: vec![22, 80, 443],
            sockets: Vec::new(),
            private_paths: Vec::new(),
        }
    }
}

/// Runs every check: the host's over `host`, each source's with its own client, all at once.
pub async fn audit(
    host: &dyn Host,
    config: &HostAuditConfig,
    sources: &[Arc<dyn AuditSource>],
) -> AuditReport {
    let host_checks = async {
        let (sshd, net, files) = tokio::join!(
            sshd::audit_sshd(host, config),
            network::audit_network(host, &config.public_ports),
            files::audit_files(host, &config.sockets, &config.private_paths),
        );
        let mut all = sshd;
        all.extend(net);
        all.extend(files);
        all
    };
    let backend_checks = futures::future::join_all(sources.iter().map(|s| s.audit()));
    let (mut findings, backends) = tokio::join!(host_checks, backend_checks);
    findings.extend(backends.into_iter().flatten());
    AuditReport::new(findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorKind};

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()).map_err(|e| e.to_string()), Ok(s));
        }
        assert_eq!(
            Severity::parse("severe").map(drop).map_err(|e| e.kind()),
            Err(ErrorKind::InvalidInput)
        );
    }

    #[test]
    fn report_sorts_worst_first_and_fails_at_the_threshold() {
        let low = Finding::weak(AuditCheck::RedisBind, Severity::Low, "a", "m", "f");
        let high = Finding::weak(AuditCheck::Firewall, Severity::High, "b", "m", "f");
        let report = AuditReport::new(vec![low, high]);
        assert_eq!(report.findings[0].severity, Severity::High);
        assert_eq!(report.failing(Severity::Medium).len(), 1);
        assert_eq!(report.failing(Severity::Low).len(), 2);
        assert!(report.clone().into_result(Severity::Critical).is_ok());
        let err = report.into_result(Severity::High).map(drop).map_err(|e| e.kind());
        assert_eq!(err, Err(ErrorKind::Refused));
    }

    #[test]
    fn checks_serialize_as_their_dotted_names_and_back() {
        for c in AuditCheck::ALL {
            let json = serde_json::to_string(&c).expect("serialize");
            assert_eq!(json, format!("\"{}\"", c.name()));
            assert_eq!(serde_json::from_str::<AuditCheck>(&json).expect("back"), c);
        }
    }

    #[test]
    fn not_checked_is_a_medium_finding_with_the_reason() {
        let e = Error::new(ErrorKind::PermissionDenied, "x", "y", "no access").with_hint("run as root");
        let f = Finding::not_checked(AuditCheck::Firewall, "nft", &e);
        assert_eq!(
            (f.severity, f.status),
            (Severity::Medium, FindingStatus::NotChecked)
        );
        assert!(f.message.contains("no access") && f.fix == "run as root", "{f:?}");
    }
}
