//! A server in memory: files in a map, a few programs, disks whose usage a test sets.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{Faults, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Host, Output, PutOptions};

const DISK_BYTES: u64 = 954 * 1_000_000_000; // the runbook's NVMe

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, (Vec<u8>, u32)>,
    disk_percent: BTreeMap<String, u8>,
    listeners: HashMap<Endpoint, mpsc::UnboundedSender<tokio::io::DuplexStream>>,
}

/// A server in memory.
///
/// `run` knows `true`, `false`, `echo`, `cat` (stdin to stdout) and `sh -c 'exit N'`; any other program
/// exits 127 as a shell would. Every path's disk is 40 % used until [`MemoryHost::set_disk_usage`].
#[derive(Debug, Clone)]
pub struct MemoryHost {
    name: String,
    state: Arc<Mutex<State>>,
    faults: Faults,
}

impl Default for MemoryHost {
    fn default() -> Self {
        MemoryHost::new("memory-host")
    }
}

impl MemoryHost {
    /// An empty server.
    pub fn new(name: &str) -> MemoryHost {
        MemoryHost {
            name: name.to_string(),
            state: Arc::default(),
            faults: Faults::default(),
        }
    }

    /// The same host injecting `faults`, shared with other backends so calls are numbered across them.
    pub(crate) fn with_faults(mut self, faults: Faults) -> MemoryHost {
        self.faults = faults;
        self
    }

    /// The faults this host injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Sets how full the disk holding `path` (and everything below it) is.
    pub fn set_disk_usage(&self, path: &str, percent: u8) {
        lock(&self.state)
            .disk_percent
            .insert(path.to_string(), percent.min(100));
    }

    /// The paths of every file, sorted.
    pub fn files(&self) -> Vec<String> {
        lock(&self.state).files.keys().cloned().collect()
    }

    /// Accepts byte streams to `endpoint`: each [`Host::connect`] delivers the server side of a new stream.
    pub fn listen(&self, endpoint: Endpoint) -> mpsc::UnboundedReceiver<tokio::io::DuplexStream> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.state).listeners.insert(endpoint, tx);
        rx
    }

    /// Serves an echo on `endpoint`: every byte sent comes back.
    pub fn serve_echo(&self, endpoint: Endpoint) {
        let mut rx = self.listen(endpoint);
        tokio::spawn(async move {
            while let Some(stream) = rx.recv().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = tokio::io::split(stream);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
    }

    fn builtin(argv: &[String], stdin: &[u8]) -> Output {
        let ok = |stdout: Vec<u8>| Output {
            status: Some(0),
            stdout,
            stderr: Vec::new(),
        };
        match argv[0].as_str() {
            "true" => ok(Vec::new()),
            "false" => Output {
                status: Some(1),
                ..Output::default()
            },
            "echo" => ok(format!("{}\n", argv[1..].join(" ")).into_bytes()),
            // The clock check reads the server's time; this server's clock is this machine's.
            "date" if argv.get(1).is_some_and(|f| f == "+%s.%N") => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                ok(format!("{}.{:09}\n", now.as_secs(), now.subsec_nanos()).into_bytes())
            }
            // Writes here are atomic and leave no temporaries, so a search for them finds nothing.
            "find" => ok(Vec::new()),
            "cat" if argv.len() == 1 => ok(stdin.to_vec()),
            "sh" if argv.len() == 3 && argv[1] == "-c" => {
                match argv[2].strip_prefix("exit ").map(str::parse::<i32>) {
                    Some(Ok(code)) => Output {
                        status: Some(code),
                        ..Output::default()
                    },
                    _ => Output {
                        status: Some(2),
                        stderr: b"sh: unsupported in memory\n".to_vec(),
                        ..Output::default()
                    },
                }
            }
            other => Output {
                status: Some(127),
                stdout: Vec::new(),
                stderr: format!("{other}: command not found\n").into_bytes(),
            },
        }
    }
}

