//! The demo app's HTTP/1.1 keep-alive server, its routes, and its graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use connect_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::redis::Redis;
use super::{Config, Mode};
use crate::http::{self, ReadError, Request};

/// How long a client may take to send the rest of a request once it started one.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests get to finish after SIGTERM (Docker's default stop grace is 10 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(9);
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// The app's shared state: its mode and its database and Redis clients.
pub struct App {
    config: Config,
    started: Instant,
    mode: AtomicU8,
    slow_ms: AtomicU64,
    in_flight: AtomicU64,
    // Queries on one client pipeline over its connection, so concurrent requests share it through an `Arc`.
    db: tokio::sync::Mutex<Option<Arc<tokio_postgres::Client>>>,
    redis: Option<Redis>,
}

// By hand: the database client has no Debug; the mode and the requests in flight are the app's state.
impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("mode", &self.mode)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The app for `config`; database and Redis connections are opened on first use.
    pub fn new(config: Config) -> Arc<App> {
        Arc::new(App {
            mode: AtomicU8::new(mode_code(config.mode)),
            slow_ms: AtomicU64::new(u64::try_from(config.slow.as_millis()).unwrap_or(u64::MAX)),
            started: Instant::now(),
            in_flight: AtomicU64::new(0),
            db: tokio::sync::Mutex::new(None),
            redis: config.redis_url.clone().map(Redis::new),
            config,
        })
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            1 => Mode::Unhealthy,
            2 => Mode::Slow,
            3 => Mode::Erroring,
            _ => Mode::Healthy,
        }
    }

    fn set_mode(&self, mode: Mode, slow: Option<Duration>) {
        if let Some(slow) = slow {
            self.slow_ms.store(
                u64::try_from(slow.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        self.mode.store(mode_code(mode), Ordering::Relaxed);
        // Never the word the post-deploy check counts: switching modes is not an error.
        let shown = if mode == Mode::Erroring {
            "failing (main route answers 500)"
        } else {
            mode.as_str()
        };
        eprintln!("connect-demo-app: mode is now {shown}");
    }

    fn slow(&self) -> Duration {
        Duration::from_millis(self.slow_ms.load(Ordering::Relaxed))
    }

    fn mode_json(&self) -> String {
        serde_json::json!({
            "mode": self.mode().as_str(),
            "slow_ms": u64::try_from(self.slow().as_millis()).unwrap_or(u64::MAX),
            "in_flight": self.in_flight.load(Ordering::SeqCst),
        })
        .to_string()
    }

    /// Requests being served now, admin requests excepted (what a drain waits for).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    async fn route(&self, req: &Request) -> (u16, &'static str, String) {
        if req.path.starts_with("/admin") {
            return self.admin(req);
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let answer = self.app_route(req).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    fn admin(&self, req: &Request) -> (u16, &'static str, String) {
        let json = "application/json";
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/admin/mode") => (200, json, self.mode_json()),
            ("POST", "/admin/mode") => {
                let text = String::from_utf8_lossy(&req.body).into_owned();
                let from_query = req.query.as_deref().and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("mode="))
                        .map(|m| m.replace('+', " "))
                });
                match parse_mode_request(from_query.as_deref().unwrap_or(&text)) {
                    Ok((mode, slow)) => {
                        self.set_mode(mode, slow);
                        (200, json, self.mode_json())
                    }
                    Err(e) => (400, "text/plain", format!("{e}\n")),
                }
            }
            (_, "/admin/mode") => (405, "text/plain", "method not allowed\n".into()),
            _ => (404, "text/plain", "not found\n".into()),
        }
    }

    async fn app_route(&self, req: &Request) -> (u16, &'static str, String) {
        if self.mode() == Mode::Slow {
            tokio::time::sleep(self.slow()).await;
        }
        let json = "application/json";
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/health") => {
                let healthy =
                    self.mode() != Mode::Unhealthy && self.started.elapsed() >= self.config.ready_after;
                let status = if healthy { "healthy" } else { "unhealthy" };
                let body = serde_json::json!({"status": status, "version": self.config.version}).to_string();
                (if healthy { 200 } else { 503 }, json, body)
            }
            ("GET", "/version") => (
                200,
                json,
                serde_json::json!({"version": self.config.version}).to_string(),
            ),
            ("GET", "/") => self.main_route().await,
            (_, "/" | "/api/health" | "/version") => (405, "text/plain", "method not allowed\n".into()),
            _ => (404, "text/plain", "not found\n".into()),
        }
    }

    async fn main_route(&self) -> (u16, &'static str, String) {
        let html = "text/html; charset=utf-8";
        if self.mode() == Mode::Erroring {
            eprintln!(
                "ERROR connect-demo-app {}: main route failing on purpose (mode erroring)",
                self.config.version
            );
            return (
                500,
                html,
                format!(
                    "<h1>Connect</h1><p>version {}: failing on purpose</p>\n",
                    self.config.version
                ),
            );
        }
        let database = match self.query_database().await {
            Ok(line) => line,
            Err(e) => return self.failed(e),
        };
        let redis = match &self.redis {
            Some(redis) => match redis.incr("connect:demo:hits").await {
                Ok(n) => format!("redis: ok, hit {n}"),
                Err(e) => return self.failed(e),
            },
            None => "redis: not configured (REDIS_URL unset), skipped".to_string(),
        };
        let body = format!(
            "<!doctype html>\n<title>Connect</title>\n<h1>Connect</h1>\n<p>version {}</p>\n<p>{database}</p>\n<p>{redis}</p>\n",
            self.config.version
        );
        (200, html, body)
    }

    fn failed(&self, e: Error) -> (u16, &'static str, String) {
        eprintln!("ERROR connect-demo-app {}: main route: {e}", self.config.version);
        (500, "text/plain", format!("main route failed: {e}\n"))
    }

    async fn query_database(&self) -> Result<String> {
        let Some(url) = &self.config.database_url else {
            return Ok("database: not configured (DATABASE_URL unset), skipped".to_string());
        };
        match self.query_once(url).await {
            Ok(answer) => return Ok(answer),
            Err(QueryFailure::Query(e)) => return Err(e),
            Err(QueryFailure::Connection(_)) => {}
        }
        // As a connection pool does: a connection the server ended (a restore's swap, a failover) is replaced,
        // waiting up to RECONNECT_WINDOW for the database to take connections again. The line says what
        // happened without the driver's words, which contain "error": this is not one.
        eprintln!("connect-demo-app: the database ended the connection; reconnecting");
        let until = tokio::time::Instant::now() + RECONNECT_WINDOW;
        loop {
            match self.query_once(url).await {
                Ok(answer) => return Ok(answer),
                Err(QueryFailure::Connection(_)) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(RECONNECT_PAUSE).await; // a pool's pause between connection attempts
                }
                Err(QueryFailure::Connection(e) | QueryFailure::Query(e)) => return Err(e),
            }
        }
    }

    async fn query_once(&self, url: &str) -> std::result::Result<String, QueryFailure> {
        let mut slot = self.db.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(Arc::new(
                connect_database(url).await.map_err(QueryFailure::Connection)?,
            ));
        }
        let Some(client) = slot.clone() else {
            return Err(QueryFailure::Connection(Error::new(
                ErrorKind::Unavailable,
                "connect",
                "postgresql",
                "no client",
            )));
        };
        drop(slot);
        let answer = tokio::time::timeout(
            DB_TIMEOUT,
            client.query_one("SELECT current_setting('server_version')", &[]),
        )
        .await
        .map_err(|_| {
            QueryFailure::Query(Error::new(
                ErrorKind::Timeout,
                "query",
                "postgresql",
                format!("no answer in {DB_TIMEOUT:?}"),
            ))
        })?;
        let row = match answer {
            Ok(row) => row,
            Err(e) if connection_lost(&e) => {
                // The server ended this session (a restore's swap, a shutdown): forget it, so the next attempt
                // reconnects, even before the driver notices the socket closed.
                let mut slot = self.db.lock().await;
                if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &client)) {
                    *slot = None;
                }
                return Err(QueryFailure::Connection(pg_error("query", e)));
            }
            Err(e) => return Err(QueryFailure::Query(pg_error("query", e))),
        };
        let version: String = row
            .try_get(0)
            .map_err(|e| QueryFailure::Query(pg_error("query", e)))?;
        Ok(format!("database: ok, PostgreSQL {version}"))
    }
}

