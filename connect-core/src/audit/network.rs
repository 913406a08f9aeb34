//! The firewall (ufw, else nftables) and the listening TCP sockets (`ss -ltnp`), judged against the ports
//! the config says are public. A socket on more than loopback is exposed unless a default-deny firewall
//! keeps it in; Docker's published ports pass ufw by Docker's own rules, so they count as exposed whatever
//! the firewall says.

use std::collections::BTreeSet;
use std::time::Duration;

use super::firewall::{FirewallView, firewall, judge_firewall};
use super::{AuditCheck, Finding, Severity};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    /// The local address as `ss` prints it, without brackets or `%interface` (`0.0.0.0`, `::`, `*`).
    pub(crate) address: String,
    /// The port.
    pub(crate) port: u16,
    /// The program, when `ss` could tell (root sees every process).
    pub(crate) program: Option<String>,
}

impl Listener {
    /// `address:port`, an IPv6 address in brackets.
    pub(crate) fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// Whether only this machine can reach it.
    pub(crate) fn is_loopback(&self) -> bool {
        is_loopback(&self.address)
    }
}

/// Whether an address is loopback (`127.0.0.0/8`, `::1`, `::ffff:127.x`, `localhost`).
pub fn is_loopback(address: &str) -> bool {
    let a = address.trim_start_matches('[').trim_end_matches(']');
    let a = a.strip_prefix("::ffff:").unwrap_or(a);
    match a.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => a == "localhost",
    }
}

/// `ss -H -ltnp` lines → listeners (lines it cannot read are skipped: a newer `ss` column is no reason to
/// miss the others).
pub(crate) fn parse_ss(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // State Recv-Q Send-Q Local Peer [Process]
        let Some(local) = cols.get(3) else { continue };
        let Some((address, port)) = local.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else { continue };
        let address = address.trim_start_matches('[').trim_end_matches(']');
        let address = address.split('%').next().unwrap_or(address).to_string();
        let program = cols.get(5).and_then(|p| {
            let start = p.find("((\"")? + 3;
            let len = p[start..].find('"')?;
            Some(p[start..start + len].to_string())
        });
        out.push(Listener {
            address,
            port,
            program,
        });
    }
    out
}

pub(super) async fn run(host: &dyn Host, argv: &[&str]) -> Result<String> {
    let command = Command::new(argv.iter().copied()).timeout(TIMEOUT);
    let out = host.run(&command).await?;
    if !out.success() {
        return Err(Error::new(
            ErrorKind::Failed,
            "audit.run",
            argv[0],
            format!(
                "`{command}` exited {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(out.stdout_text())
}

/// Judges the listeners: a socket on more than loopback on a port that is not public is exposed (High)
/// unless the firewall keeps it in (Low: still wider than needed).
pub(crate) fn judge_listeners(
    listeners: &[Listener],
    view: Option<&FirewallView>,
    public: &[u16],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    for l in listeners {
        if l.is_loopback() || public.contains(&l.port) || !seen.insert((l.address.clone(), l.port)) {
            continue;
        }
        let program = l.program.clone().unwrap_or_else(|| "a program".to_string());
        let docker = l.program.as_deref() == Some("docker-proxy");
        let kept_in = view.is_some_and(|v| !v.admits(l.port)) && !docker;
        let (severity, why) = if kept_in {
            (
                Severity::Low,
                "the firewall drops it, but the socket is wider than it needs to be",
            )
        } else if docker {
            (
                Severity::High,
                "Docker's published ports pass ufw through Docker's own iptables rules",
            )
        } else {
            (Severity::High, "nothing drops connections to it")
        };
        findings.push(Finding::weak(
            AuditCheck::ListeningSockets,
            severity,
            l.endpoint(),
            format!("{program} listens on {} (not a public port): {why}", l.endpoint()),
            if docker {
                format!(
                    "publish it on loopback only (`-p 127.0.0.1:{0}:{0}`) or not at all",
                    l.port
                )
            } else {
                format!(
                    "bind {program} to 127.0.0.1, or add {} to [audit] public_ports if it is public",
                    l.port
                )
            },
        ));
    }
    findings
}

/// The firewall and listening-socket checks.
pub(crate) async fn audit_network(host: &dyn Host, public: &[u16]) -> Vec<Finding> {
    let view = firewall(host).await;
    let mut findings = match &view {
        Ok(v) => judge_firewall(v.as_ref(), public),
        Err(e) => vec![Finding::not_checked(AuditCheck::Firewall, "ufw/nft", e)],
    };
    let known = view.as_ref().ok().and_then(Option::as_ref);
    match run(host, &["ss", "-H", "-ltnp"]).await {
        Ok(text) => findings.extend(judge_listeners(&parse_ss(&text), known, public)),
        Err(e) => findings.push(Finding::not_checked(
            AuditCheck::ListeningSockets,
            "ss -ltnp",
            &e.with_hint("install iproute2 (`ss`) on the server"),
        )),
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    const SS: &str = "\
LISTEN 0      4096       127.0.0.1:5432       0.0.0.0:*    users:((\"postgres\",pid=10,fd=5))
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:((\"sshd\",pid=11,fd=3))
LISTEN 0      511                *:80               *:*    users:((\"haproxy\",pid=12,fd=7))
LISTEN 0      511          0.0.0.0:6379       0.0.0.0:*    users:((\"redis-server\",pid=13,fd=6))
LISTEN 0      4096            [::]:8008          [::]:*    users:((\"patroni\",pid=14,fd=4))
LISTEN 0      4096           [::1]:9000          [::]:*
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*
LISTEN 0      4096         0.0.0.0:3000       0.0.0.0:*    users:((\"docker-proxy\",pid=15,fd=4))
";

    #[test]
    fn ss_lines_parse_with_brackets_interfaces_and_programs() {
        let l = parse_ss(SS);
        assert_eq!(l.len(), 8);
        assert_eq!((l[3].address.as_str(), l[3].port), ("0.0.0.0", 6379));
        assert_eq!(l[3].program.as_deref(), Some("redis-server"));
        assert_eq!((l[4].address.as_str(), l[5].address.as_str()), ("::", "::1"));
        assert_eq!(
            (l[6].address.as_str(), l[6].program.clone()),
            ("127.0.0.53", None)
        );
        assert!(l[0].is_loopback() && l[5].is_loopback() && l[6].is_loopback() && !l[2].is_loopback());
    }

    #[test]
    fn exposed_sockets_are_high_without_a_firewall_and_low_behind_one() {
        let l = parse_ss(SS);
        let open = judge_listeners(&l, None, &[22, 80, 443]);
        let subjects: Vec<&str> = open.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects, ["0.0.0.0:6379", "[::]:8008", "0.0.0.0:3000"]);
        assert!(open.iter().all(|f| f.severity == Severity::High));
        let fw = FirewallView {
            tool: "ufw".into(),
            default_deny: true,
            allowed: vec![(22, 22), (80, 80)],
            opaque: vec![],
        };
        let kept = judge_listeners(&l, Some(&fw), &[22, 80, 443]);
        let sev: Vec<Severity> = kept.iter().map(|f| f.severity).collect();
        // docker-proxy passes ufw: still exposed.
        assert_eq!(sev, [Severity::Low, Severity::Low, Severity::High]);
    }
}
