//! The view as one line per sample, for a pipe or a log file: the same model as the screen, summed up.

use connect_core::model::Color;

use super::model::WatchModel;
use super::render::{backup_line, bytes};

/// One line: the deploy state, each color's traffic, the database, the cache, the running operation's newest
/// step and what could not be read. With `json`, the snapshot as one JSON object instead (without the
/// journal's history, which `connect-ops history` prints).
pub fn line(model: &WatchModel, json: bool) -> String {
    let s = &*model.snapshot;
    if json {
        let mut snapshot = s.clone();
        if let Some(d) = snapshot.deploy.as_mut() {
            d.history.clear();
        }
        return serde_json::to_string(&snapshot).unwrap_or_default();
    }
    let color = |c: Option<Color>| c.map_or("none", Color::as_str);
    let mut parts = Vec::new();
    match &s.deploy {
        Some(d) => parts.push(format!("live {} standby {}", color(d.live), color(d.standby))),
        None => parts.push("journal not read".to_string()),
    }
    for c in &s.colors {
        let text = match (&c.traffic, &c.container) {
            (Some(t), container) => format!(
                "{} {:.1} req/s {:.1}% 5xx {} ms {} sess{}",
                c.color,
                t.responses_per_s,
                t.rate_5xx_percent,
                t.response_time_avg_ms,
                t.current_sessions,
                container
                    .as_ref()
                    .map(|k| format!(" {} {}", k.release.as_deref().unwrap_or("?"), k.health))
                    .unwrap_or_default()
            ),
            (None, _) => format!("{} not read", c.color),
        };
        parts.push(text);
    }
    if let Some(d) = &s.database {
        let connections: u64 = d.figures.connections.values().sum();
        parts.push(format!(
            "pg {connections} conn {:.1} tx/s lag {}",
            d.transactions_per_s,
            bytes(d.max_lag_bytes.unwrap_or(0))
        ));
    }
    if let Some(c) = &s.cache {
        parts.push(format!(
            "redis {} hit {} {} clients",
            c.hit_rate_percent.map_or("-".to_string(), |h| format!("{h:.1}%")),
            bytes(c.figures.used_memory_bytes),
            c.figures.connected_clients
        ));
    }
    if s.backup.is_some() {
        parts.push(backup_line(s));
    }
    if let Some(op) = &model.operation
        && let Some((step, at)) = op.seen.last()
    {
        parts.push(format!("{}: {step} ({at:.1} s)", op.kind));
    }
    let errors = model.errors.iter().map(|e| e.len()).sum::<usize>();
    if errors > 0 {
        parts.push(format!("{errors} error lines"));
    }
    if !s.unavailable.is_empty() {
        let what: Vec<&str> = s.unavailable.iter().map(|u| u.source.as_str()).collect();
        parts.push(format!("not read: {}", what.join(", ")));
    }
    parts.join(" | ")
}
