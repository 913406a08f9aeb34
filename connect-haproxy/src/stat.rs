//! Parsers for what the runtime API prints: `show stat` (CSV), `show servers state` and the master's
//! `show proc`. They take any bytes and never panic: a reply that does not have the expected shape is a
//! [`ErrorKind::Corrupt`] error naming the line.

use std::fmt;

use connect_core::router::{AdminState, CheckState};
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// The first word of a `status` cell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusWord {
    /// `UP`: checks pass (or are going down, with a transition).
    Up,
    /// `DOWN`: checks fail (or are coming up, with a transition).
    Down,
    /// `NOLB`: up, but the agent asked for no new load-balanced traffic.
    NoLb,
    /// `DRAIN`: the administrator drained it (HAProxy prints this whatever the checks say).
    Drain,
    /// `MAINT`: in maintenance.
    Maint,
    /// `no check`: checks disabled; counts as up.
    NoCheck,
    /// A frontend's `OPEN`.
    Open,
    /// A frontend's `STOP`.
    Stop,
    /// A frontend's `FULL`.
    Full,
    /// Anything else, kept verbatim so nothing is lost.
    Other(String),
}

/// A `status` cell of `show stat`, such as `UP`, `DOWN 1/2`, `no check`, `MAINT (via be/srv)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// The state.
    pub word: StatusWord,
    /// `(n, m)` of `UP 1/3`: a check transition in progress (going down from UP, coming up from DOWN).
    pub transition: Option<(u32, u32)>,
    /// What the state is inherited from: `be/srv` of `MAINT (via be/srv)`, `resolution`, `agent`.
    pub via: Option<String>,
}

impl Status {
    /// Parses a status cell. Unknown words are kept as [`StatusWord::Other`]; this never fails.
    pub fn parse(cell: &str) -> Status {
        let cell = cell.trim();
        let (head, paren) = match cell.split_once('(') {
            Some((h, rest)) => (h.trim(), Some(rest.trim_end_matches(')').trim())),
            None => (cell, None),
        };
        let via = paren.map(|p| p.strip_prefix("via ").unwrap_or(p).to_string());
        if head.eq_ignore_ascii_case("no check") {
            return Status {
                word: StatusWord::NoCheck,
                transition: None,
                via,
            };
        }
        let mut parts = head.split_whitespace();
        let word = match parts.next().unwrap_or("") {
            "UP" => StatusWord::Up,
            "DOWN" => StatusWord::Down,
            "NOLB" => StatusWord::NoLb,
            "DRAIN" => StatusWord::Drain,
            "MAINT" => StatusWord::Maint,
            "OPEN" => StatusWord::Open,
            "STOP" => StatusWord::Stop,
            "FULL" => StatusWord::Full,
            _ => StatusWord::Other(cell.to_string()),
        };
        let transition = parts.next().and_then(|t| {
            let (n, m) = t.split_once('/')?;
            Some((n.parse().ok()?, m.parse().ok()?))
        });
        Status {
            word,
            transition,
            via,
        }
    }

