//! PostgreSQL's `listen_addresses` (running, and pending a restart) and `pg_hba` trust lines.

use async_trait::async_trait;
use connect_core::Error;
use connect_core::audit::is_loopback;
use connect_core::audit::{AuditCheck, AuditSource, Finding, Severity};

use super::wider_than_loopback;
use crate::Postgres;
use crate::postgres::pg_error;

/// Judges PostgreSQL's `listen_addresses` value (`when`: "listens", "will listen after a restart").
pub(crate) fn judge_listen(value: &str, subject: &str, when: &str) -> Option<Finding> {
    let wide = wider_than_loopback(value);
    if wide.is_empty() {
        return None;
    }
    Some(Finding::weak(
        AuditCheck::PostgresListenAddresses,
        Severity::High,
        subject,
        format!(
            "PostgreSQL {when} on {} (listen_addresses = '{value}'): only pg_hba and the firewall stand \
             between it and the network",
            wide.join(", ")
        ),
        "listen_addresses = 'localhost' (the app and Connect Ops reach it on the server; with Patroni: \
         postgresql.listen), then restart PostgreSQL; a replica on another machine needs only its private \
         address, firewalled",
    ))
}

/// One line of `pg_hba_file_rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HbaRule {
    /// Its line in the file.
    pub(crate) line: i32,
    /// `local`, `host`, `hostssl`, `hostnossl`…
    pub(crate) kind: String,
    /// The databases, comma-separated.
    pub(crate) databases: String,
    /// The roles, comma-separated.
    pub(crate) users: String,
    /// The address (`None` for `local`).
    pub(crate) address: Option<String>,
    /// The netmask, when the line gave one separately or as a CIDR.
    pub(crate) netmask: Option<String>,
    /// `trust`, `scram-sha-256`, `peer`…
    pub(crate) auth_method: Option<String>,
    /// The server's complaint about the line, if any (the line is then ignored).
    pub(crate) error: Option<String>,
}

/// Judges the `pg_hba` rules of `file`: trust lines and lines the server could not read.
pub(crate) fn judge_hba(rules: &[HbaRule], file: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for r in rules {
        let subject = format!("{file}:{}", r.line);
        if let Some(e) = &r.error {
            findings.push(Finding::weak(
                AuditCheck::PostgresHbaTrust,
                Severity::Low,
                &subject,
                format!("the server ignores this line: {e}"),
                "fix or remove the line, then SELECT pg_reload_conf()",
            ));
            continue;
        }
        if r.auth_method.as_deref() != Some("trust") {
            continue;
        }
        let who = format!("as {} to {}", r.users, r.databases);
        let (severity, reach) = match (&r.kind[..], r.address.as_deref()) {
            ("local", _) => (
                Severity::Medium,
                "any user on the server (over the unix socket)".to_string(),
            ),
            (_, Some(a)) if is_loopback(a) => (
                Severity::High,
                "any process on the server, containers on the host network included".to_string(),
            ),
            (_, a) => (
                Severity::Critical,
                format!("anyone who reaches {}", a.unwrap_or("any address")),
            ),
        };
        findings.push(Finding::weak(
            AuditCheck::PostgresHbaTrust,
            severity,
            subject,
            format!("`trust`: {reach} logs in {who} without a password"),
            "replace trust by scram-sha-256 (peer for local admin logins), then SELECT pg_reload_conf(); with \
             Patroni, in postgresql.pg_hba of patroni.yml",
        ));
    }
    findings
}

