//! A load generator for the end-to-end run: N keep-alive HTTP/1.1 connections sending `GET` back to back,
//! bounded in requests and in time, with phases marked while it runs ("switch", "drain"…) and a report per
//! phase.
//!
//! Counting rules, so a report can prove "nobody saw an error":
//! - a request counts in the phase that was current when it was sent;
//! - a request fails when it gets a non-200 answer, no answer (the connection closed or was reset after it was
//!   sent, or it timed out), a broken answer, or when no connection could be opened for it; each failure is
//!   counted under its [`Failure`] reason;
//! - a connection the server closed between requests (idle close on a HAProxy reload, `Connection: close`) is
//!   not a failure: it is noticed before the next request is sent, counted in `closed_by_server`, and the next
//!   request goes out on a new connection.
//!
//! Latency is measured from sending the request to having the whole response, for requests that got one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_core::{Error, Result};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::http::{self, ReadError};

/// What to load and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where to connect (HAProxy's frontend in the end-to-end run).
    pub target: SocketAddr,
    /// The path requested (`/`, the main route).
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// Concurrent keep-alive connections (default 64).
    pub connections: usize,
    /// Stop after sending this many requests in all.
    pub max_requests: u64,
    /// Stop after this long, whatever the count.
    pub max_duration: Duration,
    /// A request without a full response after this long fails with [`Failure::Timeout`].
    pub request_timeout: Duration,
    /// Each connection's pause between two requests (zero: back to back). A pause leaves connections idle,
    /// as real users do, so an idle close by the server is visible.
    pub pace: Duration,
    /// The name of the phase current at start.
    pub first_phase: String,
}

impl LoadConfig {
    /// 64 connections on `/` of `target`, at most a million requests or five minutes, 10 s per request.
    pub fn new(target: SocketAddr) -> LoadConfig {
        LoadConfig {
            target,
            path: "/".into(),
            host: "connect.local".into(),
            connections: 64,
            max_requests: 1_000_000,
            max_duration: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            pace: Duration::ZERO,
            first_phase: "start".into(),
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// The server answered with this status instead of 200.
    Status(u16),
    /// No connection could be opened for the request.
    Connect,
    /// The request was sent, and the connection closed without a byte of answer.
    ClosedBeforeResponse,
    /// The connection closed in the middle of the answer.
    Truncated,
    /// The socket failed (reset) while sending the request or reading the answer.
    Reset,
    /// The answer was not HTTP.
    Malformed,
    /// No full answer within the request timeout.
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "status {code}"),
            Failure::Connect => f.write_str("connect"),
            Failure::ClosedBeforeResponse => f.write_str("closed before response"),
            Failure::Truncated => f.write_str("truncated response"),
            Failure::Reset => f.write_str("reset"),
            Failure::Malformed => f.write_str("malformed response"),
            Failure::Timeout => f.write_str("timeout"),
        }
    }
}

/// The figures of one phase (or of the whole run).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseReport {
    /// The phase's name.
    pub name: String,
    /// Requests sent in this phase.
    pub requests: u64,
    /// Of those, the ones answered 200.
    pub ok: u64,
    /// Of those, the ones that failed (`requests - ok`).
    pub failed: u64,
    /// Failures by reason (`status 500`, `connect`, `closed before response`…).
    pub failures: BTreeMap<String, u64>,
    /// Connections opened.
    pub connects: u64,
    /// Connections the server closed between requests (not failures).
    pub closed_by_server: u64,
    /// Median latency of the requests that got an answer, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Slowest answer, in milliseconds.
    pub max_ms: f64,
}

/// What a run did, phase by phase.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// Every phase marked, in order (a phase with no request sent still appears).
    pub phases: Vec<PhaseReport>,
    /// All phases together.
    pub total: PhaseReport,
    /// Wall time from start to the last worker's stop, in seconds.
    pub elapsed_s: f64,
}

impl LoadReport {
    /// The phase named `name` (the last one, if marked twice).
    pub fn phase(&self, name: &str) -> Option<&PhaseReport> {
        self.phases.iter().rev().find(|p| p.name == name)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:>9} {:>7} {:>8} {:>8} {:>9} {:>9}  failures",
            "phase", "requests", "failed", "connects", "closed", "p50 ms", "p99 ms"
        )?;
        for p in self.phases.iter().chain([&self.total]) {
            let reasons: Vec<String> = p.failures.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            writeln!(
                f,
                "{:<16} {:>9} {:>7} {:>8} {:>8} {:>9.2} {:>9.2}  {}",
                p.name,
                p.requests,
                p.failed,
                p.connects,
                p.closed_by_server,
                p.p50_ms,
                p.p99_ms,
                reasons.join(", ")
            )?;
        }
        write!(f, "elapsed {:.2} s", self.elapsed_s)
    }
}

