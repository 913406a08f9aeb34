//! The stacks as `connect.toml`, for `connect-ops`. The one-server stack and the fleet differ in where the
//! app runs (`[server]` and `[slots]`, or `[[app_hosts]]`) and share the services' sections, written here once.

use std::path::Path;

use connect_db::testing::pg_bin;

use super::backends::StackAddress;
use super::{DATABASE, slot_options};

/// A TOML array of strings.
pub(crate) fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The directory of this machine's PostgreSQL 15 programs (`pg_dump` and the rest).
pub(crate) fn pg_bin_dir() -> String {
    pg_bin("pg_dump")
        .parent()
        .map_or_else(|| "/usr/bin".into(), |d| d.display().to_string())
}

/// Where a stack's services are: what `connect.toml`'s `[docker]`, `[haproxy]`, `[database]` and `[redis]`
/// sections say.
pub(crate) struct Services<'a> {
    /// The app's HAProxy backend.
    pub(crate) backend: &'a str,
    /// HAProxy's admin socket.
    pub(crate) admin_socket: &'a Path,
    /// HAProxy's master CLI.
    pub(crate) master_socket: &'a Path,
    /// HAProxy's server-state file.
    pub(crate) state_file: &'a Path,
    /// Patroni's REST URLs.
    pub(crate) patroni: &'a [String],
    /// The first PostgreSQL node's port.
    pub(crate) pg_port: u16,
    /// The environment variable the password is read from.
    pub(crate) password_var: &'a str,
    /// The app's database.
    pub(crate) dbname: &'a str,
    /// The deploy's check query.
    pub(crate) check_query: &'a str,
    /// Where backups go, when the stack takes them.
    pub(crate) backup_dir: Option<&'a str>,
    /// Redis's port.
    pub(crate) redis_port: u16,
}

impl Services<'_> {
    /// The four sections, each followed by a blank line but the last; the demo app's container settings
    /// as [`slot_options`] has them.
    pub(crate) fn sections(&self) -> String {
        let health = slot_options().health;
        let backup_dir = self
            .backup_dir
            .map(|d| format!("backup_dir = {d:?}\n"))
            .unwrap_or_default();
        format!(
            r#"[docker]
network = "host"
health_command = {health_command}
health_interval = "{interval}ms"

[haproxy]
backend = {backend:?}
admin_socket = {admin:?}
master_socket = {master:?}
state_file = {state_file:?}

[database]
patroni = {patroni}
port = {pg_port}
user = "postgres"
password = "${{{password_var}}}"
dbname = {dbname:?}
check_query = {check_query:?}
{backup_dir}pg_bin_dir = {pg_bin_dir:?}

[redis]
port = {redis_port}
"#,
            health_command = toml_list(&health.command),
            interval = health.interval.as_millis(),
            backend = self.backend,
            admin = self.admin_socket.display().to_string(),
            master = self.master_socket.display().to_string(),
            state_file = self.state_file.display().to_string(),
            patroni = toml_list(self.patroni),
            pg_port = self.pg_port,
            password_var = self.password_var,
            dbname = self.dbname,
            check_query = self.check_query,
            pg_bin_dir = pg_bin_dir(),
            redis_port = self.redis_port,
        )
    }
}

impl StackAddress {
    /// This stack as a `connect.toml`, for `connect-ops`: everything through one SSH connection, the
    /// database password by `${CONNECT_E2E_PG_PASSWORD}` (the caller sets it), the same settings as
    /// [`StackAddress::deploy_config`] and [`slot_options`].
    pub fn connect_toml(&self) -> String {
        let config = self.deploy_config();
        let env: Vec<String> = config
            .app
            .env
            .iter()
            .map(|(k, v)| format!("{k} = {v:?}"))
            .collect();
        let backup_dir = self.backup_dir();
        let services = Services {
            backend: &self.backend,
            admin_socket: &self.haproxy_admin,
            master_socket: &self.haproxy_master,
            state_file: &self.haproxy_state,
            patroni: &self.patroni,
            pg_port: self.pg_ports[0],
            password_var: "CONNECT_E2E_PG_PASSWORD",
            dbname: DATABASE,
            check_query: "SELECT count(*) FROM customers",
            backup_dir: Some(&backup_dir),
            redis_port: self.redis_port,
        };
        format!(
            r#"state_dir = {state:?}

[server]
host = "127.0.0.1"
port = {ssh_port}
user = {user:?}
key_file = {key:?}
known_hosts = {known:?}
ssh_config = false

{services}
[app]
name = {prefix:?}
image = {prefix:?}
migration = ["migrate"]
env = {{ {env} }}
stop_grace = "5s"

[slots.blue]
container = {blue:?}
server = "app1"
port = {blue_port}

[slots.green]
container = {green:?}
server = "app2"
port = {green_port}

[policy]
drain_deadline = "10s"
lock_lease = "5s"
disk_paths = {disks}
"#,
            state = self.state_dir(),
            ssh_port = self.ssh_port,
            user = self.ssh_user,
            key = self.ssh_key.display().to_string(),
            known = self.known_hosts.display().to_string(),
            services = services.sections(),
            prefix = self.prefix,
            env = env.join(", "),
            blue = config.topology.blue.container,
            green = config.topology.green.container,
            blue_port = self.ports.0,
            green_port = self.ports.1,
            disks = toml_list(&config.policy.disk_paths),
        )
    }
}
