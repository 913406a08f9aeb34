//! A careless server for tests: [`OpenUmaskHost`] runs every program under `umask 000` (as on a server whose
//! default umask lets everyone read what is created) and records every argument list and every file written,
//! so a test can check what `ps` and the disk would have shown.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use connect_core::Result;
use connect_core::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Host, PutOptions};
use connect_core::local::LocalHost;
use tokio::io::AsyncReadExt;

/// Files written, with their content.
type Writes = Vec<(String, Vec<u8>)>;

/// [`LocalHost`] with `umask 000` for every program, recording what it was asked to do.
#[derive(Debug, Clone, Default)]
pub struct OpenUmaskHost {
    inner: LocalHost,
    argvs: Arc<Mutex<Vec<Vec<String>>>>,
    writes: Arc<Mutex<Writes>>,
}

impl OpenUmaskHost {
    /// This machine, careless.
    pub fn new() -> OpenUmaskHost {
        OpenUmaskHost::default()
    }

    /// Every argument list run so far, as given (before the `umask 000` wrapper).
    pub fn argvs(&self) -> Vec<Vec<String>> {
        self.argvs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every file written through [`Host::put_file`], with its content.
    pub fn writes(&self) -> Vec<(String, Vec<u8>)> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Host for OpenUmaskHost {
    fn name(&self) -> &str {
        "open-umask"
    }

    async fn run(&self, command: &Command) -> Result<connect_core::host::Output> {
        self.argvs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(command.argv.clone());
        let mut argv = vec![
            "sh".to_string(),
            "-c".into(),
            "umask 000 && exec \"$@\"".into(),
            "open-umask".into(),
        ];
        argv.extend(command.argv.iter().cloned());
        let wrapped = Command {
            argv,
            stdin: command.stdin.clone(),
            timeout: command.timeout,
        };
        self.inner.run(&wrapped).await
    }

    async fn put_file(&self, path: &str, mut data: BoxReader, options: PutOptions) -> Result<u64> {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).await.map_err(|e| {
            connect_core::Error::new(
                connect_core::ErrorKind::Failed,
                "test.put_file",
                path,
                e.to_string(),
            )
        })?;
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((path.to_string(), bytes.clone()));
        self.inner
            .put_file(path, Box::pin(std::io::Cursor::new(bytes)), options)
            .await
    }

    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        self.inner.get_file(path).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.inner.rename(from, to).await
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        self.inner.remove_file(path).await
    }

    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        self.inner.disk_usage(path).await
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        self.inner.connect(endpoint).await
    }
}
