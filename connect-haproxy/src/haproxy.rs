//! [`Haproxy`]: one backend of a running HAProxy, driven through the runtime API, kept safe across reloads.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use connect_core::host::{HostExt, PutOptions};
use connect_core::router::{AdminState, CheckState, ServerStatus};
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Host, Result, TrafficRouter};

use crate::client::RuntimeApi;
use crate::command::{Command, Weight, validate_name};
use crate::stat::{ProcList, StatRow, parse_servers_state, parse_show_stat};

/// How often a condition is polled: `show stat` on a unix socket costs well under a millisecond, and a
/// switch is judged by how soon it is confirmed.
const POLL: Duration = Duration::from_millis(2);

/// Where the server-state-file lives (the path in `server-state-file`), so HAProxy reloads into the state
/// the runtime API set instead of the configuration's.
#[derive(Debug, Clone)]
pub enum StateFile {
    /// A file on this machine.
    Local(PathBuf),
    /// A file on a server, written through [`Host::put_file`] (atomic).
    Host(Arc<dyn Host>, String),
}

impl StateFile {
    async fn write(&self, text: &str) -> Result<()> {
        match self {
            StateFile::Local(path) => write_atomic(path, text.as_bytes()).await,
            StateFile::Host(host, path) => host
                .write_file(path, text.as_bytes().to_vec(), PutOptions::default())
                .await
                .map(|_| ()),
        }
    }

    fn describe(&self) -> String {
        match self {
            StateFile::Local(p) => p.display().to_string(),
            StateFile::Host(h, p) => format!("{p} on {}", h.name()),
        }
    }
}

/// Writes a file so that a reader (HAProxy reloading) sees the old content or the new, never a mix.
pub(crate) async fn write_atomic(path: &std::path::Path, data: &[u8]) -> Result<()> {
    let path = path.to_path_buf();
    let data = data.to_vec();
    let target = path.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Failed, "haproxy.write_file", &target, e.to_string()))?
    .map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Failed,
        };
        Error::new(kind, "haproxy.write_file", target, e.to_string()).with_source(e)
    })
}

/// A map file HAProxy loaded (`map(<path>)` in the config): runtime changes are written back to it, as
/// `show servers state` is to the state file, or a reload would revert them.
#[derive(Debug, Clone)]
pub struct MapFile {
    /// The map as the configuration names it (its path on the HAProxy server).
    pub name: String,
    /// Where to write its content.
    pub file: StateFile,
}

/// Parses `show map <map>`: `0x… key value` lines into the file format, `key value` lines.
pub fn map_file_text(reply: &str) -> Result<String> {
    if !(reply == "\n" || reply.ends_with("\n\n")) {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "haproxy.show_map",
            "haproxy runtime API",
            "the reply does not end with a blank line (truncated?); the map file was not rewritten",
        ));
    }
    let mut text = String::new();
    for line in reply.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some(id), Some(key), Some(value)) if id.starts_with("0x") => {
                text.push_str(key);
                text.push(' ');
                text.push_str(value);
                text.push('\n');
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "haproxy.show_map",
                    "haproxy runtime API",
                    format!("unexpected line in `show map`: {line:?}"),
                ));
            }
        }
    }
    Ok(text)
}

/// What a switch did, confirmed from `show stat`.
#[derive(Debug, Clone)]
pub struct SwitchReport {
    /// The servers that were live before and are now draining.
    pub drained: Vec<String>,
    /// The server that now takes the traffic.
    pub live: String,
    /// From the call to the confirmation.
    pub took: Duration,
    /// The backend's servers as `show stat` showed them at the confirmation.
    pub confirmed: Vec<StatRow>,
}

/// What a reload did, from the master's `show proc`.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    /// Workers before the reload (now finishing their connections and exiting).
    pub old_workers: Vec<u32>,
    /// The new worker(s), serving.
    pub new_workers: Vec<u32>,
    /// From the call until the new worker answered on the admin socket.
    pub took: Duration,
}

/// One backend of a running HAProxy (`be_app`), driven through the runtime API.
///
/// Every change is followed by saving `show servers state` to the server-state-file (when one is given),
/// so a reload keeps it; [`Haproxy::reload`] goes through the master CLI and confirms a new worker runs.
#[derive(Debug, Clone)]
pub struct Haproxy {
    api: RuntimeApi,
    backend: String,
    state_file: Option<StateFile>,
    maps: Vec<MapFile>,
    master: Option<RuntimeApi>,
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
    async fn change_then_stat(&self, command: &Command) -> Result<Vec<StatRow>> {
        let line = command.line()?;
        let reply = self
            .api
            .raw(&format!(
                "set severity-output string; {line}; show stat;show servers state {}",
                self.backend
            ))
            .await?;
        let Some(at) = reply.find("# pxname") else {
            command.check_reply(&reply)?;
            return Err(Error::new(
                ErrorKind::Corrupt,
                command.operation(),
                command.target(),
                "no `show stat` after the change: the reply was cut, and the change may have applied",
            )
            .with_hint("read the state with `show stat` before retrying"));
        };
        command.check_reply(&reply[..at])?;
        self.parse_stat_reply(&reply[at..])
    }

