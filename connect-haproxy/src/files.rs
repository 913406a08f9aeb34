//! The files HAProxy reads back on reload: the server-state-file and map files, written atomically.

use std::path::PathBuf;
use std::sync::Arc;

use connect_core::host::{HostExt, PutOptions};
use connect_core::{Error, ErrorKind, Host, Result};

/// Where the server-state-file lives (the path in `server-state-file`), so HAProxy reloads into the state
/// the runtime API set instead of the configuration's.
#[derive(Debug, Clone)]
pub enum StateFile {
    /// A file on this machine.
    Local(PathBuf),
    /// A file on a server, written through [`Host::put_file`] (atomic).
    Host(Arc<dyn Host>, String),
}

impl StateFile {
    pub(crate) async fn write(&self, text: &str) -> Result<()> {
        match self {
            StateFile::Local(path) => write_atomic(path, text.as_bytes()).await,
            StateFile::Host(host, path) => host
                .write_file(path, text.as_bytes().to_vec(), PutOptions::default())
                .await
                .map(|_| ()),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            StateFile::Local(p) => p.display().to_string(),
            StateFile::Host(h, p) => format!("{p} on {}", h.name()),
        }
    }
}

/// Writes a file so that a reader (HAProxy reloading) sees the old content or the new, never a mix.
pub(crate) async fn write_atomic(path: &std::path::Path, data: &[u8]) -> Result<()> {
    let path = path.to_path_buf();
    let data = data.to_vec();
    let target = path.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        // Unique per write, not only per process: two writes in flight must not share a temporary.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}-{n}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Failed, "haproxy.write_file", &target, e.to_string()))?
    .map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Failed,
        };
        Error::new(kind, "haproxy.write_file", target, e.to_string()).with_source(e)
    })
}

/// A map file HAProxy loaded (`map(<path>)` in the config): runtime changes are written back to it, as
/// `show servers state` is to the state file, or a reload would revert them.
#[derive(Debug, Clone)]
pub struct MapFile {
    /// The map as the configuration names it (its path on the HAProxy server).
    pub name: String,
    /// Where to write its content.
    pub file: StateFile,
}

/// Parses `show map <map>`: `0x… key value` lines into the file format, `key value` lines.
pub fn map_file_text(reply: &str) -> Result<String> {
    if !(reply == "\n" || reply.ends_with("\n\n")) {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "haproxy.show_map",
            "haproxy runtime API",
            "the reply does not end with a blank line (truncated?); the map file was not rewritten",
        ));
    }
    let mut text = String::new();
    for line in reply.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some(id), Some(key), Some(value)) if id.starts_with("0x") => {
                text.push_str(key);
                text.push(' ');
                text.push_str(value);
                text.push('\n');
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "haproxy.show_map",
                    "haproxy runtime API",
                    format!("unexpected line in `show map`: {line:?}"),
                ));
            }
        }
    }
    Ok(text)
}
