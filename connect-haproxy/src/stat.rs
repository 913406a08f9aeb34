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
    /// The administrative state. From the status by [`parse_show_stat`]; [`crate::Haproxy::stat`] takes it
    /// from `show servers state` instead, because a DOWN server shows `DOWN` even while drained.
    pub admin: AdminState,
    /// `weight`: the effective weight.
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
pub fn parse_show_stat(reply: &str) -> Result<Vec<StatRow>> {
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
pub fn parse_servers_state(reply: &str) -> Result<ServersState> {
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
pub fn parse_show_proc(reply: &str) -> Result<ProcList> {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,srid,sess_other,h1sess,h2sess,h3sess,req_other,h1req,h2req,h3req,proto,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n";

    fn row(px: &str, sv: &str, scur: &str, status: &str, weight: &str, check: &str, addr: &str) -> String {
        let n = STAT.trim_end().trim_start_matches("# ").split(',').count();
        let mut cells = vec![String::new(); n];
        let names: Vec<&str> = STAT.trim_end().trim_start_matches("# ").split(',').collect();
        let mut set = |name: &str, v: &str| {
            let i = names.iter().position(|c| *c == name).expect("column");
            cells[i] = v.to_string();
        };
        set("pxname", px);
        set("svname", sv);
        set("scur", scur);
        set("status", status);
        set("weight", weight);
        set("check_status", check);
        set("addr", addr);
        cells.join(",") + "\n"
    }

    #[test]
    fn every_status_haproxy_prints() {
        let cases = [
            ("UP", StatusWord::Up, None, None),
            ("DOWN", StatusWord::Down, None, None),
            ("DRAIN", StatusWord::Drain, None, None),
            ("MAINT", StatusWord::Maint, None, None),
            ("no check", StatusWord::NoCheck, None, None),
            ("NOLB", StatusWord::NoLb, None, None),
            ("UP 1/2", StatusWord::Up, Some((1, 2)), None),
            ("DOWN 1/2", StatusWord::Down, Some((1, 2)), None),
            ("DRAIN 1/3", StatusWord::Drain, Some((1, 3)), None),
            (
                "MAINT (via be_app/app1)",
                StatusWord::Maint,
                None,
                Some("be_app/app1"),
            ),
            ("MAINT (resolution)", StatusWord::Maint, None, Some("resolution")),
            ("DOWN (agent)", StatusWord::Down, None, Some("agent")),
            ("OPEN", StatusWord::Open, None, None),
        ];
        for (text, word, transition, via) in cases {
            let s = Status::parse(text);
            assert_eq!(s.word, word, "{text}");
            assert_eq!(s.transition, transition, "{text}");
            assert_eq!(s.via.as_deref(), via, "{text}");
        }
        assert_eq!(
            Status::parse("MAINT (via be/srv)").to_string(),
            "MAINT (via be/srv)"
        );
        assert_eq!(Status::parse("UP 1/2").to_string(), "UP 1/2");
        assert_eq!(Status::parse("WEIRD").word, StatusWord::Other("WEIRD".into()));
    }

    #[test]
    fn show_stat_rows_map_to_admin_and_check() {
        let reply = format!(
            "{STAT}{}{}{}{}\n",
            row("be_app", "app1", "3", "UP", "100", "L7OK", "127.0.0.1:3000"),
            row("be_app", "app2", "0", "DRAIN", "0", "L7OK", "127.0.0.1:3001"),
            row(
                "be_app",
                "app3",
                "0",
                "MAINT (via be_app/app1)",
                "100",
                "",
                "127.0.0.1:3002"
            ),
            row("be_app", "BACKEND", "3", "UP", "100", "", ""),
        );
        let rows = parse_show_stat(&reply).expect("parses");
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].current_sessions, rows[0].weight), (3, 100));
        assert_eq!(
            (rows[0].admin, rows[0].check()),
            (AdminState::Ready, CheckState::Up)
        );
        assert_eq!(
            (rows[1].admin, rows[1].check()),
            (AdminState::Drain, CheckState::Up)
        );
        assert_eq!(
            (rows[2].admin, rows[2].check()),
            (AdminState::Maint, CheckState::Unknown)
        );
        assert!(!rows[3].is_server());
        assert_eq!(rows[0].address, "127.0.0.1:3000");
    }

    #[test]
    fn truncated_or_garbage_show_stat_is_corrupt() {
        let full = format!("{STAT}{}\n", row("be_app", "app1", "0", "UP", "1", "L7OK", "a:1"));
        let cut = &full[..full.len() - 40];
        for bad in [cut, "garbage\n\n", "", "# pxname\n\n", "Unknown command\n"] {
            let e = parse_show_stat(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{bad:?}: {e}");
        }
    }

    #[test]
    fn servers_state_bits() {
        let reply = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 be_app 1 app1 127.0.0.1 2 8 0 100 2 15 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be_app 2 app2 127.0.0.1 2 1 100 100 6 15 3 4 2 0 0 0 - 18082 - 0 0 - - 0\n\n";
        let s = parse_servers_state(reply).expect("parses");
        assert_eq!(s.rows[0].admin(), AdminState::Drain);
        assert!(s.rows[0].checks_enabled());
        assert_eq!(s.rows[1].admin(), AdminState::Maint);
        assert!(!s.rows[1].checks_enabled());
        assert_eq!((s.rows[1].port, s.rows[1].user_weight), (18082, 100));
        assert_eq!(s.text, reply);
        let e = parse_servers_state(&reply[..reply.len() - 20]).expect_err("cut");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn show_proc_workers_and_failed_reloads() {
        let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n15772           master          2 [failed: 1]   0d00h10m27s     2.6.12-1+deb12u4\n# workers\n4806            worker          1               0d00h00m07s     2.6.12-1+deb12u4\n# old workers\n4700            worker          2               0d00h01m07s     2.6.12-1+deb12u4\n# programs\n\n";
        let p = parse_show_proc(reply).expect("parses");
        assert_eq!((p.master.pid, p.master.reloads, p.failed_reloads), (15772, 2, 1));
        assert_eq!(p.workers.iter().map(|w| w.pid).collect::<Vec<_>>(), [4806]);
        assert_eq!(p.old_workers.iter().map(|w| w.pid).collect::<Vec<_>>(), [4700]);
        assert_eq!(parse_show_proc("").expect_err("empty").kind(), ErrorKind::Corrupt);
    }

    proptest! {
        // The fuzz target: no input makes any parser panic.
        #[test]
        fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_show_stat(&text);
            let _ = parse_servers_state(&text);
            let _ = parse_show_proc(&text);
            let _ = Status::parse(&text);
        }

        // Structured fuzzing: real headers followed by arbitrary rows, cut anywhere.
        #[test]
        fn parsers_never_panic_on_mangled_replies(
            cells in proptest::collection::vec("[ -~]{0,12}", 0..200),
            cut in 0usize..4000,
        ) {
            let stat = format!("{STAT}{}\n\n", cells.join(","));
            let stat = &stat[..cut.min(stat.len())];
            let _ = parse_show_stat(stat);
            let state = format!("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_check_state srv_port\n{}\n\n", cells.join(" "));
            let _ = parse_servers_state(&state[..cut.min(state.len())]);
            let proc_ = format!("#<PID> <type>\n1 master {}\n# workers\n{}\n", cells.join(" "), cells.join("\n"));
            let _ = parse_show_proc(&proc_[..cut.min(proc_.len())]);
        }

        #[test]
        fn well_formed_rows_parse_back(
            scur in 0u64..1_000_000,
            weight in 0u32..=256,
            status in prop_oneof![
                Just("UP".to_string()), Just("DOWN".to_string()), Just("DRAIN".to_string()),
                Just("MAINT".to_string()), Just("no check".to_string()), Just("NOLB".to_string()),
                (1u32..5, 2u32..6).prop_map(|(a, b)| format!("UP {a}/{b}")),
                (1u32..5, 2u32..6).prop_map(|(a, b)| format!("DOWN {a}/{b}")),
                "[a-z_]{1,8}/[a-z0-9]{1,8}".prop_map(|v| format!("MAINT (via {v})")),
            ],
            name in "[a-z][a-z0-9_]{0,10}",
        ) {
            let reply = format!("{STAT}{}\n", row("be_app", &name, &scur.to_string(), &status, &weight.to_string(), "L7OK", "127.0.0.1:1"));
            let rows = parse_show_stat(&reply).expect("parses");
            prop_assert_eq!(rows.len(), 1);
            prop_assert_eq!(&rows[0].name, &name);
            prop_assert_eq!(rows[0].current_sessions, scur);
            prop_assert_eq!(rows[0].weight, weight);
            prop_assert_eq!(rows[0].status.to_string(), status);
        }
    }
}
