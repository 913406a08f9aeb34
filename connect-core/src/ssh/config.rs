//! Where and how to reach the server over SSH.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Where OpenSSH keeps the system-wide known_hosts.
pub const GLOBAL_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// `$HOME`, or `/root` when it is not set (as for a root cron job).
pub(super) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// How to reach a server over SSH: address, user, key, known_hosts, jump hosts and timeouts.
///
/// `host` may be an alias of `~/.ssh/config` (or of [`SshConfig::ssh_config_file`]): when the connection
/// opens, that file's `HostName`, `User`, `Port`, `IdentityFile` (the first that exists), `ProxyJump` and
/// `UserKnownHostsFile` for it fill in what this configuration does not set itself: whatever is set here
/// (a builder call, a non-empty `user`, a `port` other than 22, a key file, jump hosts, another
/// known_hosts) wins. An empty `user` means "from the ssh config, else the local user", as `ssh` does.
///
/// ```
/// use connect_core::ssh::SshConfig;
/// let config = SshConfig::new("prod-host", "deploy")
///     .port(22)
///     .key_file("/home/ci/.ssh/id_ed25519")
///     .known_hosts("/home/ci/.ssh/known_hosts");
/// assert_eq!(config.port, 22);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SshConfig {
    /// Host name or address of the server.
    pub host: String,
    /// sshd's port (22).
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// A private key file (OpenSSH or PEM: ed25519, RSA, ECDSA).
    pub key_file: Option<PathBuf>,
    /// The key file's passphrase, if it is encrypted.
    pub passphrase: Option<String>,
    /// The ssh-agent socket; taken from `SSH_AUTH_SOCK` by [`SshConfig::new`].
    pub agent: Option<PathBuf>,
    /// The known_hosts file the server's key is checked against (`~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// Accept and record the key of a host that known_hosts does not list. A changed key is refused anyway.
    pub trust_on_first_use: bool,
    /// How long the TCP connection and key exchange may take.
    pub connect_timeout: Duration,
    /// How long authentication may take.
    pub auth_timeout: Duration,
    /// Send a keepalive after this much silence from the server.
    pub keepalive_interval: Duration,
    /// Give the connection up after this many unanswered keepalives.
    pub keepalive_max: usize,
    /// Sessions open at once on the connection: OpenSSH refuses more than its `MaxSessions` (10 by
    /// default). One of them is kept free to stop programs with, so `max_sessions - 1` programs run at
    /// once; more wait their turn.
    pub max_sessions: usize,
    /// How long a program may run (`Host::run`, `SshHost::run_streaming`, and the helper scripts behind
    /// file operations) unless its `Command::timeout` says otherwise; past it the program is killed.
    /// [`crate::host::DEFAULT_COMMAND_TIMEOUT`] (one hour) by default.
    pub command_timeout: Duration,
    /// How many bytes of output (stdout and stderr together) `Host::run` keeps in memory; a program that
    /// writes more is stopped and the call fails. [`crate::host::DEFAULT_MAX_OUTPUT`] (64 MiB) by default;
    /// `SshHost::run_streaming` has no cap.
    pub max_output: usize,
    /// The OpenSSH client config read for `host` (`~/.ssh/config`, missing is fine); `None`: none is read.
    pub ssh_config_file: Option<PathBuf>,
    /// The system-wide known_hosts (`/etc/ssh/ssh_known_hosts`), consulted read-only when `known_hosts`
    /// does not list the host; `None`: not consulted. Keys learnt on first use go to `known_hosts` only.
    pub global_known_hosts: Option<PathBuf>,
    /// Jump hosts (`ProxyJump`), in the order the connection goes through them; empty: the ssh config's,
    /// if any, else a direct connection.
    pub proxy_jump: Vec<JumpHost>,
    /// Which values were set by the builder even where they equal the defaults (port 22).
    pub(super) explicit: Explicit,
}

