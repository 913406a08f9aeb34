//! [`SshHost`]: the server over SSH, with ONE connection (russh) multiplexing every operation.
//!
//! Programs run on session channels with their argv quoted for the remote shell, each bounded: a deadline
//! ([`SshConfig::command_timeout`], or the command's own), an output cap for what `run` keeps
//! ([`SshConfig::max_output`]), and killed (its whole process group) when the caller gives up or drops the
//! call. Files stream through `tee` into a temporary the server creates exclusively under a random name,
//! are hashed on both ends and renamed into place; byte streams to remote TCP ports and unix sockets are
//! `direct-tcpip` and `direct-streamlocal` channels; [`Forwarder`] gives clients that only take an address
//! a local port or socket. Opening a connection checks the server key against known_hosts (unknown refused
//! unless trust-on-first-use; changed, or shown under another type than the one recorded, always refused).
//!
//! ```no_run
//! use connect_core::host::{Command, Host};
//! use connect_core::ssh::{SshConfig, SshHost};
//!
//! # async fn demo() -> connect_core::Result<()> {
//! let host = SshHost::connect(
//!     SshConfig::new("prod-host", "deploy").key_file("/home/ci/.ssh/id_ed25519"),
//! )
//! .await?;
//! let out = host.run(&Command::new(["docker", "ps", "--format", "{{.Names}}"])).await?;
//! println!("{}", out.stdout_text());
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod exec;
mod files;
mod forward;
mod keys;
mod known_hosts;
mod process;
mod quote;
mod resolve;
mod scripts;
mod transfer;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

pub use config::{GLOBAL_KNOWN_HOSTS, JumpHost, SshConfig};
pub use exec::{OutputChunk, OutputStream};
pub use forward::{ForwardAddr, ForwardFrom, Forwarder};

use connection::Session;

use crate::error::{Error, ErrorKind, Result};
use crate::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Host, Output, PutOptions};
use crate::local::validate_path;

/// The server over SSH: one authenticated connection carries every operation as its own channel.
///
/// Cloning is cheap and shares the connection. When the connection is found dropped it is reopened once
/// for the next operation; an operation interrupted by a drop is retried once only when it is idempotent
/// (reading a file, disk usage, opening a byte stream), never a command or a write.
#[derive(Clone)]
pub struct SshHost {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    config: SshConfig,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    connections: AtomicUsize,
    /// Session channels in use, at most `max_sessions - 1`: the last one is kept to stop programs.
    sessions: Arc<tokio::sync::Semaphore>,
}

impl fmt::Debug for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshHost")
            .field("name", &self.inner.name)
            .field("connections", &self.connections_opened())
            .finish()
    }
}

/// Whether an operation may be repeated after the connection broke in its middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    No,
}

impl SshHost {
    /// Opens, checks and authenticates the connection (through the jump hosts, if any).
    pub async fn connect(config: SshConfig) -> Result<SshHost> {
        let session = connection::open(&config).await?;
        // Named as the server is reached (the ssh config's HostName, User and Port for an alias).
        let name = resolve::route(&config)?
            .last()
            .map_or_else(|| config.target(), SshConfig::target);
        Ok(SshHost {
            inner: Arc::new(Inner {
                name,
                session: tokio::sync::Mutex::new(Some(Arc::new(session))),
                connections: AtomicUsize::new(1),
                // One session stays free to stop a program with (see `process`).
                sessions: Arc::new(tokio::sync::Semaphore::new(
                    config.max_sessions.saturating_sub(1).max(1),
                )),
                config,
            }),
        })
    }

    /// The configuration this host was opened with.
    pub fn config(&self) -> &SshConfig {
        &self.inner.config
    }

