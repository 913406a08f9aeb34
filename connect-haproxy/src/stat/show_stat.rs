//! `show stat`: the CSV row of each proxy and server, typed, with the columns found by the header's names.

use connect_core::Result;
use connect_core::router::{AdminState, CheckState};
use serde::{Deserialize, Serialize};

use super::{Status, StatusWord, corrupt, line_excerpt};

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

/// Parses the CSV of `show stat`. Every row must have as many cells as the header, and the reply must
/// end with HAProxy's closing blank line: a reply cut short is
/// [`ErrorKind::Corrupt`](connect_core::ErrorKind::Corrupt), never a shorter list.
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