    /// The administrative state this status shows: `MAINT…` is maint, `DRAIN…` is drain, the rest ready.
    pub fn admin(&self) -> AdminState {
        match self.word {
            StatusWord::Maint => AdminState::Maint,
            StatusWord::Drain => AdminState::Drain,
            _ => AdminState::Ready,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match &self.word {
            StatusWord::Up => "UP",
            StatusWord::Down => "DOWN",
            StatusWord::NoLb => "NOLB",
            StatusWord::Drain => "DRAIN",
            StatusWord::Maint => "MAINT",
            StatusWord::NoCheck => "no check",
            StatusWord::Open => "OPEN",
            StatusWord::Stop => "STOP",
            StatusWord::Full => "FULL",
            StatusWord::Other(s) => return f.write_str(s),
        };
        f.write_str(word)?;
        if let Some((n, m)) = self.transition {
            write!(f, " {n}/{m}")?;
        }
        if let Some(via) = &self.via {
            write!(f, " (via {via})")?;
        }
        Ok(())
    }
}

/// One row of `show stat`: the columns Connect Ops uses, typed. Columns are found by the header's names,
/// not by position, so a HAProxy that adds columns still parses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatRow {
    /// `pxname`: the frontend or backend.
    pub proxy: String,
    /// `svname`: the server, or `FRONTEND` / `BACKEND`.
    pub name: String,
    /// `scur`: sessions in flight.
    pub current_sessions: u64,
    /// `stot`: sessions since start.
    pub total_sessions: u64,
    /// `status`.
    pub status: Status,
    /// The administrative state. From the status by [`crate::RuntimeApi::show_stat`];
    /// [`crate::Haproxy::stat`] takes it from `show servers state` instead, because a DOWN server shows
    /// `DOWN` even while drained.
    pub admin: AdminState,
    /// `weight`: the effective weight, from [`crate::RuntimeApi::show_stat`]; [`crate::Haproxy::stat`] takes
    /// the user's weight from `show servers state` instead (`srv_uweight`), because a server in MAINT keeps showing its
    /// old effective weight until it comes back.
    pub weight: u32,
    /// `chkfail`: failed checks.
    pub check_failures: u64,
    /// `lastchg`: seconds since the last state change.
    pub last_change_secs: Option<u64>,
    /// `check_status`: the last check's result (`L7OK`, `L4CON`, `*L7OK` while one runs), empty when none.
    pub check_status: String,
    /// `check_code`: the HTTP code of the last layer-7 check.
    pub check_code: Option<u16>,
    /// `check_desc`: the last check in words.
    pub check_desc: String,
    /// `addr`: `ip:port` of a server.
    pub address: String,
    /// HTTP responses of every class (`hrsp_1xx` … `hrsp_5xx` + `hrsp_other`); 0 in TCP mode or when the
    /// columns are absent.
    #[serde(default)]
    pub responses: u64,
    /// `hrsp_5xx`.
    #[serde(default)]
    pub responses_5xx: u64,
    /// `rtime`: average response time (ms) over the last 1024 requests.
    #[serde(default)]
    pub response_time_ms: u64,
}

impl StatRow {
    /// Whether this row is a server (not the `FRONTEND` or `BACKEND` aggregate).
    pub fn is_server(&self) -> bool {
        self.name != "FRONTEND" && self.name != "BACKEND"
    }

    /// What HAProxy's own health checks say of the server.
    ///
    /// A `DRAIN` status hides the check's verdict, so for a draining server the last check's result decides.
    pub fn check(&self) -> CheckState {
        match self.status.word {
            StatusWord::Maint => CheckState::Unknown,
            StatusWord::NoCheck => CheckState::NoCheck,
            StatusWord::Up | StatusWord::NoLb => CheckState::Up,
            StatusWord::Down => CheckState::Down,
            StatusWord::Drain => {
                let last = self.check_status.trim_start_matches('*');
                if last.is_empty() {
                    CheckState::NoCheck
                } else if last.ends_with("OK") || last == "L7OKC" {
                    CheckState::Up
                } else {
                    CheckState::Down
                }
            }
            _ => CheckState::Unknown,
        }
    }
}

fn corrupt(what: &str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, what, "haproxy runtime API", message.into())
        .with_hint("the reply was cut short or is not HAProxy's; check the socket path and HAProxy's version")
}