#[derive(Default, Clone)]
struct Tally {
    requests: u64,
    ok: u64,
    failures: BTreeMap<Failure, u64>,
    connects: u64,
    closed_by_server: u64,
    latencies_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.ok += other.ok;
        for (k, v) in &other.failures {
            *self.failures.entry(*k).or_default() += v;
        }
        self.connects += other.connects;
        self.closed_by_server += other.closed_by_server;
        self.latencies_us.extend_from_slice(&other.latencies_us);
    }

    fn report(mut self, name: String) -> PhaseReport {
        self.latencies_us.sort_unstable();
        let pct = |p: usize| -> f64 {
            if self.latencies_us.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest latency at or above p % of the answers.
            let rank = (p * self.latencies_us.len()).div_ceil(100).max(1);
            f64::from(self.latencies_us[rank - 1]) / 1000.0
        };
        PhaseReport {
            name,
            requests: self.requests,
            ok: self.ok,
            failed: self.requests - self.ok,
            failures: self.failures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            connects: self.connects,
            closed_by_server: self.closed_by_server,
            p50_ms: pct(50),
            p99_ms: pct(99),
            max_ms: self.latencies_us.last().map_or(0.0, |us| f64::from(*us) / 1000.0),
        }
    }
}

#[derive(Default)]
struct Phases {
    names: Vec<String>,
    pending: Vec<u64>,
}

impl Shared {
    fn book(&self) -> std::sync::MutexGuard<'_, Phases> {
        self.phases.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Shared {
    // Names and requests without an outcome yet, per phase; one lock, so a request's phase and its pending
    // count change together and a phase marked over can only see its pending count fall.
    phases: Mutex<Phases>,
    sent: AtomicU64,
    answered: AtomicU64,
    running: AtomicUsize,
}

/// A running load. Dropping it stops the workers without a report.
pub struct Load {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    workers: JoinSet<Vec<Tally>>,
    started: Instant,
}

// By hand: the workers and the shared tallies are mid-flight; what was asked and since when is what a
// failure message needs.
impl fmt::Debug for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("started", &self.started)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Load {
    /// Starts the connections. Must be called inside a tokio runtime.
    pub fn start(config: LoadConfig) -> Result<Load> {
        let invalid = |why: &str| Error::invalid("start load", config.target.to_string(), why.to_string());
        if config.connections == 0 {
            return Err(invalid("zero connections"));
        }
        if config.max_duration.is_zero() || config.request_timeout.is_zero() {
            return Err(invalid("a zero duration or request timeout can never be met"));
        }
        if !config.path.starts_with('/')
            || config.path.contains(char::is_whitespace)
            || config.host.contains(char::is_whitespace)
        {
            return Err(invalid(
                "the path must start with / and neither path nor host may contain spaces",
            ));
        }
        let shared = Arc::new(Shared {
            phases: Mutex::new(Phases {
                names: vec![config.first_phase.clone()],
                pending: vec![0],
            }),
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            running: AtomicUsize::new(config.connections),
        });
        let (stop, stop_rx) = watch::channel(false);
        let config = Arc::new(config);
        let deadline = tokio::time::Instant::now() + config.max_duration;
        let request = Arc::new(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: connect-load\r\n\r\n",
                config.path, config.host
            )
            .into_bytes(),
        );
        let mut workers = JoinSet::new();
        for _ in 0..config.connections {
            workers.spawn(worker(
                config.clone(),
                shared.clone(),
                request.clone(),
                stop_rx.clone(),
                deadline,
            ));
        }
        Ok(Load {
            shared,
            stop,
            workers,
            started: Instant::now(),
        })
    }

    /// Marks the start of a phase: requests sent from now on count in it.
    pub fn phase(&self, name: impl Into<String>) {
        let mut book = self.shared.book();
        book.names.push(name.into());
        book.pending.push(0);
    }

    /// Requests sent in the phase named `name` (its last marking) that have no outcome yet; `None` if no such
    /// phase was marked. Once a later phase is marked this only falls, so waiting for 0 means every request of
    /// that phase is counted, and what happens next cannot affect them.
    pub fn pending(&self, name: &str) -> Option<u64> {
        let book = self.shared.book();
        let i = book.names.iter().rposition(|n| n == name)?;
        book.pending.get(i).copied()
    }

    /// Requests that finished (answered or failed) so far, in all phases.
    pub fn completed(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Whether every worker has stopped by itself (count or time reached).
    pub fn is_finished(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst) == 0
    }

