//! Running programs on session channels: output kept apart and streamed, stdin fed while output is read,
//! every program bounded by a deadline and (when kept in memory) an output cap.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::SshHost;
use super::connection::Session;
use super::process::{Ending, Process};
use super::quote::program_line;
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Output, deadline_error, output_cap_error};

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of a running program's output, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Which stream.
    pub stream: OutputStream,
    /// The bytes.
    pub data: Vec<u8>,
}

impl SshHost {
    /// Opens a session channel (waiting for a free one: sshd's `MaxSessions`) and starts `line` on it.
    pub(super) async fn start(
        &self,
        session: &Arc<Session>,
        line: &str,
        operation: &str,
        target: &str,
    ) -> Result<Process> {
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
        let give_up = Instant::now() + Duration::from_secs(5);
        let channel = loop {
            match session.channel_open_session().await {
                Ok(c) => break c,
                Err(russh::Error::ChannelOpenFailure(reason)) if Instant::now() < give_up => {
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
        let process = Process::new(channel, permit, session.clone());
        process
            .exec(line)
            .await
            .map_err(|e| self.lost(operation, target, e))?;
        Ok(process)
    }

    /// Runs `line` to completion within `limit`, feeding it `stdin` and keeping at most the host's
    /// `max_output` bytes of output; past either, the program is stopped and the call fails.
    pub(super) async fn execute(
        &self,
        session: &Arc<Session>,
        line: &str,
        stdin: Option<&[u8]>,
        (operation, target): (&str, &str),
        limit: Duration,
    ) -> Result<Output> {
        let until = Instant::now() + limit;
        let mut process = tokio::time::timeout_at(until, self.start(session, line, operation, target))
            .await
            .map_err(|_| not_started(operation, target, limit))??;
        let cap = self.inner.config.max_output;
        let mut out = Output::default();
        let mut kept = 0usize;
        let driven = tokio::time::timeout_at(
            until,
            process.drive(stdin, |stream, data| {
                kept = kept.saturating_add(data.len());
                if kept > cap {
                    return false;
                }
                match stream {
                    OutputStream::Stdout => out.stdout.extend_from_slice(data),
                    OutputStream::Stderr => out.stderr.extend_from_slice(data),
                }
                true
            }),
        )
        .await;
        match driven {
            Ok(Ending::Exited(status)) => {
                out.status = status;
                Ok(out)
            }
            Ok(Ending::Lost) => Err(self
                .lost(operation, target, "the connection broke while the program ran")
                .with_hint("it was not repeated because it may have taken effect: check, then retry")),
            Ok(Ending::Stopped) => {
                process.stop().await;
                Err(output_cap_error(operation, target, cap))
            }
            Err(_) => {
                process.stop().await;
                Err(deadline_error(operation, target, limit))
            }
        }
    }

    /// Runs a program, handing its output to `sink` chunk by chunk as it arrives (for long commands and
    /// big output: nothing is kept, so there is no cap); returns the exit status (`None`: killed by a
    /// signal). Bounded like [`Host::run`](crate::host::Host::run): killed at its deadline and when this
    /// call is dropped. Never retried.
    pub async fn run_streaming(
        &self,
        command: &Command,
        sink: tokio::sync::mpsc::Sender<OutputChunk>,
    ) -> Result<Option<i32>> {
        let line = program_line(command)?;
        let target = command.argv[0].clone();
        let limit = command.timeout.unwrap_or(self.inner.config.command_timeout);
        let until = Instant::now() + limit;
        let session = self.session().await?;
        let mut process = tokio::time::timeout_at(until, self.start(&session, &line, "host.run", &target))
            .await
            .map_err(|_| not_started("host.run", &target, limit))??;
        // The channel is read at its own pace; the caller's sink may be slower.
        let (chunks, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutputChunk>();
        let forward = async move {
            while let Some(chunk) = rx.recv().await {
                if sink.send(chunk).await.is_err() {
                    break;
                }
            }
        };
        let drive = tokio::time::timeout_at(
            until,
            process.drive(command.stdin.as_deref(), move |stream, data| {
                let _ = chunks.send(OutputChunk {
                    stream,
                    data: data.to_vec(),
                });
                true
            }),
        );
        let (driven, ()) = tokio::join!(drive, forward);
        match driven {
            Ok(Ending::Exited(status)) => Ok(status),
            Ok(Ending::Lost | Ending::Stopped) => Err(self.lost(
                "host.run",
                &target,
                "the connection broke while the program ran; it was not repeated",
            )),
            Err(_) => {
                process.stop().await;
                Err(deadline_error("host.run", &target, limit))
            }
        }
    }
}

/// The deadline passed while every session was busy: the program never started.
fn not_started(operation: &str, program: &str, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        operation,
        program,
        format!("not started within its deadline of {limit:?}: every session of the connection stayed busy"),
    )
    .with_hint("run fewer programs at once, or raise SshConfig::max_sessions with sshd's MaxSessions")
}

/// Exit statuses of our own helper scripts.
pub(crate) mod status {
    /// The file or directory does not exist.
    pub(crate) const NOT_FOUND: i32 = 44;
    /// The path is not a regular file.
    pub(crate) const NOT_A_FILE: i32 = 45;
    /// Permission denied.
    pub(crate) const DENIED: i32 = 46;
    /// The file exists (exclusive creation).
    pub(crate) const EXISTS: i32 = 47;
    /// A missing parent directory could not be made.
    pub(crate) const NO_PARENT: i32 = 48;
}

/// Turns a failed helper script into an error of the right kind.
pub(crate) fn script_error(operation: &str, target: &str, out: &Output) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let (kind, hint) = match out.status {
        Some(status::NOT_FOUND) => (ErrorKind::NotFound, None),
        Some(status::NOT_A_FILE) => (ErrorKind::InvalidInput, Some("give the path of a regular file")),
        Some(status::DENIED) => (
            ErrorKind::PermissionDenied,
            Some("log in as a user allowed to access it, or fix its permissions"),
        ),
        Some(status::EXISTS) => (
            ErrorKind::Conflict,
            Some("the file exists; remove it first if it is stale"),
        ),
        Some(status::NO_PARENT) if stderr.contains("ermission denied") => {
            (ErrorKind::PermissionDenied, Some(crate::host::PARENT_HINT))
        }
        Some(status::NO_PARENT) => (ErrorKind::Failed, Some(crate::host::PARENT_HINT)),
        Some(127) => (
            ErrorKind::Unsupported,
            Some(
                "the server lacks a POSIX shell or utility, or mktemp, sync or stat (see the README's server requirements)",
            ),
        ),
        _ => (ErrorKind::Failed, None),
    };
    let status = out
        .status
        .map_or("killed by a signal".to_string(), |s| format!("exit {s}"));
    let message = if stderr.is_empty() {
        status
    } else {
        format!("{stderr} ({status})")
    };
    let e = Error::new(kind, operation, target, message);
    match hint {
        Some(h) => e.with_hint(h),
        None => e,
    }
}
