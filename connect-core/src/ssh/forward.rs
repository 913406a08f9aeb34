//! A local forwarder: a port on 127.0.0.1 or a local unix socket whose every connection is carried to an
//! endpoint on the server over the shared SSH connection, for clients that only take an address.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use super::SshHost;
use crate::error::{Error, Result};
use crate::host::{Endpoint, Host};
use crate::local::io_error;

/// Where the forwarder listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardFrom {
    /// A free port on 127.0.0.1 (`127.0.0.1:0`).
    Loopback,
    /// A given TCP address (keep it on loopback unless others must reach it).
    Tcp(SocketAddr),
    /// A unix socket at this path (created; removed when the forwarder is dropped).
    Unix(PathBuf),
}

/// A running forwarder; it stops when dropped.
#[derive(Debug)]
pub struct Forwarder {
    local: ForwardAddr,
    task: JoinHandle<()>,
}

/// The address a [`Forwarder`] listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl Forwarder {
    /// Where clients connect.
    pub fn local_addr(&self) -> &ForwardAddr {
        &self.local
    }

    /// The TCP address, when listening on TCP.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self.local {
            ForwardAddr::Tcp(a) => Some(a),
            ForwardAddr::Unix(_) => None,
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
        if let ForwardAddr::Unix(path) = &self.local {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn carry<S>(host: SshHost, to: Endpoint, mut local: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    match host.connect(&to).await {
        Ok(mut remote) => {
            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
        }
        Err(e) => tracing::warn!(error = %e, "forwarded connection refused"),
    }
}

pub(super) async fn start(host: SshHost, from: ForwardFrom, to: Endpoint) -> Result<Forwarder> {
    let target = format!("{from:?} -> {to}");
    match from {
        ForwardFrom::Loopback | ForwardFrom::Tcp(_) => {
            let addr = match from {
                ForwardFrom::Tcp(a) => a,
                _ => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| io_error("ssh.forward", &target, e))?;
            let local = listener
                .local_addr()
                .map_err(|e| io_error("ssh.forward", &target, e))?;
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(carry(host.clone(), to.clone(), stream));
                }
            });
            Ok(Forwarder {
                local: ForwardAddr::Tcp(local),
                task,
            })
        }
        ForwardFrom::Unix(path) => {
            if path.exists() {
                return Err(Error::new(
                    crate::ErrorKind::Conflict,
                    "ssh.forward",
                    path.display().to_string(),
                    "a file already exists at the socket path",
                )
                .with_hint("remove it, or choose another path"));
            }
            let listener = UnixListener::bind(&path).map_err(|e| io_error("ssh.forward", &target, e))?;
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(carry(host.clone(), to.clone(), stream));
                }
            });
            Ok(Forwarder {
                local: ForwardAddr::Unix(path),
                task,
            })
        }
    }
}
