//! The server: run programs, move files, open byte streams, measure disks.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::error::{Error, ErrorKind, Result};

/// How long a program may run when neither its [`Command`] nor its host sets a deadline: one hour, long
/// enough for a backup of a large database, short enough that a hung program does not hold a caller (and a
/// deploy lock) forever. Hosts take their own default (`SshConfig::command_timeout`,
/// [`crate::LocalHost::with_command_timeout`]); a command overrides it with [`Command::timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How much output (stdout and stderr together) [`Host::run`] keeps in memory by default: 64 MiB. More is
/// refused, the program stopped, rather than buffered without limit; a program with more to say streams it
/// (`SshHost::run_streaming`) or writes it to a file.
pub const DEFAULT_MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// A program to run: an argument vector, never a shell string, so no argument is ever re-parsed.
///
/// The program is bounded: it is killed when its deadline ([`Command::timeout`], else the host's default)
/// passes, and when the caller drops the call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Bytes written to the program's standard input, then closed.
    pub stdin: Option<Vec<u8>>,
    /// How long the program may run before it is killed; `None`: the host's default
    /// ([`DEFAULT_COMMAND_TIMEOUT`] unless configured).
    pub timeout: Option<Duration>,
}

impl Command {
    /// A command from a program and its arguments.
    pub fn new<I, S>(argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            timeout: None,
        }
    }

    /// Kills the program if it still runs after `limit` (the call then fails with [`ErrorKind::Timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Command {
        self.timeout = Some(limit);
        self
    }

    /// Gives the program this standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Command {
        self.stdin = Some(bytes.into());
        self
    }

    /// Refuses an empty argv and NUL bytes, which no program can receive.
    pub fn validate(&self) -> Result<()> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(
                Error::invalid("host.run", "", "the command is empty").with_hint("give at least a program")
            );
        }
        if let Some(a) = self.argv.iter().find(|a| a.contains('\0')) {
            return Err(Error::invalid(
                "host.run",
                &self.argv[0],
                format!("argument {a:?} contains a NUL byte"),
            )
            .with_hint("NUL cannot be passed in an argument; send such data on stdin"));
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// What a finished program left: exit status and its two output streams, kept apart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The exit status; `None` when the program was killed by a signal.
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Whether the program exited 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Turns a non-zero exit into an [`ErrorKind::Failed`] error carrying the tail of stderr.
    pub fn check(self, command: &Command) -> Result<Output> {
        if self.success() {
            return Ok(self);
        }
        let stderr = String::from_utf8_lossy(&self.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        let status = self
            .status
            .map_or("killed by a signal".to_string(), |s| format!("exited {s}"));
        Err(Error::new(
            ErrorKind::Failed,
            "host.run",
            command.to_string(),
            format!("{status}: {tail}"),
        ))
    }
}

/// The error of a program killed at its deadline. Not retryable: it ran, and may have done part of its work.
pub(crate) fn deadline_error(operation: &str, program: &str, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        operation,
        program,
        format!("still running after its deadline of {limit:?}: killed"),
    )
    .with_hint(
        "if it legitimately runs that long, give it a longer deadline (Command::timeout, or the host's command timeout); it may have done part of its work",
    )
    .with_retryable(false)
}

/// The error of a program stopped because it wrote more than `cap` bytes of output.
pub(crate) fn output_cap_error(operation: &str, program: &str, cap: usize) -> Error {
    let shown = if cap.is_multiple_of(1024 * 1024) {
        format!("{} MiB", cap / (1024 * 1024))
    } else {
        format!("{cap} bytes")
    };
    Error::new(
        ErrorKind::Failed,
        operation,
        program,
        format!("wrote more than {shown} of output, more than `run` keeps in memory: stopped"),
    )
    .with_hint(
        "stream long output (SshHost::run_streaming) or have the program write it to a file and read that with get_file; or raise the host's max_output",
    )
}

/// Disk usage of the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Bytes in the filesystem.
    pub total_bytes: u64,
    /// Bytes available to unprivileged users.
    pub available_bytes: u64,
    /// Inodes in the filesystem (0 when the filesystem does not count them).
    pub total_inodes: u64,
    /// Free inodes.
    pub free_inodes: u64,
}

impl DiskUsage {
    /// Used space in percent, rounded up as `df` does.
    pub fn used_percent(&self) -> u8 {
        if self.total_bytes == 0 {
            return 0;
        }
        let used = self.total_bytes.saturating_sub(self.available_bytes) as u128;
        (used * 100).div_ceil(self.total_bytes as u128).min(100) as u8
    }
}

