//! The fleet stack as `connect.toml`: `[server]` is this machine (HAProxy, Patroni and Redis), every app host
//! an `[[app_hosts]]` entry reached over its own SSH connection, with its own ports, containers and state
//! directory (the hosts share this machine's filesystem; each has its own Docker Engine, at the usual socket as
//! its sshd sees it).

use std::path::PathBuf;

use connect_core::engine::fleet::Role;
use connect_core::{Error, ErrorKind, Result};

use super::FleetStack;
use crate::stack::toml::{Services, toml_list};

/// The environment variable the config reads the database password from.
pub const PG_PASSWORD_VAR: &str = "CONNECT_FLEET_PG_PASSWORD";

impl FleetStack {
    /// A `connect.toml` for `connect-ops` over the first `count` hosts; needs
    /// [`FleetStack::start_with_services`]. Every host accepts the first host's client key, and one
    /// known_hosts file lists every host. The database password is read from [`PG_PASSWORD_VAR`]
    /// (set it to `connect_db::testing::PG_PASSWORD`).
    pub fn connect_toml(&self, count: usize) -> Result<String> {
        let hosts: Vec<(&str, Role)> = self
            .hosts
            .iter()
            .take(count)
            .map(|h| (h.name.as_str(), Role::Web))
            .collect();
        self.connect_toml_for(&hosts)
    }

    /// [`FleetStack::connect_toml`] over the hosts named, each with its role; workers run the demo app's
    /// `serve` as `[roles.worker]`'s command (what a jobs entry point would be), with its image's health check.
    pub fn connect_toml_for(&self, hosts: &[(&str, Role)]) -> Result<String> {
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
        let first = &self.hosts[0].sshd;
        let (key, user) = (first.client_key(), first.user().to_string());
        let public = std::fs::read_to_string(key.with_extension("pub")).map_err(|e| io("client key", e))?;
        let mut known = String::new();
        let mut entries = String::new();
        let listed = hosts.iter().filter_map(|(name, role)| {
            let h = self.hosts.iter().find(|h| h.name == *name)?;
            Some((h, *role))
        });
        let mut roles = String::new();
        for (h, role) in listed {
            // A host taken down keeps its keys: listed, it is refused as a machine that is off would be.
            let authorized = h.sshd.dir().join("authorized_keys");
            let mut keys = std::fs::read_to_string(&authorized).map_err(|e| io("authorized_keys", e))?;
            if !keys.contains(public.trim()) {
                keys.push_str(&public);
                std::fs::write(&authorized, keys).map_err(|e| io("authorized_keys", e))?;
            }
            known.push_str(&format!(
                "[127.0.0.1]:{} {}\n",
                h.proxy.port(),
                h.sshd.host_key_line()
            ));
            entries.push_str(&format!(
                "\n[[app_hosts]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {port}\n\
                 blue_port = {blue_port}\ngreen_port = {green_port}\nblue_container = {blue:?}\n\
                 green_container = {green:?}\nstate_dir = {state:?}\nrole = \"{role}\"\n",
                name = h.name,
                port = h.proxy.port(),
                blue_port = h.topology.blue.host_port,
                green_port = h.topology.green.host_port,
                blue = h.topology.blue.container,
                green = h.topology.green.container,
                state = h.state_dir,
            ));
            if role == Role::Worker && roles.is_empty() {
                roles = "\n[roles.worker]\ncommand = [\"serve\"]\n".to_string();
            }
        }
        let known_hosts: PathBuf = self.dir.path().join("known_hosts");
        std::fs::write(&known_hosts, known).map_err(|e| io("known_hosts", e))?;
        let haproxy = &self.haproxy;
        let patroni = services.cluster.rest_urls();
        let shared = Services {
            backend: &haproxy.config.backend,
            admin_socket: &haproxy.admin_socket,
            master_socket: &haproxy.master_socket,
            state_file: &haproxy.state_file,
            patroni: &patroni,
            pg_port: services.cluster.nodes[0].pg_port,
            password_var: PG_PASSWORD_VAR,
            dbname: "postgres",
            check_query: "SELECT 1",
            backup_dir: None,
            redis_port: services.redis.port,
        };
        Ok(format!(
            r#"state_dir = {server_state:?}

[server]
host = "local"
user = {user:?}
key_file = {key:?}
known_hosts = {known:?}
ssh_config = false

{sections}
[app]
name = {prefix:?}
image = {prefix:?}
stop_grace = "5s"

[policy]
health_deadline = "20s"
drain_deadline = "10s"
lock_lease = "5s"
disk_paths = {disks}
{entries}{roles}"#,
            server_state = self.dir.path().join("server-state").display().to_string(),
            key = key.display().to_string(),
            known = known_hosts.display().to_string(),
            sections = shared.sections(),
            prefix = self.prefix,
            disks = toml_list(&[self.dir.path().display().to_string()]),
        ))
    }
}
