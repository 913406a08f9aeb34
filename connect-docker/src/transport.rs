//! The Docker Engine API through any [`Host`]: every HTTP connection is a byte stream the host opens to the
//! engine's unix socket (a local `UnixStream`, or an SSH `direct-streamlocal` channel), so the remote engine
//! is reached without shelling out to `ssh` and without exposing its socket on TCP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard::BollardRequest;
use connect_core::Host;
use connect_core::host::{BoxStream, Endpoint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A hyper connector whose connections come from [`Host::connect`].
#[derive(Clone)]
pub(crate) struct HostConnector {
    host: Arc<dyn Host>,
    socket: String,
}

impl HostConnector {
    pub(crate) fn new(host: Arc<dyn Host>, socket: &str) -> Self {
        HostConnector {
            host,
            socket: socket.to_string(),
        }
    }
}

/// One connection: the host's byte stream, speaking HTTP/1.1.
pub(crate) struct HostConnection(TokioIo<BoxStream>);

impl Connection for HostConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for HostConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for HostConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tower_service::Service<http::Uri> for HostConnector {
    type Response = HostConnection;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HostConnection, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let host = Arc::clone(&self.host);
        let endpoint = Endpoint::Unix(self.socket.clone());
        Box::pin(async move {
            let stream = host.connect(&endpoint).await.map_err(std::io::Error::other)?;
            Ok(HostConnection(TokioIo::new(stream)))
        })
    }
}

/// A bollard client whose requests travel over connections opened by `host` to `socket`.
pub(crate) fn client_through_host(
    host: Arc<dyn Host>,
    socket: &str,
    timeout_secs: u64,
) -> Result<bollard::Docker, bollard::errors::Error> {
    let client = Arc::new(Client::builder(TokioExecutor::new()).build(HostConnector::new(host, socket)));
    bollard::Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = Arc::clone(&client);
            async move { client.request(req).await.map_err(bollard::errors::Error::from) }
        },
        Some("http://docker"),
        timeout_secs,
        bollard::API_DEFAULT_VERSION,
    )
}
