//! A program running on a session channel, and how it is stopped.
//!
//! sshd does not stop a program when its channel closes: a client that gives up on `sleep 1000` (or drops
//! the call) leaves it running for good, unless it happens to write and die of `SIGPIPE`. The SSH `signal`
//! request (RFC 4254 §6.9) is no remedy on its own: OpenSSH's sshd refuses it for root logins ("session
//! signalling requires privilege separation": a root session runs in sshd's monitor) and for forced
//! commands. So every command line starts by printing its process group on stderr (a marked line that
//! [`Prelude`] takes out before anyone sees stderr); sshd makes each session its own process group
//! (`setsid`), and the program and whatever it forks stay in it. A [`Process`] that is abandoned, past its
//! deadline or past its output cap is stopped by `kill -s TERM -- -PGID` on a second session of the same
//! connection (one session is kept free for this: see [`super::SshHost`]), `KILL` after [`GRACE`]. `TERM`
//! first, so our helper scripts remove their temporary files and a program may exit cleanly.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::sync::OwnedSemaphorePermit;

use super::connection::Session;
use super::exec::OutputStream;
use super::{quote, scripts};

/// How long a program has to exit after `TERM` before it gets `KILL`, and how long we wait for sshd to
/// report it gone after that.
const GRACE: Duration = Duration::from_secs(2);

/// How long running `kill` on the server may take: a session to open and a login shell to start (whose
/// startup files may be slow), on a server that may be busy.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// The start of the line every command line prints first on stderr, before its process group id.
pub(crate) const PGID_MARK: &str = "connect-ops-pgid ";

/// How the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Exit status, or `None` when killed by a signal.
    Exited(Option<i32>),
    /// The channel closed without an exit status: the connection broke.
    Lost,
    /// The output sink asked to stop reading; the program still runs until stopped.
    Stopped,
}

/// A program started on a session channel. Dropped before it ended, it is stopped in the background.
pub(crate) struct Process {
    /// `None` once the channel closed (nothing left to stop).
    parts: Option<Parts>,
}

struct Parts {
    incoming: Incoming,
    tx: ChannelWriteHalf<Msg>,
    /// The connection, to stop the program from a second session.
    session: Arc<Session>,
    /// The session slot, given back when the channel is gone.
    _permit: OwnedSemaphorePermit,
}

/// The channel's incoming messages, with the process group line taken out of stderr.
pub(crate) struct Incoming {
    rx: ChannelReadHalf,
    prelude: Prelude,
}

impl Incoming {
    /// The next message; `None` once the channel closed.
    pub(crate) async fn next(&mut self) -> Option<ChannelMsg> {
        loop {
            match self.rx.wait().await? {
                ChannelMsg::ExtendedData { data, ext: 1 } if !self.prelude.done => {
                    let rest = self.prelude.strip(&data);
                    if !rest.is_empty() {
                        return Some(ChannelMsg::ExtendedData { data: rest, ext: 1 });
                    }
                }
                other => return Some(other),
            }
        }
    }
}

impl Incoming {
    /// The program's process group, waiting up to `limit` for it to be said (the output read meanwhile
    /// is dropped: the program is being stopped).
    async fn pgid_within(&mut self, limit: Duration) -> Option<u32> {
        let said = async {
            while !self.prelude.done {
                // Not `next`, which waits on past the mark for a message to return.
                if let ChannelMsg::ExtendedData { data, ext: 1 } = self.rx.wait().await? {
                    self.prelude.strip(&data);
                }
            }
            self.prelude.pgid
        };
        tokio::time::timeout(limit, said).await.ok().flatten()
    }
}

/// Finds the `PGID_MARK` line in the first bytes of stderr. Whatever comes before it (a login shell's
/// startup noise) is passed on as stderr.
#[derive(Default)]
struct Prelude {
    pending: Vec<u8>,
    pgid: Option<u32>,
    done: bool,
}

