//! [`Haproxy`]: one backend of a running HAProxy, driven through the runtime API, kept safe across reloads.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use connect_core::router::{AdminState, CheckState, ServerFigures, ServerStatus, SwitchReport};
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result, TrafficRouter};

use crate::client::RuntimeApi;
use crate::command::{Command, Weight, validate_name};
use crate::files::{MapFile, StateFile, map_file_text};
use crate::stat::{StatRow, parse_servers_state, parse_show_stat};

/// How often a condition is polled: `show stat` on a unix socket costs well under a millisecond, and a
/// switch is judged by how soon it is confirmed.
pub(crate) const POLL: Duration = Duration::from_millis(2);

/// One backend of a running HAProxy (`be_app`), driven through the runtime API.
///
/// Every change is followed by saving `show servers state` to the server-state-file (when one is given),
/// so a reload keeps it; [`Haproxy::reload`] goes through the master CLI and confirms a new worker runs.
#[derive(Debug, Clone)]
pub struct Haproxy {
    pub(crate) api: RuntimeApi,
    pub(crate) backend: String,
    pub(crate) state_file: Option<StateFile>,
    pub(crate) maps: Vec<MapFile>,
    pub(crate) master: Option<RuntimeApi>,
    /// The map whose `maintenance` key turns the maintenance page on (see `ProxyConfig::maintenance`).
    pub(crate) maintenance_map: Option<String>,
    /// One save at a time (read the state, write the file), shared by clones: changes made concurrently
    /// (several app hosts' servers changed in parallel) would otherwise race their writes, and a save that
    /// read an older state could land last.
    pub(crate) saving: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Haproxy {
    /// The backend `backend` behind the admin socket `api`.
    pub fn new(api: RuntimeApi, backend: &str) -> Result<Haproxy> {
        validate_name("backend", backend)?;
        Ok(Haproxy {
            api,
            backend: backend.to_string(),
            state_file: None,
            maps: Vec::new(),
            master: None,
            maintenance_map: None,
            saving: Default::default(),
        })
    }

    /// Saves the servers' state to this file after every change (the global `server-state-file`).
    pub fn with_state_file(mut self, file: StateFile) -> Haproxy {
        self.state_file = Some(file);
        self
    }

    /// Rewrites this map file after every change, so runtime map changes survive a reload.
    pub fn with_map(mut self, map: MapFile) -> Haproxy {
        self.maps.push(map);
        self
    }

    /// Sets `key` to `value` in a map (`set map`, or `add map` for a new key), then rewrites every map
    /// file and the state file.
    pub async fn set_map_entry(&self, map: &str, key: &str, value: &str) -> Result<()> {
        let set = Command::SetMap {
            map: map.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        };
        match self.api.execute(&set).await {
            Ok(_) => {}
            Err(e) if e.message().starts_with("entry not found") => {
                self.api
                    .execute(&Command::AddMap {
                        map: map.to_string(),
                        key: key.to_string(),
                        value: value.to_string(),
                    })
                    .await?;
            }
            Err(e) => return Err(e),
        }
        self.persist_after(&format!("map {map}")).await
    }

    /// The map file of the configuration's maintenance page (`ProxyConfig::maintenance`): turning the page on
    /// and off sets its `maintenance` key, and the file is rewritten after each change so a reload keeps it.
    pub fn with_maintenance_map(mut self, map: MapFile) -> Haproxy {
        self.maintenance_map = Some(map.name.clone());
        self.maps.push(map);
        self
    }

    /// The master CLI (`haproxy -W -S <master.sock>`), for [`Haproxy::reload`].
    pub fn with_master(mut self, master: RuntimeApi) -> Haproxy {
        self.master = Some(master);
        self
    }

    /// The admin socket's client.
    pub fn api(&self) -> &RuntimeApi {
        &self.api
    }

    /// The `show stat` rows of this backend's servers. [`ErrorKind::NotFound`] when HAProxy has no such
    /// backend.
    pub async fn stat(&self) -> Result<Vec<StatRow>> {
        // Both views in one connection: `show stat` has the sessions, weights and check verdicts,
        // `show servers state` the admin bits (a DOWN server prints `DOWN`, not `DRAIN`, while drained).
        let reply = self
            .api
            .raw(&format!("show stat;show servers state {}", self.backend))
            .await?;
        self.parse_stat_reply(&reply)
    }

    /// A change and the backend's `show stat` right after it, in one connection: the switch confirms each
    /// step without another round trip.
    pub(crate) async fn change_then_stat(&self, command: &Command) -> Result<Vec<StatRow>> {
        let (operation, target) = (command.operation(), command.target());
        self.changes_then_stat(std::slice::from_ref(command), operation, &target)
            .await
    }

    /// Several changes and the backend's `show stat` right after them, in ONE connection: HAProxy runs a
    /// line's commands one after the other within one event-loop turn, so no request sees some applied and
    /// others not. Any `[err]:` among the replies fails the whole exchange.
    pub(crate) async fn changes_then_stat(
        &self,
        commands: &[Command],
        operation: &str,
        target: &str,
    ) -> Result<Vec<StatRow>> {
        let Some(first) = commands.first() else {
            return self.stat().await;
        };
        let lines = commands
            .iter()
            .map(Command::line)
            .collect::<Result<Vec<_>>>()?
            .join("; ");
        let reply = self
            .api
            .raw(&format!(
                "set severity-output string; {lines}; show stat;show servers state {}",
                self.backend
            ))
            .await?;
        let Some(at) = reply.find("# pxname") else {
            first.check_reply(&reply)?;
            return Err(Error::new(
                ErrorKind::Corrupt,
                operation,
                target,
                "no `show stat` after the changes: the reply was cut, and the changes may have applied",
            )
            .with_hint("read the state with `show stat` before retrying"));
        };
        // Every change's reply is empty on success.
        first.check_reply(&reply[..at])?;
        self.parse_stat_reply(&reply[at..])
    }

    pub(crate) fn parse_stat_reply(&self, reply: &str) -> Result<Vec<StatRow>> {
        let (stat, state) = match reply.split_once("\n\n") {
            Some((stat, state)) => (format!("{stat}\n\n"), state),
            None => (reply.to_string(), ""),
        };
        let first = state.lines().next().unwrap_or("");
        if first.starts_with("Can't find") || first.starts_with("No such") {
            return Err(Error::new(
                ErrorKind::NotFound,
                "haproxy.show_stat",
                &self.backend,
                format!("No such backend. ({first})"),
            )
            .with_hint("check the backend name against the HAProxy configuration"));
        }
        let command = Command::ShowStat;
        command.check_reply(&stat)?;
        let rows = parse_show_stat(&stat)?;
        let state = parse_servers_state(state)?;
        Ok(rows
            .into_iter()
            .filter(|r| r.proxy == self.backend && r.is_server())
            .map(|mut r| {
                if let Some(s) = state.rows.iter().find(|s| s.server == r.name) {
                    r.admin = s.admin();
                    // The weight `set weight` sets: a server in MAINT keeps showing its old effective weight
                    // in `show stat` until it is back (found by the real canary test: a weight put back
                    // while the server was in MAINT read as unchanged).
                    r.weight = s.user_weight;
                }
                r
            })
            .collect())
    }

    pub(crate) async fn row(&self, server: &str) -> Result<StatRow> {
        self.stat()
            .await?
            .into_iter()
            .find(|r| r.name == server)
            .ok_or_else(|| self.no_server("haproxy.server", server))
    }

    pub(crate) fn no_server(&self, operation: &str, server: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            operation,
            format!("{}/{server}", self.backend),
            "No such server.",
        )
        .with_hint("check the server names against `show stat`")
    }

