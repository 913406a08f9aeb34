//! A second Docker daemon: its own socket, data root, exec root and containerd, in its own network namespace,
//! with no bridge and no iptables, so it touches nothing of the first. The destination of image transfers in
//! tests and the benchmark.
//!
//! The network namespace matters: a dockerd started with `--bridge none` deletes the interface `docker0` on
//! startup, which in the shared namespace would cut the first daemon's containers off their bridge.
//! [`SecondDaemon::start_node`] keeps a bridge (its own `docker0`, in its own namespace) for Swarm nodes,
//! whose tasks publish ports (see `swarm.rs`).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use connect_core::testing::{Signal, send_signal};
use connect_core::{Error, ErrorKind, Result};

use crate::Docker;

/// A running second `dockerd`, stopped (SIGTERM, then SIGKILL) and its directory removed on drop.
#[derive(Debug)]
pub struct SecondDaemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl SecondDaemon {
    /// Starts `dockerd` and waits until its API answers; `None` (with a loud SKIP) when `dockerd` is missing
    /// and real tests are not required.
    pub async fn start(test: &str) -> Option<SecondDaemon> {
        let dockerd = connect_core::testing::require_program(
            test,
            "dockerd",
            &["/usr/sbin/dockerd", "/usr/bin/dockerd"],
        )?;
        match SecondDaemon::spawn(&dockerd, false).await {
            Ok(d) => Some(d),
            Err(e) => panic!("{test}: cannot start a second dockerd: {e}"),
        }
    }

    /// Like [`SecondDaemon::start`], but the daemon keeps its default bridge (`docker0`, private to its network
    /// namespace) so containers and Swarm tasks can publish ports: a Swarm node. Panics when it cannot start.
    pub async fn start_node(test: &str) -> Option<SecondDaemon> {
        let dockerd = connect_core::testing::require_program(
            test,
            "dockerd",
            &["/usr/sbin/dockerd", "/usr/bin/dockerd"],
        )?;
        match SecondDaemon::spawn(&dockerd, true).await {
            Ok(d) => Some(d),
            Err(e) => panic!("{test}: cannot start a Swarm node's dockerd: {e}"),
        }
    }

    async fn spawn(dockerd: &std::path::Path, bridge: bool) -> Result<SecondDaemon> {
        let fail = |m: String| {
            Error::new(
                ErrorKind::Failed,
                "testing.dockerd",
                dockerd.display().to_string(),
                m,
            )
        };
        // Short path: the containerd socket inside the exec root must fit a unix socket name.
        let dir = tempfile::Builder::new()
            .prefix("cd2-")
            .tempdir_in("/tmp")
            .map_err(|e| fail(e.to_string()))?;
        let socket = dir.path().join("docker.sock");
        let config = dir.path().join("daemon.json");
        // The machine's /etc/docker/daemon.json would clash with our flags; ours keeps its storage driver.
        let driver = std::fs::read_to_string("/etc/docker/daemon.json")
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("storage-driver").and_then(|d| d.as_str()).map(String::from));
        let mut cfg = serde_json::json!({});
        if let Some(d) = driver {
            cfg["storage-driver"] = serde_json::Value::String(d);
        }
        std::fs::write(&config, cfg.to_string()).map_err(|e| fail(e.to_string()))?;
        let log = std::fs::File::create(dir.path().join("dockerd.log")).map_err(|e| fail(e.to_string()))?;
        let log2 = log.try_clone().map_err(|e| fail(e.to_string()))?;
        let unshare =
            connect_core::testing::require_program("second dockerd", "unshare", &["/usr/bin/unshare"])
                .ok_or_else(|| {
                    fail("unshare (util-linux) is needed to give the second daemon its own network".into())
                })?;
        let child = std::process::Command::new(unshare)
            .arg("--net")
            .arg("--")
            .arg(dockerd)
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(if bridge {
                &[][..]
            } else {
                &["--bridge", "none"][..]
            })
            .args(["--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let mut daemon = SecondDaemon {
            child: Some(child),
            dir,
            socket,
        };
        let sock = daemon.socket.display().to_string();
        let ready = connect_core::wait::poll_until(
            "testing.dockerd",
            &sock,
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                let exited = daemon.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                let sock = sock.clone();
                async move {
                    if let Some(status) = exited {
                        return Err(Error::new(
                            ErrorKind::Failed,
                            "testing.dockerd",
                            &sock,
                            format!("dockerd exited: {status}"),
                        ));
                    }
                    if !std::path::Path::new(&sock).exists() {
                        return Ok(Err("no socket yet".to_string()));
                    }
                    Ok(Docker::connect_socket(&sock)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()))
                }
            },
        )
        .await;
        if let Err(e) = ready {
            let log = std::fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(fail(format!(
                "{e}; log: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        Ok(daemon)
    }

    /// The daemon's process id (`unshare` execs `dockerd`): its network namespace is `/proc/<pid>/ns/net`.
    /// `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's network namespace (its own: `unshare --net`), `None` once stopped.
    pub fn netns(&self) -> Option<connect_core::testing::NetNs> {
        self.pid().map(connect_core::testing::NetNs::of_pid)
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 20 s), as `systemctl stop docker` would; its containers
    /// stop with it. Its directory stays until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets dockerd stop its containerd and unmount its layers; SIGKILL would leave both.
            let _ = send_signal(child.id(), Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::park_timeout(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// The daemon's socket path.
    pub fn socket(&self) -> String {
        self.socket.display().to_string()
    }

    /// A client for it.
    pub async fn docker(&self) -> Result<Docker> {
        Docker::connect_socket(&self.socket()).await
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}
