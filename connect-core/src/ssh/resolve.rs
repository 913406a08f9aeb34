//! What `~/.ssh/config` says about a host, merged under what [`SshConfig`] sets itself, and the route of
//! jump hosts (`ProxyJump`) to it. The file is parsed by the `ssh2-config` crate (Host blocks with
//! patterns and negations, `Include`, `~` expansion); keywords it does not model (`UserKnownHostsFile`,
//! `GlobalKnownHostsFile`) are taken from its list of unsupported fields.

use std::path::{Path, PathBuf};

use ssh2_config::{HostParams, ParseRule};

use super::config::{GLOBAL_KNOWN_HOSTS, JumpHost, SshConfig, home_dir};
use crate::error::{Error, ErrorKind, Result};

impl SshConfig {
    /// This configuration as the connection will use it: what the ssh config file says about `host` filled
    /// in where this configuration does not set it (the host name, user, port, key, known_hosts and jump
    /// hosts). Fails when the ssh config file cannot be read or parsed, naming the file.
    pub fn resolved(&self) -> Result<SshConfig> {
        let file = read(self)?;
        apply(self, file.as_ref())
    }
}

/// The configurations to connect with, in order: each jump host, then the server itself (last).
pub(crate) fn route(config: &SshConfig) -> Result<Vec<SshConfig>> {
    let file = read(config)?;
    let target = apply(config, file.as_ref())?;
    let mut hops = Vec::with_capacity(target.proxy_jump.len() + 1);
    for hop in &target.proxy_jump {
        let mut jump = SshConfig::new(hop.host.clone(), hop.user.clone().unwrap_or_default());
        jump.port = hop.port.unwrap_or(22);
        jump.explicit.port = hop.port.is_some();
        // What the jump host's own ssh config entry does not say comes from the server's settings: the
        // same agent, timeouts and trust; its key and known_hosts unless its entry names its own.
        jump.passphrase = target.passphrase.clone();
        jump.agent = target.agent.clone();
        jump.trust_on_first_use = target.trust_on_first_use;
        jump.connect_timeout = target.connect_timeout;
        jump.auth_timeout = target.auth_timeout;
        jump.keepalive_interval = target.keepalive_interval;
        jump.keepalive_max = target.keepalive_max;
        jump.global_known_hosts = target.global_known_hosts.clone();
        jump.ssh_config_file = config.ssh_config_file.clone();
        let mut jump = apply(&jump, file.as_ref())?;
        if jump.key_file.is_none() {
            jump.key_file = target.key_file.clone();
        }
        if !jump.explicit.known_hosts {
            jump.known_hosts = target.known_hosts.clone();
        }
        // A chain is given whole on the server's entry (`ProxyJump a,b`); a jump host's own ProxyJump is
        // not followed.
        jump.proxy_jump.clear();
        hops.push(jump);
    }
    hops.push(target);
    Ok(hops)
}

/// The parsed ssh config, if one is to be read and exists.
fn read(config: &SshConfig) -> Result<Option<ssh2_config::SshConfig>> {
    let Some(path) = &config.ssh_config_file else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(text) => text,
        // The default file is optional, as for `ssh`; a file named on purpose is not.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !config.explicit.ssh_config_file => {
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "ssh.config",
                &shown,
                format!("cannot read the ssh config file {shown}: {e}"),
            )
            .with_hint("give the path of a readable OpenSSH client config, or read none (SshConfig::no_ssh_config / `ssh_config = false`)")
            .with_source(e));
        }
    };
    // Keywords this parser does not know (newer OpenSSH ones) are skipped, not fatal: `ssh` itself would
    // read the file, so we must not refuse it.
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    ssh2_config::SshConfig::default()
        .home_dir(home_dir())
        .parse(&mut text.as_slice(), rules)
        .map(Some)
        .map_err(|e| {
            Error::invalid("ssh.config", &shown, format!("the ssh config file {shown} does not parse: {e}"))
                .with_hint(format!("fix {shown} (`ssh -G HOST -F {shown}` shows what OpenSSH makes of it), or read none (SshConfig::no_ssh_config / `ssh_config = false`)"))
        })
}