    /// Runs a change, then saves the state file. A change that applied but could not be saved is
    /// reported as such: it holds now and would be lost on the next reload.
    async fn change(&self, command: Command) -> Result<String> {
        let reply = self.api.execute(&command).await?;
        self.persist_after(&command.target()).await?;
        Ok(reply)
    }

    pub(crate) async fn persist_after(&self, what: &str) -> Result<()> {
        self.save_state().await.map_err(|e| {
            Error::new(
                e.kind(),
                "haproxy.save_state",
                what,
                format!(
                    "the change is applied in HAProxy, but saving the server-state-file failed, so a \
                     reload would undo it: {e}"
                ),
            )
            .with_hint("fix the state file's directory or permissions, then call save_state()")
        })
    }

    /// Writes `show servers state` to the server-state-file and every map's entries to its file, for those
    /// configured.
    pub async fn save_state(&self) -> Result<()> {
        let _one_at_a_time = self.saving.lock().await;
        for map in &self.maps {
            let reply = self
                .api
                .execute(&Command::ShowMap {
                    map: map.name.clone(),
                })
                .await?;
            map.file.write(&map_file_text(&reply)?).await?;
        }
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        // All backends: the file is global (`load-server-state-from-file global`) and shared by them.
        let state = self.api.show_servers_state(None).await?;
        file.write(&state.text).await.map_err(|e| {
            Error::new(
                e.kind(),
                "haproxy.save_state",
                file.describe(),
                e.message().to_string(),
            )
        })
    }

