//! The hardening audit's words and its engine: which checks exist ([`AuditCheck`]), how bad a finding is
//! ([`Severity`]), what was found and how to fix it ([`Finding`]), and the [`AuditReport`] a CI job judges
//! by [`AuditReport::failing`].
//!
//! Checks that need only the server run here, over the one [`Host`] (local or SSH): the effective sshd
//! settings ([`sshd`]), the firewall and the listening sockets ([`network`]), and the modes of sockets,
//! backups, the journal and secrets ([`files`]). Checks that need a backend's own client (PostgreSQL,
//! Patroni, Redis) are [`AuditSource`]s that the backend crates implement: this module imports none of them.
//!
//! A check that cannot run is a finding of its own ([`FindingStatus::NotChecked`], severity
//! [`Severity::Medium`]), never a silent pass: an audit that could not look cannot vouch.
//!
//! `--fix` applies only the safe fixes ([`SafeFix`]): file modes tightened, and the sshd settings, which
//! [`fix`] validates with `sshd -t`, applies, checks through a new connection while the old one stays open,
//! and reverts when that new connection fails.

pub mod files;
pub mod fix;
pub mod network;
pub mod sshd;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::host::Host;

/// How bad a finding is, in the order `--fail-on` compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// A setting wider than needed that something else still covers (e.g. the firewall).
    Low,
    /// A weakness reachable from the server itself, or a check that could not run.
    Medium,
    /// A weakness reachable from the network, or one that gives an attacker a foothold.
    High,
    /// Anyone who reaches the server owns it (an open Docker socket, trust from any address).
    Critical,
}

impl Severity {
    /// Every severity, mildest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The word used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Reads `info`, `low`, `medium`, `high` or `critical`.
    pub fn parse(s: &str) -> Result<Severity> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                Error::invalid("audit.severity", s, "not a severity")
                    .with_hint("one of info, low, medium, high, critical")
            })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the audit looks at. Its [`AuditCheck::name`] is what reports and JSON show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AuditCheck {
    /// sshd's effective `PasswordAuthentication`.
    SshdPasswordAuthentication,
    /// sshd's effective `KbdInteractiveAuthentication` (a password prompt by another name with PAM).
    SshdKbdInteractiveAuthentication,
    /// sshd's effective `PermitRootLogin`.
    SshdPermitRootLogin,
    /// sshd's effective `PubkeyAuthentication`.
    SshdPubkeyAuthentication,
    /// The firewall (ufw or nftables) against the ports the config says are public.
    Firewall,
    /// TCP sockets listening on more than loopback, against the public ports.
    ListeningSockets,
    /// The Docker Engine's socket (root to whoever can write it).
    DockerSocket,
    /// HAProxy's admin socket (`level admin`: traffic to whoever can write it).
    HaproxyAdminSocket,
    /// Patroni's REST API guards its unsafe endpoints (`restapi.authentication`).
    PatroniRestAuth,
    /// PostgreSQL's `listen_addresses`, running and configured.
    PostgresListenAddresses,
    /// `trust` lines of `pg_hba.conf` (`pg_hba_file_rules`).
    PostgresHbaTrust,
    /// Redis `protected-mode`.
    RedisProtectedMode,
    /// Redis `requirepass`.
    RedisRequirepass,
    /// Redis `bind`.
    RedisBind,
    /// The backup directory and its dumps.
    BackupFiles,
    /// The state directory: the journal and the deploy lock.
    JournalFiles,
    /// Files holding secrets (the app's env file).
    SecretFiles,
}

impl AuditCheck {
    /// Every check, in report order.
    pub const ALL: [AuditCheck; 17] = [
        AuditCheck::SshdPasswordAuthentication,
        AuditCheck::SshdKbdInteractiveAuthentication,
        AuditCheck::SshdPermitRootLogin,
        AuditCheck::SshdPubkeyAuthentication,
        AuditCheck::Firewall,
        AuditCheck::ListeningSockets,
        AuditCheck::DockerSocket,
        AuditCheck::HaproxyAdminSocket,
        AuditCheck::PatroniRestAuth,
        AuditCheck::PostgresListenAddresses,
        AuditCheck::PostgresHbaTrust,
        AuditCheck::RedisProtectedMode,
        AuditCheck::RedisRequirepass,
        AuditCheck::RedisBind,
        AuditCheck::BackupFiles,
        AuditCheck::JournalFiles,
        AuditCheck::SecretFiles,
    ];

    /// The check's name in reports: `sshd.password_authentication`, `redis.bind`…
    pub fn name(self) -> &'static str {
        match self {
            AuditCheck::SshdPasswordAuthentication => "sshd.password_authentication",
            AuditCheck::SshdKbdInteractiveAuthentication => "sshd.kbd_interactive_authentication",
            AuditCheck::SshdPermitRootLogin => "sshd.permit_root_login",
            AuditCheck::SshdPubkeyAuthentication => "sshd.pubkey_authentication",
            AuditCheck::Firewall => "firewall",
            AuditCheck::ListeningSockets => "listening_sockets",
            AuditCheck::DockerSocket => "docker.socket",
            AuditCheck::HaproxyAdminSocket => "haproxy.admin_socket",
            AuditCheck::PatroniRestAuth => "patroni.rest_auth",
            AuditCheck::PostgresListenAddresses => "postgres.listen_addresses",
            AuditCheck::PostgresHbaTrust => "postgres.hba_trust",
            AuditCheck::RedisProtectedMode => "redis.protected_mode",
            AuditCheck::RedisRequirepass => "redis.requirepass",
            AuditCheck::RedisBind => "redis.bind",
            AuditCheck::BackupFiles => "files.backups",
            AuditCheck::JournalFiles => "files.journal",
            AuditCheck::SecretFiles => "files.secrets",
        }
    }
}

