//! `--fix`: the safe fixes only, applied the way careful tools do.
//!
//! Modes are only ever tightened (`chmod go-rwx`), then read again. sshd is changed so that nobody is
//! locked out: a new connection must work before anything changes (else the check could not tell), the
//! hardened keywords go in a marked block at the top of `sshd_config` (sshd keeps the first value of a
//! keyword, so the block wins over every later line and `Include`), the candidate is validated with
//! `sshd -t` before it replaces the file, sshd is reloaded, and a NEW connection is opened while the old
//! one (the [`Host`] the audit runs over) stays open. If the new connection fails, the old one puts the
//! original file back and reloads again.

use std::time::Duration;

use async_trait::async_trait;

use super::sshd::{SSHD_TIMEOUT, effective};
use super::{AuditCheck, AuditReport, FixOutcome, SafeFix};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt, PutOptions};
use crate::wait::poll_until;

/// The first line of the block `--fix` writes at the top of `sshd_config`.
pub const BEGIN_MARK: &str = "# connect-ops audit --fix: begin (sshd keeps the first value of a keyword)";
/// The block's last line.
pub const END_MARK: &str = "# connect-ops audit --fix: end";

/// Opens a new connection to the server the way the deploy logs in, proves it can run a program, and
/// closes it. The old connection is not this one.
#[async_trait]
pub trait ConnectionProbe: Send + Sync {
    /// `Ok` when a new login works now.
    async fn open_new(&self) -> Result<()>;
}

#[cfg(feature = "ssh")]
#[async_trait]
impl ConnectionProbe for crate::ssh::SshConfig {
    async fn open_new(&self) -> Result<()> {
        let host = crate::ssh::SshHost::connect(self.clone()).await?;
        let ran = host.run_checked(&Command::new(["true"])).await;
        host.close().await;
        ran.map(drop)
    }
}

/// How `--fix` changes sshd.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SshdFix {
    /// The file to change (`/etc/ssh/sshd_config`).
    pub config_path: String,
    /// The `sshd` program (for `-t` and `-T`).
    pub sshd_program: String,
    /// The argv that makes the running sshd read its config again (`systemctl reload ssh`: a SIGHUP).
    pub reload: Vec<String>,
    /// What `PermitRootLogin yes` becomes: `prohibit-password` (keys only) or `no`.
    pub permit_root_login: String,
    /// How long a new connection may take to succeed after the reload (sshd re-executes itself on
    /// SIGHUP and refuses connections for that moment).
    pub probe_deadline: Duration,
}

impl Default for SshdFix {
    fn default() -> Self {
        SshdFix {
            config_path: "/etc/ssh/sshd_config".into(),
            sshd_program: "sshd".into(),
            reload: vec!["systemctl".into(), "reload".into(), "ssh".into()],
            permit_root_login: "prohibit-password".into(),
            probe_deadline: Duration::from_secs(15),
        }
    }
}