    pub(crate) fn server_command(&self, server: &str) -> Result<(String, String)> {
        validate_name("server", server)?;
        Ok((self.backend.clone(), server.to_string()))
    }

    /// `set server be/srv state ready|drain|maint`.
    pub async fn set_admin(&self, server: &str, state: AdminState) -> Result<()> {
        let (backend, server) = self.server_command(server)?;
        self.change(Command::SetState {
            backend,
            server,
            state,
        })
        .await
        .map(|_| ())
    }

    /// `set server be/srv weight N` or `N%` (of the configured weight).
    pub async fn set_server_weight(&self, server: &str, weight: Weight) -> Result<()> {
        let (backend, server) = self.server_command(server)?;
        self.change(Command::SetWeight {
            backend,
            server,
            weight,
        })
        .await
        .map(|_| ())
    }

    /// `set server be/srv addr IP port P`; returns HAProxy's sentence about what changed.
    pub async fn set_server_address(&self, server: &str, addr: IpAddr, port: u16) -> Result<String> {
        let (backend, server) = self.server_command(server)?;
        self.change(Command::SetAddr {
            backend,
            server,
            addr,
            port,
        })
        .await
    }

    /// `enable health` / `disable health`: turns the server's health checks on or off.
    pub async fn set_health_checks(&self, server: &str, enabled: bool) -> Result<()> {
        let (backend, server) = self.server_command(server)?;
        self.change(Command::Health {
            backend,
            server,
            enabled,
        })
        .await
        .map(|_| ())
    }

    /// Adds a dynamic server (it starts in maintenance; `check`, `inter 2s`… go in `options`). Dynamic
    /// servers are not in the configuration, so a reload drops them: render them into the config to keep one.
    pub async fn add_server(&self, server: &str, addr: IpAddr, port: u16, options: &[&str]) -> Result<()> {
        let (backend, server) = self.server_command(server)?;
        self.change(Command::AddServer {
            backend,
            server,
            addr,
            port,
            options: options.iter().map(|o| o.to_string()).collect(),
        })
        .await
        .map(|_| ())
    }

    /// Deletes a dynamic server; HAProxy requires it in maintenance with no session left.
    pub async fn del_server(&self, server: &str) -> Result<()> {
        let (backend, server) = self.server_command(server)?;
        self.change(Command::DelServer { backend, server })
            .await
            .map(|_| ())
    }

    /// Waits until HAProxy's checks see the server UP (or checks are off) and it is not in maintenance.
    pub async fn wait_up(&self, server: &str, deadline: Duration) -> Result<StatRow> {
        let target = format!("{}/{server}", self.backend);
        poll_until("haproxy.wait_up", &target, deadline, POLL, || async {
            let row = self.row(server).await?;
            Ok(if matches!(row.check(), CheckState::Up | CheckState::NoCheck) {
                Ok(row)
            } else {
                Err(format!("status {}", row.status))
            })
        })
        .await
    }
}

