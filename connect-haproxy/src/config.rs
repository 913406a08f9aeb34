//! The runbook's HAProxy configuration, rendered from typed settings and validated with `haproxy -c` before
//! it is installed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_core::{Error, ErrorKind, Result};

pub use crate::access::SocketAccess;
use crate::command::validate_name;
use crate::files::write_atomic;

/// A server of the backend (one color).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The server's name (`app1` for blue, `app2` for green).
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// Starts in maintenance (`disabled`) until the runtime API or the server-state-file says otherwise.
    pub disabled: bool,
    /// The runbook's way of marking the idle color: `backup` takes traffic only when no other server is up.
    pub backup: bool,
}

impl ServerSpec {
    /// An enabled, non-backup server.
    pub fn new(name: &str, address: SocketAddr) -> ServerSpec {
        ServerSpec {
            name: name.to_string(),
            address,
            disabled: false,
            backup: false,
        }
    }
}

/// HTTPS termination: the runbook's port 443 with a certificate, and HTTP redirected to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Https {
    /// Where HTTPS listens.
    pub bind: SocketAddr,
    /// PEM with the certificate and its key.
    pub certificate: PathBuf,
}

/// The runbook's topology as settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Where HTTP listens.
    pub http_bind: SocketAddr,
    /// HTTPS, with HTTP redirected to it, when given.
    pub https: Option<Https>,
    /// The backend's name (`be_app`).
    pub backend: String,
    /// The blue and green servers.
    pub servers: Vec<ServerSpec>,
    /// The health endpoint the checks request (`/api/health`).
    pub health_path: String,
    /// Time between health checks (the runbook's 2 s).
    pub check_interval: Duration,
    /// The admin socket (`stats socket … level admin`).
    pub admin_socket: PathBuf,
    /// Who may use the admin socket: its mode, owner and group. The default (mode 600, HAProxy's own user)
    /// needs root or HAProxy's user; [`SocketAccess::group`] lets a non-root deploy user in that group in.
    pub admin_socket_access: SocketAccess,
    /// The server-state-file the runtime state is saved to and reloaded from; `None` for the runbook's
    /// config-only way.
    pub state_file: Option<PathBuf>,
    /// Weight of every server (percent weights are relative to it).
    pub weight: u32,
    /// How long an old worker may finish its connections after a reload before it is stopped.
    pub hard_stop_after: Duration,
    /// A read-only socket for monitoring (`level user`): `show stat` works, changes are refused.
    pub monitor_socket: Option<PathBuf>,
    /// The maintenance page, switched on at runtime through its map (`Haproxy::with_maintenance_map`).
    pub maintenance: Option<MaintenancePage>,
    /// Where HAProxy's built-in Prometheus exporter serves `/metrics` (its own frontend; Debian's HAProxy is
    /// built with it, `haproxy -vv` lists `prometheus-exporter`): per-server counters and timings beside
    /// `connect-ops exporter`'s figures. It needs no login: bind it to loopback or a private interface.
    pub prometheus: Option<SocketAddr>,
}

/// A page HAProxy answers itself, with `503` and `Retry-After`, to every request while the `maintenance` key
/// of `map` is `on`: `http-request return` guarded by a map lookup, so the runtime API's `set map` turns it
/// on and off at once, without a reload, and the map file (rewritten after each change) keeps it across one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePage {
    /// The map file (`maintenance off` or `maintenance on`); it must exist when HAProxy starts.
    pub map: PathBuf,
    /// The page's body (HTML), read by HAProxy when it starts.
    pub page: PathBuf,
    /// What `Retry-After` tells clients.
    pub retry_after: Duration,
}

impl MaintenancePage {
    /// The map's text with the page off, for writing the map file before HAProxy starts.
    pub const MAP_OFF: &'static str = "maintenance off\n";
}

impl ProxyConfig {
    /// The runbook's layout: `be_app` with `app1` (blue) and `app2` (green), checks of `/api/health` every
    /// 2 s, weight 100.
    pub fn runbook(
        http_bind: SocketAddr,
        blue: SocketAddr,
        green: SocketAddr,
        admin_socket: &Path,
        state_file: &Path,
    ) -> ProxyConfig {
        ProxyConfig {
            http_bind,
            https: None,
            backend: "be_app".into(),
            servers: vec![ServerSpec::new("app1", blue), ServerSpec::new("app2", green)],
            health_path: "/api/health".into(),
            check_interval: Duration::from_secs(2),
            admin_socket: admin_socket.to_path_buf(),
            admin_socket_access: SocketAccess::default(),
            state_file: Some(state_file.to_path_buf()),
            weight: 100,
            hard_stop_after: Duration::from_secs(30),
            monitor_socket: None,
            maintenance: None,
            prometheus: None,
        }
    }

