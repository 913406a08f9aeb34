//! What an audit found and what `--fix` did: [`Finding`], [`SafeFix`], [`FixOutcome`], and the
//! [`AuditReport`] a CI job judges by [`AuditReport::failing`].

use serde::{Deserialize, Serialize};

use super::{AuditCheck, Severity};
use crate::error::{Error, ErrorKind, Result};

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
#[non_exhaustive]
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