/// Values set on purpose, which `~/.ssh/config` must not override even when they equal a default.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Explicit {
    pub(super) port: bool,
    pub(super) known_hosts: bool,
    pub(super) ssh_config_file: bool,
}

/// One jump host of a `ProxyJump` chain: `[user@]host[:port]`, where `host` may itself be an alias of the
/// ssh config (its `HostName`, `User`, `Port`, `IdentityFile` and `UserKnownHostsFile` apply).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JumpHost {
    /// The user to log in as on the jump host; `None`: its ssh config's, else the local user.
    pub user: Option<String>,
    /// Host name, address or ssh config alias.
    pub host: String,
    /// sshd's port on the jump host; `None`: its ssh config's, else 22.
    pub port: Option<u16>,
}

impl JumpHost {
    /// Parses `[user@]host[:port]` (an IPv6 address in brackets: `[::1]:2222`), as `ssh -J` takes it.
    ///
    /// ```
    /// use connect_core::ssh::JumpHost;
    /// let hop = JumpHost::parse("ops@bastion.example:2222")?;
    /// assert_eq!((hop.user.as_deref(), hop.host.as_str(), hop.port), (Some("ops"), "bastion.example", Some(2222)));
    /// # Ok::<(), connect_core::Error>(())
    /// ```
    pub fn parse(spec: &str) -> Result<JumpHost> {
        let bad = |why: &str| {
            Error::invalid("ssh.proxy_jump", spec, format!("not a jump host: {why}"))
                .with_hint("write it as `[user@]host[:port]`, e.g. `deploy@bastion.example:22`; several are separated by commas")
        };
        let spec = spec.trim();
        // `ssh://user@host:port` is accepted too, as OpenSSH does.
        let rest = spec.strip_prefix("ssh://").unwrap_or(spec);
        let (user, rest) = match rest.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
            Some(_) => return Err(bad("an empty user name")),
            None => (None, rest),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| bad("an unclosed `[`"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or_else(|| bad("text after `]`"))?),
                ),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',')
        {
            return Err(bad("no host name"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
            ),
        };
        Ok(JumpHost {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// Parses a `ProxyJump` value: jump hosts separated by commas (`none`: no jump host).
    pub fn parse_list(value: &str) -> Result<Vec<JumpHost>> {
        if value.trim().eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        value.split(',').map(JumpHost::parse).collect()
    }
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl SshConfig {
    /// A server at `host:22` as `user`, the agent from `SSH_AUTH_SOCK` if set, `~/.ssh/known_hosts`,
    /// trust-on-first-use off, 10 s connect and auth timeouts, a keepalive every 15 s (3 missed: dead),
    /// programs killed after an hour, 64 MiB of output kept; `~/.ssh/config` read for `host` and
    /// `/etc/ssh/ssh_known_hosts` consulted. An empty `user` takes the ssh config's, else the local user.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> SshConfig {
        let home = home_dir();
        SshConfig {
            host: host.into(),
            port: 22,
            user: user.into(),
            key_file: None,
            passphrase: None,
            agent: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            known_hosts: home.join(".ssh").join("known_hosts"),
            trust_on_first_use: false,
            connect_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
            max_sessions: 10,
            command_timeout: crate::host::DEFAULT_COMMAND_TIMEOUT,
            max_output: crate::host::DEFAULT_MAX_OUTPUT,
            ssh_config_file: Some(home.join(".ssh").join("config")),
            global_known_hosts: Some(PathBuf::from(GLOBAL_KNOWN_HOSTS)),
            proxy_jump: Vec::new(),
            explicit: Explicit::default(),
        }
    }

    /// A server known by its `~/.ssh/config` alias: host name, user, port, key, jump hosts and known_hosts
    /// all come from there (the user defaults to the local one, the port to 22).
    pub fn from_ssh_config(alias: impl Into<String>) -> SshConfig {
        SshConfig::new(alias, "")
    }

    /// Reads this OpenSSH client config instead of `~/.ssh/config`; unlike the default, it must exist.
    pub fn ssh_config_file(mut self, path: impl Into<PathBuf>) -> SshConfig {
        self.ssh_config_file = Some(path.into());
        self.explicit.ssh_config_file = true;
        self
    }

    /// Reads no OpenSSH client config: only what this configuration says counts.
    pub fn no_ssh_config(mut self) -> SshConfig {
        self.ssh_config_file = None;
        self
    }

    /// Consults this system-wide known_hosts (read-only) when `known_hosts` does not list the host;
    /// `None`: none.
    pub fn global_known_hosts(mut self, path: Option<PathBuf>) -> SshConfig {
        self.global_known_hosts = path;
        self
    }

    /// Adds a jump host the connection goes through (after those added before), as `ssh -J` does.
    pub fn jump(mut self, hop: JumpHost) -> SshConfig {
        self.proxy_jump.push(hop);
        self
    }

    /// Sets sshd's port.
    pub fn port(mut self, port: u16) -> SshConfig {
        self.port = port;
        self.explicit.port = true;
        self
    }

    /// Authenticates with this private key file.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> SshConfig {
        self.key_file = Some(path.into());
        self
    }

    /// The passphrase of the key file.
    pub fn passphrase(mut self, passphrase: impl Into<String>) -> SshConfig {
        self.passphrase = Some(passphrase.into());
        self
    }

    /// Uses the ssh-agent listening on this socket.
    pub fn agent(mut self, socket: impl Into<PathBuf>) -> SshConfig {
        self.agent = Some(socket.into());
        self
    }

    /// Does not use any ssh-agent, even when `SSH_AUTH_SOCK` is set.
    pub fn no_agent(mut self) -> SshConfig {
        self.agent = None;
        self
    }

    /// Checks the server key against this known_hosts file.
    pub fn known_hosts(mut self, path: impl Into<PathBuf>) -> SshConfig {
        self.known_hosts = path.into();
        self.explicit.known_hosts = true;
        self
    }

    /// Accepts (and records) the key of a host known_hosts does not list.
    pub fn trust_on_first_use(mut self, yes: bool) -> SshConfig {
        self.trust_on_first_use = yes;
        self
    }

    /// Sets the connect timeout (TCP and key exchange).
    pub fn connect_timeout(mut self, timeout: Duration) -> SshConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the authentication timeout.
    pub fn auth_timeout(mut self, timeout: Duration) -> SshConfig {
        self.auth_timeout = timeout;
        self
    }

    /// Sets the keepalive interval and how many may go unanswered.
    pub fn keepalive(mut self, interval: Duration, max: usize) -> SshConfig {
        self.keepalive_interval = interval;
        self.keepalive_max = max;
        self
    }

    /// Sets how many programs may run at once on the connection (sshd's `MaxSessions`).
    pub fn max_sessions(mut self, n: usize) -> SshConfig {
        self.max_sessions = n.max(1);
        self
    }

    /// Sets how long a program may run unless its command sets its own deadline.
    pub fn command_timeout(mut self, limit: Duration) -> SshConfig {
        self.command_timeout = limit;
        self
    }

    /// Sets how many bytes of output `Host::run` keeps in memory.
    pub fn max_output(mut self, bytes: usize) -> SshConfig {
        self.max_output = bytes;
        self
    }

    /// `user@host:port`, for messages.
    pub fn target(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

impl fmt::Debug for SshConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("key_file", &self.key_file)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>"))
            .field("agent", &self.agent)
            .field("known_hosts", &self.known_hosts)
            .field("trust_on_first_use", &self.trust_on_first_use)
            .field("connect_timeout", &self.connect_timeout)
            .field("auth_timeout", &self.auth_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_output", &self.max_output)
            .field("ssh_config_file", &self.ssh_config_file)
            .field("global_known_hosts", &self.global_known_hosts)
            .field("proxy_jump", &self.proxy_jump)
            .finish_non_exhaustive()
    }
}