    /// The configuration text. Refuses settings that would break it (names, paths with spaces or quotes,
    /// a health path that is not a path, no server) or open the admin socket to every local user.
    pub fn render(&self) -> Result<String> {
        const OP: &str = "haproxy.render_config";
        validate_name("backend", &self.backend)?;
        if self.servers.is_empty() {
            return Err(Error::invalid(OP, &self.backend, "the backend has no server"));
        }
        for s in &self.servers {
            validate_name("server", &s.name)?;
        }
        let path_ok = |p: &Path| {
            let s = p.to_string_lossy();
            !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || "\"'#\\".contains(c))
        };
        let mut paths = vec![self.admin_socket.as_path()];
        paths.extend(self.monitor_socket.as_deref());
        paths.extend(self.state_file.as_deref());
        paths.extend(self.https.as_ref().map(|h| h.certificate.as_path()));
        if let Some(m) = &self.maintenance {
            paths.extend([m.map.as_path(), m.page.as_path()]);
        }
        if let Some(bad) = paths.iter().find(|p| !path_ok(p)) {
            return Err(Error::invalid(
                OP,
                bad.display().to_string(),
                "paths in the config must not contain spaces, quotes, `#` or `\\`",
            ));
        }
        if !self.health_path.starts_with('/')
            || self
                .health_path
                .contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid(
                OP,
                &self.health_path,
                "the health path must start with `/` and have no spaces",
            ));
        }
        if self.weight > 256 || self.check_interval.is_zero() {
            return Err(Error::invalid(
                OP,
                &self.backend,
                "weight must be 0 to 256 and the check interval above zero",
            ));
        }
        let access = self.admin_socket_access.options()?;
        let mut c = String::new();
        let _ = writeln!(
            c,
            "# Rendered by connect-haproxy; change the settings, not this file."
        );
        let _ = writeln!(c, "global");
        // The runtime API has no login: the socket file's owner, group and mode are its access control.
        let _ = writeln!(
            c,
            "    stats socket {} {access} level admin",
            self.admin_socket.display()
        );
        if let Some(monitor) = &self.monitor_socket {
            let _ = writeln!(c, "    stats socket {} mode 600 level user", monitor.display());
        }
        let _ = writeln!(c, "    master-worker");
        // `idle-close-on-response` keeps an old worker's idle keep-alive connections until their next
        // request, answered with `Connection: close`, instead of closing them under clients that are about
        // to send; this bounds how long such a worker may wait for that request.
        let _ = writeln!(
            c,
            "    hard-stop-after {}ms",
            self.hard_stop_after.as_millis().max(1)
        );
        if let Some(state) = &self.state_file {
            let _ = writeln!(c, "    server-state-file {}", state.display());
        }
        let _ = writeln!(c, "\ndefaults");
        let _ = writeln!(c, "    mode http");
        let _ = writeln!(c, "    option http-keep-alive");
        let _ = writeln!(c, "    option idle-close-on-response");
        let _ = writeln!(c, "    timeout connect 5s");
        // A server gone between two checks (its host lost, its container killed) refuses the connection:
        // HAProxy retries it and sends the last retry to another live server of the backend, so the request
        // is answered while the checks notice. Only connection failures are retried: nothing was sent yet.
        let _ = writeln!(c, "    retries 3");
        let _ = writeln!(c, "    option redispatch");
        let _ = writeln!(c, "    timeout client 30s");
        let _ = writeln!(c, "    timeout server 30s");
        let _ = writeln!(c, "    timeout http-keep-alive 30s");
        if self.state_file.is_some() {
            let _ = writeln!(c, "    load-server-state-from-file global");
        }
        let _ = writeln!(c, "\nfrontend fe_http");
        let _ = writeln!(c, "    bind {}", self.http_bind);
        // The maintenance page goes in the frontend that serves: before any backend is chosen, it answers
        // every request while the map says so.
        let maintenance = self.maintenance.as_ref().map(|m| {
            format!(
                "    http-request return status 503 content-type \"text/html; charset=utf-8\" file {} hdr \
                 Retry-After {} if {{ str(maintenance),map({},off) -m str on }}\n",
                m.page.display(),
                m.retry_after.as_secs().max(1),
                m.map.display()
            )
        });
        let maintenance = maintenance.unwrap_or_default();
        match &self.https {
            Some(https) => {
                let _ = writeln!(c, "    http-request redirect scheme https code 301");
                let _ = writeln!(c, "\nfrontend fe_https");
                let _ = writeln!(
                    c,
                    "    bind {} ssl crt {}",
                    https.bind,
                    https.certificate.display()
                );
                c.push_str(&maintenance);
                let _ = writeln!(c, "    default_backend {}", self.backend);
            }
            None => {
                c.push_str(&maintenance);
                let _ = writeln!(c, "    default_backend {}", self.backend);
            }
        }
        if let Some(bind) = self.prometheus {
            let _ = writeln!(c, "\nfrontend fe_prometheus");
            let _ = writeln!(c, "    bind {bind}");
            let _ = writeln!(
                c,
                "    http-request use-service prometheus-exporter if {{ path /metrics }}"
            );
            let _ = writeln!(c, "    http-request return status 404");
        }
        let _ = writeln!(c, "\nbackend {}", self.backend);
        let _ = writeln!(c, "    balance roundrobin");
        let _ = writeln!(c, "    option httpchk GET {}", self.health_path);
        let _ = writeln!(c, "    http-check expect status 200");
        let inter = self.check_interval.as_millis().max(1);
        for s in &self.servers {
            let _ = write!(
                c,
                "    server {} {} check inter {inter}ms weight {}",
                s.name, s.address, self.weight
            );
            if s.backup {
                let _ = write!(c, " backup");
            }
            if s.disabled {
                let _ = write!(c, " disabled");
            }
            let _ = writeln!(c);
        }
        Ok(c)
    }
}

