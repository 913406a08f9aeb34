//! A TCP proxy on 127.0.0.1 that counts the connections it carries and can cut them all, to test what a
//! client does when its connection dies mid-operation.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::NetNs;

/// A counting, cuttable TCP proxy from a port on 127.0.0.1 to a target. Stops on drop.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    accepted: Arc<AtomicUsize>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `127.0.0.1:target`.
    pub async fn start(target: u16) -> std::io::Result<TcpProxy> {
        TcpProxy::start_to(None, ([127, 0, 0, 1], target).into()).await
    }

    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target` as seen from inside
    /// `netns` (this process's namespace when `None`): how a test reaches a machine it made in a network
    /// namespace of its own.
    pub async fn start_to(netns: Option<NetNs>, target: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        TcpProxy::serve(listener, netns, target)
    }

    /// Listens on `listen` inside `inside` and forwards every connection to `target` as seen from this
    /// process's namespace: a machine the test made reaches a service the test runs on 127.0.0.1 (a
    /// server's view of its database, when the server is a namespace and the database is here).
    pub async fn start_in(
        inside: &NetNs,
        listen: SocketAddr,
        target: SocketAddr,
    ) -> std::io::Result<TcpProxy> {
        let listener = inside.listen(listen)?;
        listener.set_nonblocking(true)?;
        TcpProxy::serve(TcpListener::from_std(listener)?, None, target)
    }

    fn serve(listener: TcpListener, netns: Option<NetNs>, target: SocketAddr) -> std::io::Result<TcpProxy> {
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (count, held) = (accepted.clone(), links.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let netns = netns.clone();
                let link = tokio::spawn(async move {
                    let server = match &netns {
                        Some(ns) => ns.connect(target).await,
                        None => TcpStream::connect(target).await,
                    };
                    if let Ok(mut server) = server {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                if let Ok(mut l) = held.lock() {
                    l.push(link);
                }
            }
        });
        Ok(TcpProxy {
            port,
            accepted,
            links,
            acceptor,
        })
    }

    /// The port it listens on (on 127.0.0.1, or `listen`'s inside the namespace).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many TCP connections the proxy has accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Drops every connection carried so far, as a dead network or a killed peer would.
    pub fn cut(&self) {
        if let Ok(mut l) = self.links.lock() {
            for link in l.drain(..) {
                link.abort();
            }
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}
