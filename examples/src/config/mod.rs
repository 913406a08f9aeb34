//! `connect.toml`: one file that says where the server and each of its parts are, how the app runs, and the
//! deploy policy; [`ConnectConfig::backends`] turns it into the [`Backends`](connect_core::engine::Backends)
//! and [`DeployConfig`](connect_core::engine::DeployConfig) a [`Deployer`](connect_core::engine::Deployer)
//! needs. The `connect-ops` command and Rust programs use the same composition.
//!
//! Every value has a default matching the runbook; unknown keys are refused; durations read as `30s`, `2m`;
//! secrets come from `${ENV_VAR}` (or the app's `env_file`), never inline. An error names the file, the line
//! and column, the key, what was expected and the fix.
//!
//! ```
//! use connect_examples::config::ConnectConfig;
//!
//! let config = ConnectConfig::parse("connect.toml", r#"
//!     [server]
//!     host = "prod-host"
//!     [app]
//!     image = "registry.local/connect"
//! "#).unwrap();
//! assert_eq!(config.server.user, None); // from ~/.ssh/config, else the local user, as `ssh` does
//! assert_eq!(config.policy.health_deadline.as_secs(), 60);
//!
//! let err = ConnectConfig::parse("connect.toml", "[server]\nhots = \"prod-host\"\n").unwrap_err();
//! assert!(err.to_string().contains("(connect.toml:2:1): unknown field `hots`"), "{err}");
//! ```

mod audit;
pub mod backup_all;
mod compose;
mod fleet;
pub mod pitr;
mod policy;
mod secret;
mod swarm;
mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_core::engine::{HookPoint, HookSite};
use connect_core::ssh::JumpHost;
use connect_core::{Error, ErrorKind, Result};
use connect_db::SslMode;
use serde::Deserialize;

pub use fleet::{AppHostConfig, FleetConfig, RolesConfig, WorkerRoleConfig};
pub use policy::{BackupPolicyConfig, CanaryConfig, OldColor, PolicyConfig, WatchConfig, WebhookConfig};
pub use secret::Secret;
pub use swarm::{SwarmConfig, SwarmNodeConfig};
pub use template::TEMPLATE;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    /// Where the journal and the deploy lock live on the server.
    #[serde(default = "defaults::state_dir")]
    pub state_dir: String,
    /// The server.
    pub server: ServerConfig,
    /// The Docker Engine on the server.
    #[serde(default)]
    pub docker: DockerConfig,
    /// HAProxy on the server.
    #[serde(default)]
    pub haproxy: HaproxyConfig,
    /// The Patroni cluster and the app's PostgreSQL login.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Redis.
    #[serde(default)]
    pub redis: RedisConfig,
    /// The app.
    pub app: AppConfig,
    /// Blue and green.
    #[serde(default)]
    pub slots: SlotsConfig,
    /// Deadlines and thresholds.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[[hooks]]`: the operator's commands at named points of each operation.
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
    /// `[[webhooks]]`: where the record of every operation is POSTed.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Where releases come from when the server lacks them.
    #[serde(default)]
    pub release: ReleaseConfig,
    /// What `connect-ops audit` judges the server's hardening against.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[[app_hosts]]`: several app servers behind `[server]`'s HAProxy; none: the app runs on `[server]`.
    #[serde(default)]
    pub app_hosts: Vec<AppHostConfig>,
    /// `[fleet]`: how many app hosts a deploy needs ready.
    #[serde(default)]
    pub fleet: FleetConfig,
    /// `[roles]`: how `role = "worker"` app hosts run the app.
    #[serde(default)]
    pub roles: RolesConfig,
    /// `[backup_all]`: the scheduled backup sets (`connect-ops backup-all`); absent, none.
    #[serde(default)]
    pub backup_all: Option<backup_all::BackupAllSection>,
    /// `[swarm]`: the app as Docker Swarm services managed through `[server]`'s engine; absent, plain
    /// containers.
    #[serde(default)]
    pub swarm: Option<SwarmConfig>,
}