    /// Stops sending now; requests in flight finish (within the request timeout) and count.
    pub async fn stop(self) -> LoadReport {
        let _ = self.stop.send(true);
        self.finish().await
    }

    /// Waits until the load stops by itself (request count or duration reached), then reports.
    pub async fn finish(mut self) -> LoadReport {
        let mut per_phase: Vec<Tally> = Vec::new();
        while let Some(joined) = self.workers.join_next().await {
            // A worker cannot panic on network input; if one did, its figures are lost, not invented.
            let Ok(tallies) = joined else { continue };
            for (i, t) in tallies.iter().enumerate() {
                if per_phase.len() <= i {
                    per_phase.resize(i + 1, Tally::default());
                }
                per_phase[i].merge(t);
            }
        }
        let names = self.shared.book().names.clone();
        let mut total = Tally::default();
        let mut phases = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let tally = per_phase.get(i).cloned().unwrap_or_default();
            total.merge(&tally);
            phases.push(tally.report(name));
        }
        LoadReport {
            phases,
            total: total.report("total".into()),
            elapsed_s: self.started.elapsed().as_secs_f64(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.workers.abort_all();
    }
}

type Conn = BufReader<TcpStream>;

async fn worker(
    config: Arc<LoadConfig>,
    shared: Arc<Shared>,
    request: Arc<Vec<u8>>,
    mut stop: watch::Receiver<bool>,
    deadline: tokio::time::Instant,
) -> Vec<Tally> {
    let mut tallies: Vec<Tally> = Vec::new();
    let mut conn: Option<Conn> = None;
    loop {
        if *stop.borrow() || tokio::time::Instant::now() >= deadline {
            break;
        }
        if shared.sent.fetch_add(1, Ordering::SeqCst) >= config.max_requests {
            break;
        }
        let phase = {
            let mut book = shared.book();
            let i = book.names.len() - 1;
            book.pending[i] += 1;
            i
        };
        if tallies.len() <= phase {
            tallies.resize(phase + 1, Tally::default());
        }
        let tally = &mut tallies[phase];
        tally.requests += 1;
        if conn.as_ref().is_some_and(closed_by_peer) {
            conn = None;
            tally.closed_by_server += 1;
        }
        let outcome = tokio::time::timeout(config.request_timeout, async {
            if conn.is_none() {
                let stream = TcpStream::connect(config.target)
                    .await
                    .map_err(|_| Failure::Connect)?;
                let _ = stream.set_nodelay(true);
                conn = Some(BufReader::new(stream));
                tally.connects += 1;
            }
            let Some(c) = conn.as_mut() else {
                return Err(Failure::Connect);
            };
            let sent = Instant::now();
            c.get_mut()
                .write_all(&request)
                .await
                .map_err(|_| Failure::Reset)?;
            let response = http::read_response(c).await.map_err(|e| match e {
                ReadError::ClosedBeforeMessage => Failure::ClosedBeforeResponse,
                ReadError::Truncated => Failure::Truncated,
                ReadError::Malformed(_) => Failure::Malformed,
                ReadError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Failure::Reset,
                ReadError::Io(_) => Failure::Reset,
            })?;
            Ok((response, sent.elapsed()))
        })
        .await
        .unwrap_or(Err(Failure::Timeout));
        shared.answered.fetch_add(1, Ordering::SeqCst);
        shared.book().pending[phase] -= 1;
        match outcome {
            Ok((response, latency)) => {
                tally
                    .latencies_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                if response.status == 200 {
                    tally.ok += 1;
                } else {
                    *tally
                        .failures
                        .entry(Failure::Status(response.status))
                        .or_default() += 1;
                }
                if response.close {
                    conn = None;
                    tally.closed_by_server += 1;
                }
            }
            Err(failure) => {
                conn = None;
                *tally.failures.entry(failure).or_default() += 1;
                if failure == Failure::Connect {
                    // Do not spin on a refused port: one attempt per connection every 10 ms.
                    pause(Duration::from_millis(10), &mut stop).await;
                }
            }
        }
        if !config.pace.is_zero() {
            pause(config.pace, &mut stop).await;
        }
    }
    shared.running.fetch_sub(1, Ordering::SeqCst);
    tallies
}

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Whether the server closed (or wrote to) an idle connection since its last answer; either way it cannot
/// carry the next request.
fn closed_by_peer(conn: &Conn) -> bool {
    if !conn.buffer().is_empty() {
        return true;
    }
    let mut probe = [0u8; 1];
    !matches!(conn.get_ref().try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
