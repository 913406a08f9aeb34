//! The audit's vocabulary: how bad a finding is ([`Severity`]) and which check made it ([`AuditCheck`], whose
//! dotted name is the same in text and JSON).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
