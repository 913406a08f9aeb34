//! What a color's container needs beyond [`ContainerSpec`]: network, restart policy, limits, secrets, and how
//! its health check probes the health path.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use connect_core::runtime::ContainerSpec;
use connect_core::{Error, ErrorKind, Result};

/// Environment variables that must never reach a log: read from an env file, passed to the container only.
///
/// `Debug` shows the names, never the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl Secrets {
    /// Parses an env file (`KEY=value` lines; `#` comments, blank lines and `export ` prefixes allowed; one
    /// level of matching quotes around the value is removed). Errors name the line, never its value.
    pub fn parse(source: &str, text: &str) -> Result<Secrets> {
        let mut vars = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(Error::invalid(
                    "secrets.parse",
                    source,
                    format!("line {} is not KEY=value", n + 1),
                ));
            };
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(Error::invalid(
                    "secrets.parse",
                    source,
                    format!("line {}: the name must be letters, digits and _", n + 1),
                ));
            }
            let value = value.trim();
            let value = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            vars.insert(key.to_string(), value.to_string());
        }
        Ok(Secrets(vars))
    }

    /// Reads and parses a local env file.
    pub fn from_env_file(path: &Path) -> Result<Secrets> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::PermissionDenied
            };
            Error::new(kind, "secrets.read", &source, e.to_string()).with_source(e)
        })?;
        Secrets::parse(&source, &text)
    }

    /// The variables' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

/// What Docker does when the container exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Never restart.
    No,
    /// Restart unless it was stopped on purpose (the compose files' usual choice).
    #[default]
    UnlessStopped,
    /// Restart after a non-zero exit, at most this many times.
    OnFailure(u32),
    /// Always restart.
    Always,
}

/// How the container's health check probes `http://127.0.0.1:<container port><health path>`.
///
/// Each argument may contain `{url}`, replaced by that address. Docker runs it inside the container, so it
/// must exist in the image (`curl` does in the app's image; the tests' `FROM scratch` image has its own).
/// An empty command turns the container's check off (also an image's own `HEALTHCHECK`), for an image with
/// no HTTP client: Docker then reports no health, and the app is judged from the host: the engine's probe of
/// the health path and HAProxy's check, which must see the color live before the switch moves traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthProbe {
    /// The probe's argv, with `{url}`.
    pub command: Vec<String>,
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Failures in a row before the container is unhealthy.
    pub retries: u32,
    /// Time after start during which failures do not count.
    pub start_period: Duration,
}

impl Default for HealthProbe {
    fn default() -> Self {
        HealthProbe {
            command: ["curl", "-fsS", "--max-time", "2", "{url}"]
                .map(String::from)
                .to_vec(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
            retries: 3,
            start_period: Duration::from_secs(0),
        }
    }
}

/// Everything about a color's container that [`ContainerSpec`] leaves to the runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotOptions {
    /// The network to join (`connect_default` for a compose project called `connect`); the default bridge when
    /// `None`. With [`HOST_NETWORK`] the container shares the server's network: nothing is published, and the
    /// app is told its color's host port through `PORT` (both colors cannot listen on one port there).
    pub network: Option<String>,
    /// The restart policy.
    pub restart: Restart,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// CPU limit in CPUs (1.5 = one and a half).
    pub cpus: Option<f64>,
    /// Variables from an env file, never logged.
    pub secrets: Secrets,
    /// The health check built from the spec's health path.
    pub health: HealthProbe,
    /// The port the app listens on inside the container, used when the spec maps no port.
    pub app_port: u16,
    /// The address host ports are bound on (`127.0.0.1`: only HAProxy on the same host reaches the app).
    pub bind_address: String,
    /// Run Docker's init as PID 1, so SIGTERM reaches the app and a stop is graceful instead of waiting for
    /// the kill.
    pub init: bool,
}

impl Default for SlotOptions {
    fn default() -> Self {
        SlotOptions {
            network: None,
            restart: Restart::default(),
            memory_bytes: None,
            cpus: None,
            secrets: Secrets::default(),
            health: HealthProbe::default(),
            app_port: 3000,
            bind_address: "127.0.0.1".into(),
            init: true,
        }
    }
}

/// The network mode in which a container shares the server's network stack (`docker run --network host`).
pub const HOST_NETWORK: &str = "host";

pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The container's health check: the probe's command against the health path on the port the app listens on
/// inside the container (`listen_port` when the app listens on a host port itself), or none without a health
/// path.
pub(crate) fn health_config(
    spec: &ContainerSpec,
    options: &SlotOptions,
    listen_port: Option<u16>,
) -> Option<HealthConfig> {
    spec.health_path.as_ref().map(|path| {
        let port = listen_port.unwrap_or_else(|| spec.ports.first().map_or(options.app_port, |p| p.0));
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut test = vec!["CMD".to_string()];
        test.extend(options.health.command.iter().map(|a| a.replace("{url}", &url)));
        if options.health.command.is_empty() {
            test = vec!["NONE".to_string()];
        }
        HealthConfig {
            test: Some(test),
            interval: Some(nanos(options.health.interval)),
            timeout: Some(nanos(options.health.timeout)),
            retries: Some(i64::from(options.health.retries)),
            start_period: Some(nanos(options.health.start_period)),
            start_interval: None,
        }
    })
}

