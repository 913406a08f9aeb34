//! Opening and authenticating the one SSH connection: host key check, key file or agent, timeouts.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};

use super::SshConfig;
use super::known_hosts::{self, Verdict};
use crate::error::{Error, ErrorKind, Result};

/// The russh handle of an authenticated connection.
pub(crate) type Session = client::Handle<Client>;

/// russh's callbacks: only the server key check matters to us.
pub(crate) struct Client {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    /// Consulted read-only when `known_hosts` does not list the host.
    global_known_hosts: Option<PathBuf>,
    trust_on_first_use: bool,
    /// Why the key was refused; russh only reports "unknown key".
    refusal: Arc<Mutex<Option<Error>>>,
    /// The connections to the jump hosts this connection is tunnelled through: they must live as long
    /// as it does, and the handler lives exactly that long.
    _jumps: Vec<Session>,
}

impl Client {
    /// The verdict of the user's known_hosts, or, when it does not know the host, of the global one.
    fn verdict(&self, key: &russh::keys::PublicKey) -> Result<(Verdict, &PathBuf)> {
        let verdict = known_hosts::check(&self.known_hosts, &self.host, self.port, key)?;
        if verdict == Verdict::Unknown
            && let Some(global) = &self.global_known_hosts
        {
            let global_verdict = known_hosts::check(global, &self.host, self.port, key)?;
            if global_verdict != Verdict::Unknown {
                return Ok((global_verdict, global));
            }
        }
        Ok((verdict, &self.known_hosts))
    }

