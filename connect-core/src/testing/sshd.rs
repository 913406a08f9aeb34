//! Debian's OpenSSH server on 127.0.0.1 for tests: its own temp dir, free port, host key, authorized_keys
//! and config; stopped on drop.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A running `sshd -D -e -f <own config>`.
#[derive(Debug)]
pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    /// The running daemon; replaced by [`Sshd::restart`], hence behind a lock (a harness shares its
    /// servers by reference).
    child: Mutex<Child>,
    /// What runs sshd ([`Sshd::start_via`]; empty: sshd itself), kept to run it again the same way.
    wrapper: Vec<OsString>,
    sshd: PathBuf,
    user: String,
}

fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", "connect-ops-test", "-f"])
        .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd.output().expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen failed: {out:?}");
}

impl Sshd {
    /// Starts sshd with `MaxSessions` as OpenSSH ships it (10). `None` (with a loud SKIP) when sshd is not
    /// installed and real tests are not required.
    pub async fn start(test: &str) -> Option<Sshd> {
        Sshd::start_with(test, "").await
    }

    /// Starts sshd with extra config lines.
    pub async fn start_with(test: &str, extra_config: &str) -> Option<Sshd> {
        Sshd::start_with_host_keys(test, &["ed25519"], extra_config).await
    }

