//! The firewall as the audit reads it: ufw when it is active, else nftables, turned into a [`FirewallView`]
//! (default-deny or not, the TCP ports let in) and judged against the public ports.

use std::collections::BTreeSet;

use super::network::run;
use super::{AuditCheck, Finding, Severity};
use crate::error::Result;
use crate::host::Host;

/// What the firewall lets in, as far as the audit reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirewallView {
    /// `ufw` or `nftables`.
    pub(crate) tool: String,
    /// Incoming connections are dropped unless a rule allows them.
    pub(crate) default_deny: bool,
    /// The TCP ports (and inclusive ranges) rules allow in.
    pub(crate) allowed: Vec<(u16, u16)>,
    /// Rules allowing something the audit cannot turn into ports (an app profile, `accept` without a port).
    pub(crate) opaque: Vec<String>,
}

impl FirewallView {
    /// Whether a rule lets `port` in.
    pub(crate) fn allows(&self, port: u16) -> bool {
        self.allowed.iter().any(|(a, b)| (*a..=*b).contains(&port))
    }

    /// Whether a connection to `port` from outside gets in.
    pub(crate) fn admits(&self, port: u16) -> bool {
        !self.default_deny || self.allows(port)
    }
}

fn port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim().trim_end_matches(',');
    match s.split_once(['-', ':']) {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => s.parse().ok().map(|p| (p, p)),
    }
}

/// `ufw status verbose` → the view; `None` when ufw is inactive.
pub(crate) fn parse_ufw(text: &str) -> Option<FirewallView> {
    if !text.lines().any(|l| l.trim() == "Status: active") {
        return None;
    }
    let default_deny = text
        .lines()
        .find_map(|l| l.strip_prefix("Default:"))
        .is_some_and(|d| d.contains("deny (incoming)") || d.contains("reject (incoming)"));
    let mut view = FirewallView {
        tool: "ufw".into(),
        default_deny,
        allowed: Vec::new(),
        opaque: Vec::new(),
    };
    for line in text.lines() {
        let Some(at) = line.find(" ALLOW") else { continue };
        let to = line[..at].trim().trim_end_matches("(v6)").trim();
        if to.ends_with("/udp") {
            continue;
        }
        match port_range(to.trim_end_matches("/tcp")) {
            Some(r) => view.allowed.push(r),
            None => view.opaque.push(to.to_string()),
        }
    }
    view.allowed.sort_unstable();
    view.allowed.dedup();
    Some(view)
}

/// `nft list ruleset` → the view: a base chain hooked on `input` with `policy drop` is default-deny; every
/// `tcp dport … accept` rule of a filter table counts as allowed (rules reached by a jump included).
pub(crate) fn parse_nft(text: &str) -> FirewallView {
    let mut view = FirewallView {
        tool: "nftables".into(),
        default_deny: false,
        allowed: Vec::new(),
        opaque: Vec::new(),
    };
    let mut in_input_chain = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("chain ") {
            in_input_chain = false;
        }
        if l.starts_with("type filter hook input") {
            in_input_chain = true;
            if l.contains("policy drop") {
                view.default_deny = true;
            }
        }
        if !l.ends_with("accept") || !l.contains("tcp dport") {
            if in_input_chain && (l == "accept" || l == "counter accept") {
                view.opaque.push(l.to_string());
            }
            continue;
        }
        let Some(rest) = l.split("tcp dport").nth(1) else {
            continue;
        };
        let rest = rest.trim();
        let ports = if let Some(set) = rest.strip_prefix('{') {
            set.split('}').next().unwrap_or("").to_string()
        } else {
            rest.split_whitespace().next().unwrap_or("").to_string()
        };
        for p in ports.split(',') {
            match port_range(p) {
                Some(r) => view.allowed.push(r),
                None if !p.trim().is_empty() => view.opaque.push(l.to_string()),
                None => {}
            }
        }
    }
    view.allowed.sort_unstable();
    view.allowed.dedup();
    view
}

/// Reads the firewall: ufw when it is active, else nftables. `Ok(None)`: neither drops anything.
pub(crate) async fn firewall(host: &dyn Host) -> Result<Option<FirewallView>> {
    let ufw = run(host, &["ufw", "status", "verbose"]).await;
    if let Ok(text) = &ufw
        && let Some(view) = parse_ufw(text)
    {
        return Ok(Some(view));
    }
    match run(host, &["nft", "list", "ruleset"]).await {
        Ok(text) => {
            let view = parse_nft(&text);
            Ok(view.default_deny.then_some(view))
        }
        // ufw answered (inactive): that is a firewall that is off, whatever nft says.
        Err(_) if ufw.is_ok() => Ok(None),
        Err(e) => Err(e.with_hint(
            "install ufw (`apt-get install ufw`) or nftables, and run the audit as root (reading rules needs it)",
        )),
    }
}

