//! Spawning and stopping test servers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use connect_core::testing::{Signal, send_signal};
use connect_core::{Error, ErrorKind, Result};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// PostgreSQL 15's programs (Debian's layout), or `PG_BIN_DIR`.
pub fn pg_bin(program: &str) -> PathBuf {
    let dir = std::env::var("PG_BIN_DIR").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    Path::new(&dir).join(program)
}

/// Whether this process runs as root (then PostgreSQL must run as `postgres`).
pub(crate) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user, from /etc/passwd.
pub(crate) fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Gives a directory (recursively) to the `postgres` user when we are root.
pub(crate) fn give_to_postgres(path: &Path) -> Result<()> {
    if !running_as_root() {
        return Ok(());
    }
    let (uid, gid) = postgres_ids().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "testing",
            "postgres",
            "no postgres user (install postgresql)",
        )
    })?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| io("testing.chown", path, e))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| io("testing.chown", path, e))? {
            let entry = entry.map_err(|e| io("testing.chown", path, e))?;
            give_to_postgres(&entry.path())?;
        }
    }
    Ok(())
}

/// initdb under `root` (given to `postgres` when we are root, as the server runs as that user): superuser
/// `postgres` with [`super::PG_PASSWORD`], UTF-8, `auth` as initdb's authentication options. Returns the
/// data directory, `root/data`.
pub(crate) fn initdb(root: &Path, auth: &[&str]) -> Result<PathBuf> {
    let pwfile = root.join("pw");
    std::fs::write(&pwfile, super::PG_PASSWORD).map_err(|e| io("testing.postgres", &pwfile, e))?;
    give_to_postgres(root)?;
    let data = root.join("data");
    let mut initdb = Command::new("setpriv");
    if running_as_root() {
        initdb.args(["--reuid", "postgres", "--regid", "postgres", "--init-groups"]);
    }
    let out = initdb
        .arg(pg_bin("initdb"))
        .args(["-U", "postgres"])
        .args(auth)
        .args(["-E", "UTF8", "--locale=C.UTF-8"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .arg("-D")
        .arg(&data)
        .output()
        .map_err(|e| io("testing.initdb", &data, e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Failed,
            "testing.initdb",
            data.display().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ));
    }
    Ok(data)
}

pub(crate) fn io(op: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Failed, op, path.display().to_string(), e.to_string())
}

/// Spawns from one thread that lives as long as the test binary: `PR_SET_PDEATHSIG` fires when the spawning
/// *thread* ends, and test threads end after each test.
fn spawn_from_keeper(cmd: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("connect-db-test-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the test spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))?
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread gone"))?
}

/// A server process that is stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    /// Where its output goes.
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `argv` with output to `log`; `as_postgres` switches to the `postgres` user when we are root.
    pub fn start(
        name: &str,
        argv: &[String],
        log: &Path,
        as_postgres: bool,
        death_signal: &str,
    ) -> Result<ServerProcess> {
        let mut cmd = Command::new("setpriv");
        if as_postgres && running_as_root() {
            cmd.args(["--reuid", "postgres", "--regid", "postgres", "--init-groups"]);
        }
        cmd.args(["--pdeathsig", death_signal]).args(argv);
        let out = std::fs::File::create(log).map_err(|e| io("testing.start", log, e))?;
        let err = out.try_clone().map_err(|e| io("testing.start", log, e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = spawn_from_keeper(cmd).map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "testing.start",
                name,
                format!("{}: {e}", argv.join(" ")),
            )
        })?;
        Ok(ServerProcess {
            name: name.into(),
            child: Some(child),
            log: log.into(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, waiting up to `grace` before SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        self.stop_with("TERM", grace);
    }

    /// `sig` (`TERM`, `INT`…), waiting up to `grace` before SIGKILL.
    pub fn stop_with(&mut self, sig: &str, grace: Duration) {
        let Some(mut c) = self.child.take() else { return };
        signal(c.id(), sig);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Sends the signal named `sig` (`TERM`, `KILL`…), ignoring a process already gone.
pub(crate) fn signal(pid: u32, sig: &str) {
    if let Ok(sig) = format!("SIG{sig}").parse::<Signal>() {
        let _ = send_signal(pid, sig);
    }
}

/// Whether a process exists (and is not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| !s.contains("State:\tZ"))
}

/// Waits (30 s at most, polling every 50 ms: PostgreSQL has no event to wait on) until the server behind
/// `login` accepts connections.
pub(crate) async fn accepting(login: crate::PgTarget) -> Result<()> {
    let probe = crate::Postgres::new(login);
    connect_core::wait::poll_until(
        "testing.postgres",
        "ready",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let probe = probe.clone();
            async move {
                Ok(match probe.readiness().await {
                    crate::Readiness::Accepting => Ok(()),
                    r => Err(format!("{r:?}")),
                })
            }
        },
    )
    .await
}