/// `original` with the marked block (keyword, value) at its top, any earlier block removed.
pub(crate) fn render_sshd_config(original: &str, settings: &[(String, String)]) -> String {
    let mut out = String::new();
    if !settings.is_empty() {
        out.push_str(BEGIN_MARK);
        out.push('\n');
        for (k, v) in settings {
            out.push_str(&format!("{k} {v}\n"));
        }
        out.push_str(END_MARK);
        out.push('\n');
    }
    let mut inside = false;
    for line in original.lines() {
        if line == BEGIN_MARK {
            inside = true;
            continue;
        }
        if inside {
            inside = line != END_MARK;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Applies every safe fix of `report`: modes over `host`; sshd only with a `probe` for new connections.
pub async fn apply_safe_fixes(
    host: &dyn Host,
    report: &AuditReport,
    sshd: &SshdFix,
    probe: Option<&dyn ConnectionProbe>,
) -> Vec<FixOutcome> {
    let mut outcomes = Vec::new();
    let mut sshd_settings: Vec<(String, String)> = Vec::new();
    let mut sshd_checks = Vec::new();
    for f in &report.findings {
        match &f.safe_fix {
            Some(SafeFix::Sshd { keyword, value }) => {
                let value = if keyword == "PermitRootLogin" {
                    sshd.permit_root_login.clone()
                } else {
                    value.clone()
                };
                sshd_settings.push((keyword.clone(), value));
                sshd_checks.push(f.check);
            }
            Some(SafeFix::RemoveModeBits {
                path,
                bits,
                recursive,
            }) => outcomes.push(remove_mode_bits(host, f.check, path, *bits, *recursive).await),
            None => {}
        }
    }
    if !sshd_settings.is_empty() {
        outcomes.push(fix_sshd(host, sshd, &sshd_settings, sshd_checks, probe).await);
    }
    outcomes
}

fn symbolic(bits: u32) -> String {
    let mut who = String::new();
    if bits & 0o070 != 0 {
        who.push('g');
    }
    if bits & 0o007 != 0 {
        who.push('o');
    }
    format!("{who}-rwx")
}

async fn remove_mode_bits(
    host: &dyn Host,
    check: AuditCheck,
    path: &str,
    bits: u32,
    recursive: bool,
) -> FixOutcome {
    let mut argv = vec!["chmod".to_string()];
    if recursive {
        argv.push("-R".into());
    }
    argv.extend([symbolic(bits), "--".into(), path.to_string()]);
    let command = Command::new(argv).timeout(Duration::from_secs(60));
    let result = host.run_checked(&command).await;
    FixOutcome {
        checks: vec![check],
        change: command.to_string(),
        applied: result.is_ok(),
        detail: match result {
            Ok(_) => "done".to_string(),
            Err(e) => format!("failed: {}", e.summary()),
        },
    }
}

async fn fix_sshd(
    host: &dyn Host,
    plan: &SshdFix,
    settings: &[(String, String)],
    checks: Vec<AuditCheck>,
    probe: Option<&dyn ConnectionProbe>,
) -> FixOutcome {
    let change = settings
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let outcome = |applied: bool, detail: String| FixOutcome {
        checks: checks.clone(),
        change: format!("{}: {change}", plan.config_path),
        applied,
        detail,
    };
    let Some(probe) = probe else {
        return outcome(
            false,
            "not applied: the audit runs without SSH (host = \"local\"), so nothing could prove a new login \
             still works; change it by hand from a second session"
                .into(),
        );
    };
    match change_sshd(host, plan, settings, probe).await {
        Ok(detail) => outcome(true, detail),
        Err((applied, e)) => outcome(applied, e.summary()),
    }
}

/// `Ok(detail)` when the change is in place and verified; `Err((in place?, why))` otherwise.
async fn change_sshd(
    host: &dyn Host,
    plan: &SshdFix,
    settings: &[(String, String)],
    probe: &dyn ConnectionProbe,
) -> std::result::Result<String, (bool, Error)> {
    let path = plan.config_path.as_str();
    let refuse = |e: Error| (false, e);
    // A login that already fails cannot tell a lockout from the change apart.
    probe
        .open_new()
        .await
        .map_err(|e| refuse(e.in_context("not applied: a new connection fails before any change")))?;
    let original = host.read_file(path).await.map_err(refuse)?.ok_or_else(|| {
        refuse(Error::new(
            ErrorKind::NotFound,
            "audit.fix.sshd",
            path,
            "no such file",
        ))
    })?;
    let original = String::from_utf8(original).map_err(|_| {
        refuse(Error::new(
            ErrorKind::Corrupt,
            "audit.fix.sshd",
            path,
            "not UTF-8: not changed",
        ))
    })?;
    let candidate_path = format!("{path}.connect-ops-new");
    let candidate = render_sshd_config(&original, settings);
    let file = PutOptions {
        mode: file_mode(host, path).await,
        create_new: false,
    };
    host.write_file(&candidate_path, candidate.into_bytes(), file)
        .await
        .map_err(refuse)?;
    let test =
        Command::new([plan.sshd_program.as_str(), "-t", "-f", candidate_path.as_str()]).timeout(SSHD_TIMEOUT);
    if let Err(e) = host.run_checked(&test).await {
        let _ = host.remove_file(&candidate_path).await;
        return Err(refuse(
            e.in_context("not applied: sshd -t rejects the changed config"),
        ));
    }
    let backup = format!("{path}.connect-ops-backup");
    host.write_file(
        &backup,
        original.clone().into_bytes(),
        PutOptions {
            mode: 0o600,
            create_new: false,
        },
    )
    .await
    .map_err(refuse)?;
    host.rename(&candidate_path, path).await.map_err(refuse)?;

    let verified = async {
        reload(host, plan).await?;
        // The old connection must still run programs: it is the way back.
        host.run_checked(&Command::new(["true"])).await?;
        new_login(probe, plan).await?;
        let now = effective(host, &plan.sshd_program, Some(path)).await?;
        for (k, v) in settings {
            let seen = now.get(&k.to_ascii_lowercase()).map(String::as_str);
            if seen.map(canonical) != Some(canonical(v)) {
                return Err(Error::new(
                    ErrorKind::Drift,
                    "audit.fix.sshd",
                    path,
                    format!("sshd -T shows {k} {} after the change", seen.unwrap_or("nothing")),
                ));
            }
        }
        Ok(())
    }
    .await;
    let Err(why) = verified else {
        return Ok(format!(
            "validated by sshd -t, reloaded, a new connection logged in while this one stayed open; the \
             original is kept as {backup}"
        ));
    };
    // Put the original back through the old connection, which is still open.
    let revert = async {
        host.write_file(path, original.into_bytes(), file).await?;
        reload(host, plan).await?;
        new_login(probe, plan).await
    }
    .await;
    let e = match revert {
        Ok(()) => why.in_context("reverted, a new connection works again"),
        Err(r) => Error::new(
            ErrorKind::Failed,
            "audit.fix.sshd",
            path,
            format!("{}; the revert failed too: {}", why.summary(), r.summary()),
        )
        .with_hint(format!(
            "keep this session open and restore {backup} over {path} by hand, then reload sshd"
        )),
    };
    Err((false, e.with_kind(ErrorKind::Refused)))
}

/// sshd prints `PermitRootLogin prohibit-password` under its older name.
fn canonical(value: &str) -> &str {
    match value {
        "prohibit-password" => "without-password",
        v => v,
    }
}

/// The file's permission bits, so the changed config keeps them; sshd's usual 644 when `stat` cannot say.
async fn file_mode(host: &dyn Host, path: &str) -> u32 {
    let stat = Command::new(["stat", "-L", "-c", "%a", path]).timeout(SSHD_TIMEOUT);
    match host.run_checked(&stat).await {
        Ok(out) => u32::from_str_radix(out.stdout_text().trim(), 8).unwrap_or(0o644),
        Err(_) => 0o644,
    }
}

async fn reload(host: &dyn Host, plan: &SshdFix) -> Result<()> {
    let command = Command::new(plan.reload.iter().map(String::as_str)).timeout(SSHD_TIMEOUT);
    host.run_checked(&command)
        .await
        .map(drop)
        .map_err(|e| e.with_hint("set [audit] sshd_reload to the command that reloads sshd on the server"))
}

/// A new login within the plan's deadline: a refused connection while sshd re-executes itself is "not
/// yet"; a refused login is final.
async fn new_login(probe: &dyn ConnectionProbe, plan: &SshdFix) -> Result<()> {
    poll_until(
        "audit.fix.sshd",
        "a new connection",
        plan.probe_deadline,
        // sshd is back within milliseconds of a SIGHUP; this only bounds the retries' cost.
        Duration::from_millis(100),
        || async {
            match probe.open_new().await {
                Ok(()) => Ok(Ok(())),
                Err(e) if e.is_retryable() && e.kind() != ErrorKind::PermissionDenied => Ok(Err(e.summary())),
                Err(e) => Err(e),
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_goes_first_and_replaces_an_earlier_one() {
        let original = "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n";
        let set = [("PasswordAuthentication".to_string(), "no".to_string())];
        let once = render_sshd_config(original, &set);
        assert!(once.starts_with(&format!(
            "{BEGIN_MARK}\nPasswordAuthentication no\n{END_MARK}\nInclude"
        )));
        let twice = render_sshd_config(&once, &set);
        assert_eq!(once, twice);
        assert_eq!(render_sshd_config(&once, &[]), original);
    }

    #[test]
    fn symbolic_modes_only_remove() {
        assert_eq!(symbolic(0o077), "go-rwx");
        assert_eq!(symbolic(0o007), "o-rwx");
    }
}
