//! File transfer over exec channels: bytes stream through `tee` into a temporary name while both ends
//! checksum them (POSIX `cksum`, CRC-32 with the length: coreutils runs it at memory speed, where its
//! `sha256sum` manages under 100 MB/s on a server CPU; the SSH MAC already authenticates the stream, the
//! checksum catches truncation and corruption between the pipe and the file); the file is renamed into
//! place only when checksum and sizes agree.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use crc::{CRC_32_CKSUM, Crc, Table};
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

use super::exec;
use crate::error::{Error, ErrorKind, Result};
use crate::host::Output;
use crate::local::COPY_BUFFER;

/// Receives the data into `$1` (temporary) for `$2`, prints `CKSUM STREAM_SIZE FILE_SIZE`. `$4 = 1`: refuse an existing `$2`.
pub(crate) const RECEIVE: &str = r#"tmp=$1 dst=$2 mode=$3 new=$4
dir=$(dirname -- "$dst")
[ -d "$dir" ] || { echo "no such directory: $dir" >&2; exit 44; }
if [ "$new" = 1 ] && { [ -e "$dst" ] || [ -L "$dst" ]; }; then echo "file exists: $dst" >&2; exit 47; fi
(umask 077 && : > "$tmp") || exit 46
sum=$(tee -- "$tmp" | cksum) || { rm -f -- "$tmp"; exit 1; }
chmod "$mode" "$tmp" && sync -- "$tmp" || { rm -f -- "$tmp"; exit 1; }
printf '%s %s\n' "$sum" "$(stat -c %s -- "$tmp")""#;

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

/// Sends `K`, then the file, while a `cksum` fed through a FIFO prints the file's checksum on stderr.
pub(crate) const SEND: &str = r#"f=$1
[ -e "$f" ] || { echo "no such file: $f" >&2; exit 44; }
[ -d "$f" ] && { echo "is a directory: $f" >&2; exit 45; }
[ -r "$f" ] || { echo "not readable: $f" >&2; exit 46; }
fifo=$(mktemp -u) && mkfifo -m 600 "$fifo" || exit 1
cksum < "$fifo" >&2 &
printf K
tee -- "$fifo" < "$f"
wait $!
rc=$?
rm -f -- "$fifo"
exit $rc"#;

static CKSUM: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_CKSUM);

/// POSIX `cksum`: CRC-32 (polynomial 0x04C11DB7) over the data, then over its length.
pub(crate) struct Cksum {
    digest: crc::Digest<'static, u32, Table<16>>,
    len: u64,
}

impl Cksum {
    pub(crate) fn new() -> Cksum {
        Cksum {
            digest: CKSUM.digest(),
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
        self.len += data.len() as u64;
    }

    /// `(crc, length)`, as `cksum` prints them.
    pub(crate) fn finish(mut self) -> (u32, u64) {
        let mut n = self.len;
        while n > 0 {
            self.digest.update(&[(n & 0xff) as u8]);
            n >>= 8;
        }
        (self.digest.finalize(), self.len)
    }
}

/// Streams `data` into the channel through a fixed buffer, checksumming it. Returns `(crc, bytes)`.
pub(crate) async fn send_stream(
    tx: &russh::ChannelWriteHalf<russh::client::Msg>,
    mut data: crate::host::BoxReader,
) -> io::Result<(u32, u64)> {
    let mut writer = tx.make_writer();
    let mut hasher = Cksum::new();
    // Reading the source overlaps with sending: two buffers in flight, so memory stays constant.
    let (chunks, mut ready) = mpsc::channel::<io::Result<Vec<u8>>>(2);
    let reading = tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; COPY_BUFFER];
            match data.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if chunks.send(Ok(buf)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = chunks.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    let _stop_reading = AbortOnDrop(reading);
    while let Some(chunk) = ready.recv().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        writer.write_all(&chunk).await?;
    }
    writer.flush().await?;
    drop(writer);
    tx.eof().await.map_err(io::Error::other)?;
    Ok(hasher.finish())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Parses the receiving script's `CKSUM STREAM_SIZE FILE_SIZE` line.
pub(crate) fn parse_receipt(out: &Output) -> Option<(u32, u64, u64)> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    let sum = u32::try_from(words.next()?.ok()?).ok()?;
    Some((sum, words.next()?.ok()?, words.next()?.ok()?))
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
        let _permit = permit;
        let mut hasher = Cksum::new();
        let rest = first.slice(1..);
        hasher.update(&rest);
        if !rest.is_empty() && queue.send(Ok(rest)).await.is_err() {
            let _ = tx.close().await;
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
                        // The reader was dropped: close the channel so the server stops sending.
                        let _ = tx.close().await;
                        return;
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => closed_cleanly = true,
                _ => {}
            }
        }
        let (crc, len) = hasher.finish();
        let local = format!("{crc} {len}");
        let stderr = String::from_utf8_lossy(&stderr);
        let remote = stderr.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
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
                format!("{path}: checksum mismatch (server cksum {remote}, received {local})"),
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

#[cfg(test)]
mod tests {
    use super::Cksum;

    #[test]
    fn cksum_matches_posix_cksum() {
        let mut c = Cksum::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), (930_766_865, 9));
        assert_eq!(Cksum::new().finish(), (4_294_967_295, 0));
    }
}