// JSON carries the same dotted names as the text report, so a CI script greps one vocabulary.
impl Serialize for AuditCheck {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for AuditCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        AuditCheck::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("no audit check named {name:?}")))
    }
}

impl fmt::Display for AuditCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a finding is a weakness seen, or a check that could not look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// The check ran and saw this.
    Weak,
    /// The check could not run; the message says why.
    NotChecked,
    /// Nothing to judge (what the config names is not there): for the record, never a weakness.
    Note,
}

/// A fix `--fix` may apply by itself, because it cannot take anything down or lock anyone out (sshd's is
/// checked through a new connection and reverted when that fails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SafeFix {
    /// Set an sshd keyword (`PasswordAuthentication no`).
    Sshd {
        /// The keyword as `sshd_config` spells it.
        keyword: String,
        /// Its hardened value.
        value: String,
    },
    /// Remove permission bits (`chmod go-rwx`): never adds any.
    RemoveModeBits {
        /// The file, directory or socket on the server.
        path: String,
        /// The bits to clear (`0o077`).
        bits: u32,
        /// Every file below a directory too (`chmod -R`).
        recursive: bool,
    },
}

/// What the audit saw, how bad it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Which check.
    pub check: AuditCheck,
    /// How bad.
    pub severity: Severity,
    /// A weakness, or a check that could not run.
    pub status: FindingStatus,
    /// What it is about: a file, an address, a setting.
    pub subject: String,
    /// What was seen, in a sentence.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// The part of the fix `--fix` applies by itself, if any.
    pub safe_fix: Option<SafeFix>,
}

impl Finding {
    /// A weakness.
    pub fn weak(
        check: AuditCheck,
        severity: Severity,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            severity,
            status: FindingStatus::Weak,
            subject: subject.into(),
            message: message.into(),
            fix: fix.into(),
            safe_fix: None,
        }
    }

    /// A remark at [`Severity::Info`]: nothing there to judge.
    pub fn note(
        check: AuditCheck,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: FindingStatus::Note,
            ..Finding::weak(check, Severity::Info, subject, message, fix)
        }
    }

    /// A check that could not run: severity [`Severity::Medium`], the error's message and hint.
    pub fn not_checked(check: AuditCheck, subject: impl Into<String>, why: &Error) -> Finding {
        let fix = why.hint().map_or_else(
            || "make the check possible (see the message), then run the audit again".to_string(),
            str::to_string,
        );
        Finding {
            check,
            severity: Severity::Medium,
            status: FindingStatus::NotChecked,
            subject: subject.into(),
            message: format!("not checked: {}", why.summary()),
            fix,
            safe_fix: None,
        }
    }

    /// With the part `--fix` may apply.
    pub fn with_safe_fix(mut self, fix: SafeFix) -> Finding {
        self.safe_fix = Some(fix);
        self
    }
}

/// What `--fix` did with one safe fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixOutcome {
    /// Which checks it was for.
    pub checks: Vec<AuditCheck>,
    /// What was changed (or would have been).
    pub change: String,
    /// Whether the change is in place now.
    pub applied: bool,
    /// How it went: verified, reverted and why, refused and why.
    pub detail: String,
}

/// Every finding of one audit, worst first, and what `--fix` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The findings, worst first.
    pub findings: Vec<Finding>,
    /// The fixes applied or refused (empty without `--fix`).
    pub fixes: Vec<FixOutcome>,
}

impl AuditReport {
    /// A report of these findings, sorted worst first (then by check and subject, so runs compare).
    pub fn new(mut findings: Vec<Finding>) -> AuditReport {
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.check.cmp(&b.check))
                .then(a.subject.cmp(&b.subject))
        });
        AuditReport {
            findings,
            fixes: Vec::new(),
        }
    }

    /// The findings of one check.
    pub fn of(&self, check: AuditCheck) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.check == check).collect()
    }

    /// The findings at or above `severity`.
    pub fn failing(&self, severity: Severity) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.severity >= severity).collect()
    }

    /// `Ok` when nothing is at or above `severity`; else a [`ErrorKind::Refused`] error (operation `audit`)
    /// counting them, which the command turns into its own exit code.
    pub fn into_result(self, severity: Severity) -> Result<AuditReport> {
        let failing = self.failing(severity).len();
        if failing == 0 {
            return Ok(self);
        }
        Err(Error::new(
            ErrorKind::Refused,
            "audit",
            "server",
            format!("{failing} finding(s) at or above {severity}"),
        )
        .with_hint(
            "apply each finding's fix (`connect-ops audit --fix` applies the safe ones), then audit again",
        ))
    }

    /// The report as text: one block per finding, then the fixes.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.findings.is_empty() {
            out.push_str("no findings\n");
        }
        for f in &self.findings {
            let what = match f.status {
                FindingStatus::Weak => "",
                FindingStatus::NotChecked => " (not checked)",
                FindingStatus::Note => " (note)",
            };
            out.push_str(&format!(
                "{:<8} {}{what}: {}\n         {}\n         fix: {}{}\n",
                f.severity.as_str().to_uppercase(),
                f.check,
                f.subject,
                f.message,
                f.fix,
                if f.safe_fix.is_some() {
                    " (--fix applies it)"
                } else {
                    ""
                }
            ));
        }
        for x in &self.fixes {
            let names: Vec<&str> = x.checks.iter().map(|c| c.name()).collect();
            out.push_str(&format!(
                "{} {} [{}]: {}\n",
                if x.applied { "FIXED   " } else { "NOT FIXED" },
                x.change,
                names.join(", "),
                x.detail
            ));
        }
        out
    }
}

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
