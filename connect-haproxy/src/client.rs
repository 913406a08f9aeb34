//! The runtime API client: one command per connection, over a unix socket, a TCP socket or any byte stream.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use connect_core::host::{BoxStream, Endpoint};
use connect_core::{Error, ErrorKind, Host, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::command::Command;
use crate::stat::{ProcList, ServersState, StatRow, parse_servers_state, parse_show_proc, parse_show_stat};

/// A replies larger than this is refused rather than buffered: `show stat` of a big config is ~100 KiB.
const MAX_REPLY: usize = 16 << 20;

type ConnectFn = dyn Fn() -> Pin<Box<dyn Future<Output = Result<BoxStream>> + Send>> + Send + Sync;

/// Where the runtime API (or the master CLI) listens.
#[derive(Clone)]
pub enum Socket {
    /// A unix socket on this machine (`stats socket /run/haproxy/admin.sock`).
    Unix(PathBuf),
    /// A TCP socket (`stats socket ipv4@127.0.0.1:9999`).
    Tcp(SocketAddr),
    /// A socket on a server, reached through [`Host::connect`] (e.g. over the SSH connection).
    Host(Arc<dyn Host>, Endpoint),
    /// Any byte stream: a function opening a fresh connection per command.
    Custom(String, Arc<ConnectFn>),
}

impl Socket {
    /// A byte stream from any source, named `name` in messages.
    pub fn custom<F, Fut>(name: impl Into<String>, connect: F) -> Socket
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<BoxStream>> + Send + 'static,
    {
        Socket::Custom(name.into(), Arc::new(move || Box::pin(connect())))
    }

    async fn open(&self) -> Result<BoxStream> {
        let fail = |e: std::io::Error| {
            let kind = match e.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Unavailable,
            };
            Error::new(kind, "haproxy.connect", self.to_string(), e.to_string())
                .with_hint(
                    "is HAProxy running with `stats socket <path> level admin` (or `-S <master.sock>`)?",
                )
                .with_source(e)
        };
        match self {
            Socket::Unix(path) => Ok(Box::pin(
                tokio::net::UnixStream::connect(path).await.map_err(fail)?,
            )),
            Socket::Tcp(addr) => Ok(Box::pin(
                tokio::net::TcpStream::connect(addr).await.map_err(fail)?,
            )),
            Socket::Host(host, endpoint) => host.connect(endpoint).await,
            Socket::Custom(_, connect) => connect().await,
        }
    }
}

impl fmt::Display for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socket::Unix(p) => write!(f, "unix://{}", p.display()),
            Socket::Tcp(a) => write!(f, "tcp://{a}"),
            Socket::Host(h, e) => write!(f, "{e} on {}", h.name()),
            Socket::Custom(name, _) => f.write_str(name),
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Socket({self})")
    }
}

/// A client of HAProxy's runtime API (the admin `stats socket`) or of the master CLI.
///
/// Each command opens its own connection, sends one line, half-closes and reads the reply to EOF. HAProxy
/// closes a non-interactive session after one command anyway, so EOF frames every reply exactly, without
/// guessing where a `prompt`-mode reply ends; no session state can leak between commands; and after a
/// reload the next command reaches the new worker by itself. A unix-socket connection costs ~0.1 ms.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    socket: Socket,
    timeout: Duration,
}

impl RuntimeApi {
    /// A client of the socket, with a 5 s deadline per command.
    pub fn new(socket: Socket) -> RuntimeApi {
        RuntimeApi {
            socket,
            timeout: Duration::from_secs(5),
        }
    }

    /// A client of a unix socket on this machine.
    pub fn unix(path: impl Into<PathBuf>) -> RuntimeApi {
        RuntimeApi::new(Socket::Unix(path.into()))
    }

    /// A client of a TCP socket.
    pub fn tcp(addr: SocketAddr) -> RuntimeApi {
        RuntimeApi::new(Socket::Tcp(addr))
    }

    /// Changes the deadline of each command.
    pub fn with_timeout(mut self, timeout: Duration) -> RuntimeApi {
        self.timeout = timeout;
        self
    }

    /// The socket.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Sends one raw command line and returns the whole reply, unchanged. The line must not contain a
    /// newline (it would be a second command); prefer [`RuntimeApi::execute`].
    pub async fn raw(&self, line: &str) -> Result<String> {
        if line.contains(['\n', '\r', '\0']) {
            return Err(Error::invalid(
                "haproxy.command",
                line,
                "a command line cannot contain a newline or NUL",
            ));
        }
        let exchange = async {
            let mut stream = self.socket.open().await?;
            let io = |e: std::io::Error| {
                Error::new(
                    ErrorKind::Unavailable,
                    "haproxy.command",
                    format!("{line} via {}", self.socket),
                    e.to_string(),
                )
                .with_source(e)
            };
            stream
                .write_all(format!("{line}\n").as_bytes())
                .await
                .map_err(io)?;
            stream.flush().await.map_err(io)?;
            // The master CLI waits for the end of input before it answers; the stats socket does not mind.
            stream.shutdown().await.map_err(io)?;
            let mut buf = Vec::new();
            (&mut stream)
                .take(MAX_REPLY as u64 + 1)
                .read_to_end(&mut buf)
                .await
                .map_err(io)?;
            if buf.len() > MAX_REPLY {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "haproxy.command",
                    line,
                    format!("the reply is larger than {MAX_REPLY} bytes"),
                ));
            }
            String::from_utf8(buf).map_err(|_| {
                Error::new(
                    ErrorKind::Corrupt,
                    "haproxy.command",
                    line,
                    "the reply is not UTF-8: is this HAProxy's runtime API?",
                )
            })
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                "haproxy.command",
                format!("{line} via {}", self.socket),
                format!("no complete reply within {:?}", self.timeout),
            )
        })?
    }

    /// Sends a typed command; a reply that is an error becomes a typed error carrying HAProxy's words.
    /// Returns the reply's text (an informational message such as `addr`'s, or a `show` output).
    pub async fn execute(&self, command: &Command) -> Result<String> {
        let line = command.line()?;
        let sent = if command.is_set() {
            // Severity tags make an error reply unmistakable (`[err]: …`) instead of guessed from its words.
            format!("set severity-output string; {line}")
        } else {
            line.clone()
        };
        let reply = self.raw(&sent).await?;
        command.check_reply(&reply)
    }

    /// `show stat`, parsed.
    pub async fn show_stat(&self) -> Result<Vec<StatRow>> {
        parse_show_stat(&self.execute(&Command::ShowStat).await?)
    }

    /// `show servers state [backend]`, parsed, with the text kept for the server-state-file.
    pub async fn show_servers_state(&self, backend: Option<&str>) -> Result<ServersState> {
        let reply = self
            .execute(&Command::ShowServersState {
                backend: backend.map(str::to_string),
            })
            .await?;
        parse_servers_state(&reply)
    }

    /// The master CLI's `show proc`, parsed (call it on the master socket).
    pub async fn show_proc(&self) -> Result<ProcList> {
        parse_show_proc(&self.execute(&Command::ShowProc).await?)
    }
}
