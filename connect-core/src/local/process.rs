//! Running a program on this machine, bounded as over SSH: a deadline, an output cap, and killed (its
//! whole process group) when the caller gives up or drops the call.
//!
//! The program gets a process group of its own, so stopping it reaches whatever it forked too: tokio's
//! `kill_on_drop` alone kills the direct child and leaves, say, the `sleep` a `sh -c` started running.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::io_error;
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Output, deadline_error, output_cap_error};

/// How long a program has to exit after `TERM` before its group gets `KILL`.
const GRACE: Duration = Duration::from_secs(2);

/// The process group of a running program; dropped while armed, it is stopped (`TERM`, then `KILL` after
/// [`GRACE`], in the background).
struct Group {
    pgid: Option<Pid>,
}

impl Group {
    fn of(child: &Child) -> Group {
        // `Pid::INIT` as a group would mean "every process we may signal": never use it.
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .filter(|&id| id > 1)
            .and_then(Pid::from_raw);
        Group { pgid }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH: the group is gone already, which is what we want.
            let _ = kill_process_group(pgid, signal);
        }
    }

    /// Stops the group, waiting for the leader to exit (up to [`GRACE`]) before `KILL`.
    async fn stop(mut self, child: &mut Child) {
        self.signal(Signal::TERM);
        let _ = tokio::time::timeout(GRACE, child.wait()).await;
        // The leader gone, what it forked may not be: `KILL` whatever is left of the group.
        self.signal(Signal::KILL);
        self.pgid = None;
    }

    fn disarm(mut self) {
        self.pgid = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let Some(pgid) = self.pgid.take() else {
            return;
        };
        let _ = kill_process_group(pgid, Signal::TERM);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Escalation after the grace period, not synchronisation: the caller is gone.
                tokio::time::sleep(GRACE).await;
                let _ = kill_process_group(pgid, Signal::KILL);
            });
        }
    }
}

/// What reading the output found.
enum Read {
    Done(Vec<u8>, Vec<u8>),
    TooMuch,
}

/// Reads both pipes until they close, giving up once together they hold more than `cap` bytes.
async fn read_capped(
    mut stdout: impl AsyncRead + Unpin,
    mut stderr: impl AsyncRead + Unpin,
    cap: usize,
) -> io::Result<Read> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let (mut out_buf, mut err_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    while out_open || err_open {
        // `read` is cancel-safe: the branch that loses the race reads nothing.
        tokio::select! {
            n = stdout.read(&mut out_buf), if out_open => match n? {
                0 => out_open = false,
                n => out.extend_from_slice(&out_buf[..n]),
            },
            n = stderr.read(&mut err_buf), if err_open => match n? {
                0 => err_open = false,
                n => err.extend_from_slice(&err_buf[..n]),
            },
        }
        if out.len() + err.len() > cap {
            return Ok(Read::TooMuch);
        }
    }
    Ok(Read::Done(out, err))
}

/// Runs `command` within `limit`, keeping at most `cap` bytes of output.
pub(super) async fn run(command: &Command, limit: Duration, cap: usize) -> Result<Output> {
    command.validate()?;
    let program = &command.argv[0];
    let mut child = tokio::process::Command::new(program)
        .args(&command.argv[1..])
        .stdin(if command.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let hint = format!("install `{program}` or give its full path");
            let not_found = e.kind() == io::ErrorKind::NotFound;
            let err = io_error("host.run", program, e);
            if not_found { err.with_hint(hint) } else { err }
        })?;
    let group = Group::of(&child);
    // Stdin is written while the output is read: a program that answers before reading everything
    // would otherwise block on a full pipe.
    if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), &command.stdin) {
        let bytes = bytes.clone();
        tokio::spawn(async move {
            // A program may exit without reading its input; that is its business, not an error.
            let _ = pipe.write_all(&bytes).await;
            let _ = pipe.shutdown().await;
        });
    }
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        group.stop(&mut child).await;
        return Err(Error::new(
            ErrorKind::Failed,
            "host.run",
            program,
            "no output pipes",
        ));
    };
    let finished = tokio::time::timeout(limit, async {
        match read_capped(stdout, stderr, cap).await? {
            Read::Done(out, err) => Ok(Some((child.wait().await?, out, err))),
            Read::TooMuch => Ok(None),
        }
    })
    .await;
    match finished {
        Ok(Ok(Some((status, stdout, stderr)))) => {
            group.disarm();
            Ok(Output {
                status: status.code(),
                stdout,
                stderr,
            })
        }
        Ok(Ok(None)) => {
            group.stop(&mut child).await;
            Err(output_cap_error("host.run", program, cap))
        }
        Ok(Err(e)) => {
            group.stop(&mut child).await;
            Err(io_error("host.run", program, e))
        }
        Err(_) => {
            group.stop(&mut child).await;
            Err(deadline_error("host.run", program, limit))
        }
    }
}
