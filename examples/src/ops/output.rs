//! Where output goes: the result on stdout (text, or one JSON object per line with `--json`), progress and
//! errors on stderr (a spinner per step on a terminal, see [`super::progress`]).

use std::sync::{Arc, Mutex};

use connect_core::Error;
use connect_core::engine::{Check, Event, OperationRecord};

use super::exit_code;
use super::progress::{Mode, Progress};

/// Human text, or JSON lines.
#[derive(Debug, Clone)]
pub struct Output {
    json: bool,
    mode: Mode,
    /// The spinner of the engine step under way, on a terminal.
    step: Arc<Mutex<Option<Progress>>>,
}

impl Output {
    /// JSON lines when `json`, else text; progress drawn as a spinner when stderr is a terminal.
    pub fn new(json: bool) -> Output {
        Output {
            json,
            mode: Mode::detect(json),
            step: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether results and events are JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// How progress is shown.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Starts showing a piece of long work (`backup`, `restore`).
    pub fn progress(&self, what: &str) -> Progress {
        Progress::start(self.mode, what)
    }

    /// One engine event: a JSON line, or progress on stderr: on a terminal each step is a spinner with its
    /// elapsed time (the health gate's with its attempts) until its line replaces it.
    pub fn event(&self, event: &Event) {
        if self.json {
            println!("{}", serde_json::to_string(event).unwrap_or_default());
            return;
        }
        let Ok(mut current) = self.step.lock() else {
            return;
        };
        match event {
            Event::StepStarted { step } if self.mode == Mode::Terminal => {
                if let Some(previous) = current.take() {
                    previous.finish();
                }
                let progress = Progress::start(self.mode, step.as_str());
                progress.step("");
                *current = Some(progress);
                return;
            }
            Event::HealthAttempt {
                color,
                attempt,
                health,
            } => {
                if let Some(progress) = current.as_ref() {
                    progress.detail(&format!("{color}: attempt {attempt}, {health}"));
                }
                return;
            }
            _ => {}
        }
        if let Some(line) = event_line(event) {
            if let Some(progress) = current.take() {
                progress.finish();
            }
            eprintln!("{line}");
        }
    }

    /// One event of one app host of a fleet: a JSON line with its `host`, or its line prefixed with the
    /// host's name (no spinner: the hosts' steps run at once).
    pub fn host_event(&self, host: &str, event: &Event) {
        if self.json {
            let mut value = serde_json::to_value(event).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("host".to_string(), host.into());
            }
            println!("{value}");
        } else if let Some(line) = event_line(event) {
            eprintln!("{host}: {}", line.trim_start());
        }
    }

    /// Clears the spinner of a step that never said it ended (an operation cut short), before the result.
    pub fn end_progress(&self) {
        if let Some(progress) = self.step.lock().ok().and_then(|mut s| s.take()) {
            progress.finish();
        }
    }

    /// A remark on stderr.
    pub fn note(&self, text: &str) {
        eprintln!("{text}");
    }

    /// The result: `value` as JSON, or `text`.
    pub fn result<T: serde::Serialize>(&self, value: &T, text: &str) {
        if self.json {
            println!("{}", serde_json::to_string(value).unwrap_or_default());
        } else {
            println!("{text}");
        }
    }

    /// An operation's record as the result.
    pub fn record(&self, record: &OperationRecord) {
        self.result(record, &summary(record));
    }

    /// The error, with its fix.
    pub fn error(&self, e: &Error) {
        if self.json {
            let error = serde_json::json!({"error": {
                "kind": e.kind(),
                "operation": e.operation(),
                "target": e.target(),
                "message": e.message(),
                "hint": e.hint(),
                "exit_code": exit_code(e),
            }});
            println!("{error}");
        } else {
            eprintln!("error: {}", e.summary());
            if let Some(hint) = e.hint() {
                eprintln!("  fix: {hint}");
            }
        }
    }
}

/// The human line of an event; `None` for events only JSON shows.
pub fn event_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::OperationStarted {
            kind,
            release,
            target,
            ..
        } => {
            let what = release
                .as_ref()
                .map_or(String::new(), |r| format!(" {}", r.version));
            format!("{kind}{what} -> {target}")
        }
        Event::StepFinished {
            step,
            duration,
            detail,
        } => format!("  ok   {step:<13} {:>6} ms  {detail}", duration.as_millis()),
        Event::StepFailed {
            step,
            duration,
            error,
        } => format!("  FAIL {step:<13} {:>6} ms  {error}", duration.as_millis()),
        Event::StepSkipped { step, reason } => format!("  skip {step:<13}           {reason}"),
        Event::Warning { step, message } => format!("  warn {step:<13}           {message}"),
        Event::TrafficSwitched {
            to, confirmed_after, ..
        } => format!(
            "       traffic on {to}, confirmed after {:.1} ms",
            confirmed_after.as_secs_f64() * 1000.0
        ),
        _ => return None,
    })
}

/// One line for an operation record.
pub fn summary(r: &OperationRecord) -> String {
    let release = r
        .release
        .as_ref()
        .map_or(String::new(), |r| format!(" {}", r.version));
    let live = r.live_after.map_or("none".to_string(), |c| c.to_string());
    format!(
        "{} {}{release}: {:?}, live {live}, {} ms",
        r.id, r.kind, r.outcome, r.duration_ms
    )
}

/// A check report as aligned lines.
pub fn checks(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| {
            format!(
                "  {:<5} {:<24} {}",
                format!("{:?}", c.status).to_lowercase(),
                c.name,
                c.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