    /// Starts sshd with a host key of each of `kinds` (`ed25519`, `ecdsa`, `rsa`; the first must be
    /// `ed25519`, which [`Sshd::known_hosts`] lists) and extra config lines, e.g. `HostKeyAlgorithms` to
    /// make it present one of them only.
    pub async fn start_with_host_keys(test: &str, kinds: &[&str], extra_config: &str) -> Option<Sshd> {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], super::free_port()));
        Sshd::start_inner(test, kinds, extra_config, &[], listen).await
    }

    /// Starts sshd run by `wrapper` (an argv prefix such as [`super::NetNs::command_prefix`], which must
    /// exec sshd), listening on `listen`: an app host's sshd in a network namespace of the test's, on the
    /// host's own address. [`Sshd::port`] is `listen`'s port; a client reaches it through a
    /// [`super::TcpProxy`] into that namespace.
    pub async fn start_via(
        test: &str,
        wrapper: &[std::ffi::OsString],
        listen: std::net::SocketAddr,
        extra_config: &str,
    ) -> Option<Sshd> {
        Sshd::start_inner(test, &["ed25519"], extra_config, wrapper, listen).await
    }

    async fn start_inner(
        test: &str,
        kinds: &[&str],
        extra_config: &str,
        wrapper: &[std::ffi::OsString],
        listen: std::net::SocketAddr,
    ) -> Option<Sshd> {
        assert_eq!(
            kinds.first(),
            Some(&"ed25519"),
            "known_hosts() lists the ed25519 host key"
        );
        let sshd = super::require_program(test, "sshd", &["/usr/sbin/sshd"])?;
        super::require_program(test, "ssh-keygen", &["/usr/bin/ssh-keygen"])?;
        let dir = tempfile::Builder::new()
            .prefix("connect-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let mut host_keys = String::new();
        for kind in kinds {
            keygen(&d.join(format!("host_{kind}")), kind, "");
            host_keys.push_str(&format!("HostKey {}/host_{kind}\n", d.display()));
        }
        keygen(&d.join("client_ed25519"), "ed25519", "");
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys")).expect("authorized_keys");
        // sshd reads authorized_keys as the user logging in: let any local user reach it (private keys
        // stay 0600).
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(d.to_path_buf(), 0o755), (d.join("authorized_keys"), 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let port = listen.port();
        let user = current_user();
        let config = format!(
            "Port {port}\nListenAddress {address}\n{host_keys}PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\nLogLevel VERBOSE\nMaxStartups 100\n{extra_config}\n",
            d = d.display(),
            address = listen.ip(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("write sshd_config");
        let child = spawn(&sshd, wrapper, d);
        let server = Sshd {
            dir,
            port,
            child: Mutex::new(child),
            wrapper: wrapper.to_vec(),
            sshd,
            user,
        };
        if let Err(e) = server.until_listening(0).await {
            panic!("sshd did not start: {e}");
        }
        Some(server)
    }

    /// Stops sshd, as a host going away would, keeping its directory (config, host keys, authorized_keys,
    /// log) for [`Sshd::restart`]. The connections it serves end when their clients' do: cut them too (a
    /// [`super::TcpProxy`]) for a host that is gone.
    pub fn stop(&self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts sshd again after [`Sshd::stop`] (a host coming back): the same config, address, port and host
    /// keys, so a client's known_hosts still matches and it reconnects as to the host it knew. Its log goes
    /// on in the same file. A no-op while sshd runs.
    pub async fn restart(&self) -> Result<(), String> {
        let listening = {
            let mut child = self.child();
            if child.try_wait().map_err(|e| e.to_string())?.is_none() {
                return Ok(());
            }
            let listening = self.listening_lines();
            *child = spawn(&self.sshd, &self.wrapper, self.dir());
            listening
        };
        self.until_listening(listening).await
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many times sshd said it listens, in its log (once per start).
    fn listening_lines(&self) -> usize {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .matches("Server listening on")
            .count()
    }

    /// Waits until the log says sshd listens, `before` times having been said by the runs before this one.
    async fn until_listening(&self, before: usize) -> Result<(), String> {
        crate::wait::poll_until(
            "sshd.start",
            "127.0.0.1",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let started = self.listening_lines() > before;
                let exited = self.child().try_wait().ok().flatten();
                async move {
                    if started {
                        Ok(Ok(()))
                    } else if let Some(status) = exited {
                        Ok(Err(format!("sshd exited ({status})")))
                    } else {
                        Ok(Err("not listening yet".to_string()))
                    }
                }
            },
        )
        .await
        .map_err(|e| {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            format!("{e}: {log}")
        })
    }

    /// sshd's process id (`-D`: the daemon itself, the one its pid file names).
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// Sends sshd SIGHUP, after which it re-reads its config (the pid stays), and waits until a new
    /// connection logs in again. Panics when it does not within 10 s: the test's server is gone.
    #[cfg(feature = "ssh")]
    pub async fn reload(&self) {
        super::send_signal(self.pid(), super::Signal::SIGHUP).expect("SIGHUP to sshd");
        crate::wait::poll_until(
            "sshd.reload",
            "127.0.0.1",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                Ok(match crate::ssh::SshHost::connect(self.config()).await {
                    Ok(h) => {
                        h.close().await;
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                })
            },
        )
        .await
        .expect("sshd accepts connections after SIGHUP");
    }

    /// sshd's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user the tests log in as (whoever runs them).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server's temp dir (config, keys, log); tests may use it as scratch space.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The authorized client key (ed25519, no passphrase).
    pub fn client_key(&self) -> PathBuf {
        self.dir().join("client_ed25519")
    }

    /// The server's public host key line (`ssh-ed25519 AAAA... comment`).
    pub fn host_key_line(&self) -> String {
        self.host_key_line_of("ed25519")
    }

    /// The public line of the server's host key of this kind (see [`Sshd::start_with_host_keys`]).
    pub fn host_key_line_of(&self, kind: &str) -> String {
        std::fs::read_to_string(self.dir().join(format!("host_{kind}.pub")))
            .expect("host key")
            .trim()
            .to_string()
    }

    /// A known_hosts file that lists this server (written on first call).
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir().join("known_hosts");
        if !path.exists() {
            let line = format!("[127.0.0.1]:{} {}\n", self.port, self.host_key_line());
            std::fs::write(&path, line).expect("write known_hosts");
        }
        path
    }

    /// A known_hosts file that lists this server as reached on another port of 127.0.0.1 (through a
    /// [`super::TcpProxy`]), where a client sees it as `[127.0.0.1]:<port>`.
    pub fn known_hosts_via(&self, port: u16) -> PathBuf {
        let path = self.dir().join(format!("known_hosts_via_{port}"));
        let line = format!("[127.0.0.1]:{port} {}\n", self.host_key_line());
        std::fs::write(&path, line).expect("write known_hosts");
        path
    }

    /// Generates a new client key (`kind`: ed25519, rsa, ecdsa) with an optional passphrase; with
    /// `authorize` it is added to authorized_keys. Returns the private key's path.
    pub fn new_client_key(&self, name: &str, kind: &str, passphrase: &str, authorize: bool) -> PathBuf {
        let path = self.dir().join(name);
        keygen(&path, kind, passphrase);
        if authorize {
            let public = std::fs::read_to_string(path.with_extension("pub"))
                .or_else(|_| std::fs::read_to_string(format!("{}.pub", path.display())))
                .expect("public key");
            let mut keys =
                std::fs::read_to_string(self.dir().join("authorized_keys")).expect("authorized_keys");
            keys.push_str(&public);
            std::fs::write(self.dir().join("authorized_keys"), keys).expect("authorized_keys");
        }
        path
    }

    /// The sshd log (`-e`, LogLevel VERBOSE).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("sshd.log")
    }

    /// TCP connections sshd accepted so far (its `Connection from` log lines).
    pub fn accepted_connections(&self) -> usize {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .matches("Connection from ")
            .count()
    }

    /// A client configuration for this server: its key, its known_hosts, no agent, short timeouts; no
    /// `~/.ssh/config` nor system known_hosts, so whatever the machine has cannot change a test.
    #[cfg(feature = "ssh")]
    pub fn config(&self) -> crate::ssh::SshConfig {
        crate::ssh::SshConfig::new("127.0.0.1", self.user.clone())
            .no_ssh_config()
            .global_known_hosts(None)
            .port(self.port)
            .key_file(self.client_key())
            .known_hosts(self.known_hosts())
            .no_agent()
            .connect_timeout(Duration::from_secs(5))
            .auth_timeout(Duration::from_secs(5))
    }
}

fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".to_string())
}

/// Runs sshd (through `wrapper`, when given) on the config in `dir`, its log appended to `dir/sshd.log`.
fn spawn(sshd: &Path, wrapper: &[OsString], dir: &Path) -> Child {
    // sshd running as root insists on its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sshd.log"))
        .expect("log file");
    let mut command = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(sshd);
            c
        }
        None => Command::new(sshd),
    };
    command
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn sshd")
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
