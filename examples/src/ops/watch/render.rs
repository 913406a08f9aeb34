//! Drawing the model: a pure function of [`WatchModel`] into a ratatui frame, the runbook's panels top to
//! bottom (traffic per color with sparklines, containers, PostgreSQL and Redis, the deploy and the running
//! operation, each color's last error lines). No colours: bold and plain text only, which reads the same on
//! any terminal and costs few bytes over a slow link (ratatui sends only the cells that changed).

use connect_core::metrics::{ColorView, Snapshot};
use connect_core::model::Color;
use connect_core::router::CheckState;
use connect_core::runtime::ContainerState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, Wrap};

use super::model::{ColorSeries, WatchModel};

const COLORS: [Color; 2] = [Color::Blue, Color::Green];

/// Draws `model` over the whole frame.
pub fn render(frame: &mut Frame<'_>, model: &WatchModel) {
    let [title, traffic, containers, data, deploy, errors, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let s = &*model.snapshot;
    frame.render_widget(Paragraph::new(title_line(s)), title);
    if s.sequence == 0 {
        frame.render_widget(
            Paragraph::new("waiting for the first sample…").block(Block::bordered()),
            traffic,
        );
        return;
    }
    render_traffic(frame, traffic, model);
    render_containers(frame, containers, s);
    let [database, cache] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(data);
    frame.render_widget(database_panel(s), database);
    frame.render_widget(cache_panel(s), cache);
    let [state, operation] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(deploy);
    frame.render_widget(deploy_panel(s), state);
    frame.render_widget(operation_panel(model), operation);
    frame.render_widget(errors_panel(model), errors);
    frame.render_widget(Paragraph::new(footer_line(s)), footer);
}

fn bold(text: impl Into<String>) -> Span<'static> {
    Span::styled(text.into(), Style::default().add_modifier(Modifier::BOLD))
}

fn title_line(s: &Snapshot) -> Line<'static> {
    let mut spans = vec![bold("connect-ops watch")];
    if s.sequence > 0 {
        spans.push(Span::raw(format!(
            "  sample {} every {:.1} s",
            s.sequence,
            s.interval_ms as f64 / 1000.0
        )));
    }
    if let Some(d) = &s.deploy {
        let color = |c: Option<Color>| c.map_or("none", Color::as_str);
        spans.push(Span::raw("   "));
        spans.push(bold(format!("live {}", color(d.live))));
        spans.push(Span::raw(format!("  standby {}", color(d.standby))));
        if d.maintenance {
            spans.push(bold("  MAINTENANCE PAGE ON"));
        }
    }
    Line::from(spans)
}

fn render_traffic(frame: &mut Frame<'_>, area: Rect, model: &WatchModel) {
    let block =
        Block::bordered().title(" traffic (HAProxy, per color; response time: average of the last 1024) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = Layout::vertical([Constraint::Length(3), Constraint::Length(3)]).split(inner);
    for (i, color) in COLORS.into_iter().enumerate() {
        let row = model.snapshot.color(color);
        let [head, figures] = Layout::vertical([Constraint::Length(1), Constraint::Length(2)]).areas(rows[i]);
        frame.render_widget(Paragraph::new(server_line(color, row)), head);
        render_figures(frame, figures, row, &model.series[i]);
    }
}

fn server_line(color: Color, row: Option<&ColorView>) -> Line<'static> {
    let mut spans = vec![bold(format!("{color:<6}"))];
    let Some(row) = row else {
        return Line::from(spans);
    };
    spans.push(Span::raw(format!("{} ", row.server)));
    match &row.traffic {
        Some(t) => {
            let admin = t.admin.map_or("?".to_string(), |a| a.to_string());
            let check = match t.check {
                Some(CheckState::Up) => "up",
                Some(CheckState::Down) => "DOWN",
                Some(CheckState::NoCheck) => "no check",
                Some(CheckState::Unknown) | None => "?",
            };
            let weight = t.weight.map_or("?".to_string(), |w| w.to_string());
            spans.push(Span::raw(format!("{admin}, checks {check}, weight {weight}")));
        }
        None => spans.push(Span::raw("not read")),
    }
    Line::from(spans)
}

