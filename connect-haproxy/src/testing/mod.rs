//! A harness for tests against the real HAProxy (feature `testing`): HAProxy master-worker on 127.0.0.1 with
//! its own temp dir and free ports, a tiny HTTP app per color, and a keep-alive load client.
//!
//! Public so that end-to-end tests reuse it instead of copying it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use connect_core::testing::{Signal, free_port, require_program, send_signal};
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod stack;

pub use stack::TestStack;

use crate::client::RuntimeApi;
use crate::config::{ConfigInstaller, MaintenancePage, ProxyConfig, ServerSpec};
use crate::files::{MapFile, StateFile};
use crate::haproxy::Haproxy;

/// The maintenance page the test HAProxy answers.
pub const MAINTENANCE_HTML: &str = "<!doctype html><title>Maintenance</title><p>Back soon.</p>\n";

/// Finds haproxy; with `CONNECT_REAL_TESTS=1` a missing haproxy fails the test.
pub fn require_haproxy(test: &str) -> Option<PathBuf> {
    require_program(test, "haproxy", &["/usr/sbin/haproxy"])
}

/// A tiny HTTP/1.1 app standing in for one color: answers the health endpoint with
/// `{"status":"healthy","version":…}` (or 503 when made unhealthy) and every other path with its version,
/// in an `X-Version` header and the body. Keep-alive; stops when dropped.
#[derive(Debug)]
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it answers as its version (`blue`, `green`).
    pub version: String,
    healthy: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TestApp {
    /// Starts the app on a free port of 127.0.0.1.
    pub async fn start(version: &str, health_path: &str) -> std::io::Result<TestApp> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let healthy = Arc::new(AtomicBool::new(true));
        let served = Arc::new(AtomicU64::new(0));
        let (h, s, v, hp) = (
            healthy.clone(),
            served.clone(),
            version.to_string(),
            health_path.to_string(),
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, s, v, hp) = (h.clone(), s.clone(), v.clone(), hp.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &h, &s, &v, &hp).await;
                });
            }
        });
        Ok(TestApp {
            addr,
            version: version.to_string(),
            healthy,
            served,
            task,
        })
    }

    /// Makes the health endpoint answer 200 (true) or 503 (false).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests answered other than health checks.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: TcpStream,
    healthy: &AtomicBool,
    served: &AtomicU64,
    version: &str,
    health_path: &str,
) -> std::io::Result<()> {
    let mut conn = BufReader::new(stream);
    // Bounded: one connection serves at most this many requests, then closes (clients reconnect).
    for _ in 0..1_000_000 {
        let Some(head) = read_head(&mut conn).await? else {
            return Ok(());
        };
        let path = head
            .first()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/")
            .to_string();
        let length = header(&head, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut body = (&mut conn).take(length);
        tokio::io::copy(&mut body, &mut tokio::io::sink()).await?;
        let close = header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (status, body) = if path == health_path {
            if healthy.load(Ordering::SeqCst) {
                (
                    "200 OK",
                    format!(r#"{{"status":"healthy","version":"{version}"}}"#),
                )
            } else {
                (
                    "503 Service Unavailable",
                    format!(r#"{{"status":"unhealthy","version":"{version}"}}"#),
                )
            }
        } else {
            served.fetch_add(1, Ordering::SeqCst);
            ("200 OK", version.to_string())
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Version: {version}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        conn.get_mut().write_all(reply.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads a request or response head (lines up to the blank line); `None` at a clean EOF before any byte.
async fn read_head<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    for _ in 0..200 {
        let mut line = String::new();
        let n = r.read_line(&mut line).await?;
        if n == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a head",
                ))
            };
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(line);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "head longer than 200 lines",
    ))
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// HAProxy master-worker on 127.0.0.1 with the runbook's config, its own temp dir and free ports.
/// Stopped (master and workers) when dropped.
#[derive(Debug)]
pub struct HaproxyProcess {
    /// The haproxy program.
    pub program: PathBuf,
    /// The settings the config was rendered from.
    pub config: ProxyConfig,
    /// The installed configuration file.
    pub config_path: PathBuf,
    /// The admin socket.
    pub admin_socket: PathBuf,
    /// The master CLI socket.
    pub master_socket: PathBuf,
    /// The server-state-file.
    pub state_file: PathBuf,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl HaproxyProcess {
    /// Renders the runbook's config for these two apps (blue = `app1`, green = `app2`), installs it through
    /// `haproxy -c`, starts `haproxy -W -S <master.sock> -f <cfg>` and waits until the admin socket answers.
    pub async fn start(program: &Path, blue: SocketAddr, green: SocketAddr) -> Result<HaproxyProcess> {
        HaproxyProcess::start_with(program, blue, green, None, &[]).await
    }

    /// [`HaproxyProcess::start`] with haproxy run by `wrapper` (`nsenter -t <pid> -n`: HAProxy in a network
    /// namespace of the test's, where `blue` and `green` are; its sockets are files, reached from anywhere).
    pub async fn start_via(
        wrapper: &[std::ffi::OsString],
        program: &Path,
        blue: SocketAddr,
        green: SocketAddr,
    ) -> Result<HaproxyProcess> {
        HaproxyProcess::start_with(program, blue, green, None, wrapper).await
    }

    /// [`HaproxyProcess::start`] with these servers in `be_app` instead of the runbook's two: several app
    /// hosts' colors behind one backend.
    pub async fn start_with_servers(program: &Path, servers: Vec<ServerSpec>) -> Result<HaproxyProcess> {
        let unused: SocketAddr = ([127, 0, 0, 1], 9).into();
        HaproxyProcess::start_with(program, unused, unused, Some(servers), &[]).await
    }

    /// [`HaproxyProcess::start_with_servers`] with haproxy run by `wrapper` (see
    /// [`HaproxyProcess::start_via`]): HAProxy on a machine of its own, reaching app hosts at their addresses
    /// in the test's network namespaces.
    pub async fn start_with_servers_via(
        wrapper: &[std::ffi::OsString],
        program: &Path,
        servers: Vec<ServerSpec>,
    ) -> Result<HaproxyProcess> {
        let unused: SocketAddr = ([127, 0, 0, 1], 9).into();
        HaproxyProcess::start_with(program, unused, unused, Some(servers), wrapper).await
    }

    /// The master's process id: with a wrapper that made a network namespace (`unshare --net`), that
    /// namespace is `/proc/<pid>/ns/net`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn start_with(
        program: &Path,
        blue: SocketAddr,
        green: SocketAddr,
        servers: Option<Vec<ServerSpec>>,
        wrapper: &[std::ffi::OsString],
    ) -> Result<HaproxyProcess> {
        let dir = tempfile::tempdir().map_err(|e| io_error("tempdir", e))?;
        let admin_socket = dir.path().join("admin.sock");
        let master_socket = dir.path().join("master.sock");
        let state_file = dir.path().join("server-state");
        let config_path = dir.path().join("haproxy.cfg");
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut config = ProxyConfig::runbook(http, blue, green, &admin_socket, &state_file);
        if let Some(servers) = servers {
            config.servers = servers;
        }
        // Tests wait for checks, so they check fast; the runbook's 2 s is the default elsewhere.
        config.check_interval = Duration::from_millis(100);
        config.monitor_socket = Some(dir.path().join("monitor.sock"));
        // HAProxy's own Prometheus exporter, so every real test runs a config that has it.
        config.prometheus = Some(([127, 0, 0, 1], free_port()).into());
        // The maintenance page, off: tests turn it on through `haproxy()`'s map.
        let maintenance = MaintenancePage {
            map: dir.path().join("maintenance.map"),
            page: dir.path().join("maintenance.html"),
            retry_after: Duration::from_secs(120),
        };
        std::fs::write(&maintenance.map, MaintenancePage::MAP_OFF)
            .map_err(|e| io_error("maintenance.map", e))?;
        std::fs::write(&maintenance.page, MAINTENANCE_HTML).map_err(|e| io_error("maintenance.html", e))?;
        config.maintenance = Some(maintenance);
        ConfigInstaller::new(program, &config_path)
            .install(&config.render()?)
            .await?;
        let log =
            std::fs::File::create(dir.path().join("haproxy.log")).map_err(|e| io_error("haproxy.log", e))?;
        // The wrapper (nsenter) execs haproxy, so the child is still haproxy's master.
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = std::process::Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => std::process::Command::new(program),
        };
        let child = command
            .arg("-W")
            .arg("-S")
            .arg(&master_socket)
            .arg("-f")
            .arg(&config_path)
            .stdout(log.try_clone().map_err(|e| io_error("haproxy.log", e))?)
            .stderr(log)
            .spawn()
            .map_err(|e| io_error("spawn haproxy", e))?;
        let process = HaproxyProcess {
            program: program.to_path_buf(),
            config,
            config_path,
            admin_socket,
            master_socket,
            state_file,
            child,
            dir,
        };
        let api = RuntimeApi::unix(&process.admin_socket);
        let master = process.master();
        poll_until(
            "haproxy.start",
            "admin socket and master CLI",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || async {
                if let Err(e) = api.show_stat().await {
                    return Ok(Err(e.to_string()));
                }
                Ok(match master.show_proc().await {
                    Ok(p) if !p.workers.is_empty() => Ok(()),
                    Ok(p) => Err(format!("no worker yet: {p:?}")),
                    Err(e) => Err(e.to_string()),
                })
            },
        )
        .await
        .map_err(|e| {
            let log = process.log();
            Error::new(e.kind(), "haproxy.start", "haproxy", format!("{e}; log: {log}"))
        })?;
        Ok(process)
    }

    /// The `be_app` backend, with the state file and the master CLI wired.
    pub fn haproxy(&self) -> Haproxy {
        Haproxy::new(RuntimeApi::unix(&self.admin_socket), &self.config.backend)
            .expect("the backend name was validated by render")
            .with_state_file(StateFile::Local(self.state_file.clone()))
            .with_master(self.master())
            .with_maintenance_map(MapFile {
                name: self.maintenance_map().display().to_string(),
                file: StateFile::Local(self.maintenance_map()),
            })
    }

    /// The maintenance page's map file.
    pub fn maintenance_map(&self) -> PathBuf {
        self.dir.path().join("maintenance.map")
    }

    /// The master CLI.
    pub fn master(&self) -> RuntimeApi {
        RuntimeApi::unix(&self.master_socket)
    }

    /// The installer of this process's config file.
    pub fn installer(&self) -> ConfigInstaller {
        ConfigInstaller::new(&self.program, &self.config_path)
    }

    /// Where HTTP listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.config.http_bind
    }

    /// The temp dir holding config, sockets, state file and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// HAProxy's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for HaproxyProcess {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers too; SIGKILL only if it does not exit.
        let _ = send_signal(self.child.id(), Signal::SIGTERM);
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Failed, "haproxy.testing", what, e.to_string()).with_source(e)
}