/// Validates a configuration with `haproxy -c -f` and installs it only if HAProxy accepts it.
#[derive(Debug, Clone)]
pub struct ConfigInstaller {
    /// The haproxy program (`/usr/sbin/haproxy`).
    pub program: PathBuf,
    /// Where the configuration lives (`/etc/haproxy/haproxy.cfg`).
    pub path: PathBuf,
}

impl ConfigInstaller {
    /// An installer of `path` checked with `program`.
    pub fn new(program: impl Into<PathBuf>, path: impl Into<PathBuf>) -> ConfigInstaller {
        ConfigInstaller {
            program: program.into(),
            path: path.into(),
        }
    }

    /// Runs `haproxy -c -f` on the text (written next to the target under another name). An invalid config
    /// is [`ErrorKind::InvalidInput`] carrying HAProxy's `[ALERT]` lines.
    pub async fn validate(&self, text: &str) -> Result<()> {
        let candidate = self.candidate_path();
        write_atomic(&candidate, text.as_bytes()).await?;
        let result = self.check_file(&candidate).await;
        let _ = tokio::fs::remove_file(&candidate).await;
        result
    }

    /// Validates, then atomically replaces the installed config. An invalid config is never installed: the
    /// file in place stays as it was.
    pub async fn install(&self, text: &str) -> Result<()> {
        let candidate = self.candidate_path();
        write_atomic(&candidate, text.as_bytes()).await?;
        if let Err(e) = self.check_file(&candidate).await {
            let _ = tokio::fs::remove_file(&candidate).await;
            return Err(e);
        }
        tokio::fs::rename(&candidate, &self.path).await.map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "haproxy.install_config",
                self.path.display().to_string(),
                e.to_string(),
            )
            .with_source(e)
        })
    }

    fn candidate_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".candidate-{}", std::process::id()));
        PathBuf::from(p)
    }

    async fn check_file(&self, file: &Path) -> Result<()> {
        let out = tokio::process::Command::new(&self.program)
            .arg("-c")
            .arg("-f")
            .arg(file)
            .output()
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::NotFound,
                    "haproxy.validate_config",
                    self.program.display().to_string(),
                    e.to_string(),
                )
                .with_hint("install haproxy (`apt-get install haproxy`) or give its path")
            })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let alerts: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| l.contains("[ALERT]"))
            .collect();
        let words = if alerts.is_empty() {
            stderr.trim().to_string()
        } else {
            alerts.join("\n")
        };
        Err(Error::invalid(
            "haproxy.validate_config",
            self.path.display().to_string(),
            format!("haproxy -c refused the configuration: {words}"),
        )
        .with_hint("the installed configuration was left unchanged"))
    }
}