fn line_excerpt(line: &str) -> String {
    let mut s: String = line.chars().take(80).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

/// Parses the CSV of `show stat`. Every row must have as many cells as the header, and the reply must
/// end with HAProxy's closing blank line: a reply cut short is [`ErrorKind::Corrupt`], never a shorter list.
pub(crate) fn parse_show_stat(reply: &str) -> Result<Vec<StatRow>> {
    const OP: &str = "haproxy.show_stat";
    if !reply.ends_with("\n\n") {
        return Err(corrupt(
            OP,
            "the reply does not end with a blank line (truncated?)",
        ));
    }
    let mut lines = reply.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| corrupt(OP, "no `# pxname,svname,…` header"))?;
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| corrupt(OP, format!("the header has no `{name}` column")))
    };
    let (px, sv, scur, stot, status, weight) = (
        col("pxname")?,
        col("svname")?,
        col("scur")?,
        col("stot")?,
        col("status")?,
        col("weight")?,
    );
    let (chkfail, lastchg, check_status, check_code) = (
        col("chkfail")?,
        col("lastchg")?,
        col("check_status")?,
        col("check_code")?,
    );
    let (check_desc, addr) = (col("check_desc")?, col("addr")?);
    // Traffic counters are read when present: a reply without them still gives the states.
    let optional = |name: &str| columns.iter().position(|c| *c == name);
    let classes: Vec<usize> = [
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
    ]
    .iter()
    .filter_map(|n| optional(n))
    .collect();
    let (hrsp_5xx, rtime) = (optional("hrsp_5xx"), optional("rtime"));
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != columns.len() {
            return Err(corrupt(
                OP,
                format!(
                    "row {} has {} cells, the header {}: {}",
                    i + 1,
                    cells.len(),
                    columns.len(),
                    line_excerpt(line)
                ),
            ));
        }
        let num = |c: usize, name: &str| -> Result<u64> {
            let v = cells[c];
            if v.is_empty() {
                return Ok(0);
            }
            v.parse()
                .map_err(|_| corrupt(OP, format!("row {}: `{name}` is {v:?}, not a number", i + 1)))
        };
        rows.push(StatRow {
            proxy: cells[px].to_string(),
            name: cells[sv].to_string(),
            current_sessions: num(scur, "scur")?,
            total_sessions: num(stot, "stot")?,
            status: Status::parse(cells[status]),
            admin: Status::parse(cells[status]).admin(),
            weight: u32::try_from(num(weight, "weight")?)
                .map_err(|_| corrupt(OP, format!("row {}: weight out of range", i + 1)))?,
            check_failures: num(chkfail, "chkfail")?,
            last_change_secs: cells[lastchg].parse().ok(),
            check_status: cells[check_status].to_string(),
            check_code: cells[check_code].parse().ok(),
            check_desc: cells[check_desc].to_string(),
            address: cells[addr].to_string(),
            responses: classes.iter().map(|c| num(*c, "hrsp_*")).sum::<Result<u64>>()?,
            responses_5xx: hrsp_5xx.map_or(Ok(0), |c| num(c, "hrsp_5xx"))?,
            response_time_ms: rtime.map_or(Ok(0), |c| num(c, "rtime"))?,
        });
    }
    Ok(rows)
}

/// One line of `show servers state`, with its bit fields decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStateRow {
    /// `be_name`.
    pub backend: String,
    /// `srv_name`.
    pub server: String,
    /// `srv_addr`.
    pub address: String,
    /// `srv_port`.
    pub port: u16,
    /// `srv_op_state`: 0 stopped, 1 starting, 2 running, 3 stopping.
    pub op_state: u8,
    /// `srv_admin_state` bits: 0x01 forced maint, 0x02 inherited maint, 0x04 maint by config, 0x08 forced
    /// drain, 0x10 inherited drain, 0x20 maint by DNS resolution.
    pub admin_bits: u32,
    /// `srv_uweight`: the weight the user set.
    pub user_weight: u32,
    /// `srv_iweight`: the weight in the configuration (what `N%` is relative to).
    pub initial_weight: u32,
    /// `srv_check_state` bits: 0x04 means checks are enabled.
    pub check_bits: u32,
}

impl ServerStateRow {
    /// The administrative state the bits say.
    pub fn admin(&self) -> AdminState {
        if self.admin_bits & 0x67 != 0 {
            AdminState::Maint
        } else if self.admin_bits & 0x18 != 0 {
            AdminState::Drain
        } else {
            AdminState::Ready
        }
    }

    /// Whether health checks are enabled.
    pub fn checks_enabled(&self) -> bool {
        self.check_bits & 0x04 != 0
    }
}

/// `show servers state`: the text (what goes into the server-state-file, unchanged) and its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServersState {
    /// The reply as HAProxy printed it: the format version, the header and the rows.
    pub text: String,
    /// The rows, typed.
    pub rows: Vec<ServerStateRow>,
}

