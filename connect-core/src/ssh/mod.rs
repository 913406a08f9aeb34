//! [`SshHost`]: the server over SSH, with ONE connection (russh) multiplexing every operation.
//!
//! Programs run on session channels with their argv quoted for the remote shell; files stream through
//! `tee` into a temporary name, are hashed on both ends and renamed into place; byte streams to remote
//! TCP ports and unix sockets are `direct-tcpip` and `direct-streamlocal` channels; [`Forwarder`] gives
//! clients that only take an address a local port or socket. Opening a connection checks the server key
//! against known_hosts (unknown refused unless trust-on-first-use; changed always refused).
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
mod forward;
mod known_hosts;
mod quote;
mod transfer;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OwnedSemaphorePermit;

pub use config::SshConfig;
pub use exec::{OutputChunk, OutputStream};
pub use forward::{ForwardAddr, ForwardFrom, Forwarder};
pub use quote::{command_line, quote};

use connection::Session;
use exec::Ending;

use crate::error::{Error, ErrorKind, Result};
use crate::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Host, Output, PutOptions};
use crate::local::{temp_name, validate_path};

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
    /// Session channels in use, at most `max_sessions`.
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
    /// Opens, checks and authenticates the connection.
    pub async fn connect(config: SshConfig) -> Result<SshHost> {
        let session = connection::open(&config).await?;
        Ok(SshHost {
            inner: Arc::new(Inner {
                name: config.target(),
                session: tokio::sync::Mutex::new(Some(Arc::new(session))),
                connections: AtomicUsize::new(1),
                sessions: Arc::new(tokio::sync::Semaphore::new(config.max_sessions.max(1))),
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

    async fn open_exec(
        &self,
        session: &Session,
        line: &str,
        operation: &str,
        target: &str,
    ) -> Result<(russh::Channel<russh::client::Msg>, OwnedSemaphorePermit)> {
        let permit = self
            .inner
            .sessions
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| self.lost(operation, target, e))?;
        // sshd frees a session slot a moment after the channel closes on our side, so a refusal right
        // after another program ended is retried briefly; nothing ran yet, so retrying is always safe.
        let mut backoff = Duration::from_millis(2);
        let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
        let channel = loop {
            match session.channel_open_session().await {
                Ok(c) => break c,
                Err(russh::Error::ChannelOpenFailure(reason)) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!(?reason, "session channel refused; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        operation,
                        target,
                        format!("sshd refused to open a session ({reason:?})"),
                    )
                    .with_hint("lower SshConfig::max_sessions to the server's MaxSessions"));
                }
                Err(e) => return Err(self.lost(operation, target, e)),
            }
        };
        channel
            .exec(true, line.as_bytes())
            .await
            .map_err(|e| self.lost(operation, target, e))?;
        Ok((channel, permit))
    }

    /// Runs one of our helper scripts with `args`, collecting its output.
    async fn script(
        &self,
        session: &Session,
        script: &str,
        args: &[&str],
        operation: &str,
        target: &str,
    ) -> Result<Output> {
        let line = quote::script_line(script, args)?;
        let (channel, _permit) = self.open_exec(session, &line, operation, target).await?;
        match exec::collect(channel, None).await {
            (Ending::Lost, _) => {
                Err(self.lost(operation, target, "the channel closed before the program exited"))
            }
            (Ending::Exited(_), out) => Ok(out),
        }
    }

    /// Runs a program, handing its output to `sink` chunk by chunk as it arrives (for long commands);
    /// returns the exit status (`None`: killed by a signal). Never retried.
    pub async fn run_streaming(
        &self,
        command: &Command,
        sink: tokio::sync::mpsc::Sender<OutputChunk>,
    ) -> Result<Option<i32>> {
        let line = command_line(command)?;
        let target = command.argv[0].clone();
        let session = self.session().await?;
        let (channel, _permit) = self.open_exec(&session, &line, "host.run", &target).await?;
        let (chunks, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutputChunk>();
        let forward = async move {
            while let Some(chunk) = rx.recv().await {
                if sink.send(chunk).await.is_err() {
                    break;
                }
            }
        };
        let drive = exec::drive(channel, command.stdin.as_deref(), move |stream, data| {
            let _ = chunks.send(OutputChunk {
                stream,
                data: data.to_vec(),
            });
        });
        let (ending, ()) = tokio::join!(drive, forward);
        match ending {
            Ending::Exited(status) => Ok(status),
            Ending::Lost => Err(self.lost(
                "host.run",
                &target,
                "the connection broke while the program ran; it was not repeated",
            )),
        }
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
        let line = command_line(command)?;
        let target = command.argv[0].clone();
        let session = self.session().await?;
        let (channel, _permit) = self.open_exec(&session, &line, "host.run", &target).await?;
        match exec::collect(channel, command.stdin.as_deref()).await {
            (Ending::Exited(_), out) => Ok(out),
            (Ending::Lost, _) => Err(self
                .lost("host.run", &target, "the connection broke while the program ran")
                .with_hint("it was not repeated because it may have taken effect: check, then retry")),
        }
    }

    async fn put_file(&self, path: &str, data: BoxReader, options: PutOptions) -> Result<u64> {
        validate_path("host.put_file", path)?;
        let temp = format!("{}-{}", temp_name(path), std::process::id());
        let mode = format!("{:o}", options.mode & 0o7777);
        let new = if options.create_new { "1" } else { "0" };
        let session = self.session().await?;
        let line = quote::script_line(transfer::RECEIVE, &[&temp, path, &mode, new])?;
        let (channel, _permit) = self.open_exec(&session, &line, "host.put_file", path).await?;
        let (mut rx, tx) = channel.split();
        let mut out = Output::default();
        let (sent, ending) = {
            let sending = transfer::send_stream(&tx, data);
            let receiving = exec::read_until_closed(&mut rx, |s, d| match s {
                OutputStream::Stdout => out.stdout.extend_from_slice(d),
                OutputStream::Stderr => out.stderr.extend_from_slice(d),
            });
            tokio::pin!(sending, receiving);
            // The server may refuse before reading anything (no directory, file exists): its answer ends
            // the transfer even while we still have data to send.
            tokio::select! {
                sent = &mut sending => (Some(sent), (&mut receiving).await),
                ending = &mut receiving => (None, ending),
            }
        };
        drop(tx);
        out.status = match ending {
            Ending::Exited(s) => s,
            Ending::Lost => {
                return Err(self
                    .lost("host.put_file", path, "the connection broke during the upload")
                    .with_hint(format!("the file is unchanged; a temporary {temp} may remain")));
            }
        };
        if !out.success() {
            return Err(exec::script_error("host.put_file", path, &out));
        }
        let (local_sum, written) = match sent {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                let _ = self
                    .script(&session, transfer::DISCARD, &[&temp], "host.put_file", path)
                    .await;
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "host.put_file",
                    path,
                    format!("reading the data failed: {e}"),
                )
                .with_source(e));
            }
            None => {
                let _ = self
                    .script(&session, transfer::DISCARD, &[&temp], "host.put_file", path)
                    .await;
                return Err(Error::new(
                    ErrorKind::Failed,
                    "host.put_file",
                    path,
                    "the server stopped reading the data",
                ));
            }
        };
        let receipt = transfer::parse_receipt(&out);
        if receipt != Some((local_sum, written, written)) {
            let _ = self
                .script(&session, transfer::DISCARD, &[&temp], "host.put_file", path)
                .await;
            return Err(Error::new(
                ErrorKind::Corrupt,
                "host.put_file",
                path,
                format!("the server stored something else: sent {written} bytes with cksum {local_sum}, the server reports (cksum, received, stored) {receipt:?}"),
            )
            .with_hint("check the server's disk (full?) and retry"));
        }
        let placed = self
            .script(
                &session,
                transfer::PLACE,
                &[&temp, path, new],
                "host.put_file",
                path,
            )
            .await?;
        if !placed.success() {
            return Err(exec::script_error("host.put_file", path, &placed));
        }
        Ok(written)
    }

    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        validate_path("host.get_file", path)?;
        let line = quote::script_line(transfer::SEND, &[path])?;
        self.with_session(Idempotent::Yes, |session| {
            let line = line.clone();
            async move {
                let (channel, permit) = self.open_exec(&session, &line, "host.get_file", path).await?;
                let download = transfer::start_download(channel, permit, path).await?;
                Ok(Box::pin(download) as BoxReader)
            }
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        validate_path("host.rename", from)?;
        validate_path("host.rename", to)?;
        let target = format!("{from} -> {to}");
        let script = r#"[ -e "$1" ] || [ -L "$1" ] || { echo "no such file: $1" >&2; exit 44; }
mv -f -T -- "$1" "$2" && { sync -- "$(dirname -- "$2")" 2>/dev/null || true; }"#;
        let session = self.session().await?;
        let out = self
            .script(&session, script, &[from, to], "host.rename", &target)
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(exec::script_error("host.rename", &target, &out))
        }
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        validate_path("host.remove_file", path)?;
        let script = r#"[ -e "$1" ] || [ -L "$1" ] || { echo "no such file: $1" >&2; exit 44; }
[ -d "$1" ] && [ ! -L "$1" ] && { echo "is a directory: $1" >&2; exit 45; }
rm -f -- "$1""#;
        let session = self.session().await?;
        let out = self
            .script(&session, script, &[path], "host.remove_file", path)
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(exec::script_error("host.remove_file", path, &out))
        }
    }

    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        let script = r#"[ -e "$1" ] || { echo "no such path: $1" >&2; exit 44; }
stat -f -c '%S %b %a %c %d' -- "$1""#;
        let out = self
            .with_session(Idempotent::Yes, |session| async move {
                self.script(&session, script, &[path], "host.disk_usage", path)
                    .await
            })
            .await?;
        if !out.success() {
            return Err(exec::script_error("host.disk_usage", path, &out));
        }
        let text = out.stdout_text();
        let n: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [block, blocks, avail, inodes, free_inodes] = n[..] else {
            return Err(Error::new(
                ErrorKind::Failed,
                "host.disk_usage",
                path,
                format!("unexpected `stat -f` output: {text:?}"),
            ));
        };
        Ok(DiskUsage {
            total_bytes: blocks.saturating_mul(block),
            available_bytes: avail.saturating_mul(block),
            total_inodes: inodes,
            free_inodes,
        })
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