/// Where a byte stream on the server goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A TCP port, e.g. `127.0.0.1:8008` for Patroni's REST API.
    Tcp {
        /// Host name or address, as the server resolves it.
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix socket, e.g. `/var/run/docker.sock`.
    Unix(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Unix(p) => write!(f, "unix://{p}"),
        }
    }
}

/// A bidirectional byte stream.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A boxed [`ByteStream`].
pub type BoxStream = Pin<Box<dyn ByteStream>>;
/// A boxed reader, for streaming file contents.
pub type BoxReader = Pin<Box<dyn AsyncRead + Send>>;

/// How [`Host::put_file`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOptions {
    /// The file's permission bits.
    pub mode: u32,
    /// Fail with [`ErrorKind::Conflict`] if the file exists (how the deploy lock is taken).
    pub create_new: bool,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            mode: 0o644,
            create_new: false,
        }
    }
}

/// The fix named when [`Host::put_file`] cannot make a missing parent directory.
pub const PARENT_HINT: &str = "create the directory as a user allowed to (`sudo install -d -m 700 -o LOGIN DIR`), or choose a path the login can write (`state_dir` in connect.toml)";

/// The server the app runs on.
///
/// Files are written atomically: a reader sees the old content or the new, never a mix, and a crash leaves the
/// old file in place.
#[async_trait]
pub trait Host: Send + Sync + fmt::Debug {
    /// A name for messages, e.g. `deploy@prod-host`.
    fn name(&self) -> &str;

    /// Runs a program to completion. A non-zero exit is not an error here: see [`Output::check`].
    ///
    /// The program is killed when its deadline passes ([`ErrorKind::Timeout`]), when its output passes the
    /// host's cap ([`ErrorKind::Failed`]; see [`DEFAULT_MAX_OUTPUT`]), and when this call's future is
    /// dropped.
    async fn run(&self, command: &Command) -> Result<Output>;

    /// Streams `data` into `path`: written to a temporary name, flushed to disk, then renamed over `path`.
    /// Returns the bytes written.
    ///
    /// Missing parent directories are made first (as `install -D` does), each new one 0700; existing ones
    /// are left as they are. So a deploy onto a server whose `state_dir` does not exist yet just works,
    /// whoever writes there first (the lock, the journal). Private, because the SDK's directories hold its
    /// journal, locks, backups and secrets: a directory made private can be opened up by its owner, one
    /// made readable leaks until someone notices. A parent that cannot be made (no permission, a file in
    /// the way) is [`ErrorKind::PermissionDenied`] or [`ErrorKind::Failed`], naming the directory, with
    /// [`PARENT_HINT`]. Every backend passes the same test (`conformance::host_suite`).
    async fn put_file(&self, path: &str, data: BoxReader, options: PutOptions) -> Result<u64>;

    /// Streams a file's content. A missing file is [`ErrorKind::NotFound`].
    async fn get_file(&self, path: &str) -> Result<BoxReader>;

    /// Renames a file (atomically, on the same filesystem).
    async fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// Removes a file. A missing file is [`ErrorKind::NotFound`].
    async fn remove_file(&self, path: &str) -> Result<()>;

    /// Disk usage of the filesystem that holds `path`.
    async fn disk_usage(&self, path: &str) -> Result<DiskUsage>;

    /// Opens a byte stream to a TCP port or unix socket on the server.
    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream>;
}

/// Conveniences over any [`Host`].
#[async_trait]
pub trait HostExt: Host {
    /// Reads a whole (small) file; `None` when it does not exist.
    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let mut reader = match self.get_file(path).await {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        reader.read_to_end(&mut buf).await.map_err(|e| {
            Error::new(ErrorKind::Unavailable, "host.read_file", path, e.to_string()).with_source(e)
        })?;
        Ok(Some(buf))
    }

    /// Writes a whole (small) file atomically.
    async fn write_file(&self, path: &str, data: Vec<u8>, options: PutOptions) -> Result<u64> {
        self.put_file(path, Box::pin(std::io::Cursor::new(data)), options)
            .await
    }

    /// Runs a program and fails unless it exits 0.
    async fn run_checked(&self, command: &Command) -> Result<Output> {
        self.run(command).await?.check(command)
    }
}

impl<T: Host + ?Sized> HostExt for T {}