    /// How many SSH connections this host has opened (1 unless the connection was lost and reopened).
    pub fn connections_opened(&self) -> usize {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Closes the connection; the next operation opens a new one.
    pub async fn close(&self) {
        let session = self.inner.session.lock().await.take();
        if let Some(s) = session {
            let _ = s.disconnect(russh::Disconnect::ByApplication, "bye", "en").await;
        }
    }

    /// The open connection, reopened if it was found closed.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut slot = self.inner.session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        if slot.is_some() {
            tracing::warn!(host = %self.inner.name, "the SSH connection was lost; reconnecting");
        }
        let fresh = Arc::new(connection::open(&self.inner.config).await?);
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Runs `op` on the connection; retries once on a new connection if the connection broke and the
    /// operation is idempotent.
    async fn with_session<T, F, Fut>(&self, idempotent: Idempotent, op: F) -> Result<T>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let session = self.session().await?;
        match op(session.clone()).await {
            Err(e) if session.is_closed() && e.kind() == ErrorKind::Unavailable => {
                if idempotent == Idempotent::No {
                    return Err(e.with_hint(
                        "the connection broke mid-operation; it was not repeated because it may have taken effect: check, then retry",
                    ));
                }
                op(self.session().await?).await
            }
            other => other,
        }
    }

    fn lost(&self, operation: &str, target: &str, e: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            operation,
            target,
            format!("the SSH connection to {} failed: {e}", self.inner.name),
        )
    }

    /// Listens on `from` and carries every connection made to it to `to` on the server.
    pub async fn forward(&self, from: ForwardFrom, to: Endpoint) -> Result<Forwarder> {
        forward::start(self.clone(), from, to).await
    }
}

#[async_trait]
impl Host for SshHost {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn run(&self, command: &Command) -> Result<Output> {
        let line = quote::program_line(command)?;
        let limit = command.timeout.unwrap_or(self.inner.config.command_timeout);
        let session = self.session().await?;
        self.execute(
            &session,
            &line,
            command.stdin.as_deref(),
            ("host.run", &command.argv[0]),
            limit,
        )
        .await
    }

    async fn put_file(&self, path: &str, data: BoxReader, options: PutOptions) -> Result<u64> {
        self.upload(path, data, options).await
    }

    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        validate_path("host.get_file", path)?;
        let line = quote::script_line(scripts::SEND, &[path])?;
        self.with_session(Idempotent::Yes, |session| {
            let line = line.clone();
            async move {
                let process = self.start(&session, &line, "host.get_file", path).await?;
                let download = transfer::start_download(process, path).await?;
                Ok(Box::pin(download) as BoxReader)
            }
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.rename_file(from, to).await
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        self.remove(path).await
    }

    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        let out = self
            .with_session(Idempotent::Yes, |session| async move {
                self.script(&session, scripts::DISK_USAGE, &[path], "host.disk_usage", path)
                    .await
            })
            .await?;
        SshHost::disk_usage_from(path, &out)
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        let target = endpoint.to_string();
        let timeout = self.inner.config.connect_timeout;
        self.with_session(Idempotent::Yes, |session| {
            let target = target.clone();
            async move {
                let opening = async {
                    match endpoint {
                        Endpoint::Tcp { host, port } => {
                            session
                                .channel_open_direct_tcpip(host.as_str(), u32::from(*port), "127.0.0.1", 0)
                                .await
                        }
                        Endpoint::Unix(path) => session.channel_open_direct_streamlocal(path.as_str()).await,
                    }
                };
                let channel = match tokio::time::timeout(timeout, opening).await {
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            "host.connect",
                            &target,
                            format!("the server did not open the stream within {timeout:?}"),
                        ));
                    }
                    Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
                        return Err(open_failure(&target, reason));
                    }
                    Ok(Err(e)) => return Err(self.lost("host.connect", &target, e)),
                    Ok(Ok(c)) => c,
                };
                Ok(Box::pin(channel.into_stream()) as BoxStream)
            }
        })
        .await
    }
}

fn open_failure(target: &str, reason: russh::ChannelOpenFailure) -> Error {
    match reason {
        russh::ChannelOpenFailure::AdministrativelyProhibited => Error::new(
            ErrorKind::PermissionDenied,
            "host.connect",
            target,
            "sshd refused to forward (administratively prohibited)",
        )
        .with_hint(
            "set `AllowTcpForwarding yes` and `AllowStreamLocalForwarding yes` in sshd_config for this user",
        ),
        other => Error::new(
            ErrorKind::Refused,
            "host.connect",
            target,
            format!("the server could not connect to it ({other:?})"),
        )
        .with_hint("check that the service listens at that address on the server"),
    }
}
