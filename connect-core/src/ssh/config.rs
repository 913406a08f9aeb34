//! Where and how to reach the server over SSH.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach a server over SSH: address, user, key, known_hosts and timeouts.
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
}

impl SshConfig {
    /// A server at `host:22` as `user`, the agent from `SSH_AUTH_SOCK` if set, `~/.ssh/known_hosts`,
    /// trust-on-first-use off, 10 s connect and auth timeouts, a keepalive every 15 s (3 missed: dead),
    /// programs killed after an hour, 64 MiB of output kept.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> SshConfig {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
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
        }
    }

    /// Sets sshd's port.
    pub fn port(mut self, port: u16) -> SshConfig {
        self.port = port;
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
            .finish_non_exhaustive()
    }
}