/// `[audit]`: the hardening audit's reference points and how `--fix` reloads sshd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// TCP ports meant to be reached from outside (the runbook's ufw rules); a socket on any other port must
    /// listen on loopback only or be kept in by the firewall.
    #[serde(default = "defaults::public_ports")]
    pub public_ports: Vec<u16>,
    /// `connect-ops audit` exits 6 when a finding is at or above this severity.
    #[serde(default = "defaults::fail_on")]
    pub fail_on: connect_core::audit::Severity,
    /// sshd's config file on the server.
    #[serde(default = "defaults::sshd_config")]
    pub sshd_config: String,
    /// The argv that makes sshd read its config again (a SIGHUP: sessions stay open).
    #[serde(default = "defaults::sshd_reload")]
    pub sshd_reload: Vec<String>,
    /// What `--fix` sets for `PermitRootLogin yes`: `prohibit-password` (keys only) or `no`.
    #[serde(default = "defaults::permit_root_login")]
    pub permit_root_login: String,
    /// Files on the server holding secrets (an env file, certificates' keys): they must be private.
    #[serde(default)]
    pub secret_files: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        from_empty()
    }
}

/// One `[[hooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// `before_deploy`, `after_ship`, `before_switch` (these stop the deploy when they fail),
    /// `after_deploy`, `after_rollback`.
    pub point: HookPoint,
    /// The argv (`["sh", "-c", "…"]` for a shell line).
    pub command: Vec<String>,
    /// `local` (this machine) or `server`.
    #[serde(default)]
    pub site: HookSite,
    /// How long it may run.
    #[serde(default = "defaults::hook_timeout", with = "duration")]
    pub timeout: Duration,
}

/// `[release]`: where `deploy` and `ship` get a release the server does not have yet (neither set: the server
/// must have it already).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseConfig {
    /// A directory with a Dockerfile on this machine (relative to the directory `connect-ops` runs in).
    #[serde(default)]
    pub context: Option<PathBuf>,
    /// Which engine builds `context`.
    #[serde(default)]
    pub build_on: BuildOnConfig,
    /// An image on this machine, shipped as the release (instead of `context`).
    #[serde(default)]
    pub image: Option<String>,
}

/// `build_on`: which engine builds the release's context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildOnConfig {
    /// This machine's engine (`DOCKER_HOST`, else its socket), then only the missing layers are sent.
    #[default]
    Local,
    /// The server's engine, from the context sent to it.
    Server,
}

/// `[server]`: the machine the app runs on, over SSH, or `host = "local"` for this machine.
///
/// `host` may be an alias of the OpenSSH client config (`~/.ssh/config`, or `ssh_config`): its `HostName`,
/// `User`, `Port`, `IdentityFile`, `ProxyJump` and `UserKnownHostsFile` apply to whatever this section does
/// not set; what it sets wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Host name, address or ssh config alias; `local` runs everything on this machine without SSH.
    pub host: String,
    /// sshd's port; default: the ssh config's `Port`, else 22.
    #[serde(default)]
    pub port: Option<u16>,
    /// The account to log in as; default: the ssh config's `User`, else the local user (as `ssh`).
    #[serde(default)]
    pub user: Option<String>,
    /// The private key; default: the ssh config's first existing `IdentityFile`. The ssh-agent is used
    /// too when `SSH_AUTH_SOCK` is set.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The key file's passphrase, as `${ENV_VAR}`.
    #[serde(default)]
    pub passphrase: Option<Secret>,
    /// The known_hosts file the server's key must be in; default: the ssh config's `UserKnownHostsFile`,
    /// else `~/.ssh/known_hosts` (`/etc/ssh/ssh_known_hosts` is consulted too, read-only).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Jump hosts, as `ssh -J` takes them: `"[user@]host[:port]"`, several separated by commas; default:
    /// the ssh config's `ProxyJump`.
    #[serde(default, with = "jumps")]
    pub proxy_jump: Option<Vec<JumpHost>>,
    /// The OpenSSH client config to read: `true` (default) for `~/.ssh/config` when it exists, a path for
    /// another file (which must exist), `false` for none.
    #[serde(default)]
    pub ssh_config: SshConfigFile,
    /// How long connecting may take.
    #[serde(default = "defaults::connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
}

/// `[server] ssh_config`: which OpenSSH client config is read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SshConfigFile {
    /// `true`: `~/.ssh/config` if it exists; `false`: none.
    Default(bool),
    /// This file.
    Path(PathBuf),
}

impl Default for SshConfigFile {
    fn default() -> Self {
        SshConfigFile::Default(true)
    }
}

/// `[docker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// The Engine's socket on the server.
    #[serde(default = "defaults::docker_socket")]
    pub socket: String,
    /// The network the app's containers join (`host` shares the server's).
    #[serde(default)]
    pub network: Option<String>,
    /// The health check's argv inside the container, `{url}` standing for the health URL.
    #[serde(default = "defaults::health_command")]
    pub health_command: Vec<String>,
    /// Time between health checks.
    #[serde(default = "defaults::health_interval", with = "duration")]
    pub health_interval: Duration,
}

