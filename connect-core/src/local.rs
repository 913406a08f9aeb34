//! [`LocalHost`]: the [`Host`] trait on the machine the SDK runs on, for running Connect Ops on the server itself.

mod process;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::BufReader;

use crate::error::{Error, ErrorKind, Result};
use crate::host::{
    BoxReader, BoxStream, Command, DEFAULT_COMMAND_TIMEOUT, DEFAULT_MAX_OUTPUT, DiskUsage, Endpoint, Host,
    Output, PutOptions,
};

/// How long [`LocalHost::connect`] waits for a TCP connection by default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams are copied through buffers of this size: memory stays constant whatever the file size.
pub(crate) const COPY_BUFFER: usize = 256 * 1024;

/// This machine as a [`Host`]: programs run with `tokio::process` in a process group of their own (killed
/// whole at their deadline, past the output cap, or when the call is dropped), files are written to a
/// temporary name in the same directory, flushed and renamed, and exclusive creation (the deploy lock) is a
/// hard link, which the kernel refuses atomically when the name exists.
#[derive(Debug, Clone)]
pub struct LocalHost {
    name: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_output: usize,
}

impl Default for LocalHost {
    fn default() -> Self {
        LocalHost::new()
    }
}

impl LocalHost {
    /// This machine, named `local` in messages.
    pub fn new() -> LocalHost {
        LocalHost {
            name: "local".to_string(),
            connect_timeout: CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// Sets the name used in messages.
    pub fn with_name(mut self, name: impl Into<String>) -> LocalHost {
        self.name = name.into();
        self
    }

    /// Sets how long [`Host::connect`] waits for a TCP connection.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> LocalHost {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long a program may run unless its [`Command::timeout`] says otherwise
    /// ([`DEFAULT_COMMAND_TIMEOUT`] by default).
    pub fn with_command_timeout(mut self, limit: Duration) -> LocalHost {
        self.command_timeout = limit;
        self
    }

    /// Sets how many bytes of output (stdout and stderr together) [`Host::run`] keeps in memory
    /// ([`DEFAULT_MAX_OUTPUT`] by default); a program that writes more is stopped and the call fails.
    pub fn with_max_output(mut self, bytes: usize) -> LocalHost {
        self.max_output = bytes;
        self
    }
}

/// Maps an I/O error to the error kind a caller can act on.
pub(crate) fn io_error(operation: &str, target: &str, e: io::Error) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        io::ErrorKind::AlreadyExists => ErrorKind::Conflict,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename => ErrorKind::InvalidInput,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::Failed,
        _ => ErrorKind::Unavailable,
    };
    let hint = match kind {
        ErrorKind::PermissionDenied => Some("run as a user allowed to access it, or fix its permissions"),
        ErrorKind::Refused => Some("start the service, or check the address"),
        _ if e.kind() == io::ErrorKind::StorageFull => Some("free disk space on the server"),
        _ => None,
    };
    let err = Error::new(kind, operation, target, e.to_string());
    let err = match hint {
        Some(h) => err.with_hint(h),
        None => err,
    };
    err.with_source(e)
}

/// Refuses paths no file can have.
pub(crate) fn validate_path(operation: &str, path: &str) -> Result<()> {
    if path.is_empty() || path.ends_with('/') || path.contains('\0') {
        return Err(Error::invalid(operation, path, "not a file path")
            .with_hint("give the path of a file, e.g. /opt/connect/state/journal.json"));
    }
    Ok(())
}

/// A temporary name next to `path`, unique in this process and across processes and not predictable (a
/// random part: nobody can plant something at it in advance), starting with a dot so globs over the
/// directory skip it.
pub(crate) fn temp_name(path: &str) -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // SipHash keyed with the process's random keys: unguessable without reading our memory.
    let random = std::hash::RandomState::new().hash_one(n);
    let (dir, file) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    format!("{dir}.{file}.tmp-{}-{random:016x}", std::process::id())
}

/// Creates a new temporary file next to `path` with `O_EXCL` (never following or reusing whatever is at
/// the name), trying another name if one is taken.
/// The [`Host::put_file`] contract: missing parents made, the new ones 0700.
async fn make_parents(path: &str) -> Result<()> {
    let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder.create(dir).await.map_err(|e| {
        let kind = match e.kind() {
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Failed,
        };
        let message = format!("cannot create directory {}: {e}", dir.display());
        Error::new(kind, "host.put_file", path, message)
            .with_hint(crate::host::PARENT_HINT)
            .with_source(e)
    })
}