#[async_trait]
impl Host for MemoryHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, command: &Command) -> Result<Output> {
        command.validate()?;
        self.faults
            .around("host.run", &command.argv[0], async {
                Ok(Self::builtin(
                    &command.argv,
                    command.stdin.as_deref().unwrap_or_default(),
                ))
            })
            .await
    }

    async fn put_file(&self, path: &str, mut data: BoxReader, options: PutOptions) -> Result<u64> {
        self.faults
            .around("host.put_file", path, async {
                validate_path("host.put_file", path)?;
                // Read everything before touching the map: a failed stream leaves the old file, as a rename would.
                let mut buf = Vec::new();
                data.read_to_end(&mut buf).await.map_err(|e| {
                    Error::new(ErrorKind::Unavailable, "host.put_file", path, e.to_string()).with_source(e)
                })?;
                let mut state = lock(&self.state);
                // Directories exist implicitly here (the put_file contract makes missing parents); a
                // parent that is a file is what no backend can get past.
                if let Some(file) = ancestors(path).find(|dir| state.files.contains_key(*dir)) {
                    return Err(Error::new(
                        ErrorKind::Failed,
                        "host.put_file",
                        path,
                        format!("cannot create directory {file}: a file is in the way"),
                    )
                    .with_hint(crate::host::PARENT_HINT));
                }
                if options.create_new && state.files.contains_key(path) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "host.put_file",
                        path,
                        "the file already exists",
                    ));
                }
                let n = buf.len() as u64;
                state.files.insert(path.to_string(), (buf, options.mode));
                Ok(n)
            })
            .await
    }

    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        self.faults
            .around("host.get_file", path, async {
                let state = lock(&self.state);
                let (data, _) = state
                    .files
                    .get(path)
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, "host.get_file", path, "no such file"))?;
                let reader: BoxReader = Box::pin(std::io::Cursor::new(data.clone()));
                Ok(reader)
            })
            .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.faults
            .around("host.rename", from, async {
                validate_path("host.rename", to)?;
                let mut state = lock(&self.state);
                let file = state
                    .files
                    .remove(from)
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, "host.rename", from, "no such file"))?;
                state.files.insert(to.to_string(), file);
                Ok(())
            })
            .await
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        self.faults
            .around("host.remove_file", path, async {
                lock(&self.state)
                    .files
                    .remove(path)
                    .map(drop)
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, "host.remove_file", path, "no such file"))
            })
            .await
    }

    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        self.faults
            .around("host.disk_usage", path, async {
                let state = lock(&self.state);
                // The longest configured prefix is the mount point holding `path`, as with real mounts.
                let percent = state
                    .disk_percent
                    .iter()
                    .filter(|(p, _)| path.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len())
                    .map_or(40, |(_, pct)| *pct);
                let available = DISK_BYTES - DISK_BYTES / 100 * u64::from(percent);
                Ok(DiskUsage {
                    total_bytes: DISK_BYTES,
                    available_bytes: available,
                    total_inodes: 1 << 26,
                    free_inodes: 1 << 25,
                })
            })
            .await
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        self.faults
            .around("host.connect", &endpoint.to_string(), async {
                let tx = lock(&self.state)
                    .listeners
                    .get(endpoint)
                    .cloned()
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unavailable,
                            "host.connect",
                            endpoint.to_string(),
                            "connection refused",
                        )
                    })?;
                let (client, server) = tokio::io::duplex(64 * 1024);
                tx.send(server).map_err(|_| {
                    Error::new(
                        ErrorKind::Unavailable,
                        "host.connect",
                        endpoint.to_string(),
                        "the listener is gone",
                    )
                })?;
                let stream: BoxStream = Box::pin(client);
                Ok(stream)
            })
            .await
    }
}

fn validate_path(operation: &str, path: &str) -> Result<()> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(Error::invalid(
            operation,
            path,
            "paths are absolute and contain no NUL",
        ));
    }
    Ok(())
}

/// `a/b/c` → `a/b`, `a` (the directories a file's path goes through).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .filter(|(i, c)| *c == '/' && *i > 0)
        .map(|(i, _)| &path[..i])
}