/// The Engine's create body for a color's container.
pub(crate) fn create_body(spec: &ContainerSpec, options: &SlotOptions) -> ContainerCreateBody {
    let host_network = options.network.as_deref() == Some(HOST_NETWORK);
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(options.secrets.iter().map(|(k, v)| format!("{k}={v}")));
    // On the host's network a published port means nothing: the app itself listens on the color's host
    // port, which it learns from PORT (replacing an app-wide PORT).
    let host_port = spec.ports.first().map(|p| p.1).filter(|_| host_network);
    if let Some(port) = host_port {
        env.retain(|v| !v.starts_with("PORT="));
        env.push(format!("PORT={port}"));
    }
    let published = if host_network { &[][..] } else { &spec.ports[..] };
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = published
        .iter()
        .map(|(container, host)| {
            (
                format!("{container}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some(options.bind_address.clone()),
                    host_port: Some(host.to_string()),
                }]),
            )
        })
        .collect();
    let exposed: Vec<String> = published.iter().map(|(c, _)| format!("{c}/tcp")).collect();
    let healthcheck = health_config(spec, options, host_port);
    let restart = match options.restart {
        Restart::No => RestartPolicyNameEnum::NO,
        Restart::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        Restart::OnFailure(_) => RestartPolicyNameEnum::ON_FAILURE,
        Restart::Always => RestartPolicyNameEnum::ALWAYS,
    };
    let max_retries = match options.restart {
        Restart::OnFailure(n) => Some(i64::from(n)),
        _ => None,
    };
    ContainerCreateBody {
        image: Some(spec.image.to_string()),
        cmd: spec.command.clone(),
        env: Some(env),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout: Some(i64::try_from(spec.stop_grace.as_secs()).unwrap_or(i64::MAX)),
        host_config: Some(HostConfig {
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: max_retries,
            }),
            network_mode: options.network.clone(),
            memory: options.memory_bytes,
            nano_cpus: options.cpus.map(|c| (c * 1e9) as i64),
            init: Some(options.init),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_the_host_network_the_app_listens_on_its_host_port() {
        let spec = ContainerSpec {
            name: "connect_app2".into(),
            image: connect_core::model::ImageRef::parse("connect:v2").unwrap(),
            labels: Default::default(),
            env: [("PORT".to_string(), "3000".to_string())].into(),
            ports: vec![(3000, 3001)],
            command: None,
            health_path: Some("/api/health".into()),
            stop_grace: Duration::from_secs(10),
        };
        let bridged = create_body(&spec, &SlotOptions::default());
        assert!(bridged.host_config.as_ref().unwrap().port_bindings.is_some());
        assert_eq!(bridged.env.as_deref(), Some(&["PORT=3000".to_string()][..]));

        let options = SlotOptions {
            network: Some(HOST_NETWORK.into()),
            ..SlotOptions::default()
        };
        let body = create_body(&spec, &options);
        let host_config = body.host_config.unwrap();
        assert_eq!(host_config.port_bindings, None);
        assert_eq!(host_config.network_mode.as_deref(), Some("host"));
        assert_eq!(body.exposed_ports, None);
        assert_eq!(body.env.as_deref(), Some(&["PORT=3001".to_string()][..]));
        let probe = body.healthcheck.unwrap().test.unwrap();
        assert!(
            probe.iter().any(|a| a.contains("127.0.0.1:3001/api/health")),
            "{probe:?}"
        );
    }

    #[test]
    fn an_empty_probe_turns_the_container_check_off() {
        let spec = ContainerSpec {
            name: "connect_app1".into(),
            image: connect_core::model::ImageRef::parse("connect:v1").unwrap(),
            labels: Default::default(),
            env: Default::default(),
            ports: vec![(3000, 3000)],
            command: None,
            health_path: Some("/api/health".into()),
            stop_grace: Duration::from_secs(10),
        };
        let mut options = SlotOptions::default();
        let curl = create_body(&spec, &options).healthcheck.unwrap().test.unwrap();
        assert_eq!(curl[..2], ["CMD".to_string(), "curl".to_string()]);
        options.health.command.clear();
        let off = create_body(&spec, &options).healthcheck.unwrap().test.unwrap();
        assert_eq!(off, ["NONE".to_string()]);
    }

    #[test]
    fn env_file_parses_and_debug_hides_values() {
        let s = Secrets::parse(
            ".env",
            "# db\nexport DATABASE_URL=\"postgres://u:hunter2@db/connect\"\n\nJWT_SECRET='s3cr3t'\nEMPTY=\n",
        )
        .expect("parses");
        assert_eq!(
            s.names().collect::<Vec<_>>(),
            ["DATABASE_URL", "EMPTY", "JWT_SECRET"]
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t"), "{shown}");
        let err = Secrets::parse(".env", "OK=1\nPASSWORD hunter2\n").expect_err("bad line");
        assert!(
            err.to_string().contains("line 2") && !err.to_string().contains("hunter2"),
            "{err}"
        );
    }
}
