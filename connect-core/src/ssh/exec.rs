//! Running programs on session channels: output kept apart and streamed, stdin fed while output is read.

use std::pin::pin;

use russh::{ChannelMsg, ChannelReadHalf};

use crate::error::{Error, ErrorKind};
use crate::host::Output;

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

/// How the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Exit status, or `None` when killed by a signal.
    Exited(Option<i32>),
    /// The channel closed without an exit status: the connection broke.
    Lost,
}

/// Reads a channel until it closes, handing every output chunk to `sink`.
pub(crate) async fn read_until_closed(
    rx: &mut ChannelReadHalf,
    mut sink: impl FnMut(OutputStream, &[u8]),
) -> Ending {
    let mut ending = Ending::Lost;
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } => sink(OutputStream::Stdout, &data),
            ChannelMsg::ExtendedData { data, ext: 1 } => sink(OutputStream::Stderr, &data),
            ChannelMsg::ExitStatus { exit_status } => {
                ending = Ending::Exited(Some(i32::try_from(exit_status).unwrap_or(i32::MAX)))
            }
            ChannelMsg::ExitSignal { .. } => ending = Ending::Exited(None),
            _ => {}
        }
    }
    ending
}

/// Runs an opened-and-exec'd channel to completion: writes `stdin` (then EOF) while reading the output.
/// Returns as soon as the channel closes, even if the program never read its input.
pub(crate) async fn drive(
    channel: russh::Channel<russh::client::Msg>,
    stdin: Option<&[u8]>,
    sink: impl FnMut(OutputStream, &[u8]),
) -> Ending {
    let (mut rx, tx) = channel.split();
    let feed = async {
        if let Some(bytes) = stdin {
            let _ = tx.data(bytes).await;
        }
        let _ = tx.eof().await;
        // Keep the write half (and so the channel) alive until the output is read.
        std::future::pending::<()>().await;
    };
    let read = read_until_closed(&mut rx, sink);
    let (mut feed, mut read) = (pin!(feed), pin!(read));
    tokio::select! {
        ending = &mut read => ending,
        () = &mut feed => Ending::Lost,
    }
}

/// Collects a program's output into an [`Output`].
pub(crate) async fn collect(
    channel: russh::Channel<russh::client::Msg>,
    stdin: Option<&[u8]>,
) -> (Ending, Output) {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let ending = drive(channel, stdin, |s, d| match s {
        OutputStream::Stdout => stdout.extend_from_slice(d),
        OutputStream::Stderr => stderr.extend_from_slice(d),
    })
    .await;
    let status = match ending {
        Ending::Exited(s) => s,
        Ending::Lost => None,
    };
    (
        ending,
        Output {
            status,
            stdout,
            stderr,
        },
    )
}

/// Exit statuses of our own helper scripts.
pub(crate) mod status {
    /// The file or directory does not exist.
    pub const NOT_FOUND: i32 = 44;
    /// The path is not a regular file.
    pub const NOT_A_FILE: i32 = 45;
    /// Permission denied.
    pub const DENIED: i32 = 46;
    /// The file exists (exclusive creation).
    pub const EXISTS: i32 = 47;
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
        Some(127) => (
            ErrorKind::Unsupported,
            Some("the server lacks a POSIX shell or coreutils (sh, tee, cksum, stat, mv, mkfifo)"),
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
