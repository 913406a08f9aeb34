//! What the terminal view shows, kept apart from drawing it: the newest snapshot, each color's recent
//! figures for the sparklines, each color's last error lines, and the running operation's steps as they are
//! seen. Pure: updated from snapshots and log lines, so it is tested without a server or a terminal.

use std::collections::VecDeque;
use std::sync::Arc;

use connect_core::metrics::{LastOperation, Snapshot};
use connect_core::model::Color;
use connect_core::router::AdminState;
use connect_core::runtime::{ContainerState, Health};

/// Samples kept for a sparkline (a minute at one a second).
pub const HISTORY: usize = 60;
/// Error lines kept per color.
pub const ERROR_LINES: usize = 4;
/// Characters kept of an error line (a long stack trace line would otherwise fill the screen).
pub const ERROR_LINE_CHARS: usize = 200;

/// The terminal view's model.
#[derive(Debug, Clone, Default)]
pub struct WatchModel {
    /// The newest snapshot (`sequence` 0 before the first).
    pub snapshot: Arc<Snapshot>,
    /// Blue's then green's recent figures.
    pub series: [ColorSeries; 2],
    /// Blue's then green's last error lines, oldest first.
    pub errors: [VecDeque<String>; 2],
    /// The operation running now, or the last one seen running (with how it ended).
    pub operation: Option<RunningOperation>,
}

/// One color's recent figures, oldest first, at most [`HISTORY`] each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColorSeries {
    /// Responses per second.
    pub responses_per_s: Vec<u64>,
    /// 5xx share in tenths of a percent (a sparkline takes integers).
    pub rate_5xx_permille: Vec<u64>,
    /// HAProxy's average response time, milliseconds.
    pub response_time_ms: Vec<u64>,
    /// Sessions in flight.
    pub sessions: Vec<u64>,
}

/// An operation seen running: from the deploy lock (taken first) and the intent it records before it
/// changes what runs, with what the snapshots showed happen since.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningOperation {
    /// What it is (`deploy`, `instant_rollback`…).
    pub kind: String,
    /// Who runs it.
    pub holder: String,
    /// When it took the lock (unix milliseconds).
    pub since_unix_ms: u64,
    /// The release it starts, once its intent says.
    pub release: Option<String>,
    /// The color it changes, once its intent says, and the one that served before.
    pub to: Option<Color>,
    /// The color that served before.
    pub from: Option<Color>,
    /// What was seen happen, in order, each with the seconds since `since_unix_ms` when first seen.
    pub seen: Vec<(String, f64)>,
    /// The journal's record once it ended.
    pub ended: Option<LastOperation>,
}

impl WatchModel {
    /// Takes a new snapshot: appends the rates to the sparklines and follows the running operation.
    pub fn update(&mut self, snapshot: Arc<Snapshot>) {
        for (i, color) in [Color::Blue, Color::Green].into_iter().enumerate() {
            let traffic = snapshot
                .color(color)
                .and_then(|c| c.traffic.clone())
                .unwrap_or_default();
            let s = &mut self.series[i];
            push(&mut s.responses_per_s, traffic.responses_per_s.round() as u64);
            push(
                &mut s.rate_5xx_permille,
                (traffic.rate_5xx_percent * 10.0).round() as u64,
            );
            push(&mut s.response_time_ms, traffic.response_time_avg_ms);
            push(&mut s.sessions, traffic.current_sessions);
        }
        self.operation = follow(self.operation.take(), &snapshot);
        self.snapshot = snapshot;
    }