impl Prelude {
    fn strip(&mut self, data: &[u8]) -> Bytes {
        self.pending.extend_from_slice(data);
        let mut passed = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(id) = line.strip_prefix(PGID_MARK.as_bytes()) {
                self.pgid = std::str::from_utf8(&id[..id.len() - 1])
                    .ok()
                    .and_then(|s| s.parse().ok());
                self.done = true;
                passed.append(&mut self.pending);
                break;
            }
            passed.extend_from_slice(&line);
        }
        // A line that long is not the mark: no need to hold it back.
        if self.pending.len() > 256 {
            passed.append(&mut self.pending);
        }
        Bytes::from(passed)
    }
}

impl Process {
    /// Takes charge of a session channel before anything runs on it, so that however early the caller
    /// gives up, what the channel starts is stopped; then [`Process::exec`].
    pub(crate) fn new(
        channel: russh::Channel<Msg>,
        permit: OwnedSemaphorePermit,
        session: Arc<Session>,
    ) -> Process {
        let (rx, tx) = channel.split();
        Process {
            parts: Some(Parts {
                incoming: Incoming {
                    rx,
                    prelude: Prelude::default(),
                },
                tx,
                session,
                _permit: permit,
            }),
        }
    }

    /// Starts `line` on the channel.
    pub(crate) async fn exec(&self, line: &str) -> Result<(), russh::Error> {
        match &self.parts {
            Some(parts) => parts.tx.exec(true, line.as_bytes()).await,
            None => Err(russh::Error::WrongChannel),
        }
    }

    /// The channel's two directions, for a caller that reads and writes it itself (uploads); `None` once
    /// it closed.
    pub(crate) fn halves(&mut self) -> Option<(&mut Incoming, &ChannelWriteHalf<Msg>)> {
        self.parts.as_mut().map(|p| (&mut p.incoming, &p.tx))
    }

    /// The next message of the channel; `None` once it closed.
    pub(crate) async fn next(&mut self) -> Option<ChannelMsg> {
        let message = match self.parts.as_mut() {
            Some(parts) => parts.incoming.next().await,
            None => None,
        };
        if message.is_none() {
            self.ended();
        }
        message
    }

    /// Records that the channel closed (the program ended or the connection broke): nothing to stop.
    pub(crate) fn ended(&mut self) {
        self.parts = None;
    }

    /// Writes `stdin` (then EOF) while reading the output into `sink`, until the channel closes or `sink`
    /// returns `false` ([`Ending::Stopped`]: the program still runs; [`Process::stop`] it).
    pub(crate) async fn drive(
        &mut self,
        stdin: Option<&[u8]>,
        sink: impl FnMut(OutputStream, &[u8]) -> bool,
    ) -> Ending {
        let Some(Parts { incoming, tx, .. }) = self.parts.as_mut() else {
            return Ending::Lost;
        };
        let feed = async {
            if let Some(bytes) = stdin {
                // A program may exit without reading its input; that is its business, not an error.
                let _ = tx.data(bytes).await;
            }
            let _ = tx.eof().await;
            // The output decides when this ends.
            std::future::pending::<()>().await;
        };
        let ending = {
            let read = read_until_closed(incoming, sink);
            let (mut feed, mut read) = (pin!(feed), pin!(read));
            tokio::select! {
                ending = &mut read => ending,
                () = &mut feed => Ending::Lost,
            }
        };
        if ending != Ending::Stopped {
            self.ended();
        }
        ending
    }

    /// Stops the program (`TERM`, then `KILL` after [`GRACE`]) and closes the channel.
    pub(crate) async fn stop(mut self) {
        if let Some(parts) = self.parts.take() {
            parts.stop().await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The caller gave up (a timeout around the call, a cancelled task): the program must not outlive
        // it. Drop cannot wait, so the stopping runs on the runtime; outside one there is nothing to run it.
        if let Some(parts) = self.parts.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(parts.stop());
        }
    }
}

impl Parts {
    async fn stop(self) {
        let Parts {
            mut incoming,
            tx,
            session,
            ..
        } = self;
        // A program stopped right after it started may not have told its group yet: it is the first
        // thing it does once the login shell has read its startup files, which can take a while.
        let pgid = incoming.pgid_within(KILL_TIMEOUT).await;
        for signal in [Sig::TERM, Sig::KILL] {
            let signalling = async {
                match pgid {
                    Some(pgid) => kill_group(&session, &signal, pgid).await,
                    // The program has not said its group: sshd's own `signal` is all there is (it works
                    // for sessions of users other than root).
                    None => {
                        let _ = tx.signal(signal.clone()).await;
                    }
                }
            };
            if signalled_and_gone(&mut incoming, signalling).await {
                break;
            }
            tracing::debug!(?signal, "the remote program outlived the signal");
        }
        let _ = tx.close().await;
    }
}

