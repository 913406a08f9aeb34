//! A [`Host`] that only opens local sockets: enough to carry the Docker API the way the SSH host does, before
//! the SSH host exists on this branch.

use async_trait::async_trait;
use connect_core::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Output, PutOptions};
use connect_core::{Error, ErrorKind, Host, Result};

/// Opens unix sockets and TCP ports on this machine; everything else is `Unsupported`.
#[derive(Debug, Clone, Default)]
pub struct SocketHost;

fn unsupported(op: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        op,
        "socket-host",
        "this test host only opens sockets",
    )
}

#[async_trait]
impl Host for SocketHost {
    fn name(&self) -> &str {
        "socket-host"
    }
    async fn run(&self, _command: &Command) -> Result<Output> {
        Err(unsupported("host.run"))
    }
    async fn put_file(&self, _path: &str, _data: BoxReader, _options: PutOptions) -> Result<u64> {
        Err(unsupported("host.put_file"))
    }
    async fn get_file(&self, _path: &str) -> Result<BoxReader> {
        Err(unsupported("host.get_file"))
    }
    async fn rename(&self, _from: &str, _to: &str) -> Result<()> {
        Err(unsupported("host.rename"))
    }
    async fn remove_file(&self, _path: &str) -> Result<()> {
        Err(unsupported("host.remove_file"))
    }
    async fn disk_usage(&self, _path: &str) -> Result<DiskUsage> {
        Err(unsupported("host.disk_usage"))
    }
    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        let fail = |e: std::io::Error| {
            Error::new(
                ErrorKind::Unavailable,
                "host.connect",
                endpoint.to_string(),
                e.to_string(),
            )
        };
        match endpoint {
            Endpoint::Unix(path) => Ok(Box::pin(
                tokio::net::UnixStream::connect(path).await.map_err(fail)?,
            )),
            Endpoint::Tcp { host, port } => Ok(Box::pin(
                tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(fail)?,
            )),
        }
    }
}