    /// Keeps `line` as `color`'s newest error line (the oldest dropped past [`ERROR_LINES`]); a line kept
    /// already is not kept twice (a log reopened after a restart gives its tail again).
    pub fn error_line(&mut self, color: Color, line: &str) {
        let line: String = line.trim_end().chars().take(ERROR_LINE_CHARS).collect();
        let lines = &mut self.errors[color as usize];
        if lines.contains(&line) {
            return;
        }
        if lines.len() == ERROR_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

fn push(series: &mut Vec<u64>, value: u64) {
    if series.len() == HISTORY {
        series.remove(0);
    }
    series.push(value);
}

/// The running operation after `snapshot`: started when a lock or intent appears, its steps appended as
/// they become visible, ended with the journal's record once the lock and intent are gone.
pub fn follow(current: Option<RunningOperation>, snapshot: &Snapshot) -> Option<RunningOperation> {
    let Some(deploy) = &snapshot.deploy else {
        return current;
    };
    let at = |op: &RunningOperation| snapshot.taken_unix_ms.saturating_sub(op.since_unix_ms) as f64 / 1000.0;
    // The lock is taken first; an intent without a lock is a killed operation's, still worth showing.
    let start = match (&deploy.lock, &deploy.intent) {
        (Some(l), _) => Some((l.operation.to_string(), l.holder.clone(), l.since_unix_ms)),
        (None, Some(i)) => Some((i.kind.to_string(), i.holder.clone(), i.since_unix_ms)),
        (None, None) => None,
    };
    let running = start.is_some();
    let mut op = match (current, start) {
        (Some(op), _) if op.ended.is_none() || !running => op,
        // A new operation (or the first seen).
        (_, Some((kind, holder, since_unix_ms))) => RunningOperation {
            kind,
            holder,
            since_unix_ms,
            release: None,
            to: None,
            from: None,
            seen: Vec::new(),
            ended: None,
        },
        (_, None) => return None,
    };
    if op.ended.is_some() {
        return Some(op);
    }
    if !running {
        // Ended: the journal's newest record is this operation's when it began after the lock was taken.
        if let Some(last) = &deploy.last
            && last.started_unix_ms + 1000 >= op.since_unix_ms
        {
            let line = format!(
                "ended {} in {:.1} s",
                last.outcome,
                last.duration_ms as f64 / 1000.0
            );
            let t = at(&op);
            op.seen.push((line, t));
            op.ended = Some(last.clone());
        }
        return Some(op);
    }
    if let Some(intent) = &deploy.intent {
        op.release = intent.release.as_ref().map(|r| r.version.clone());
        op.to = Some(intent.to);
        op.from = intent.from;
    }
    for fact in facts(&op, snapshot) {
        if !op.seen.iter().any(|(f, _)| *f == fact) {
            let t = at(&op);
            op.seen.push((fact, t));
        }
    }
    Some(op)
}

/// What `snapshot` shows of `op`'s progress now, in the runbook's order.
fn facts(op: &RunningOperation, snapshot: &Snapshot) -> Vec<String> {
    let mut facts = vec![format!("{} by {}", op.kind, op.holder)];
    let Some(to) = op.to else {
        return facts;
    };
    let release = op.release.as_deref().unwrap_or("its release");
    facts.push(format!("intent: {to} gets {release}"));
    let row = snapshot.color(to);
    if let Some(c) = row.and_then(|r| r.container.as_ref())
        && c.state == ContainerState::Running
        && (op.release.is_none() || c.release == op.release)
    {
        facts.push(format!("{to} started ({release})"));
        if matches!(c.health, Health::Healthy | Health::None) {
            facts.push(format!("{to} healthy"));
        }
    }
    let admin = |color: Color| {
        snapshot
            .color(color)
            .and_then(|r| r.traffic.as_ref())
            .and_then(|t| t.admin)
    };
    if admin(to) == Some(AdminState::Ready)
        && op.from.is_none_or(|from| admin(from) != Some(AdminState::Ready))
    {
        facts.push(format!("traffic switched to {to}"));
        if let Some(from) = op.from {
            let sessions = snapshot
                .color(from)
                .and_then(|r| r.traffic.as_ref())
                .map_or(0, |t| t.current_sessions);
            if sessions == 0 {
                facts.push(format!("{from} drained"));
            }
        }
    }
    facts
}