/// What the load clients saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests not answered 200 (another status, a broken or cut response, no connection).
    pub failed: u64,
    /// Requests re-sent because an idle keep-alive connection was closed before any byte of the response
    /// (RFC 9112 §9.3.1: a client may retry an idempotent request then); each was answered in the end.
    pub resent_on_closed_idle: u64,
    /// 200 answers by the `X-Version` that served them.
    pub by_version: BTreeMap<String, u64>,
    /// Answers other than 200, by status (a 503 of the maintenance page is one).
    pub statuses: BTreeMap<u16, u64>,
    /// The first few failures, in words.
    pub errors: Vec<String>,
}

/// Keep-alive clients sending `GET /` through HAProxy until stopped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<LoadReport>>,
}

impl Load {
    /// Starts `clients` keep-alive clients against `addr`. Each stops by itself after `max` (a bound, not a
    /// timing): tests stop them earlier with [`Load::stop`].
    pub fn start(addr: SocketAddr, clients: usize, max: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let counts = (ok.clone(), failed.clone());
                tokio::spawn(client(addr, stop.clone(), counts, max))
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Requests answered 200 so far, over all clients.
    pub fn answered(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until the clients have had `n` more answers than when it is called (so a step happens with
    /// traffic flowing); [`ErrorKind::Timeout`] past `deadline`, with the count so far.
    pub async fn wait_answered(&self, n: u64, deadline: Duration) -> Result<()> {
        let from = self.answered();
        poll_until("load", "answers", deadline, Duration::from_millis(1), || async {
            let got = self.answered() - from;
            Ok(if got >= n {
                Ok(())
            } else {
                Err(format!("{got} of {n} answered, {} failed so far", self.failed()))
            })
        })
        .await
    }

    /// Requests failed so far, over all clients: to time an outage while it happens.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Stops the clients and sums what they saw.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = LoadReport::default();
        for t in self.tasks {
            let r = t.await.unwrap_or_else(|e| LoadReport {
                failed: 1,
                errors: vec![format!("client task: {e}")],
                ..LoadReport::default()
            });
            total.ok += r.ok;
            total.failed += r.failed;
            total.resent_on_closed_idle += r.resent_on_closed_idle;
            for (v, n) in r.by_version {
                *total.by_version.entry(v).or_default() += n;
            }
            for (status, n) in r.statuses {
                *total.statuses.entry(status).or_default() += n;
            }
            total.errors.extend(r.errors.into_iter().take(5));
        }
        total.errors.truncate(10);
        total
    }
}

enum Outcome {
    Answered(u16, String, bool),
    /// The connection was closed before any byte of the response.
    ClosedBeforeAnswer(String),
}

async fn request(conn: &mut BufReader<TcpStream>) -> std::io::Result<Outcome> {
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: connect.test\r\n\r\n")
        .await?;
    let head = match read_head(conn).await {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(Outcome::ClosedBeforeAnswer("EOF".into())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Ok(Outcome::ClosedBeforeAnswer(e.to_string()));
        }
        Err(e) => return Err(e),
    };
    let status: u16 = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    conn.read_exact(&mut body).await?;
    let close = header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let version = header(&head, "x-version").unwrap_or("?").to_string();
    Ok(Outcome::Answered(status, version, close))
}

async fn client(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    (ok, failed): (Arc<AtomicU64>, Arc<AtomicU64>),
    max: Duration,
) -> LoadReport {
    let mut report = LoadReport::default();
    let until = tokio::time::Instant::now() + max;
    let mut conn: Option<BufReader<TcpStream>> = None;
    let fail = |report: &mut LoadReport, why: String| {
        report.failed += 1;
        failed.fetch_add(1, Ordering::SeqCst);
        if report.errors.len() < 5 {
            report.errors.push(why);
        }
    };
    while !stop.load(Ordering::SeqCst) && tokio::time::Instant::now() < until {
        let reused = conn.is_some();
        let mut c = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect(addr).await {
                Ok(s) => BufReader::new(s),
                Err(e) => {
                    fail(&mut report, format!("connect: {e}"));
                    continue;
                }
            },
        };
        let outcome = match request(&mut c).await {
            Ok(Outcome::ClosedBeforeAnswer(why)) if reused => {
                // An idle keep-alive connection closed under us (a reload's old worker): resend once
                // on a fresh connection, as every HTTP client does.
                report.resent_on_closed_idle += 1;
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        c = BufReader::new(s);
                        request(&mut c).await
                    }
                    Err(e) => Err(std::io::Error::other(format!("{why}; reconnect: {e}"))),
                }
            }
            other => other,
        };
        match outcome {
            Ok(Outcome::Answered(200, version, close)) => {
                report.ok += 1;
                ok.fetch_add(1, Ordering::SeqCst);
                *report.by_version.entry(version).or_default() += 1;
                if !close {
                    conn = Some(c);
                }
            }
            Ok(Outcome::Answered(status, version, close)) => {
                *report.statuses.entry(status).or_default() += 1;
                fail(&mut report, format!("status {status} from {version}"));
                if !close {
                    conn = Some(c);
                }
            }
            Ok(Outcome::ClosedBeforeAnswer(why)) => {
                fail(&mut report, format!("closed before answering: {why}"))
            }
            Err(e) => fail(&mut report, format!("request: {e}")),
        }
    }
    report
}