/// Parses `show servers state` (format version 1). The text is what HAProxy reads back on reload, so it
/// is kept whole; a reply whose rows do not match the header is [`ErrorKind::Corrupt`] and must not be saved.
pub(crate) fn parse_servers_state(reply: &str) -> Result<ServersState> {
    const OP: &str = "haproxy.show_servers_state";
    if !reply.ends_with("\n\n") {
        return Err(corrupt(
            OP,
            "the reply does not end with a blank line (truncated?)",
        ));
    }
    let mut lines = reply.lines();
    match lines.next() {
        Some("1") => {}
        other => {
            return Err(corrupt(
                OP,
                format!("expected format version `1`, got {:?}", other.map(line_excerpt)),
            ));
        }
    }
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| corrupt(OP, "no `# be_id be_name …` header"))?;
    let columns: Vec<&str> = header.split(' ').collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| corrupt(OP, format!("the header has no `{name}` column")))
    };
    let idx = [
        col("be_name")?,
        col("srv_name")?,
        col("srv_addr")?,
        col("srv_port")?,
        col("srv_op_state")?,
        col("srv_admin_state")?,
        col("srv_uweight")?,
        col("srv_iweight")?,
        col("srv_check_state")?,
    ];
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(' ').collect();
        if cells.len() != columns.len() {
            return Err(corrupt(
                OP,
                format!(
                    "row {} has {} fields, the header {}: {}",
                    i + 1,
                    cells.len(),
                    columns.len(),
                    line_excerpt(line)
                ),
            ));
        }
        let num = |c: usize| -> Result<u32> {
            cells[c].parse().map_err(|_| {
                corrupt(
                    OP,
                    format!("row {}: `{}` is {:?}, not a number", i + 1, columns[c], cells[c]),
                )
            })
        };
        rows.push(ServerStateRow {
            backend: cells[idx[0]].to_string(),
            server: cells[idx[1]].to_string(),
            address: cells[idx[2]].to_string(),
            port: u16::try_from(num(idx[3])?)
                .map_err(|_| corrupt(OP, format!("row {}: port out of range", i + 1)))?,
            op_state: u8::try_from(num(idx[4])?)
                .map_err(|_| corrupt(OP, format!("row {}: op state out of range", i + 1)))?,
            admin_bits: num(idx[5])?,
            user_weight: num(idx[6])?,
            initial_weight: num(idx[7])?,
            check_bits: num(idx[8])?,
        });
    }
    Ok(ServersState {
        text: reply.to_string(),
        rows,
    })
}

/// A process listed by the master CLI's `show proc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcEntry {
    /// Process id.
    pub pid: u32,
    /// How many reloads it has lived through (for the master: how many it did).
    pub reloads: u32,
    /// Uptime as HAProxy prints it (`0d00h00m05s`).
    pub uptime: String,
}

/// The master CLI's `show proc`: the master, the current workers and the old ones still finishing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcList {
    /// The master.
    pub master: ProcEntry,
    /// Reloads that failed since the last one that worked (`[failed: N]`).
    pub failed_reloads: u32,
    /// The current workers (those that serve new connections).
    pub workers: Vec<ProcEntry>,
    /// Workers of earlier configurations still finishing their connections.
    pub old_workers: Vec<ProcEntry>,
}

/// Parses `show proc`.
pub(crate) fn parse_show_proc(reply: &str) -> Result<ProcList> {
    const OP: &str = "haproxy.show_proc";
    #[derive(PartialEq)]
    enum Section {
        Master,
        Workers,
        Old,
        Other,
    }
    let mut section = Section::Master;
    let mut master = None;
    let mut failed = 0;
    let (mut workers, mut old) = (Vec::new(), Vec::new());
    for line in reply.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("#<PID>") {
            continue;
        }
        if let Some(name) = line.strip_prefix('#') {
            section = match name.trim() {
                "workers" => Section::Workers,
                "old workers" => Section::Old,
                _ => Section::Other,
            };
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let entry = |words: &[&str]| -> Result<ProcEntry> {
            let bad = || corrupt(OP, format!("unexpected line {:?}", line_excerpt(line)));
            Ok(ProcEntry {
                pid: words.first().and_then(|p| p.parse().ok()).ok_or_else(bad)?,
                reloads: words.get(2).and_then(|r| r.parse().ok()).ok_or_else(bad)?,
                uptime: words
                    .iter()
                    .find(|w| w.contains('d') && w.ends_with('s'))
                    .map(|w| w.to_string())
                    .unwrap_or_default(),
            })
        };
        match section {
            Section::Master if words.get(1) == Some(&"master") => {
                master = Some(entry(&words)?);
                failed = line
                    .split_once("[failed:")
                    .and_then(|(_, r)| r.split(']').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
            }
            Section::Workers => workers.push(entry(&words)?),
            Section::Old => old.push(entry(&words)?),
            _ => {}
        }
    }
    let master = master.ok_or_else(|| corrupt(OP, "no master line in `show proc`"))?;
    Ok(ProcList {
        master,
        failed_reloads: failed,
        workers,
        old_workers: old,
    })
}

#[cfg(test)]
mod tests;