    fn parse_stat_reply(&self, reply: &str) -> Result<Vec<StatRow>> {
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
                }
                r
            })
            .collect())
    }

    async fn row(&self, server: &str) -> Result<StatRow> {
        self.stat()
            .await?
            .into_iter()
            .find(|r| r.name == server)
            .ok_or_else(|| self.no_server("haproxy.server", server))
    }

    fn no_server(&self, operation: &str, server: &str) -> Error {
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

    async fn persist_after(&self, what: &str) -> Result<()> {
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

    fn server_command(&self, server: &str) -> Result<(String, String)> {
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

    /// Waits until the server has no session in flight.
    pub async fn wait_drained_rows(&self, server: &str, deadline: Duration) -> Result<StatRow> {
        let target = format!("{}/{server}", self.backend);
        poll_until("haproxy.wait_drained", &target, deadline, POLL, || async {
            let row = self.row(server).await?;
            Ok(if row.current_sessions == 0 {
                Ok(row)
            } else {
                Err(format!("{} sessions in flight", row.current_sessions))
            })
        })
        .await
    }

    /// The blue-green switch as one call: `to` is made ready and seen live, then every other live server
    /// of the backend is drained, so there is never a moment without a live server; then `show stat` must
    /// show `to` as the only live server. Instant rollback is the same call with the other server.
    ///
    /// If `to` does not become live by the deadline, its previous state is restored and nothing else was
    /// touched. If draining an old server fails, the error says that both serve.
    pub async fn switch_to(&self, to: &str, deadline: Duration) -> Result<SwitchReport> {
        let started = Instant::now();
        let target = format!("{}/{to}", self.backend);
        let before = self.stat().await?;
        let previous = before
            .iter()
            .find(|r| r.name == to)
            .ok_or_else(|| self.no_server("haproxy.switch", to))?
            .admin;
        let old: Vec<String> = before
            .iter()
            .filter(|r| r.name != to && status_of(r).is_live())
            .map(|r| r.name.clone())
            .collect();
        let (backend, server) = self.server_command(to)?;
        let is_only_live = |rows: &[StatRow]| {
            rows.iter()
                .filter(|r| status_of(r).is_live())
                .map(|r| r.name.as_str())
                .eq([to])
        };
        let mut rows = before.clone();
        if previous != AdminState::Ready {
            rows = self
                .change_then_stat(&Command::SetState {
                    backend: backend.clone(),
                    server: server.clone(),
                    state: AdminState::Ready,
                })
                .await?;
        }
        let target_live = |rows: &[StatRow]| rows.iter().any(|r| r.name == to && status_of(r).is_live());
        let live = if target_live(&rows) {
            Ok(())
        } else {
            poll_fast("haproxy.switch", &target, deadline, || async {
                let row = self.row(to).await?;
                Ok(if status_of(&row).is_live() {
                    Ok(())
                } else {
                    Err(format!("status {}, weight {}", row.status, row.weight))
                })
            })
            .await
        };
        if let Err(e) = live {
            let undo = self
                .api
                .execute(&Command::SetState {
                    backend: backend.clone(),
                    server: server.clone(),
                    state: previous,
                })
                .await;
            let undone = match undo {
                Ok(_) => format!("{to} is back in {previous}"),
                Err(u) => format!("putting {to} back in {previous} failed too ({u}); it is ready"),
            };
            return Err(Error::new(
                e.kind(),
                "haproxy.switch",
                target,
                format!(
                    "{to} did not become live, traffic stays on {old:?}; {undone}: {}",
                    e.message()
                ),
            )
            .with_hint("check the server's health endpoint; `show stat` check_desc says why"));
        }
        let mut confirmed = None;
        for name in &old {
            let drained = self
                .change_then_stat(&Command::SetState {
                    backend: backend.clone(),
                    server: name.clone(),
                    state: AdminState::Drain,
                })
                .await;
            match drained {
                Ok(rows) => confirmed = Some(rows),
                Err(e) => {
                    let _ = self.save_state().await;
                    return Err(Error::new(
                        e.kind(),
                        "haproxy.switch",
                        target,
                        format!("{to} is live, but draining {name} failed, so both serve: {e}"),
                    ));
                }
            }
        }
        // Confirmed from the `show stat` that followed the last drain, or a fresh one.
        let confirmed = match confirmed {
            Some(rows) => rows,
            None => self.stat().await?,
        };
        if !is_only_live(&confirmed) {
            let now_live: Vec<&str> = confirmed
                .iter()
                .filter(|r| status_of(r).is_live())
                .map(|r| r.name.as_str())
                .collect();
            return Err(Error::new(
                ErrorKind::Drift,
                "haproxy.switch",
                target,
                format!("after the switch `show stat` shows {now_live:?} live, expected only {to}"),
            ));
        }
        let took = started.elapsed();
        self.persist_after(&format!("switch to {to}")).await?;
        Ok(SwitchReport {
            drained: old,
            live: to.to_string(),
            took,
            confirmed,
        })
    }

    /// Reloads HAProxy through the master CLI: saves the server state first (so the new worker starts in
    /// it), sends `reload`, and confirms from `show proc` that a new worker runs. A reload HAProxy refused
    /// (a bad config on disk) is [`ErrorKind::Failed`] naming the old worker that still serves.
    pub async fn reload(&self, deadline: Duration) -> Result<ReloadReport> {
        let started = Instant::now();
        let master = self.master.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "haproxy.reload",
                &self.backend,
                "no master CLI configured",
            )
            .with_hint("start HAProxy with `-W -S <master.sock>` and use Haproxy::with_master")
        })?;
        self.save_state().await?;
        let target = master.socket().to_string();
        // A master still re-executing itself after an earlier reload refuses connections for a moment.
        let before = poll_until("haproxy.reload", &target, deadline, POLL * 5, || async {
            match master.show_proc().await {
                Ok(p) => Ok(Ok(p)),
                Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Corrupt) => {
                    Ok(Err(e.to_string()))
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        master.execute(&Command::Reload).await?;
        let after: ProcList = poll_until("haproxy.reload", &target, deadline, POLL * 5, || async {
            // While the master re-executes itself its CLI answers nothing or refuses connections.
            match master.show_proc().await {
                Ok(p) if p.master.reloads > before.master.reloads => Ok(Ok(p)),
                Ok(p) => Ok(Err(format!(
                    "the master has done {} reloads, waiting for {}",
                    p.master.reloads,
                    before.master.reloads + 1
                ))),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Unavailable | ErrorKind::Corrupt | ErrorKind::NotFound
                    ) =>
                {
                    Ok(Err(e.to_string()))
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        let old: Vec<u32> = before.workers.iter().map(|w| w.pid).collect();
        let new: Vec<u32> = after
            .workers
            .iter()
            .map(|w| w.pid)
            .filter(|p| !old.contains(p))
            .collect();
        if after.failed_reloads > 0 || new.is_empty() {
            return Err(Error::new(
                ErrorKind::Failed,
                "haproxy.reload",
                target,
                format!(
                    "HAProxy refused the reload ({} failed); the old worker(s) {:?} still serve with the \
                     previous configuration",
                    after.failed_reloads,
                    after.workers.iter().map(|w| w.pid).collect::<Vec<_>>()
                ),
            )
            .with_hint("run `haproxy -c -f <config>` to see what is wrong with the configuration"));
        }
        // The new worker owns the admin socket once it answers; only then do commands reach it.
        let remaining = deadline.saturating_sub(started.elapsed()).max(POLL);
        poll_until("haproxy.reload", &target, remaining, POLL * 5, || async {
            Ok(match self.api.show_stat().await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            })
        })
        .await?;
        Ok(ReloadReport {
            old_workers: old,
            new_workers: new,
            took: started.elapsed(),
        })
    }
}

/// Polls a condition back to back for its first tries (each try is a socket round trip, ~0.2 ms, which
/// paces it), then every [`POLL`]: tokio's timer cannot wait less than a millisecond, and HAProxy applies a
/// state change within an event-loop turn, so the first few immediate tries usually see it.
async fn poll_fast<F, Fut>(operation: &str, target: &str, deadline: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<std::result::Result<(), String>>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        let why = match check().await? {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if started.elapsed() >= deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                operation,
                target,
                format!("not done after {deadline:?}: {why}"),
            ));
        }
        if attempt < 20 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(POLL).await;
        }
        attempt = attempt.saturating_add(1);
    }
}

/// The core model's view of a `show stat` row.
pub fn status_of(row: &StatRow) -> ServerStatus {
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

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        self.set_admin(server, state).await
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
}
