//! File transfer over exec channels: bytes stream through `tee` into a temporary name while both ends hash
//! them; the file is renamed into place only when the SHA-256 and the size agree.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use russh::ChannelMsg;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

use super::exec;
use crate::error::{Error, ErrorKind, Result};
use crate::host::Output;
use crate::local::COPY_BUFFER;

/// Receives the data into `$1` (temporary) for `$2`, prints `SHA256 SIZE`. `$4 = 1`: refuse an existing `$2`.
pub(crate) const RECEIVE: &str = r#"tmp=$1 dst=$2 mode=$3 new=$4
dir=$(dirname -- "$dst")
[ -d "$dir" ] || { echo "no such directory: $dir" >&2; exit 44; }
if [ "$new" = 1 ] && { [ -e "$dst" ] || [ -L "$dst" ]; }; then echo "file exists: $dst" >&2; exit 47; fi
(umask 077 && : > "$tmp") || exit 46
sum=$(tee -- "$tmp" | sha256sum) || { rm -f -- "$tmp"; exit 1; }
chmod "$mode" "$tmp" && sync -- "$tmp" || { rm -f -- "$tmp"; exit 1; }
printf '%s %s\n' "${sum%% *}" "$(stat -c %s -- "$tmp")""#;

/// Moves the verified temporary file `$1` into place at `$2`; with `$3 = 1` only if `$2` does not exist
/// (a hard link: the kernel checks and creates in one step).
pub(crate) const PLACE: &str = r#"if [ "$3" = 1 ]; then
  if ln -- "$1" "$2" 2>/dev/null; then rm -f -- "$1"; else rm -f -- "$1"; [ -e "$2" ] && { echo "file exists: $2" >&2; exit 47; }; exit 1; fi
else
  mv -f -- "$1" "$2" || { rm -f -- "$1"; exit 1; }
fi
sync -- "$(dirname -- "$2")" 2>/dev/null || true"#;

/// Removes a temporary file left by a failed transfer.
pub(crate) const DISCARD: &str = r#"rm -f -- "$1""#;

/// Sends `K`, then the file, while a `sha256sum` fed through a FIFO prints the file's hash on stderr.
pub(crate) const SEND: &str = r#"f=$1
[ -e "$f" ] || { echo "no such file: $f" >&2; exit 44; }
[ -d "$f" ] && { echo "is a directory: $f" >&2; exit 45; }
[ -r "$f" ] || { echo "not readable: $f" >&2; exit 46; }
fifo=$(mktemp -u) && mkfifo -m 600 "$fifo" || exit 1
sha256sum < "$fifo" >&2 &
printf K
tee -- "$fifo" < "$f"
wait $!
rc=$?
rm -f -- "$fifo"
exit $rc"#;

/// Streams `data` into the channel through a fixed buffer, hashing it. Returns (bytes, hex sha256).
pub(crate) async fn send_stream(
    tx: &russh::ChannelWriteHalf<russh::client::Msg>,
    mut data: crate::host::BoxReader,
) -> io::Result<(u64, String)> {
    let mut writer = tx.make_writer();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = data.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    writer.flush().await?;
    drop(writer);
    tx.eof().await.map_err(io::Error::other)?;
    Ok((total, hex(&hasher.finalize())))
}

/// Parses the receiving script's `SHA256 SIZE` line.
pub(crate) fn parse_receipt(out: &Output) -> Option<(String, u64)> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let sum = words.next()?.to_string();
    let size = words.next()?.parse().ok()?;
    Some((sum, size))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The reading end of a download: chunks pumped from the channel through a small bounded queue, so memory
/// stays constant; the last item is an error if the checksum or exit status says the copy is wrong.
pub(crate) struct Download {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl AsyncRead for Download {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.current.is_empty() {
                let n = self.current.len().min(buf.remaining());
                let chunk = self.current.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.current = chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Starts a download on a channel running [`SEND`]: waits for the `K` (or the script's failure), then
/// pumps the rest in the background.
pub(crate) async fn start_download(
    channel: russh::Channel<russh::client::Msg>,
    permit: tokio::sync::OwnedSemaphorePermit,
    path: &str,
) -> Result<Download> {
    let (mut rx, tx) = channel.split();
    let mut stderr = Vec::new();
    let mut status = None;
    let first = loop {
        match rx.wait().await {
            Some(ChannelMsg::Data { data }) if !data.is_empty() => break data,
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => stderr.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => status = i32::try_from(exit_status).ok(),
            Some(_) => {}
            None => {
                if status.is_none() {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "host.get_file",
                        path,
                        "the SSH connection closed before the file started",
                    ));
                }
                let out = Output {
                    status,
                    stdout: Vec::new(),
                    stderr,
                };
                return Err(exec::script_error("host.get_file", path, &out));
            }
        }
    };
    if first.first() != Some(&b'K') {
        return Err(Error::new(
            ErrorKind::Failed,
            "host.get_file",
            path,
            "unexpected reply from the server",
        ));
    }
    let (queue, reader) = mpsc::channel::<io::Result<Bytes>>(8);
    let path = path.to_string();
    tokio::spawn(async move {
        let _keep_open = (tx, permit);
        let mut hasher = Sha256::new();
        let rest = first.slice(1..);
        hasher.update(&rest);
        if !rest.is_empty() && queue.send(Ok(rest)).await.is_err() {
            return;
        }
        let mut status = None;
        let mut stderr = Vec::new();
        let mut closed_cleanly = false;
        while let Some(msg) = rx.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    hasher.update(&data);
                    if queue.send(Ok(data)).await.is_err() {
                        return; // the reader was dropped
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => closed_cleanly = true,
                _ => {}
            }
        }
        let local = hex(&hasher.finalize());
        let stderr = String::from_utf8_lossy(&stderr);
        let remote = stderr.split_whitespace().next().unwrap_or_default();
        let verdict = if status.is_none() && !closed_cleanly {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("{path}: the SSH connection broke during the download"),
            ))
        } else if status != Some(0) {
            Err(io::Error::other(format!(
                "{path}: the sending side failed: {}",
                stderr.trim()
            )))
        } else if remote != local {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: checksum mismatch (server {remote}, received {local})"),
            ))
        } else {
            return;
        };
        let _ = queue.send(verdict).await;
    });
    Ok(Download {
        rx: reader,
        current: Bytes::new(),
    })
}