    fn judge(&self, key: &russh::keys::PublicKey) -> Result<()> {
        let fingerprint = known_hosts::fingerprint(key);
        let pattern = known_hosts::host_pattern(&self.host, self.port);
        let (verdict, file) = self.verdict(key)?;
        let file = file.display().to_string();
        match verdict {
            Verdict::Known => Ok(()),
            Verdict::Unknown if self.trust_on_first_use => {
                tracing::warn!(host = %pattern, %fingerprint, file = %file, "trusting a new host key on first use");
                known_hosts::learn(&self.known_hosts, &self.host, self.port, key)
            }
            Verdict::Unknown => Err(Error::new(
                ErrorKind::PermissionDenied,
                "ssh.connect",
                &pattern,
                format!(
                    "the host is not in {file}{} (its {} key is {fingerprint})",
                    self.global_known_hosts
                        .as_ref()
                        .map(|g| format!(" nor in {}", g.display()))
                        .unwrap_or_default(),
                    key.algorithm()
                ),
            )
            .with_hint(format!(
                "check the fingerprint out of band, then add it: `ssh-keyscan -p {} {} >> {file}`, or opt into trust on first use",
                self.port, self.host
            ))),
            Verdict::Changed { line } => Err(Error::new(
                ErrorKind::PermissionDenied,
                "ssh.connect",
                &pattern,
                format!(
                    "the host key CHANGED: {file}:{line} records another {} key; the server shows {fingerprint}. Someone may be intercepting the connection",
                    key.algorithm()
                ),
            )
            .with_hint(format!(
                "if the server was really reinstalled, remove line {line} of {file} (`ssh-keygen -R '{pattern}' -f {file}`) and verify the new key"
            ))),
            Verdict::OtherType { line, recorded } => Err(Error::new(
                ErrorKind::PermissionDenied,
                "ssh.connect",
                &pattern,
                format!(
                    "{file}:{line} pins this host to its {recorded} key, but the server now shows an {} key ({fingerprint}) although it was asked for {recorded} first. Someone may be intercepting the connection",
                    key.algorithm()
                ),
            )
            .with_hint(format!(
                "if the server's keys really changed, verify the new key out of band, then replace line {line} of {file} (`ssh-keygen -R '{pattern}' -f {file}`, then `ssh-keyscan -p {} -t {} {}`)",
                self.port,
                key.algorithm(),
                self.host
            ))),
            Verdict::Revoked { line } => Err(Error::new(
                ErrorKind::PermissionDenied,
                "ssh.connect",
                &pattern,
                format!("the host key {fingerprint} is marked @revoked at {file}:{line}"),
            )
            .with_hint("the server must get a new host key")),
        }
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            PublicKeyOrCertificate::Certificate(_) => Err(Error::new(
                ErrorKind::Unsupported,
                "ssh.connect",
                &self.host,
                "the server presented a host certificate",
            )),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

fn russh_config(config: &SshConfig) -> client::Config {
    // AES-GCM runs on the CPU's AES instructions; it moves files faster than ChaCha20 here.
    let preferred = russh::Preferred {
        cipher: std::borrow::Cow::Owned(vec![
            russh::cipher::AES_256_GCM,
            russh::cipher::CHACHA20_POLY1305,
            russh::cipher::AES_256_CTR,
        ]),
        key: std::borrow::Cow::Owned(host_key_order(
            &russh::Preferred::default().key,
            &pinned_algorithms(config),
        )),
        ..russh::Preferred::default()
    };
    client::Config {
        keepalive_interval: Some(config.keepalive_interval),
        keepalive_max: config.keepalive_max,
        window_size: 16 * 1024 * 1024,
        nodelay: true,
        preferred,
        ..client::Config::default()
    }
}

/// The key types the user's known_hosts records for the host, else the global one's.
fn pinned_algorithms(config: &SshConfig) -> Vec<Algorithm> {
    let user = known_hosts::known_algorithms(&config.known_hosts, &config.host, config.port);
    match &config.global_known_hosts {
        Some(global) if user.is_empty() => known_hosts::known_algorithms(global, &config.host, config.port),
        _ => user,
    }
}

/// The host key types to ask for: those known_hosts records for the host first (as OpenSSH orders them), so
/// a server with several keys shows the pinned one, and any other type it shows is refused as
/// [`Verdict::OtherType`]. An RSA key recorded as `ssh-rsa` is shown with any RSA signature hash.
fn host_key_order(default: &[Algorithm], known: &[Algorithm]) -> Vec<Algorithm> {
    let rsa = |a: &Algorithm| matches!(a, Algorithm::Rsa { .. });
    let is_known = |a: &Algorithm| known.iter().any(|k| k == a || (rsa(k) && rsa(a)));
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = default.iter().cloned().partition(is_known);
    first.extend(rest);
    first
}

/// Opens, checks and authenticates a new connection: through each jump host of the route in turn
/// (`ProxyJump`: a `direct-tcpip` channel on one hop's connection carries the next hop's SSH handshake,
/// each hop's key checked against known_hosts), then to the server.
pub(crate) async fn open(config: &SshConfig) -> Result<Session> {
    let mut route = super::resolve::route(config)?;
    // The route ends with the server; what comes before it are the jump hosts, in order.
    let server = route.pop().unwrap_or_else(|| config.clone());
    let hops = route.len();
    let mut jumps: Vec<Session> = Vec::with_capacity(hops);
    let mut via: Option<Tunnel> = None;
    for (i, hop) in route.iter().enumerate() {
        let session = handshake(hop, via.take(), Vec::new())
            .await
            .map_err(|e| e.in_context(format!("jump host {} of {hops} ({})", i + 1, hop.target())))?;
        let next = route.get(i + 1).unwrap_or(&server);
        via = Some(tunnel(&session, hop, next).await?);
        jumps.push(session);
    }
    handshake(&server, via, jumps).await.map_err(|e| {
        if hops > 0 {
            e.in_context(format!("the server (through {hops} jump host(s))"))
        } else {
            e
        }
    })
}

/// The byte stream a jump host opened to the next hop.
type Tunnel = russh::ChannelStream<client::Msg>;

/// Asks the jump host `hop` (connected as `session`) to open a TCP stream to `next`.
async fn tunnel(session: &Session, hop: &SshConfig, next: &SshConfig) -> Result<Tunnel> {
    let target = format!("{}:{}", next.host, next.port);
    let opening = session.channel_open_direct_tcpip(next.host.as_str(), u32::from(next.port), "127.0.0.1", 0);
    let refused = |why: String| {
        Error::new(
            ErrorKind::Unavailable,
            "ssh.connect",
            &target,
            format!(
                "the jump host {} could not open a connection to {target}: {why}",
                hop.target()
            ),
        )
    };
    match tokio::time::timeout(hop.connect_timeout, opening).await {
        Err(_) => Err(refused(format!("no answer within {:?}", hop.connect_timeout))
            .with_hint("check that the jump host can reach the server's address and port")),
        Ok(Err(russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::AdministrativelyProhibited))) => {
            Err(refused("forwarding is prohibited there".to_string())
                .with_kind(ErrorKind::PermissionDenied)
                .with_hint(format!(
                    "set `AllowTcpForwarding yes` in the sshd_config of {} for this user",
                    hop.host
                )))
        }
        Ok(Err(e)) => Err(refused(e.to_string()).with_hint(
            "check the server's HostName and Port as the jump host resolves them, and that sshd runs there",
        )),
        Ok(Ok(channel)) => Ok(channel.into_stream()),
    }
}

/// One SSH handshake and authentication: over TCP to `config.host:port`, or over `via` (a jump host's
/// tunnel). `jumps` are kept alive by the new connection.
async fn handshake(config: &SshConfig, via: Option<Tunnel>, jumps: Vec<Session>) -> Result<Session> {
    let key = super::keys::load_key(config)?;
    if key.is_none() && config.agent.is_none() {
        return Err(Error::invalid(
            "ssh.connect",
            config.target(),
            "no key file and no ssh-agent to authenticate with",
        )
        .with_hint("give a key file (SshConfig::key_file, or IdentityFile in ~/.ssh/config) or start ssh-agent and set SSH_AUTH_SOCK"));
    }
    let refusal = Arc::new(Mutex::new(None));
    let handler = Client {
        host: config.host.clone(),
        port: config.port,
        known_hosts: config.known_hosts.clone(),
        global_known_hosts: config.global_known_hosts.clone(),
        trust_on_first_use: config.trust_on_first_use,
        refusal: refusal.clone(),
        _jumps: jumps,
    };
    let target = config.target();
    let russh_config = Arc::new(russh_config(config));
    let connecting = async {
        match via {
            Some(stream) => client::connect_stream(russh_config, stream, handler).await,
            None => client::connect(russh_config, (config.host.as_str(), config.port), handler).await,
        }
    };
    let mut session = match tokio::time::timeout(config.connect_timeout, connecting).await {
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                "ssh.connect",
                &target,
                format!("no SSH handshake within {:?}", config.connect_timeout),
            )
            .with_hint("check the host and port, that sshd runs there, and that no firewall drops packets"));
        }
        Ok(Err(e)) => {
            if let Some(refused) = refusal.lock().ok().and_then(|mut s| s.take()) {
                return Err(refused);
            }
            return Err(connect_error(&target, config, e));
        }
        Ok(Ok(s)) => s,
    };
    match tokio::time::timeout(config.auth_timeout, authenticate(&mut session, config, key)).await {
        Ok(Ok(())) => Ok(session),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            "ssh.auth",
            &target,
            format!("authentication took longer than {:?}", config.auth_timeout),
        )
        .with_hint("check the ssh-agent answers, and the server's auth logs")),
    }
}