/// `config` with what the ssh config says about its host filled in where `config` does not set it.
fn apply(config: &SshConfig, file: Option<&ssh2_config::SshConfig>) -> Result<SshConfig> {
    let mut out = config.clone();
    // Resolved once: reconnecting must not read the file again and apply it twice.
    out.ssh_config_file = None;
    let Some(file) = file else {
        if out.user.is_empty() {
            out.user = crate::engine::effective_user();
        }
        return Ok(out);
    };
    let alias = config.host.as_str();
    let shown = config
        .ssh_config_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let params = file.query(alias);
    if let Some(name) = &params.host_name {
        out.host = expand(name, alias, &out.user);
    }
    if out.user.is_empty() {
        out.user = params.user.clone().unwrap_or_else(crate::engine::effective_user);
    }
    if !config.explicit.port
        && config.port == 22
        && let Some(port) = params.port
    {
        out.port = port;
    }
    if out.key_file.is_none() {
        out.key_file = first_usable(
            params.identity_file.as_deref().unwrap_or_default(),
            alias,
            &out.user,
        );
    }
    if !config.explicit.known_hosts
        && out.known_hosts == home_dir().join(".ssh").join("known_hosts")
        && let Some(path) = path_field(&params, "userknownhostsfile", alias, &out.user)
    {
        out.known_hosts = path;
        out.explicit.known_hosts = true;
    }
    if config.global_known_hosts.as_deref() == Some(Path::new(GLOBAL_KNOWN_HOSTS))
        && let Some(path) = path_field(&params, "globalknownhostsfile", alias, &out.user)
    {
        out.global_known_hosts = Some(path);
    }
    if out.proxy_jump.is_empty()
        && let Some(jumps) = &params.proxy_jump
    {
        out.proxy_jump = JumpHost::parse_list(&jumps.join(",")).map_err(|e| {
            Error::invalid(
                "ssh.config",
                &shown,
                format!("{shown}: the ProxyJump of `{alias}`: {}", e.message()),
            )
            .with_hint(format!(
                "fix the ProxyJump line of `Host {alias}` in {shown}: `[user@]host[:port]`, comma separated"
            ))
        })?;
    }
    Ok(out)
}

/// The first identity file that exists, as `ssh` skips missing ones.
fn first_usable(files: &[PathBuf], alias: &str, user: &str) -> Option<PathBuf> {
    files
        .iter()
        .map(|f| PathBuf::from(expand(&f.to_string_lossy(), alias, user)))
        .find(|f| f.is_file())
}

/// The first path of a path keyword ssh2-config keeps unparsed; `none` means not set.
fn path_field(params: &HostParams, field: &str, alias: &str, user: &str) -> Option<PathBuf> {
    let value = params.unsupported_fields.get(field)?.first()?;
    if value.eq_ignore_ascii_case("none") {
        return None;
    }
    let value = expand(value, alias, user);
    Some(match value.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None if value == "~" => home_dir(),
        None => PathBuf::from(value),
    })
}

