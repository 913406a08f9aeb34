//! sshd's effective settings, as `sshd -T` prints them (every `Include` and default applied), judged key by
//! key; `Match` blocks are per connection and not in this view: `sshd_match` judges each of them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{AuditCheck, Finding, HostAuditConfig, SafeFix, Severity};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host};

/// How long `sshd -T`/`sshd -t` may take (they read a few files).
pub(crate) const SSHD_TIMEOUT: Duration = Duration::from_secs(30);

/// The four keywords the audit judges, as `sshd_config` spells them, with their checks.
pub(crate) const KEYWORDS: [(AuditCheck, &str); 4] = [
    (AuditCheck::SshdPasswordAuthentication, "PasswordAuthentication"),
    (
        AuditCheck::SshdKbdInteractiveAuthentication,
        "KbdInteractiveAuthentication",
    ),
    (AuditCheck::SshdPermitRootLogin, "PermitRootLogin"),
    (AuditCheck::SshdPubkeyAuthentication, "PubkeyAuthentication"),
];

/// `sshd -T` output as lowercase keyword → value (the first value of a keyword printed more than once).
pub(crate) fn parse_effective(text: &str) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((key, value)) = line.split_once(' ') {
            settings
                .entry(key.to_ascii_lowercase())
                .or_insert_with(|| value.trim().to_string());
        }
    }
    settings
}

/// The effective settings of the sshd whose config is `config` (sshd's default when `None`).
pub(crate) async fn effective(
    host: &dyn Host,
    program: &str,
    config: Option<&str>,
) -> Result<BTreeMap<String, String>> {
    let mut argv = vec![program.to_string(), "-T".to_string()];
    if let Some(path) = config {
        argv.extend(["-f".to_string(), path.to_string()]);
    }
    let command = Command::new(argv).timeout(SSHD_TIMEOUT);
    let out = host.run(&command).await.map_err(|e| {
        e.with_hint("is OpenSSH's sshd installed on the server (it prints its effective settings with -T)?")
    })?;
    if !out.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            "audit.sshd",
            config.unwrap_or("sshd"),
            format!("`{command}` failed: {stderr}"),
        )
        .with_hint("sshd -T reads the host keys: log in as root or a user with sudo-less access to them"));
    }
    let settings = parse_effective(&out.stdout_text());
    if settings.is_empty() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "audit.sshd",
            config.unwrap_or("sshd"),
            "`sshd -T` printed nothing",
        ));
    }
    Ok(settings)
}

/// Judges the effective settings: each weak keyword is a finding with its hardened value as the safe fix.
pub(crate) fn judge(settings: &BTreeMap<String, String>, subject: &str) -> Vec<Finding> {
    let get = |k: &str| settings.get(&k.to_ascii_lowercase()).map(String::as_str);
    let mut findings = Vec::new();
    let mut weak = |check, severity, keyword: &str, value: &str, message: String, fix: String| {
        findings.push(
            Finding::weak(check, severity, subject, message, fix).with_safe_fix(SafeFix::Sshd {
                keyword: keyword.to_string(),
                value: value.to_string(),
            }),
        );
    };
    if get("PasswordAuthentication") == Some("yes") {
        weak(
            AuditCheck::SshdPasswordAuthentication,
            Severity::High,
            "PasswordAuthentication",
            "no",
            "password login is on: anyone can guess passwords against it".into(),
            "`PasswordAuthentication no` in sshd_config, after installing a key (ssh-copy-id)".into(),
        );
    }
    if get("KbdInteractiveAuthentication") == Some("yes") {
        weak(
            AuditCheck::SshdKbdInteractiveAuthentication,
            Severity::High,
            "KbdInteractiveAuthentication",
            "no",
            "keyboard-interactive login is on: with PAM it asks for the password anyway".into(),
            "`KbdInteractiveAuthentication no` in sshd_config".into(),
        );
    }
    if get("PermitRootLogin") == Some("yes") {
        weak(
            AuditCheck::SshdPermitRootLogin,
            Severity::High,
            "PermitRootLogin",
            "prohibit-password",
            "root may log in with a password".into(),
            "`PermitRootLogin prohibit-password` (keys only) or `no` in sshd_config".into(),
        );
    }
    if get("PubkeyAuthentication") == Some("no") {
        weak(
            AuditCheck::SshdPubkeyAuthentication,
            Severity::Medium,
            "PubkeyAuthentication",
            "yes",
            "key login is off: only weaker methods remain".into(),
            "`PubkeyAuthentication yes` in sshd_config".into(),
        );
    }
    for (check, keyword) in KEYWORDS {
        if get(keyword).is_none() {
            findings.push(Finding::not_checked(
                check,
                subject,
                &Error::new(
                    ErrorKind::Unsupported,
                    "audit.sshd",
                    subject,
                    format!("`sshd -T` does not print {keyword} (an OpenSSH older than 8.7?)"),
                )
                .with_hint("upgrade OpenSSH, or check the keyword by hand"),
            ));
        }
    }
    findings
}

/// The sshd checks: `sshd -T`, judged; a run that fails is one "not checked" finding per keyword.
pub(crate) async fn audit_sshd(host: &dyn Host, config: &HostAuditConfig) -> Vec<Finding> {
    let subject = config.sshd_config.as_deref().unwrap_or("/etc/ssh/sshd_config");
    match effective(host, &config.sshd_program, config.sshd_config.as_deref()).await {
        Ok(settings) => {
            let mut findings = judge(&settings, subject);
            let weak = findings
                .iter()
                .filter(|f| f.status == super::FindingStatus::Weak)
                .map(|f| f.check)
                .collect();
            let program = &config.sshd_program;
            let blocks =
                super::sshd_match::audit_match_blocks(host, program, config.sshd_config.as_deref(), &weak);
            findings.extend(blocks.await);
            findings
        }
        Err(e) => KEYWORDS
            .iter()
            .map(|(check, _)| Finding::not_checked(*check, subject, &e))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEAK: &str = "port 22\npasswordauthentication yes\nkbdinteractiveauthentication yes\n\
                        permitrootlogin yes\npubkeyauthentication no\n";
    const HARD: &str = "passwordauthentication no\nkbdinteractiveauthentication no\n\
                        permitrootlogin prohibit-password\npubkeyauthentication yes\n";

    #[test]
    fn weak_settings_are_four_findings_each_with_its_safe_fix() {
        let findings = judge(&parse_effective(WEAK), "sshd_config");
        let checks: Vec<AuditCheck> = findings.iter().map(|f| f.check).collect();
        assert_eq!(checks, KEYWORDS.map(|(c, _)| c));
        assert!(findings.iter().all(|f| f.safe_fix.is_some()));
    }

    #[test]
    fn hardened_settings_are_no_finding() {
        assert_eq!(judge(&parse_effective(HARD), "sshd_config"), vec![]);
        let no_root = HARD.replace("prohibit-password", "no");
        assert_eq!(judge(&parse_effective(&no_root), "sshd_config"), vec![]);
    }

    #[test]
    fn a_keyword_sshd_does_not_print_is_not_checked() {
        let findings = judge(&parse_effective("passwordauthentication no\n"), "x");
        assert_eq!(findings.len(), 3);
        assert!(
            findings
                .iter()
                .all(|f| f.status == super::super::FindingStatus::NotChecked)
        );
    }
}