fn public_list(public: &[u16]) -> String {
    let p: Vec<String> = public.iter().map(u16::to_string).collect();
    p.join(", ")
}

/// Judges the firewall view against the public ports.
pub(crate) fn judge_firewall(view: Option<&FirewallView>, public: &[u16]) -> Vec<Finding> {
    let Some(view) = view else {
        let allow: Vec<String> = public.iter().map(|p| format!("ufw allow {p}/tcp")).collect();
        return vec![Finding::weak(
            AuditCheck::Firewall,
            Severity::High,
            "incoming",
            "no firewall drops incoming connections by default (ufw inactive or absent, no nftables input chain \
             with policy drop)",
            format!(
                "allow the public ports first, then deny the rest: {}; ufw default deny incoming; ufw enable",
                allow.join("; ")
            ),
        )];
    };
    let mut findings = Vec::new();
    if !view.default_deny {
        findings.push(Finding::weak(
            AuditCheck::Firewall,
            Severity::High,
            &view.tool,
            "the firewall is on but lets everything in by default",
            "ufw default deny incoming (after allowing the public ports)",
        ));
    }
    let public_set: BTreeSet<u16> = public.iter().copied().collect();
    for (a, b) in &view.allowed {
        if (*a..=*b).all(|p| public_set.contains(&p)) {
            continue;
        }
        let ports = if a == b { a.to_string() } else { format!("{a}-{b}") };
        findings.push(Finding::weak(
            AuditCheck::Firewall,
            Severity::Medium,
            format!("{} tcp/{ports}", view.tool),
            format!(
                "the firewall lets tcp/{ports} in, which the config does not call public ({})",
                public_list(public)
            ),
            format!("remove the rule (`ufw delete allow {ports}/tcp`), or add it to [audit] public_ports"),
        ));
    }
    for rule in &view.opaque {
        findings.push(Finding::weak(
            AuditCheck::Firewall,
            Severity::Low,
            format!("{} {rule}", view.tool),
            format!("a rule lets something in that the audit cannot read as ports: {rule}"),
            "check the rule by hand; prefer rules that name their ports",
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ufw_status_reads_default_and_rules() {
        let text = "Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), disabled (routed)\n\
New profiles: skip\n\nTo                         Action      From\n--                         ------      ----\n\
22/tcp                     ALLOW IN    Anywhere\n80/tcp                     ALLOW IN    Anywhere\n\
6379                       ALLOW IN    Anywhere\n8000:8010/tcp              ALLOW IN    Anywhere\n\
53/udp                     ALLOW IN    Anywhere\nOpenSSH                    ALLOW IN    Anywhere\n\
22/tcp (v6)                ALLOW IN    Anywhere (v6)\n";
        let view = parse_ufw(text).expect("active");
        assert!(view.default_deny);
        assert_eq!(view.allowed, [(22, 22), (80, 80), (6379, 6379), (8000, 8010)]);
        assert_eq!(view.opaque, ["OpenSSH"]);
        let f = judge_firewall(Some(&view), &[22, 80, 443]);
        let subjects: Vec<&str> = f.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects, ["ufw tcp/6379", "ufw tcp/8000-8010", "ufw OpenSSH"]);
        assert!(parse_ufw("Status: inactive\n").is_none());
        assert_eq!(judge_firewall(None, &[22])[0].severity, Severity::High);
    }

    #[test]
    fn nft_input_chain_with_drop_policy_and_dport_rules() {
        let text = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
\t\tct state established,related accept\n\t\tiifname \"lo\" accept\n\t\ttcp dport { 22, 80, 443 } accept\n\
\t\ttcp dport 5432 accept\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n";
        let view = parse_nft(text);
        assert!(view.default_deny);
        assert_eq!(view.allowed, [(22, 22), (80, 80), (443, 443), (5432, 5432)]);
        let f = judge_firewall(Some(&view), &[22, 80, 443]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "nftables tcp/5432");
        assert!(!parse_nft("table ip nat {\n chain POSTROUTING {\n type nat hook postrouting priority srcnat; policy accept;\n }\n}\n").default_deny);
    }
}
