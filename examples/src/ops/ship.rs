//! `connect-ops ship VERSION [--context DIR | --image REF]`: builds where configured and ships the release
//! to the server, only the layers it lacks, without deploying it. A progress bar on a terminal, plain lines
//! otherwise (on stderr), JSON events with `--json` (on stdout); the result on stdout.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use connect_core::engine::{Event, Step};
use connect_core::ship::{BuildOn, ReleaseSource, ShipPhase, ShipReport};
use connect_core::{Error, Result};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use tokio::sync::broadcast::error::RecvError;

use crate::config::ConnectConfig;

/// The longest a plain (non-terminal) display stays silent while bytes move.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// `ship`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ShipArgs {
    /// The release: `<image>:VERSION` on the server.
    pub version: String,
    /// Build this directory (with a Dockerfile) instead of what `[release]` says.
    #[arg(long, conflicts_with = "image")]
    pub context: Option<PathBuf>,
    /// Ship this image of this machine's Docker instead.
    #[arg(long)]
    pub image: Option<String>,
    /// Where `--context` is built: `local` (this machine, then only the missing layers are sent) or `server`.
    #[arg(long, value_enum, requires = "context")]
    pub build_on: Option<BuildOnArg>,
}

/// `--build-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildOnArg {
    /// This machine's Docker Engine.
    Local,
    /// The server's.
    Server,
}

impl ShipArgs {
    /// The source: the flags, else `[release]`; neither is a usage error that says what to add.
    pub fn source(&self, config: &ConnectConfig) -> Result<ReleaseSource> {
        let build_on = match self.build_on {
            Some(BuildOnArg::Server) => BuildOn::Server,
            Some(BuildOnArg::Local) | None => BuildOn::Local,
        };
        match (&self.context, &self.image) {
            (Some(dir), _) => Ok(ReleaseSource::build_context(dir.clone(), build_on)),
            (None, Some(image)) => Ok(ReleaseSource::local_image(image.clone())),
            (None, None) => config.release_source().ok_or_else(|| {
                Error::invalid(
                    "ship",
                    &self.version,
                    "nothing to ship from: no --context, no --image, and no [release] in the config",
                )
                .with_hint("pass --context DIR or --image REF, or set context or image in [release]")
            }),
        }
    }
}

/// Runs `ship`: events as they come (bar, lines or JSON), then the report on stdout.
pub async fn run(config: &ConnectConfig, args: &ShipArgs, json: bool) -> Result<ShipReport> {
    let source = args.source(config)?;
    let release = config.release(&args.version)?;
    let deployer = config.deployer_shipping(Some(&source)).await?;
    let mut display = if json {
        Display::Json
    } else if std::io::stderr().is_terminal() {
        Display::Bar(None)
    } else {
        Display::Plain { last: None }
    };
    let mut events = deployer.subscribe();
    let ship = deployer.ship(release, source);
    let mut ship = std::pin::pin!(ship);
    let result = loop {
        tokio::select! {
            // Events first, so every one is out before the result.
            biased;
            event = events.recv() => match event {
                Ok(event) => display.show(&event),
                Err(RecvError::Lagged(n)) => eprintln!("({n} events skipped)"),
                Err(RecvError::Closed) => break ship.await,
            },
            result = &mut ship => {
                while let Ok(event) = events.try_recv() {
                    display.show(&event);
                }
                break result;
            }
        }
    };
    display.close();
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!("{}", report.summary());
    }
    Ok(report)
}

/// How events are shown.
enum Display {
    /// One JSON line per event on stdout.
    Json,
    /// A progress bar on the terminal (stderr), made when the ship starts.
    Bar(Option<ProgressBar>),
    /// Lines on stderr, at most one every [`PLAIN_EVERY`] while bytes move.
    Plain {
        /// When the last progress line was printed, and its phase and layers.
        last: Option<(Instant, ShipPhase, usize)>,
    },
}

impl Display {
    fn show(&mut self, event: &Event) {
        match self {
            Display::Json => println!("{}", serde_json::to_string(event).unwrap_or_default()),
            Display::Bar(bar) => show_bar(bar, event),
            Display::Plain { last } => {
                if let Some(line) = plain_line(last, event) {
                    eprintln!("{line}");
                }
            }
        }
    }

    fn close(&mut self) {
        if let Display::Bar(Some(bar)) = self {
            bar.finish_and_clear();
        }
    }
}

fn show_bar(bar: &mut Option<ProgressBar>, event: &Event) {
    match event {
        Event::StepStarted { step: Step::Ship } => {
            let b = ProgressBar::new_spinner().with_message("ship: asking the server");
            b.enable_steady_tick(Duration::from_millis(120));
            *bar = Some(b);
        }
        Event::ShipProgress {
            phase,
            layers_done,
            layers_total,
            bytes_done,
            bytes_total,
        } => {
            let Some(b) = bar else { return };
            match phase {
                ShipPhase::Build => b.set_message(format!(
                    "ship: building ({} of context sent)",
                    HumanBytes(*bytes_done)
                )),
                ShipPhase::Send => {
                    if b.length() != Some(*bytes_total) {
                        b.set_style(
                            ProgressStyle::with_template(
                                "ship: sending {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        b.set_length(*bytes_total);
                    }
                    b.set_position(*bytes_done);
                    b.set_message(format!("layer {layers_done}/{layers_total}"));
                }
            }
        }
        Event::StepFinished {
            step: Step::Ship,
            detail,
            duration,
        } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("  ok   ship {:>8} ms  {detail}", duration.as_millis());
        }
        Event::StepFailed {
            step: Step::Ship,
            error,
            duration,
        } => {
            if let Some(b) = bar.take() {
                b.abandon();
            }
            eprintln!("  FAIL ship {:>8} ms  {error}", duration.as_millis());
        }
        _ => {}
    }
}

/// The line a non-terminal shows for `event`, if any: the ship's start and end, each phase's first report,
/// each layer sent, the last report, and otherwise one line every [`PLAIN_EVERY`].
fn plain_line(last: &mut Option<(Instant, ShipPhase, usize)>, event: &Event) -> Option<String> {
    match event {
        Event::StepStarted { step: Step::Ship } => Some("ship: asking the server".into()),
        Event::ShipProgress {
            phase,
            layers_done,
            layers_total,
            bytes_done,
            bytes_total,
        } => {
            let now = Instant::now();
            let complete = bytes_done >= bytes_total && layers_done >= layers_total;
            let due = match *last {
                None => true,
                Some((at, p, layers)) => {
                    p != *phase || layers != *layers_done || complete || now.duration_since(at) >= PLAIN_EVERY
                }
            };
            if !due {
                return None;
            }
            *last = Some((now, *phase, *layers_done));
            Some(match phase {
                ShipPhase::Build => format!("ship: building, {} of context sent", HumanBytes(*bytes_done)),
                ShipPhase::Send => format!(
                    "ship: sending, layer {layers_done}/{layers_total}, {} of {} ({}%)",
                    HumanBytes(*bytes_done),
                    HumanBytes(*bytes_total),
                    (bytes_done * 100).checked_div(*bytes_total).unwrap_or(100)
                ),
            })
        }
        Event::StepFinished {
            step: Step::Ship,
            detail,
            duration,
        } => Some(format!("  ok   ship {:>8} ms  {detail}", duration.as_millis())),
        Event::StepFailed {
            step: Step::Ship,
            error,
            duration,
        } => Some(format!("  FAIL ship {:>8} ms  {error}", duration.as_millis())),
        _ => None,
    }
}