fn connect_error(target: &str, config: &SshConfig, e: russh::Error) -> Error {
    let (kind, hint) = match &e {
        russh::Error::IO(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => (
            ErrorKind::Unavailable,
            format!(
                "nothing listens on {}:{}: check the port (sshd's `Port`) and that sshd runs",
                config.host, config.port
            ),
        ),
        russh::Error::IO(io) if io.kind() == std::io::ErrorKind::NotFound => (
            ErrorKind::Unavailable,
            format!("the name {} does not resolve: check the host name", config.host),
        ),
        russh::Error::IO(_) => (
            ErrorKind::Unavailable,
            "check the network path to the server".to_string(),
        ),
        russh::Error::Version | russh::Error::Disconnect | russh::Error::HUP => (
            ErrorKind::Unavailable,
            "the peer closed the connection during the handshake: is this port really sshd?".to_string(),
        ),
        russh::Error::NoCommonAlgo { .. } => (
            ErrorKind::Refused,
            "the server offers no algorithm in common; update the server's OpenSSH".to_string(),
        ),
        _ => (
            ErrorKind::Unavailable,
            "retry; check the server's sshd log".to_string(),
        ),
    };
    Error::new(
        kind,
        "ssh.connect",
        target,
        format!("cannot open the SSH connection: {e}"),
    )
    .with_hint(hint)
    .with_source(e)
}

async fn authenticate(session: &mut Session, config: &SshConfig, key: Option<Arc<PrivateKey>>) -> Result<()> {
    let target = config.target();
    let lost = |e: russh::Error| {
        Error::new(
            ErrorKind::Unavailable,
            "ssh.auth",
            &target,
            format!("the connection broke: {e}"),
        )
        .with_source(e)
    };
    let mut tried = Vec::new();
    if let Some(key) = key {
        let hash = if key.algorithm().is_rsa() {
            session.best_supported_rsa_hash().await.map_err(lost)?.flatten()
        } else {
            None
        };
        let result = session
            .authenticate_publickey(&config.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(lost)?;
        if result.success() {
            return Ok(());
        }
        tried.push(format!(
            "key {} ({})",
            config
                .key_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            known_hosts::fingerprint(key.public_key())
        ));
    }
    if let Some(socket) = &config.agent {
        let mut agent = russh::keys::agent::client::AgentClient::connect_uds(socket)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    "ssh.auth",
                    &target,
                    format!("cannot reach the ssh-agent at {}: {e}", socket.display()),
                )
                .with_hint("start ssh-agent and export SSH_AUTH_SOCK, or give a key file")
            })?;
        let identities = agent.request_identities().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                "ssh.auth",
                &target,
                format!("the ssh-agent failed: {e}"),
            )
        })?;
        for identity in identities {
            let public = identity.public_key().into_owned();
            let hash = if public.algorithm().is_rsa() {
                session.best_supported_rsa_hash().await.map_err(lost)?.flatten()
            } else {
                None
            };
            match session
                .authenticate_publickey_with(&config.user, public.clone(), hash, &mut agent)
                .await
            {
                Ok(r) if r.success() => return Ok(()),
                Ok(_) | Err(_) => tried.push(format!("agent key {}", known_hosts::fingerprint(&public))),
            }
        }
        if tried.is_empty() {
            tried.push("the ssh-agent (it holds no keys)".to_string());
        }
    }
    Err(Error::new(
        ErrorKind::PermissionDenied,
        "ssh.auth",
        &target,
        format!("the server refused {}", tried.join(", ")),
    )
    .with_hint(format!(
        "add the public key to ~{}/.ssh/authorized_keys on {} (ssh-copy-id), or check the user name",
        config.user, config.host
    )))
}