fn mode_code(mode: Mode) -> u8 {
    match mode {
        Mode::Healthy => 0,
        Mode::Unhealthy => 1,
        Mode::Slow => 2,
        Mode::Erroring => 3,
    }
}

/// `healthy`, `slow`, `slow 500` (milliseconds)…
fn parse_mode_request(text: &str) -> Result<(Mode, Option<Duration>)> {
    let mut words = text.split_whitespace();
    let mode = Mode::parse(words.next().unwrap_or(""))?;
    let slow =
        match words.next() {
            Some(ms) if mode == Mode::Slow => Some(Duration::from_millis(ms.parse().map_err(|_| {
                Error::invalid("parse mode", "demo app", format!("{ms:?} is not milliseconds"))
            })?)),
            Some(extra) => {
                return Err(Error::invalid(
                    "parse mode",
                    "demo app",
                    format!("unexpected {extra:?}"),
                ));
            }
            None => None,
        };
    Ok((mode, slow))
}

/// Why one attempt at the main route's query failed.
enum QueryFailure {
    /// No usable connection: connecting failed, or the server ended the session. Worth another attempt.
    Connection(Error),
    /// The database answered with an error, or not in time.
    Query(Error),
}

/// Whether `e` means the session is gone rather than that the query was wrong: the server ending it, or any
/// error that is not the server's answer (closed, a reset or broken socket), which leaves the connection suspect.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.code() {
        None => e.as_db_error().is_none(),
        Some(c) => [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(c),
    }
}

