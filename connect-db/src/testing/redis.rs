//! A Redis server on 127.0.0.1, daemonized so a restore can stop and start it like a service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_core::host::Command;
use connect_core::testing::{free_port, require_program};
use connect_core::wait::poll_until;
use connect_core::{Cache, Result};

use super::process::{alive, io, signal};
use crate::Redis;

/// A Redis server in its own temp dir. It runs daemonized (pidfile), so [`TestRedis::start_command`] is what a
/// service manager would run; dropped, it is stopped.
#[derive(Debug)]
pub struct TestRedis {
    /// Its port.
    pub port: u16,
    /// Its password, when started with one.
    pub password: Option<String>,
    dir: tempfile::TempDir,
}

impl TestRedis {
    /// Starts Redis with RDB persistence only (AOF off unless `aof`). `None` after a loud SKIP when
    /// `redis-server` is missing and real tests are not required.
    pub async fn start(test: &str, password: Option<&str>, aof: bool) -> Option<TestRedis> {
        require_program(test, "redis-server", &[])?;
        require_program(test, "redis-check-rdb", &[])?;
        let dir = tempfile::Builder::new()
            .prefix("connect-db-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{test}: temp dir: {e}"));
        let r = TestRedis {
            port: free_port(),
            password: password.map(str::to_string),
            dir,
        };
        r.write_config(aof).unwrap_or_else(|e| panic!("{test}: {e}"));
        r.launch()
            .await
            .unwrap_or_else(|e| panic!("{test}: starting redis: {e}"));
        Some(r)
    }

    /// Its directory (where `dump.rdb` lives).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("redis.conf")
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("redis.pid")
    }

    fn write_config(&self, aof: bool) -> Result<()> {
        let d = self.dir.path().display();
        let mut conf = format!(
            "bind 127.0.0.1\nport {}\ndir {d}\ndbfilename dump.rdb\ndaemonize yes\npidfile {}\nlogfile {d}/redis.log\n\
             save \"\"\nappendonly {}\n",
            self.port,
            self.pidfile().display(),
            if aof { "yes" } else { "no" }
        );
        if let Some(p) = &self.password {
            conf.push_str(&format!("requirepass {p}\n"));
        }
        std::fs::write(self.conf(), conf).map_err(|e| io("testing.redis", &self.conf(), e))
    }

    /// The command that starts it (daemonized): what [`Redis::restore`] runs after placing the file.
    pub fn start_command(&self) -> Command {
        Command::new(["redis-server".to_string(), self.conf().display().to_string()])
    }

    async fn launch(&self) -> Result<()> {
        let status = std::process::Command::new("redis-server")
            .arg(self.conf())
            .status()
            .map_err(|e| io("testing.redis", &self.conf(), e))?;
        if !status.success() {
            return Err(connect_core::Error::new(
                connect_core::ErrorKind::Failed,
                "testing.redis",
                "redis-server",
                format!("exited {status}"),
            ));
        }
        let client = self.client();
        poll_until(
            "testing.redis",
            "ping",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || async { Ok(client.ping().await.map_err(|e| e.to_string())) },
        )
        .await
    }

    /// A client with the right password.
    pub fn client(&self) -> Redis {
        Redis::new("127.0.0.1", self.port, self.password.as_deref()).expect("valid test address")
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pidfile()).ok()?.trim().parse().ok()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "KILL");
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while alive(pid) && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
