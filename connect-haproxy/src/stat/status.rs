//! The `status` cell of `show stat` (`UP 1/3`, `no check`, `MAINT (via be/srv)`), typed. Its own module
//! because both the CSV parser and the switch read it, and it never fails.

use std::fmt;

use connect_core::router::AdminState;
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