/// `[haproxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyConfig {
    /// The app's backend.
    #[serde(default = "defaults::backend")]
    pub backend: String,
    /// The admin socket on the server (`stats socket … level admin`).
    #[serde(default = "defaults::admin_socket")]
    pub admin_socket: String,
    /// The master CLI's socket (`haproxy -W -S …`), for reloads.
    #[serde(default)]
    pub master_socket: Option<String>,
    /// The `server-state-file`, written after every change so a reload keeps it.
    #[serde(default)]
    pub state_file: Option<String>,
    /// The admin socket's mode, octal as `chmod` takes it (`"660"`); HAProxy's `stats socket … mode`.
    #[serde(default = "defaults::socket_mode")]
    pub socket_mode: String,
    /// The admin socket's owner (`stats socket … user`); HAProxy's own user when unset.
    #[serde(default)]
    pub socket_user: Option<String>,
    /// The admin socket's group (`stats socket … group`): with mode 660, its members (the deploy user)
    /// reach the runtime API without root.
    #[serde(default)]
    pub socket_group: Option<String>,
}

impl HaproxyConfig {
    /// The admin socket's access as `haproxy.cfg` must say it (see
    /// [`ProxyConfig::admin_socket_access`](connect_haproxy::ProxyConfig::admin_socket_access)).
    pub fn socket_access(&self) -> Result<connect_haproxy::SocketAccess> {
        let access = connect_haproxy::SocketAccess {
            mode: connect_haproxy::SocketAccess::parse_mode(&self.socket_mode)?,
            user: self.socket_user.clone(),
            group: self.socket_group.clone(),
        };
        access.options()?;
        Ok(access)
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Patroni's REST API of every node, as the server sees them.
    #[serde(default = "defaults::patroni")]
    pub patroni: Vec<String>,
    /// PostgreSQL as the server sees it (host).
    #[serde(default = "defaults::localhost")]
    pub host: String,
    /// PostgreSQL's port.
    #[serde(default = "defaults::pg_port")]
    pub port: u16,
    /// The role the SDK logs in as.
    #[serde(default = "defaults::pg_user")]
    pub user: String,
    /// Its password, as `${ENV_VAR}`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The app's database.
    #[serde(default = "defaults::dbname")]
    pub dbname: String,
    /// The post-deploy check query, answering one number (the runbook counts its users).
    #[serde(default = "defaults::check_query")]
    pub check_query: String,
    /// Where the deploy's backups go on the server (pg_dump runs there).
    #[serde(default = "defaults::backup_dir")]
    pub backup_dir: String,
    /// The directory of the server's `pg_dump` and `pg_restore`, when they are not on its `PATH` or
    /// another major version is (`/usr/lib/postgresql/15/bin`).
    #[serde(default)]
    pub pg_bin_dir: Option<String>,
    /// Patroni's `restapi.authentication` username, for its guarded endpoints (switchover, restart…).
    #[serde(default)]
    pub patroni_username: Option<String>,
    /// Its password, as `${ENV_VAR}`.
    #[serde(default)]
    pub patroni_password: Option<Secret>,
    /// The CA (PEM, on this machine) that signed Patroni's `restapi.certfile`, for `https://` addresses;
    /// the system's CAs when unset.
    #[serde(default)]
    pub patroni_ca_file: Option<PathBuf>,
    /// libpq's `sslmode` for PostgreSQL: `disable` (the runbook's), `prefer`, `require`, `verify-ca`,
    /// `verify-full`; for the SDK's connections and `pg_dump`/`pg_restore` on the server alike.
    #[serde(default, deserialize_with = "ssl_mode")]
    pub sslmode: SslMode,
    /// The CA (PEM, on this machine) that signed PostgreSQL's certificate; needed by the verify modes.
    #[serde(default)]
    pub ssl_root_cert: Option<PathBuf>,
    /// The same CA's path on the server, for `pg_dump`/`pg_restore` there; `ssl_root_cert`'s path when
    /// unset.
    #[serde(default)]
    pub server_ssl_root_cert: Option<String>,
    /// `[database.pitr]`: continuous backups (pgBackRest) and point-in-time recovery; off when absent.
    #[serde(default)]
    pub pitr: Option<pitr::PitrSection>,
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis as the server sees it.
    #[serde(default = "defaults::localhost")]
    pub host: String,
    /// Its port.
    #[serde(default = "defaults::redis_port")]
    pub port: u16,
    /// Its password, as `${ENV_VAR}`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// How the server starts Redis again after `connect-ops recover` placed its `dump.rdb`.
    #[serde(default = "defaults::redis_start")]
    pub start_command: Vec<String>,
}

/// `[app]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app's name, in container labels.
    #[serde(default = "defaults::app_name")]
    pub name: String,
    /// The image repository; a release `v2` is `<image>:v2`.
    pub image: String,
    /// The port the app listens on in its container.
    #[serde(default = "defaults::container_port")]
    pub container_port: u16,
    /// The health endpoint.
    #[serde(default = "defaults::health_path")]
    pub health_path: String,
    /// Paths requested from the new color after the switch; 500 or no answer rolls back.
    #[serde(default)]
    pub smoke_paths: Vec<String>,
    /// The migration's argv, run in a one-off container of the new release.
    #[serde(default)]
    pub migration: Option<Vec<String>>,
    /// The app containers' command, when not the image's.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Where the release's migration files are inside its image; the pending ones are linted before the
    /// migration runs.
    #[serde(default)]
    pub migrations_dir: Option<String>,
    /// Environment of every container; values may be `${ENV_VAR}`.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// A `KEY=value` file on this machine with the app's secrets.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// How long a container gets to stop before it is killed.
    #[serde(default = "defaults::stop_grace", with = "duration")]
    pub stop_grace: Duration,
}