/// The key of the maintenance map that turns the page on (`on`) or off (anything else, or absent).
pub const MAINTENANCE_KEY: &str = "maintenance";

impl Haproxy {
    fn maintenance_page(&self, operation: &str) -> Result<&str> {
        self.maintenance_map.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                operation,
                &self.backend,
                "no maintenance map was given",
            )
            .with_hint(
                "render the config with `ProxyConfig::maintenance` and pass its map to                  `Haproxy::with_maintenance_map`",
            )
        })
    }
}

/// The core model's view of a `show stat` row.
pub(crate) fn status_of(row: &StatRow) -> ServerStatus {
    ServerStatus {
        name: row.name.clone(),
        admin: row.admin,
        check: row.check(),
        weight: row.weight,
        current_sessions: row.current_sessions,
        address: row.address.clone(),
    }
}

#[async_trait]
impl TrafficRouter for Haproxy {
    fn backend(&self) -> &str {
        &self.backend
    }

    async fn servers(&self) -> Result<Vec<ServerStatus>> {
        Ok(self.stat().await?.iter().map(status_of).collect())
    }

    async fn figures(&self) -> Result<Vec<ServerFigures>> {
        Ok(self
            .stat()
            .await?
            .iter()
            .map(|row| ServerFigures {
                name: row.name.clone(),
                responses: row.responses,
                responses_5xx: row.responses_5xx,
                response_time_ms: row.response_time_ms,
                current_sessions: row.current_sessions,
                total_sessions: row.total_sessions,
            })
            .collect())
    }

    async fn set_maintenance(&self, on: bool) -> Result<()> {
        let map = self.maintenance_page("haproxy.set_maintenance")?;
        self.set_map_entry(map, MAINTENANCE_KEY, if on { "on" } else { "off" })
            .await
    }

    async fn maintenance(&self) -> Result<bool> {
        let map = self.maintenance_page("haproxy.maintenance")?;
        let reply = self
            .api
            .execute(&Command::ShowMap { map: map.to_string() })
            .await?;
        let text = map_file_text(&reply)?;
        Ok(text
            .lines()
            .any(|l| l.split_once(' ') == Some((MAINTENANCE_KEY, "on"))))
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        self.set_admin(server, state).await
    }

    /// Every server's `set server … state` in ONE runtime-API exchange, one state-file save.
    async fn set_states(&self, servers: &[String], state: AdminState) -> Result<()> {
        self.set_states_at_once(servers, state).await
    }

    async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
        self.set_server_weight(server, Weight::Absolute(weight)).await
    }

    async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
        let addr: IpAddr = address.parse().map_err(|_| {
            Error::invalid(
                "haproxy.set_address",
                format!("{}/{server}", self.backend),
                format!("{address:?} is not an IP address"),
            )
            .with_hint("the runtime API takes an IP; resolve host names first")
        })?;
        self.set_server_address(server, addr, port).await.map(|_| ())
    }

    /// The provided switch's steps and errors in three round trips: `show stat`, then `set … ready` and
    /// `set … drain` each sent with `show stat` in the same connection, so each change's own reply confirms
    /// it. One state-file save at the end.
    async fn switch(&self, from: Option<&str>, to: &str, deadline: Duration) -> Result<SwitchReport> {
        self.switch_in_three(from, to, deadline).await
    }

    /// Every change in ONE runtime-API exchange (`set server … state ready; …; set server … state drain;
    /// show stat;show servers state <be>`), confirmed by the `show stat` of the same reply, else polled
    /// until `deadline`. One state-file save at the end.
    async fn set_states_together(
        &self,
        ready: &[String],
        drain: &[String],
        deadline: Duration,
    ) -> Result<Vec<ServerStatus>> {
        self.switch_together(ready, drain, deadline).await
    }
}
