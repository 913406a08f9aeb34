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
use super::process::Process;
use crate::error::{Error, ErrorKind, Result};
use crate::host::Output;
use crate::local::COPY_BUFFER;

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

/// Why an upload's stream stopped.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Reading the caller's data failed.
    Source(io::Error),
    /// Writing to the channel failed: the connection broke or the server closed it.
    Channel(io::Error),
}

/// Streams `data` into the channel through a fixed buffer, checksumming it, then sends EOF. Returns
/// `(crc, bytes)`.
pub(crate) async fn send_stream(
    tx: &russh::ChannelWriteHalf<russh::client::Msg>,
    mut data: crate::host::BoxReader,
) -> std::result::Result<(u32, u64), SendError> {
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
        let chunk = chunk.map_err(SendError::Source)?;
        hasher.update(&chunk);
        writer.write_all(&chunk).await.map_err(SendError::Channel)?;
    }
    writer.flush().await.map_err(SendError::Channel)?;
    drop(writer);
    tx.eof()
        .await
        .map_err(|e| SendError::Channel(io::Error::other(e)))?;
    Ok(hasher.finish())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Parses the receiving script's output: the temporary file's random suffix, then
/// `CKSUM STREAM_SIZE FILE_SIZE`.
pub(crate) fn parse_receipt(out: &Output) -> (Option<String>, Option<(u32, u64, u64)>) {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let suffix = lines
        .next()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string);
    let receipt = lines.next().and_then(|line| {
        let mut words = line.split_whitespace().map(str::parse::<u64>);
        let sum = u32::try_from(words.next()?.ok()?).ok()?;
        Some((sum, words.next()?.ok()?, words.next()?.ok()?))
    });
    (suffix, receipt)
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

/// What the sending script reports besides the file's bytes, gathered over the WHOLE channel. sshd sends
/// the exit status as soon as it reaps the script, which is not after the output: when sshd is slow to run
/// (a loaded server), the script has written everything and exited before sshd looks, and sshd's loop
/// reaps children before it reads their pipes, so `exit-status` comes first and the data after it. The
/// status, the signal and stderr must therefore be kept from the first message on, not only from the first
/// byte of the file.
#[derive(Debug, Default)]
struct Report {
    status: Option<u32>,
    signal: Option<String>,
    stderr: Vec<u8>,
    /// The server closed the channel (rather than the connection breaking).
    closed: bool,
}

impl Report {
    /// Takes in any message but the file's data.
    fn note(&mut self, msg: ChannelMsg) {
        match msg {
            ChannelMsg::ExtendedData { data, ext: 1 } => self.stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => self.status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => self.signal = Some(format!("SIG{signal_name:?}")),
            ChannelMsg::Close => self.closed = true,
            _ => {}
        }
    }

    /// How the script ended, as an [`Output`] for [`exec::script_error`].
    fn output(&self) -> Output {
        Output {
            status: self.status.map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
            stdout: Vec::new(),
            stderr: self.stderr.clone(),
        }
    }

    /// Whether what arrived (`crc`, `len`) is the whole file, judged by the script's exit status and the
    /// checksum it printed on stderr.
    fn verdict(&self, path: &str, (crc, len): (u32, u64)) -> io::Result<()> {
        let stderr = String::from_utf8_lossy(&self.stderr);
        let local = format!("{crc} {len}");
        // `cksum` prints the last line; a login shell's startup noise may come before it.
        let remote = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        match (self.status, &self.signal) {
            (Some(0), _) if remote == local => Ok(()),
            (Some(0), _) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: checksum mismatch (server cksum {remote}, received {local})"),
            )),
            (Some(status), _) => Err(io::Error::other(format!(
                "{path}: the sending side failed (exit {status}): {}",
                stderr.trim()
            ))),
            (None, Some(signal)) => Err(io::Error::other(format!(
                "{path}: the sending side was killed by {signal}: {}",
                stderr.trim()
            ))),
            (None, None) if self.closed => Err(io::Error::other(format!(
                "{path}: the server closed the channel without the sender's exit status"
            ))),
            (None, None) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("{path}: the SSH connection broke during the download"),
            )),
        }
    }
}

/// Starts a download on a process running [`super::scripts::SEND`]: waits for the `K` (or the script's
/// failure), then pumps the rest in the background. A reader dropped before the end stops the program.
pub(crate) async fn start_download(mut process: Process, path: &str) -> Result<Download> {
    let mut report = Report::default();
    let first = loop {
        match process.next().await {
            Some(ChannelMsg::Data { data }) if !data.is_empty() => break data,
            Some(other) => report.note(other),
            None => {
                if report.status.is_none() && report.signal.is_none() {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "host.get_file",
                        path,
                        "the SSH connection closed before the file started",
                    ));
                }
                return Err(exec::script_error("host.get_file", path, &report.output()));
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
        let mut hasher = Cksum::new();
        let rest = first.slice(1..);
        hasher.update(&rest);
        if !rest.is_empty() && queue.send(Ok(rest)).await.is_err() {
            process.stop().await;
            return;
        }
        while let Some(msg) = process.next().await {
            match msg {
                ChannelMsg::Data { data } => {
                    hasher.update(&data);
                    if queue.send(Ok(data)).await.is_err() {
                        // The reader was dropped: the server stops sending, and removes its FIFO.
                        process.stop().await;
                        return;
                    }
                }
                other => report.note(other),
            }
        }
        if let Err(e) = report.verdict(&path, hasher.finish()) {
            let _ = queue.send(Err(e)).await;
        }
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