/// `[slots.blue]` and `[slots.green]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotsConfig {
    /// Blue.
    #[serde(default = "defaults::blue")]
    pub blue: SlotConfig,
    /// Green.
    #[serde(default = "defaults::green")]
    pub green: SlotConfig,
}

/// One color.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    /// Its container's name.
    pub container: String,
    /// Its HAProxy server.
    pub server: String,
    /// Its port on the server.
    pub port: u16,
}

impl Default for DockerConfig {
    fn default() -> Self {
        from_empty()
    }
}
impl Default for HaproxyConfig {
    fn default() -> Self {
        from_empty()
    }
}
impl Default for DatabaseConfig {
    fn default() -> Self {
        from_empty()
    }
}
impl Default for RedisConfig {
    fn default() -> Self {
        from_empty()
    }
}
impl Default for SlotsConfig {
    fn default() -> Self {
        from_empty()
    }
}
/// A section's defaults are what an empty table deserializes to, so they are written once, in `defaults`.
pub(super) fn from_empty<T: serde::de::DeserializeOwned>() -> T {
    toml::from_str("").expect("every field of this section has a default")
}

impl ConnectConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<ConnectConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::NotFound,
                "config.load",
                path.display().to_string(),
                e.to_string(),
            )
            .with_hint("write one with `connect-ops init`, or name it with --config")
            .with_source(e)
        })?;
        ConnectConfig::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks a config's text; `source` names it in errors (`connect.toml:3:7: …`).
    pub fn parse(source: &str, text: &str) -> Result<ConnectConfig> {
        let config: ConnectConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map_or_else(String::new, |span| line_column(text, span.start));
            let message = e.message().trim().replace('\n', " ");
            Error::new(
                ErrorKind::InvalidInput,
                "config.parse",
                format!("{source}{at}"),
                message,
            )
            .with_hint("see `connect-ops init` for every key, its default and what it takes")
        })?;
        config.check(source, text)?;
        Ok(config)
    }

    /// What TOML cannot say: the checks across keys, each located at its key in the file.
    fn check(&self, source: &str, text: &str) -> Result<()> {
        let invalid = |section: &str, key: &str, why: String, fix: &str| {
            let at = locate(text, section, key).unwrap_or_default();
            Error::new(
                ErrorKind::InvalidInput,
                "config.check",
                format!("{source}{at}"),
                format!("{section}.{key}: {why}"),
            )
            .with_hint(fix)
        };
        if let Err((section, key, why, fix)) = self.check_fleet() {
            return Err(invalid(section, key, why, fix));
        }
        if let Err((section, key, why, fix)) = self.check_swarm() {
            return Err(invalid(section, key, why, fix));
        }
        let (blue, green) = (&self.slots.blue, &self.slots.green);
        if blue.port == green.port || blue.server == green.server || blue.container == green.container {
            return Err(invalid(
                "slots.green",
                "port",
                "blue and green share a port, a container or an HAProxy server".into(),
                "give each color its own port, container and server",
            ));
        }
        if let Err(e) = self.haproxy.socket_access() {
            let key = if e.to_string().contains("mode") {
                "socket_mode"
            } else {
                "socket_group"
            };
            return Err(invalid(
                "haproxy",
                key,
                e.message().to_string(),
                e.hint().unwrap_or(
                    "socket_mode is octal (\"660\"); user and group names are letters, digits, `_.-`",
                ),
            ));
        }
        let d = &self.database;
        match (&d.patroni_username, &d.patroni_password) {
            (Some(_), None) | (None, Some(_)) => {
                let key = if d.patroni_username.is_some() {
                    "patroni_username"
                } else {
                    "patroni_password"
                };
                return Err(invalid(
                    "database",
                    key,
                    "Patroni's basic auth needs both a username and a password".into(),
                    "set patroni_username and patroni_password = \"${PATRONI_PASSWORD}\" together",
                ));
            }
            _ => {}
        }
        if d.sslmode.needs_root_cert() && d.ssl_root_cert.is_none() {
            return Err(invalid(
                "database",
                "sslmode",
                format!(
                    "{} checks PostgreSQL's certificate, but no CA is given",
                    d.sslmode
                ),
                "set ssl_root_cert to the CA certificate that signed PostgreSQL's ssl_cert_file",
            ));
        }
        if let Some(p) = self.pitr_config() {
            p.validate().map_err(|e| {
                invalid(
                    "database.pitr",
                    "repo",
                    e.message().to_string(),
                    e.hint().unwrap_or("see [database.pitr] in the README"),
                )
            })?;
        }
        if let Some((key, why, fix)) = self.backup_all.as_ref().and_then(|b| b.problem()) {
            return Err(invalid("backup_all", key, why, fix));
        }
        if self.release.context.is_some() && self.release.image.is_some() {
            return Err(invalid(
                "release",
                "image",
                "a release comes from a build context or from a local image, not both".into(),
                "keep context (to build) or image (to ship an image built already)",
            ));
        }
        if self.release.build_on == BuildOnConfig::Server && self.release.context.is_none() {
            return Err(invalid(
                "release",
                "build_on",
                "the server builds only from a context".into(),
                "set context = \"DIR\" in [release], or remove build_on",
            ));
        }
        if !["prohibit-password", "no"].contains(&self.audit.permit_root_login.as_str()) {
            return Err(invalid(
                "audit",
                "permit_root_login",
                format!(
                    "{:?} is not a hardened PermitRootLogin",
                    self.audit.permit_root_login
                ),
                "\"prohibit-password\" (root by key only) or \"no\"",
            ));
        }
        if self.audit.sshd_reload.is_empty() {
            return Err(invalid(
                "audit",
                "sshd_reload",
                "the reload command is empty".into(),
                "give an argv, e.g. [\"systemctl\", \"reload\", \"ssh\"]",
            ));
        }
        match (self.policy.old_color, self.policy.retire_after) {
            (OldColor::RetireAfter, None) => {
                return Err(invalid(
                    "policy",
                    "old_color",
                    "\"retire_after\" needs how long the standby is kept".into(),
                    "add retire_after = \"1h\" to [policy]",
                ));
            }
            (OldColor::WarmStandby | OldColor::Balanced, Some(_)) => {
                return Err(invalid(
                    "policy",
                    "retire_after",
                    "it applies only to old_color = \"retire_after\"".into(),
                    "remove retire_after, or set old_color = \"retire_after\"",
                ));
            }
            _ => {}
        }
        for (i, webhook) in self.webhooks.iter().enumerate() {
            if let Err(e) = webhook.to_webhook().validate() {
                return Err(invalid(
                    &format!("webhooks[{i}]"),
                    "url",
                    e.message().to_string(),
                    e.hint().unwrap_or("e.g. url = \"${DEPLOY_WEBHOOK}\""),
                ));
            }
        }
        // The engine's own rules (a canary needs the watch, rising steps...), pointed at the file: its target
        // `canary.steps` is `[policy.canary] steps`.
        self.policy.to_policy().validate().map_err(|e| {
            let (section, key) = match e.target().rsplit_once('.') {
                Some((table, key)) => (format!("policy.{table}"), key),
                None => ("policy".to_string(), e.target()),
            };
            invalid(
                &section,
                key,
                e.message().to_string(),
                e.hint().unwrap_or("see the template: connect-ops init"),
            )
        })
    }
}