fn render_figures(frame: &mut Frame<'_>, area: Rect, row: Option<&ColorView>, series: &ColorSeries) {
    let t = row.and_then(|r| r.traffic.clone()).unwrap_or_default();
    let columns: [(String, &[u64]); 4] = [
        (format!("req/s {:.1}", t.responses_per_s), &series.responses_per_s),
        (
            format!("5xx {:.1} %", t.rate_5xx_percent),
            &series.rate_5xx_permille,
        ),
        (
            format!("resp avg {} ms", t.response_time_avg_ms),
            &series.response_time_ms,
        ),
        (format!("sessions {}", t.current_sessions), &series.sessions),
    ];
    let areas = Layout::horizontal([Constraint::Ratio(1, 4); 4]).split(area);
    for ((label, data), area) in columns.into_iter().zip(areas.iter()) {
        let [text, spark] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(*area);
        frame.render_widget(Paragraph::new(format!("  {label}")), text);
        let spark = spark.inner(ratatui::layout::Margin::new(1, 0));
        // The newest samples that fit, the newest on the right.
        let shown = &data[data.len().saturating_sub(spark.width as usize)..];
        frame.render_widget(Sparkline::default().data(shown.iter().copied()), spark);
    }
}

fn render_containers(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    // As wide as the longest name: container names are the operator's choice.
    let w = s
        .colors
        .iter()
        .map(|c| c.container_name.len() + 2)
        .max()
        .unwrap_or(0)
        .max(11);
    let mut lines = vec![Line::from(bold(format!(
        "{:<7}{:<w$}{:<10}{:<10}{:<17}{:>9}{:>8}  {}",
        "color", "container", "release", "state", "health", "restarts", "CPU %", "memory"
    )))];
    for color in COLORS {
        let Some(row) = s.color(color) else { continue };
        let text = match &row.container {
            None => format!("{:<7}{:<w$}(none)", color.as_str(), row.container_name),
            Some(c) => {
                let state = match c.state {
                    ContainerState::Running => "running",
                    ContainerState::Created => "created",
                    ContainerState::Exited => "exited",
                };
                let cpu = c.cpu_percent.map_or("-".to_string(), |p| format!("{p:.1}"));
                let memory = match (c.memory_bytes, c.memory_limit_bytes) {
                    (Some(m), Some(l)) => format!("{} of {}", bytes(m), bytes(l)),
                    (Some(m), None) => bytes(m),
                    _ => "-".to_string(),
                };
                format!(
                    "{:<7}{:<w$}{:<10}{:<10}{:<17}{:>9}{:>8}  {}",
                    color.as_str(),
                    row.container_name,
                    c.release.as_deref().unwrap_or("?"),
                    state,
                    c.health.to_string(),
                    c.restarts,
                    cpu,
                    memory
                )
            }
        };
        lines.push(Line::from(text));
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" containers (Docker) ")),
        area,
    );
}

/// `n` bytes in the largest binary unit that keeps it above 1.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as `42 s`, `12 min`, `3.5 h` or `2.0 d`.
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{:.1} h", s as f64 / 3600.0),
        s => format!("{:.1} d", s as f64 / 86400.0),
    }
}

fn database_panel(s: &Snapshot) -> Paragraph<'static> {
    let mut lines = Vec::new();
    match &s.database {
        Some(d) => {
            let total: u64 = d.figures.connections.values().sum();
            let states: Vec<String> = d
                .figures
                .connections
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            lines.push(Line::from(format!(
                "connections {total} of {} ({})",
                d.figures.max_connections,
                states.join(", ")
            )));
            let lag = match (d.max_lag_bytes, d.figures.replicas.len()) {
                (_, 0) => "no replica".to_string(),
                (Some(l), n) => format!("{n} replica(s), largest lag {}", bytes(l)),
                (None, n) => format!("{n} replica(s)"),
            };
            lines.push(Line::from(format!(
                "{:.1} transactions/s, {lag}",
                d.transactions_per_s
            )));
        }
        None => lines.push(Line::from("not read")),
    }
    lines.push(Line::from(backup_line(s)));
    Paragraph::new(lines).block(Block::bordered().title(" PostgreSQL "))
}

