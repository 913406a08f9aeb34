//! A minimal [`Host`] on this machine, for tests and benchmarks (the SDK's own `LocalHost` lives in
//! connect-core once the SSH issue lands).

use std::path::Path;

use async_trait::async_trait;
use connect_core::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Host, Output, PutOptions};
use connect_core::{Error, ErrorKind, Result};
use tokio::io::AsyncWriteExt;

/// Runs programs with tokio::process and moves files with tokio::fs.
#[derive(Debug, Default, Clone)]
pub struct LocalTestHost;

fn io_err(op: &str, target: &str, e: std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorKind::Conflict,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Failed,
    };
    Error::new(kind, op, target, e.to_string())
}

#[async_trait]
impl Host for LocalTestHost {
    fn name(&self) -> &str {
        "local-test"
    }

    async fn run(&self, command: &Command) -> Result<Output> {
        command.validate()?;
        let mut cmd = tokio::process::Command::new(&command.argv[0]);
        cmd.args(&command.argv[1..])
            .stdin(if command.stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| io_err("host.run", &command.argv[0], e))?;
        if let (Some(input), Some(mut stdin)) = (&command.stdin, child.stdin.take()) {
            stdin
                .write_all(input)
                .await
                .map_err(|e| io_err("host.run", &command.argv[0], e))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| io_err("host.run", &command.argv[0], e))?;
        Ok(Output {
            status: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn put_file(&self, path: &str, mut data: BoxReader, options: PutOptions) -> Result<u64> {
        if options.create_new && Path::new(path).exists() {
            return Err(Error::new(ErrorKind::Conflict, "host.put_file", path, "exists"));
        }
        let tmp = format!("{path}.tmp-{}", std::process::id());
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(options.mode)
            .open(&tmp)
            .await
            .map_err(|e| io_err("host.put_file", path, e))?;
        let n = tokio::io::copy(&mut data, &mut file)
            .await
            .map_err(|e| io_err("host.put_file", path, e))?;
        file.sync_all()
            .await
            .map_err(|e| io_err("host.put_file", path, e))?;
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| io_err("host.put_file", path, e))?;
        Ok(n)
    }

    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_err("host.get_file", path, e))?;
        Ok(Box::pin(f))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        tokio::fs::rename(from, to)
            .await
            .map_err(|e| io_err("host.rename", from, e))
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        tokio::fs::remove_file(path)
            .await
            .map_err(|e| io_err("host.remove_file", path, e))
    }

    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "host.disk_usage",
            path,
            "not in the test host",
        ))
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Unavailable,
                            "host.connect",
                            endpoint.to_string(),
                            e.to_string(),
                        )
                    })?;
                Ok(Box::pin(s))
            }
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        "host.connect",
                        endpoint.to_string(),
                        e.to_string(),
                    )
                })?;
                Ok(Box::pin(s))
            }
        }
    }
}
