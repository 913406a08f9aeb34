//! Progress on long work: a spinner with the elapsed time and the current step on a terminal, plain lines
//! when stderr is a file or a pipe (a CI log gets no control characters), JSON lines with `--json`.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A spinner redrawn in place on stderr, a terminal.
    Terminal,
    /// One line per step on stderr.
    Plain,
    /// One JSON object per step on stdout.
    Json,
}

impl Mode {
    /// JSON when asked, else a spinner when stderr is a terminal (and `TERM` is not `dumb`).
    pub fn detect(json: bool) -> Mode {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && !dumb {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

/// One piece of long work (a backup, a restore, a step of a deploy) being shown.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    what: String,
    started: Instant,
    bar: Option<ProgressBar>,
    step: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .field("what", &self.what)
            .finish()
    }
}

impl Progress {
    /// Starts showing `what`.
    pub fn start(mode: Mode, what: &str) -> Progress {
        let bar = (mode == Mode::Terminal).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // No colours: NO_COLOR is honoured by never using any.
            let style = ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .tick_strings(&["-", "\\", "|", "/", "+"]);
            bar.set_style(style);
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            mode,
            what: what.to_string(),
            started: Instant::now(),
            bar,
            step: Arc::new(Mutex::new(String::new())),
        }
    }

    /// The step now under way.
    pub fn step(&self, step: &str) {
        if let Ok(mut s) = self.step.lock() {
            *s = step.to_string();
        }
        let ms = self.started.elapsed().as_millis();
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.set_message(step.to_string()),
            (None, Mode::Json) => println!(
                "{}",
                serde_json::json!({"event": "progress", "operation": self.what, "step": step, "elapsed_ms": ms})
            ),
            (None, _) => eprintln!("  ..   {:<13} {ms:>6} ms  {step}", self.what),
        }
    }

    /// A detail of the current step, shown beside it on a terminal only (the health gate's attempts).
    pub fn detail(&self, detail: &str) {
        if let Some(bar) = &self.bar {
            let step = self.step.lock().map(|s| s.clone()).unwrap_or_default();
            bar.set_message(format!("{step} {detail}"));
        }
    }

    /// Prints a line above the spinner (or as a plain line).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.mode == Mode::Json => {}
            None => eprintln!("{text}"),
        }
    }

    /// Stops showing: the spinner is cleared, so the screen keeps only the lines that were printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// How long since it started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // The last clone gone (an error returned early): leave no half-drawn spinner behind.
        if Arc::strong_count(&self.step) == 1 {
            self.finish();
        }
    }
}