/// How long a request waits for the database to take connections again after its connection was ended.
const RECONNECT_WINDOW: Duration = Duration::from_secs(2);
/// The pause between two connection attempts meanwhile.
const RECONNECT_PAUSE: Duration = Duration::from_millis(25);

pub(super) fn pg_error(operation: &str, e: tokio_postgres::Error) -> Error {
    let kind = if e.as_db_error().is_some() {
        ErrorKind::Failed
    } else {
        ErrorKind::Unavailable
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    Error::new(kind, operation, "postgresql", message)
}

/// Connects to PostgreSQL at `url` without TLS; the connection runs as its own task.
pub async fn connect_database(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio::time::timeout(DB_TIMEOUT, tokio_postgres::connect(url, tokio_postgres::NoTls))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    "connect",
                    "postgresql",
                    format!("no connection in {DB_TIMEOUT:?}"),
                )
            })?
            .map_err(|e| {
                pg_error("connect", e).with_hint("check DATABASE_URL (postgresql://user@host:port/db)")
            })?;
    tokio::spawn(async move {
        // Not an error line: the request that needs the connection reconnects, and logs an error if it fails.
        if let Err(e) = connection.await {
            let why = e.code().map_or("closed", |c| c.code());
            eprintln!("connect-demo-app: the database connection ended ({why})");
        }
    });
    Ok(client)
}

/// Serves the app on `listener` until `shutdown` resolves, then stops accepting, lets in-flight requests finish
/// (answering them with `Connection: close`), closes idle connections and returns.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(stream, peer, app.clone(), stop_rx.clone()));
                }
                // Out of file descriptors and the like: keep serving the connections we have.
                Err(e) => eprintln!("connect-demo-app: accept failed: {e}"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!(
            "connect-demo-app: {} connections still busy after {SHUTDOWN_GRACE:?}, closing them",
            connections.len()
        );
    }
    Ok(())
}

async fn connection(stream: TcpStream, peer: SocketAddr, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        // Idle between requests: a shutdown closes the connection now; once bytes arrive, the request is served.
        tokio::select! {
            biased;
            filled = read.fill_buf() => match filled {
                Ok([]) | Err(_) => return,
                Ok(_) => {}
            },
            _ = stop.wait_for(|s| *s) => return,
        }
        let req = match tokio::time::timeout(REQUEST_READ_TIMEOUT, http::read_request(&mut read)).await {
            Ok(Ok(Some(req))) => req,
            Ok(Ok(None))
            | Ok(Err(ReadError::ClosedBeforeMessage | ReadError::Truncated | ReadError::Io(_))) => return,
            Ok(Err(ReadError::Malformed(why))) => {
                let _ = write
                    .write_all(&http::response_bytes(
                        400,
                        "text/plain",
                        format!("{why}\n").as_bytes(),
                        false,
                    ))
                    .await;
                return;
            }
            Err(_) => return,
        };
        let (status, content_type, body) = app.route(&req).await;
        let keep_alive = req.keep_alive && !*stop.borrow();
        let bytes = http::response_bytes(status, content_type, body.as_bytes(), keep_alive);
        if let Err(e) = write.write_all(&bytes).await {
            eprintln!("connect-demo-app: writing to {peer} failed: {e}");
            return;
        }
        if !keep_alive {
            let _ = write.shutdown().await;
            return;
        }
    }
}

/// The container's health check: exit status 0 when `GET /api/health` on `127.0.0.1:port` answers 200.
pub async fn healthcheck(port: u16) -> Result<()> {
    let target = format!("127.0.0.1:{port}/api/health");
    let check = async {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| super::io_error("health check", &target, e))?;
        let (read, mut write) = stream.into_split();
        write
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| super::io_error("health check", &target, e))?;
        let resp = http::read_response(&mut BufReader::new(read))
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, "health check", &target, e.to_string()))?;
        if resp.status == 200 {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Unhealthy,
                "health check",
                &target,
                format!("{} {}", resp.status, String::from_utf8_lossy(&resp.body)),
            ))
        }
    };
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "health check", &target, "no answer in 5s"))?
}
