//! Parsers for what the runtime API prints: `show stat` (CSV), `show servers state` and the master's
//! `show proc`. They take any bytes and never panic: a reply that does not have the expected shape is a
//! [`ErrorKind::Corrupt`] error naming the line.
//!
//! One module a reply: `show_stat.rs` (with the `status` cell in `status.rs`), `servers_state.rs`,
//! `proc.rs`; the error they share is here.

use connect_core::{Error, ErrorKind};

mod proc;
mod servers_state;
mod show_stat;
mod status;

pub(crate) use proc::parse_show_proc;
pub use proc::{ProcEntry, ProcList};
pub(crate) use servers_state::parse_servers_state;
pub use servers_state::{ServerStateRow, ServersState};
pub use show_stat::StatRow;
pub(crate) use show_stat::parse_show_stat;
pub use status::{Status, StatusWord};

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

#[cfg(test)]
mod tests;
