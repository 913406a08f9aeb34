//! `show servers state`: the text HAProxy reads back on reload (kept whole, for the server-state-file) and
//! its rows with the admin and check bit fields decoded.

use connect_core::Result;
use connect_core::router::AdminState;
use serde::{Deserialize, Serialize};

use super::{corrupt, line_excerpt};

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
    /// `srv_admin_state` bits: 0x01 forced maint, 0x02 inherited maint, 0x04 "disabled in the config" (a
    /// marker HAProxy keeps after `set server … state ready`, not a state: its `SRV_ADMF_MAINT` is 0x63),
    /// 0x08 forced drain, 0x10 inherited drain, 0x20 maint by DNS resolution, 0x40 maint for a hostname.
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
        // Without 0x04: a server `disabled` in the config and made ready reads bits 4 while it serves
        // (seen on 2.6.12 by the fleet's real test).
        if self.admin_bits & 0x63 != 0 {
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
/// is kept whole; a reply whose rows do not match the header is
/// [`ErrorKind::Corrupt`](connect_core::ErrorKind::Corrupt) and must not be saved.
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