async fn create_temp(path: &str, mode: u32) -> io::Result<(PathBuf, tokio::fs::File)> {
    let mut tries = 0;
    loop {
        let temp = PathBuf::from(temp_name(path));
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
            .await
        {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
            opened => return opened.map(|file| (temp, file)),
        }
    }
}

async fn write_temp(mut file: tokio::fs::File, mut data: BoxReader, mode: u32) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(COPY_BUFFER, &mut data);
    let written = tokio::io::copy_buf(&mut reader, &mut file).await?;
    // The umask may have narrowed the mode given to open.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .await?;
    file.sync_all().await?;
    Ok(written)
}

async fn sync_dir(path: &Path) {
    // Makes the rename itself durable; a failure here loses nothing that was promised before.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = tokio::fs::File::open(dir).await
    {
        let _ = d.sync_all().await;
    }
}

#[async_trait]
impl Host for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, command: &Command) -> Result<Output> {
        let limit = command.timeout.unwrap_or(self.command_timeout);
        process::run(command, limit, self.max_output).await
    }

    async fn put_file(&self, path: &str, data: BoxReader, options: PutOptions) -> Result<u64> {
        validate_path("host.put_file", path)?;
        make_parents(path).await?;
        let (temp, file) = create_temp(path, options.mode)
            .await
            .map_err(|e| io_error("host.put_file", path, e))?;
        let target = Path::new(path);
        let written = match write_temp(file, data, options.mode).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(io_error("host.put_file", path, e));
            }
        };
        let placed = if options.create_new {
            // link(2) fails with EEXIST when the name is taken: the check and the creation are one step.
            let linked = tokio::fs::hard_link(&temp, target).await;
            let _ = tokio::fs::remove_file(&temp).await;
            linked
        } else {
            tokio::fs::rename(&temp, target).await
        };
        if let Err(e) = placed {
            let _ = tokio::fs::remove_file(&temp).await;
            let err = io_error("host.put_file", path, e);
            return Err(if err.kind() == ErrorKind::Conflict {
                err.with_hint("the file exists; remove it first if it is stale")
            } else {
                err
            });
        }
        sync_dir(target).await;
        Ok(written)
    }

    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        validate_path("host.get_file", path)?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_error("host.get_file", path, e))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error("host.get_file", path, e))?;
        if meta.is_dir() {
            return Err(Error::invalid("host.get_file", path, "is a directory"));
        }
        Ok(Box::pin(BufReader::with_capacity(COPY_BUFFER, file)))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        validate_path("host.rename", from)?;
        validate_path("host.rename", to)?;
        tokio::fs::rename(from, to)
            .await
            .map_err(|e| io_error("host.rename", &format!("{from} -> {to}"), e))?;
        sync_dir(Path::new(to)).await;
        Ok(())
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        validate_path("host.remove_file", path)?;
        tokio::fs::remove_file(path)
            .await
            .map_err(|e| io_error("host.remove_file", path, e))
    }

    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        let owned = path.to_string();
        let stat = tokio::task::spawn_blocking(move || rustix::fs::statvfs(owned.as_str()))
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, "host.disk_usage", path, e.to_string()))?
            .map_err(|e| io_error("host.disk_usage", path, e.into()))?;
        Ok(DiskUsage {
            total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
            available_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
            total_inodes: stat.f_files,
            free_inodes: stat.f_favail,
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        let target = endpoint.to_string();
        let stream: BoxStream = match endpoint {
            Endpoint::Tcp { host, port } => {
                let connecting = tokio::net::TcpStream::connect((host.as_str(), *port));
                let stream = tokio::time::timeout(self.connect_timeout, connecting)
                    .await
                    .map_err(|_| {
                        Error::new(
                            ErrorKind::Timeout,
                            "host.connect",
                            &target,
                            format!("no connection after {:?}", self.connect_timeout),
                        )
                        .with_hint("check that the service listens and no firewall drops packets")
                    })?
                    .map_err(|e| io_error("host.connect", &target, e))?;
                let _ = stream.set_nodelay(true);
                Box::pin(stream)
            }
            Endpoint::Unix(path) => Box::pin(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| io_error("host.connect", &target, e))?,
            ),
        };
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_stay_in_the_directory_and_are_hidden() {
        let t = temp_name("/opt/connect/state/journal.json");
        assert!(t.starts_with("/opt/connect/state/.journal.json.tmp-"), "{t}");
        assert_ne!(t, temp_name("/opt/connect/state/journal.json"));
        assert!(temp_name("plain").starts_with(".plain.tmp-"));
    }

    #[test]
    fn paths_that_cannot_be_files_are_refused() {
        for p in ["", "/opt/", "a\0b"] {
            assert_eq!(validate_path("t", p).unwrap_err().kind(), ErrorKind::InvalidInput);
        }
    }
}