/// The `%` tokens OpenSSH expands in these keywords that make sense here: `%h` the alias (as given),
/// `%u`/`%r` the user, `%d` the home directory, `%%` a percent sign.
fn expand(value: &str, alias: &str, user: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(alias),
            Some('u' | 'r') => out.push_str(user),
            Some('d') => out.push_str(&home_dir().to_string_lossy()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn the_alias_takes_its_entry_and_explicit_values_win() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ssh_config");
        let text = format!(
            "Host prod\n  HostName 127.0.0.5\n  User deploy\n  Port 2222\n  IdentityFile {d}/missing\n  IdentityFile {d}/key\n  \
             UserKnownHostsFile {d}/kh other\n  ProxyJump ops@bastion:2200,second\n  ServerAliveCountMax 3\n\
             Host *\n  User nobody\n",
            d = dir.path().display()
        );
        std::fs::write(&path, text).expect("write");
        std::fs::write(dir.path().join("key"), "k").expect("key");
        let route = route(&SshConfig::from_ssh_config("prod").ssh_config_file(&path)).expect("route");
        let target = route.last().expect("target");
        assert_eq!(
            (target.host.as_str(), target.user.as_str(), target.port),
            ("127.0.0.5", "deploy", 2222)
        );
        assert_eq!(target.key_file, Some(dir.path().join("key")));
        assert_eq!(target.known_hosts, dir.path().join("kh"));
        assert_eq!(route.len(), 3);
        assert_eq!(
            (route[0].user.as_str(), route[0].host.as_str(), route[0].port),
            ("ops", "bastion", 2200)
        );
        assert_eq!(route[1].host, "second");
        assert_eq!(
            route[1].known_hosts,
            dir.path().join("kh"),
            "a hop checks against the same known_hosts"
        );

        let explicit = SshConfig::new("prod", "me")
            .port(22)
            .key_file("/keys/mine")
            .known_hosts("/kh/mine")
            .jump(JumpHost::parse("other-bastion").expect("hop"))
            .ssh_config_file(&path);
        let route = super::route(&explicit).expect("route");
        let target = route.last().expect("target");
        assert_eq!((target.user.as_str(), target.port), ("me", 22));
        assert_eq!(target.key_file, Some(PathBuf::from("/keys/mine")));
        assert_eq!(target.known_hosts, PathBuf::from("/kh/mine"));
        assert_eq!(route.len(), 2);
        assert_eq!(route[0].host, "other-bastion");
    }

    #[test]
    fn no_ssh_config_reads_nothing_and_a_named_missing_file_is_an_error() {
        let (_dir, path) = with_file("Host prod\n  Port 2222\n");
        let route = route(
            &SshConfig::new("prod", "me")
                .ssh_config_file(&path)
                .no_ssh_config(),
        )
        .expect("route");
        assert_eq!(route.last().map(|c| c.port), Some(22));

        let missing = SshConfig::new("prod", "me").ssh_config_file("/nonexistent/ssh_config");
        let e = super::route(&missing).expect_err("a named file must exist");
        assert!(e.to_string().contains("/nonexistent/ssh_config"), "{e}");
        assert!(e.hint().is_some_and(|h| h.contains("no_ssh_config")), "{e}");
    }

    #[test]
    fn a_file_that_does_not_parse_names_itself_and_the_way_out() {
        let (_dir, path) = with_file("Host prod\n  Port notaport\n");
        let e = route(&SshConfig::new("prod", "me").ssh_config_file(&path)).expect_err("bad port");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(e.hint().is_some_and(|h| h.contains("ssh -G")), "{e}");
    }

    #[test]
    fn a_bad_proxy_jump_names_the_file_and_the_host() {
        let (_dir, path) = with_file("Host prod\n  ProxyJump bastion:notaport\n");
        let e = route(&SshConfig::new("prod", "me").ssh_config_file(&path)).expect_err("bad port");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(e.to_string().contains("prod"), "{e}");
    }

    #[test]
    fn jump_specs_parse_as_ssh_takes_them() {
        let hop = |s: &str| JumpHost::parse(s).map(|h| (h.user, h.host, h.port));
        assert_eq!(hop("b").ok(), Some((None, "b".into(), None)));
        assert_eq!(hop("u@b:2").ok(), Some((Some("u".into()), "b".into(), Some(2))));
        assert_eq!(
            hop("ssh://u@b:2").ok(),
            Some((Some("u".into()), "b".into(), Some(2)))
        );
        assert_eq!(hop("[::1]:22").ok(), Some((None, "::1".into(), Some(22))));
        for bad in ["", "@b", "b:0", "b:x", "[::1", "a b"] {
            assert!(JumpHost::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(JumpHost::parse_list("none").ok(), Some(Vec::new()));
        assert_eq!(
            JumpHost::parse("u@[::1]:22").map(|h| h.to_string()).ok(),
            Some("u@[::1]:22".into())
        );
    }
}