/// The continuous-backup state in one line.
pub fn backup_line(s: &Snapshot) -> String {
    let Some(b) = &s.backup else {
        return "continuous backup: none".to_string();
    };
    let b = &b.state;
    let when = |a: Option<u64>| a.map_or("never".to_string(), |a| format!("{} ago", age(a)));
    format!(
        "backup: full {}, WAL archived {}{}",
        when(b.last_full_age_s),
        when(b.last_archived_age_s),
        if b.archive_failing {
            ", ARCHIVING FAILS"
        } else {
            ""
        }
    )
}

fn cache_panel(s: &Snapshot) -> Paragraph<'static> {
    let lines = match &s.cache {
        Some(c) => vec![
            Line::from(format!(
                "hit rate {}",
                c.hit_rate_percent
                    .map_or("- (no reads)".to_string(), |h| format!("{h:.1} %"))
            )),
            Line::from(format!("memory {}", bytes(c.figures.used_memory_bytes))),
            Line::from(format!("clients {}", c.figures.connected_clients)),
        ],
        None => vec![Line::from("not read")],
    };
    Paragraph::new(lines).block(Block::bordered().title(" Redis "))
}

fn deploy_panel(s: &Snapshot) -> Paragraph<'static> {
    let mut lines = Vec::new();
    if let Some(d) = &s.deploy {
        let releases: Vec<String> = d.releases.iter().map(|(c, v)| format!("{c} {v}")).collect();
        lines.push(Line::from(format!("releases: {}", releases.join(", "))));
        if let Some(last) = &d.last {
            let failed = last.failed_step.map(|s| format!(" at {s}")).unwrap_or_default();
            lines.push(Line::from(vec![
                Span::raw("last: "),
                bold(format!(
                    "{} {} {}{failed}",
                    last.kind,
                    last.release.as_deref().unwrap_or(""),
                    last.outcome
                )),
                Span::raw(format!(" in {:.1} s", last.duration_ms as f64 / 1000.0)),
            ]));
            let steps: Vec<String> = last
                .steps
                .iter()
                .map(|s| format!("{} {:.1}s", s.step, s.duration_ms as f64 / 1000.0))
                .collect();
            lines.push(Line::from(steps.join(" · ")));
        }
    } else {
        lines.push(Line::from("journal not read"));
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().title(" deploy "))
}

fn operation_panel(model: &WatchModel) -> Paragraph<'static> {
    let (title, lines) = match &model.operation {
        None => (" operation ".to_string(), vec![Line::from("none running")]),
        Some(op) => {
            let title = if op.ended.is_some() {
                " last operation seen "
            } else {
                " running "
            };
            // The newest steps when they do not all fit.
            let lines = op
                .seen
                .iter()
                .map(|(what, at)| Line::from(format!("{at:>6.1} s  {what}")))
                .collect();
            (title.to_string(), lines)
        }
    };
    let height = 7;
    let skip = lines.len().saturating_sub(height);
    Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).block(Block::bordered().title(title))
}

fn errors_panel(model: &WatchModel) -> Paragraph<'static> {
    let mut lines = Vec::new();
    for color in COLORS {
        let errors = &model.errors[color as usize];
        if errors.is_empty() {
            lines.push(Line::from(vec![
                bold(format!("{color:<6}")),
                Span::raw("no error lines"),
            ]));
        }
        for line in errors {
            lines.push(Line::from(vec![
                bold(format!("{color:<6}")),
                Span::raw(line.clone()),
            ]));
        }
    }
    Paragraph::new(lines).block(Block::bordered().title(" last error lines (container logs) "))
}

fn footer_line(s: &Snapshot) -> Line<'static> {
    if s.unavailable.is_empty() {
        return Line::from("q or Esc quits");
    }
    let what: Vec<&str> = s.unavailable.iter().map(|u| u.source.as_str()).collect();
    Line::from(vec![
        bold("not read: "),
        Span::raw(what.join(", ")),
        Span::raw("   (q quits)"),
    ])
}

/// The view drawn on a `width` × `height` screen, as text lines (trailing spaces trimmed): what `--once`
/// prints and what the tests read.
pub fn screen_text(model: &WatchModel, width: u16, height: u16) -> String {
    let backend = ratatui::backend::TestBackend::new(width, height);
    // The test backend cannot fail (its error type is `Infallible`).
    let mut terminal = match ratatui::Terminal::new(backend) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    if let Err(never) = terminal.draw(|frame| render(frame, model)) {
        match never {}
    }
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let row: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        text.push_str(row.trim_end());
        text.push('\n');
    }
    text
}
