//! Harnesses for tests and the end-to-end run (feature `testing`): the demo app as a process, PostgreSQL and
//! Redis, each on 127.0.0.1 with its own free port and temp dir, stopped on drop. Plus a one-shot HTTP client
//! and a tmux server of a test's own ([`Tmux`]).

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_core::testing::{Signal, free_port, require_program, send_signal};
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::http::{self, Response};

mod ops;
mod swarm;
pub mod tmux;
pub use ops::{OpsRun, connect_ops, connect_ops_in, connect_ops_json};
pub use swarm::{SWARM_NODES, SWARM_PORTS, SwarmStage};
pub use tmux::Tmux;

const START_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// One request on a fresh connection (`Connection: close`), with a 10 s deadline.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<Response> {
    let target = format!("{addr}{path}");
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, method, &target, e.to_string()))?;
        let (read, mut write) = stream.into_split();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        write
            .write_all(req.as_bytes())
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, method, &target, e.to_string()))?;
        http::read_response(&mut BufReader::new(read))
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, method, &target, e.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, method, &target, "no answer in 10 s"))?
}

fn temp_dir(what: &str) -> Result<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "connect-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::new(
            ErrorKind::Failed,
            "create temp dir",
            dir.display().to_string(),
            e.to_string(),
        )
    })?;
    Ok(dir)
}

fn spawn_error(program: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unavailable, "start", program, e.to_string())
}

/// The demo app binary running on 127.0.0.1, its stderr collected line by line; killed on drop.
#[derive(Debug)]
pub struct DemoApp {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl DemoApp {
    /// Starts `binary` (the `connect-demo-app` executable) with `env` added to `BIND=127.0.0.1` and a free
    /// `PORT`, and waits until it accepts connections (its health may say 503 on purpose).
    pub async fn start(binary: &Path, env: &[(&str, &str)]) -> Result<DemoApp> {
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("APP_MODE")
            .env("BIND", "127.0.0.1")
            .env("PORT", port.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| spawn_error("connect-demo-app", e))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            let lines_out = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    lines_out.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut app = DemoApp { child, addr, stderr };
        let target = format!("connect-demo-app on {addr}");
        poll_until("start", &target, START_DEADLINE, POLL, || {
            let exited = app.child.try_wait().ok().flatten();
            let lines = app.stderr_lines();
            async move {
                if let Some(status) = exited {
                    return Err(Error::new(
                        ErrorKind::Failed,
                        "start",
                        "connect-demo-app",
                        format!("exited {status}: {lines:?}"),
                    ));
                }
                Ok(TcpStream::connect(addr)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()))
            }
        })
        .await?;
        Ok(app)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every stderr line so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stderr lines the runbook's post-deploy check counts as errors (containing "error", any case).
    pub fn error_lines(&self) -> usize {
        self.stderr_lines()
            .iter()
            .filter(|l| l.to_ascii_lowercase().contains("error"))
            .count()
    }

    /// Switches the mode through `POST /admin/mode` (`healthy`, `unhealthy`, `slow 300`, `erroring`).
    pub async fn set_mode(&self, mode: &str) -> Result<()> {
        let r = request(self.addr, "POST", "/admin/mode", mode).await?;
        if r.status != 200 {
            return Err(Error::new(
                ErrorKind::Refused,
                "set mode",
                mode,
                String::from_utf8_lossy(&r.body).into_owned(),
            ));
        }
        Ok(())
    }

    /// Sends SIGTERM (a graceful stop).
    pub async fn terminate(&self) -> Result<()> {
        let pid = self.child.id().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "terminate",
                "connect-demo-app",
                "already exited",
            )
        })?;
        send_signal(pid, Signal::SIGTERM).map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "terminate",
                "connect-demo-app",
                format!("kill: {e}"),
            )
            .with_source(e)
        })
    }

    /// Waits for the process to exit, within `deadline`, and returns its status.
    pub async fn wait(&mut self, deadline: Duration) -> Result<std::process::ExitStatus> {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    "wait",
                    "connect-demo-app",
                    format!("still running after {deadline:?}"),
                )
            })?
            .map_err(|e| spawn_error("connect-demo-app", e))
    }
}

/// Whether this process runs as root (PostgreSQL refuses to, so it is started as `postgres`).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL 15 server on 127.0.0.1 with trust authentication (user `postgres`), in a temp dir; stopped
/// on drop.
#[derive(Debug)]
pub struct Postgres {
    pg_ctl: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn pg_command(program: &Path, as_root: bool) -> std::process::Command {
    if as_root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}

fn run_checked(mut cmd: std::process::Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(what, e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Failed,
            what,
            "postgresql",
            format!("exited {}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
        ));
    }
    Ok(())
}

impl Postgres {
    /// Starts a fresh cluster, or returns `Ok(None)` when PostgreSQL is not installed and real tests are not
    /// required (`require_program` has printed why).
    pub async fn start(test: &str) -> Result<Option<Postgres>> {
        let Some(initdb) = require_program(test, "initdb", &[&format!("{PG_BIN}/initdb")]) else {
            return Ok(None);
        };
        let pg_ctl = initdb.with_file_name("pg_ctl");
        let as_root = running_as_root();
        let dir = temp_dir("postgres")?;
        if as_root {
            let mut chown = std::process::Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&dir);
            run_checked(chown, "chown")?;
        }
        let port = free_port();
        let pg = Postgres {
            pg_ctl,
            dir: dir.clone(),
            port,
            as_root,
        };
        let mut init = pg_command(&initdb, as_root);
        init.arg("-D").arg(dir.join("data")).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
        run_checked(init, "initdb")?;
        let mut start = pg_command(&pg.pg_ctl, as_root);
        start
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.display()
            ))
            .args(["-w", "-t", "30", "start"]);
        run_checked(start, "pg_ctl start")?;
        Ok(Some(pg))
    }

    /// `postgresql://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A connected client on database `db` (its connection task runs on the current runtime).
    pub async fn client(&self, db: &str) -> Result<tokio_postgres::Client> {
        crate::demo_app::connect(&self.url(db)).await
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = pg_command(&self.pg_ctl, self.as_root);
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server on 127.0.0.1 without persistence, in a temp dir; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    _child: Child,
    dir: PathBuf,
    port: u16,
}

impl RedisServer {
    /// Starts it, or returns `Ok(None)` when `redis-server` is missing and real tests are not required.
    pub async fn start(test: &str) -> Result<Option<RedisServer>> {
        let Some(program) = require_program(test, "redis-server", &[]) else {
            return Ok(None);
        };
        let dir = temp_dir("redis")?;
        let port = free_port();
        let child = Command::new(program)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error("redis-server", e))?;
        let server = RedisServer {
            _child: child,
            dir,
            port,
        };
        poll_until("start", "redis-server", START_DEADLINE, POLL, || async move {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
                return Ok(Err("not listening".to_string()));
            };
            let mut reply = [0u8; 7];
            let ping = async {
                s.write_all(b"PING\r\n").await?;
                tokio::io::AsyncReadExt::read_exact(&mut s, &mut reply).await
            };
            Ok(match ping.await {
                Ok(_) if &reply == b"+PONG\r\n" => Ok(()),
                other => Err(format!("{other:?} {:?}", String::from_utf8_lossy(&reply))),
            })
        })
        .await?;
        Ok(Some(server))
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