impl Postgres {
    async fn audit_findings(&self) -> Result<Vec<Finding>, (Vec<AuditCheck>, Error)> {
        let both = [AuditCheck::PostgresListenAddresses, AuditCheck::PostgresHbaTrust];
        let client = self.connect().await.map_err(|e| (both.to_vec(), e))?;
        let target = self.target().to_string();
        let mut findings = Vec::new();

        let listen = client
            .query_one(
                "SELECT setting, pending_restart FROM pg_settings WHERE name = 'listen_addresses'",
                &[],
            )
            .await
            .map_err(|e| (vec![both[0]], pg_error("audit.postgres", self.target(), e)));
        match listen {
            Ok(row) => {
                let running: String = row.get(0);
                let pending: bool = row.get(1);
                findings.extend(judge_listen(&running, &target, "listens"));
                if pending {
                    let file = client
                        .query_opt(
                            "SELECT setting, sourcefile || ':' || sourceline FROM pg_file_settings \
                             WHERE name = 'listen_addresses' ORDER BY seqno DESC LIMIT 1",
                            &[],
                        )
                        .await;
                    match file {
                        Ok(Some(row)) => {
                            let value: Option<String> = row.get(0);
                            let at: Option<String> = row.get(1);
                            let at = at.unwrap_or_else(|| target.clone());
                            findings.extend(judge_listen(
                                &value.unwrap_or_default(),
                                &at,
                                "will listen after its next restart",
                            ));
                        }
                        Ok(None) => {}
                        Err(e) => findings.push(Finding::not_checked(
                            both[0],
                            &target,
                            &pg_error("audit.postgres", self.target(), e)
                                .in_context("listen_addresses changes at the next restart, to a value")
                                .with_hint("audit as a superuser (pg_file_settings is theirs to read)"),
                        )),
                    }
                }
            }
            Err((_, e)) => findings.push(Finding::not_checked(both[0], &target, &e)),
        }

        let rules = client
            .query(
                "SELECT line_number, type, array_to_string(database, ','), array_to_string(user_name, ','), \
                 address, netmask, auth_method, error, current_setting('hba_file') FROM pg_hba_file_rules \
                 ORDER BY line_number",
                &[],
            )
            .await;
        match rules {
            Ok(rows) => {
                let file = rows
                    .first()
                    .map_or_else(|| "pg_hba.conf".to_string(), |r| r.get::<_, String>(8));
                let rules: Vec<HbaRule> = rows
                    .iter()
                    .map(|r| HbaRule {
                        line: r.get::<_, Option<i32>>(0).unwrap_or(0),
                        kind: r.get::<_, Option<String>>(1).unwrap_or_default(),
                        databases: r.get::<_, Option<String>>(2).unwrap_or_default(),
                        users: r.get::<_, Option<String>>(3).unwrap_or_default(),
                        address: r.get(4),
                        netmask: r.get(5),
                        auth_method: r.get(6),
                        error: r.get(7),
                    })
                    .collect();
                findings.extend(judge_hba(&rules, &file));
            }
            Err(e) => findings.push(Finding::not_checked(
                both[1],
                &target,
                &pg_error("audit.postgres", self.target(), e).with_hint(
                    "audit as a superuser, or GRANT SELECT ON pg_hba_file_rules and EXECUTE ON FUNCTION \
                     pg_hba_file_rules() to the role",
                ),
            )),
        }
        Ok(findings)
    }
}

#[async_trait]
impl AuditSource for Postgres {
    fn audit_target(&self) -> String {
        self.target().to_string()
    }

    async fn audit(&self) -> Vec<Finding> {
        let target = self.target().to_string();
        self.audit_findings().await.unwrap_or_else(|(checks, e)| {
            checks
                .into_iter()
                .map(|c| Finding::not_checked(c, &target, &e))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_wider_than_loopback_are_high() {
        assert!(judge_listen("", "pg", "listens").is_none());
        assert_eq!(
            judge_listen("*", "pg", "listens").map(|f| f.severity),
            Some(Severity::High)
        );
    }

    fn rule(line: i32, kind: &str, address: Option<&str>, method: &str) -> HbaRule {
        HbaRule {
            line,
            kind: kind.into(),
            databases: "all".into(),
            users: "all".into(),
            address: address.map(str::to_string),
            netmask: None,
            auth_method: Some(method.into()),
            error: None,
        }
    }

    #[test]
    fn trust_lines_weigh_by_who_reaches_them() {
        let rules = [
            rule(1, "local", None, "trust"),
            rule(2, "host", Some("127.0.0.1"), "trust"),
            rule(3, "host", Some("0.0.0.0"), "trust"),
            rule(4, "host", Some("127.0.0.1"), "scram-sha-256"),
            rule(5, "local", None, "peer"),
        ];
        let f = judge_hba(&rules, "pg_hba.conf");
        let got: Vec<(&str, Severity)> = f.iter().map(|f| (f.subject.as_str(), f.severity)).collect();
        assert_eq!(
            got,
            [
                ("pg_hba.conf:1", Severity::Medium),
                ("pg_hba.conf:2", Severity::High),
                ("pg_hba.conf:3", Severity::Critical)
            ]
        );
    }
}
