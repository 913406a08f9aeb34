//! The fleet stack as `connect.toml`: `[server]` is this machine (HAProxy, Patroni and Redis), every app host
//! an `[[app_hosts]]` entry reached over its own SSH connection, with its own ports, containers and state
//! directory (the hosts share this machine's filesystem; each has its own Docker Engine, at the usual socket as
//! its sshd sees it).

use std::path::PathBuf;

use connect_core::{Error, ErrorKind, Result};
use connect_db::testing::pg_bin;

use super::FleetStack;
use crate::stack::slot_options;

/// The environment variable the config reads the database password from.
pub const PG_PASSWORD_VAR: &str = "CONNECT_FLEET_PG_PASSWORD";

impl FleetStack {
    /// A `connect.toml` for `connect-ops` over the first `count` hosts; needs
    /// [`FleetStack::start_with_services`]. Every host accepts the first host's client key, and one
    /// known_hosts file lists every host. The database password is read from [`PG_PASSWORD_VAR`]
    /// (set it to `connect_db::testing::PG_PASSWORD`).
    pub fn connect_toml(&self, count: usize) -> Result<String> {
        let services = self.services.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "fleet stack",
                "connect.toml",
                "the stack has no database or cache",
            )
            .with_hint("start it with FleetStack::start_with_services")
        })?;
        let io =
            |what: &str, e: std::io::Error| Error::new(ErrorKind::Failed, "fleet stack", what, e.to_string());
        // The guard goes before the loop below locks every host's sshd, this one's too.
        let (key, user) = {
            let first = self.hosts[0].sshd.lock().unwrap_or_else(|p| p.into_inner());
            let first = first
                .as_ref()
                .ok_or_else(|| io("web1", std::io::ErrorKind::NotFound.into()))?;
            (first.client_key(), first.user().to_string())
        };
        let public = std::fs::read_to_string(key.with_extension("pub")).map_err(|e| io("client key", e))?;
        let mut known = String::new();
        let mut entries = String::new();
        for h in self.hosts.iter().take(count) {
            if let Some(sshd) = h.sshd.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                let authorized = sshd.dir().join("authorized_keys");
                let mut keys = std::fs::read_to_string(&authorized).map_err(|e| io("authorized_keys", e))?;
                if !keys.contains(public.trim()) {
                    keys.push_str(&public);
                    std::fs::write(&authorized, keys).map_err(|e| io("authorized_keys", e))?;
                }
                known.push_str(&format!(
                    "[127.0.0.1]:{} {}\n",
                    h.proxy.port(),
                    sshd.host_key_line()
                ));
            }
            entries.push_str(&format!(
                "\n[[app_hosts]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {port}\n\
                 blue_port = {blue_port}\ngreen_port = {green_port}\nblue_container = {blue:?}\n\
                 green_container = {green:?}\nstate_dir = {state:?}\n",
                name = h.name,
                port = h.proxy.port(),
                blue_port = h.topology.blue.host_port,
                green_port = h.topology.green.host_port,
                blue = h.topology.blue.container,
                green = h.topology.green.container,
                state = h.state_dir,
            ));
        }
        let known_hosts: PathBuf = self.dir.path().join("known_hosts");
        std::fs::write(&known_hosts, known).map_err(|e| io("known_hosts", e))?;
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let health = slot_options().health;
        let haproxy = &self.haproxy;
        Ok(format!(
            r#"state_dir = {server_state:?}

[server]
host = "local"
user = {user:?}
key_file = {key:?}
known_hosts = {known:?}
ssh_config = false

[docker]
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
password = "${{{PG_PASSWORD_VAR}}}"
dbname = "postgres"
check_query = "SELECT 1"
pg_bin_dir = {pg_bin_dir:?}

[redis]
port = {redis_port}

[app]
name = {prefix:?}
image = {prefix:?}
stop_grace = "5s"

[policy]
health_deadline = "20s"
drain_deadline = "10s"
lock_lease = "5s"
disk_paths = {disks}
{entries}"#,
            server_state = self.dir.path().join("server-state").display().to_string(),
            key = key.display().to_string(),
            known = known_hosts.display().to_string(),
            health_command = list(&health.command),
            interval = health.interval.as_millis(),
            backend = haproxy.config.backend,
            admin = haproxy.admin_socket.display().to_string(),
            master = haproxy.master_socket.display().to_string(),
            state_file = haproxy.state_file.display().to_string(),
            patroni = list(&services.cluster.rest_urls()),
            pg_port = services.cluster.nodes[0].pg_port,
            pg_bin_dir = pg_bin("pg_dump")
                .parent()
                .map_or_else(|| "/usr/bin".into(), |d| d.display().to_string()),
            redis_port = services.redis.port,
            prefix = self.prefix,
            disks = list(&[self.dir.path().display().to_string()]),
        ))
    }
}