/// Where `key` is set under `[section]` in `text`, as ` :LINE:COLUMN` (empty when it is not written there).
fn locate(text: &str, section: &str, key: &str) -> Option<String> {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed == header;
        } else if in_section
            && let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(line_column(text, offset + (line.len() - line.trim_start().len())));
        }
        offset += line.len();
    }
    None
}

/// ` :LINE:COLUMN` of a byte offset, 1-based, as editors count.
fn line_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(":{line}:{column}")
}

/// `sslmode` as libpq writes it (`verify-full`).
fn ssl_mode<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SslMode, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an sslmode: disable, prefer, require, verify-ca or verify-full"
        ))
    })
}

/// Durations as `30s`, `2m`, `1h 30m` (humantime).
pub(super) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"30s\" or \"2m\""
            ))
        })?;
        if parsed.is_zero() {
            return Err(serde::de::Error::custom("a duration of zero can never be met"));
        }
        Ok(parsed)
    }
}

mod jumps {
    use connect_core::ssh::JumpHost;
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<JumpHost>>, D::Error> {
        let text = String::deserialize(d)?;
        JumpHost::parse_list(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!("{}; write e.g. \"deploy@bastion:22\"", e.message()))
        })
    }
}

pub(super) mod optional_duration {
    use std::time::Duration;