/// Runs `signalling`, then waits up to [`GRACE`] for sshd to report the program gone (exit status,
/// signal, or the channel closing). The channel is read all along: russh delivers every channel's
/// messages from one loop, so a channel left unread (a program still writing) would stall the whole
/// connection, the `kill` session included.
async fn signalled_and_gone(
    incoming: &mut Incoming,
    signalling: impl std::future::Future<Output = ()>,
) -> bool {
    let mut signalling = pin!(signalling);
    let mut until: Option<tokio::time::Instant> = None;
    let far = tokio::time::Instant::now() + KILL_TIMEOUT + GRACE;
    loop {
        tokio::select! {
            () = &mut signalling, if until.is_none() => until = Some(tokio::time::Instant::now() + GRACE),
            msg = incoming.next() => match msg {
                None | Some(ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. }) => return true,
                Some(_) => {}
            },
            () = tokio::time::sleep_until(until.unwrap_or(far)) => return false,
        }
    }
}

/// Runs [`scripts::KILL_GROUP`] on a session of its own, outside the semaphore: the slot it needs is the one kept free.
async fn kill_group(session: &Session, signal: &Sig, pgid: u32) {
    let name = if matches!(signal, Sig::KILL) {
        "KILL"
    } else {
        "TERM"
    };
    let Ok(line) = quote::script_line(scripts::KILL_GROUP, &[name, &pgid.to_string()]) else {
        return;
    };
    let run = async {
        // A refusal means another session is closing right now; it frees its slot a moment later.
        let channel = loop {
            match session.channel_open_session().await {
                Ok(c) => break c,
                Err(russh::Error::ChannelOpenFailure(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => return,
            }
        };
        if channel.exec(false, line.as_bytes()).await.is_ok() {
            let (mut rx, _tx) = channel.split();
            while rx.wait().await.is_some() {}
        }
    };
    if tokio::time::timeout(KILL_TIMEOUT, run).await.is_err() {
        tracing::warn!(
            pgid,
            "could not stop a remote program: no session to run `kill` on"
        );
    }
}

/// Reads a channel until it closes, handing every output chunk to `sink` until it returns `false`.
pub(crate) async fn read_until_closed(
    incoming: &mut Incoming,
    mut sink: impl FnMut(OutputStream, &[u8]) -> bool,
) -> Ending {
    let mut ending = Ending::Lost;
    while let Some(msg) = incoming.next().await {
        let more = match msg {
            ChannelMsg::Data { data } => sink(OutputStream::Stdout, &data),
            ChannelMsg::ExtendedData { data, ext: 1 } => sink(OutputStream::Stderr, &data),
            ChannelMsg::ExitStatus { exit_status } => {
                ending = Ending::Exited(Some(i32::try_from(exit_status).unwrap_or(i32::MAX)));
                true
            }
            ChannelMsg::ExitSignal { .. } => {
                ending = Ending::Exited(None);
                true
            }
            _ => true,
        };
        if !more {
            return Ending::Stopped;
        }
    }
    ending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_line_is_taken_out_of_stderr_wherever_chunks_split() {
        let stderr = format!("motd noise\n{PGID_MARK}4242\nreal error\n");
        for split in 0..stderr.len() {
            let mut prelude = Prelude::default();
            let (a, b) = stderr.as_bytes().split_at(split);
            let mut seen = prelude.strip(a).to_vec();
            if prelude.done {
                seen.extend_from_slice(b);
            } else {
                seen.extend_from_slice(&prelude.strip(b));
            }
            assert_eq!(prelude.pgid, Some(4242), "split at {split}");
            assert_eq!(seen, b"motd noise\nreal error\n", "split at {split}");
        }
    }
}
