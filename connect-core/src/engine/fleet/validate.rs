//! What a fleet refuses at construction: no host or no web host, names and servers given twice, a
//! `min_healthy_hosts` out of range, and what a fleet does not do yet.

use super::{AppHost, FleetPolicy, Role};
use crate::engine::{DeployConfig, HookSite};
use crate::error::{Error, ErrorKind, Result};
use crate::model::OldColorPolicy;

pub(super) fn validate(hosts: &[AppHost], config: &DeployConfig, policy: FleetPolicy) -> Result<()> {
    let invalid = |target: String, why: &str, hint: &str| {
        Error::invalid("fleet.new", target, why.to_string()).with_hint(hint.to_string())
    };
    if hosts.is_empty() {
        return Err(invalid(
            "app_hosts".into(),
            "a fleet needs at least one app host",
            "list the app servers under [[app_hosts]]",
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut servers = std::collections::HashSet::new();
    for h in hosts {
        let ok = !h.name.is_empty()
            && h.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(invalid(
                h.name.clone(),
                "a host's name is letters, digits, _ . -",
                "name it as HAProxy may name its servers, e.g. web1",
            ));
        }
        if !names.insert(h.name.as_str()) {
            return Err(invalid(
                h.name.clone(),
                "two hosts have this name",
                "give each host its own name",
            ));
        }
        for server in [&h.topology.blue.server, &h.topology.green.server] {
            if !servers.insert(server.as_str()) {
                return Err(invalid(
                    format!("{}/{server}", h.name),
                    "two slots share this HAProxy server",
                    "each host and color needs its own server (default <host>_blue, <host>_green)",
                ));
            }
        }
    }
    let web = hosts.iter().filter(|h| h.role == Role::Web).count();
    if web == 0 {
        return Err(invalid(
            "app_hosts".into(),
            "a fleet needs at least one web host: workers take no requests",
            "give one app host role = \"web\" (the default)",
        ));
    }
    if let Some(n) = policy.min_healthy_hosts
        && (n == 0 || n > web)
    {
        return Err(invalid(
            format!("min_healthy_hosts = {n}"),
            "min_healthy_hosts is between 1 and the number of web hosts (workers are always required)",
            "leave it unset to require every host",
        ));
    }
    let p = &config.policy;
    let unsupported = [
        (p.canary.is_some(), "a canary"),
        (p.old_color == OldColorPolicy::Balanced, "balanced colors"),
        (
            config.hooks.iter().any(|h| h.site == HookSite::Server),
            "hooks on the server (a fleet has no one server: run them locally, CONNECT_HOSTS names the hosts)",
        ),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "fleet.new",
            "policy",
            format!("a deploy over several hosts does not do {what} yet"),
        )
        .with_hint("turn it off for the fleet, or deploy each host with its own Deployer"));
    }
    Ok(())
}