    use serde::Deserializer;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

/// The runbook's values, one function each (serde's `default = "…"` takes a path).
mod defaults {
    use std::time::Duration;

    use connect_core::engine::DeployConfig;
    use connect_core::model::{AppSpec, Slot, Topology};

    use super::SlotConfig;

    pub(super) fn state_dir() -> String {
        DeployConfig::runbook().state_dir
    }
    pub(super) fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn docker_socket() -> String {
        "/var/run/docker.sock".into()
    }
    pub(super) fn health_command() -> Vec<String> {
        connect_docker::HealthProbe::default().command
    }
    pub(super) fn health_interval() -> Duration {
        connect_docker::HealthProbe::default().interval
    }
    pub(super) fn backend() -> String {
        "be_app".into()
    }
    pub(super) fn admin_socket() -> String {
        "/run/haproxy/admin.sock".into()
    }
    pub(super) fn socket_mode() -> String {
        "600".into()
    }
    pub(super) fn patroni() -> Vec<String> {
        vec!["http://127.0.0.1:8008".into(), "http://127.0.0.1:8009".into()]
    }
    pub(super) fn localhost() -> String {
        "127.0.0.1".into()
    }
    pub(super) fn pg_port() -> u16 {
        5432
    }
    pub(super) fn pg_user() -> String {
        "connect".into()
    }
    pub(super) fn dbname() -> String {
        "connect".into()
    }
    pub(super) fn check_query() -> String {
        "SELECT count(*) FROM users".into()
    }
    pub(super) fn hook_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub(super) fn backup_dir() -> String {
        "/opt/connect/backups".into()
    }
    pub(super) fn redis_port() -> u16 {
        6379
    }
    pub(super) fn redis_start() -> Vec<String> {
        ["systemctl", "start", "redis-server"].map(String::from).to_vec()
    }
    pub(super) fn app_name() -> String {
        AppSpec::connect().name
    }
    pub(super) fn container_port() -> u16 {
        AppSpec::connect().container_port
    }
    pub(super) fn health_path() -> String {
        AppSpec::connect().health_path
    }
    pub(super) fn stop_grace() -> Duration {
        AppSpec::connect().stop_grace
    }
    pub(super) fn blue() -> SlotConfig {
        slot(Topology::runbook().blue)
    }
    pub(super) fn green() -> SlotConfig {
        slot(Topology::runbook().green)
    }
    fn slot(s: Slot) -> SlotConfig {
        SlotConfig {
            container: s.container,
            server: s.server,
            port: s.host_port,
        }
    }
    pub(super) fn public_ports() -> Vec<u16> {
        connect_core::audit::HostAuditConfig::default().public_ports
    }
    pub(super) fn fail_on() -> connect_core::audit::Severity {
        connect_core::audit::Severity::Medium
    }
    pub(super) fn sshd_config() -> String {
        connect_core::audit::fix::SshdFix::default().config_path
    }
    pub(super) fn sshd_reload() -> Vec<String> {
        connect_core::audit::fix::SshdFix::default().reload
    }
    pub(super) fn permit_root_login() -> String {
        connect_core::audit::fix::SshdFix::default().permit_root_login
    }
}

#[cfg(test)]
mod tests;
