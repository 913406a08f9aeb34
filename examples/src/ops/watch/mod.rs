//! `watch [--interval 1s] [--once]`: the deployment live in the terminal, the runbook's "Monitoring During
//! Deployment" in one command. One [`Sampler`] reads the server once per interval (the same source and cost as
//! the exporter's, see `cargo bench --bench metrics`), each color's container log is followed for its error
//! lines, and [`render::render`] draws the [`model::WatchModel`] those feed. On a terminal it takes the
//! alternate screen until `q`, Esc or Ctrl-C (restored on an error or a panic too); into a pipe it prints one
//! summary line per sample (a JSON snapshot per line with `--json`).

pub mod errors;
pub mod model;
pub mod plain;
pub mod render;
pub mod terminal;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use connect_core::metrics::{Sampler, Snapshot};
use connect_core::model::Color;
use connect_core::{Error, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::Context;
use model::WatchModel;
use terminal::{Input, Screen};

/// Rows of the screen `--once` prints (the view's panels fit in 40).
pub const ONCE_HEIGHT: u16 = 40;

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// How often to read the server and redraw.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print the view once, after two samples (rates need two), and exit: the screen as text on a terminal,
    /// the summary line (or the JSON snapshot) otherwise.
    #[arg(long)]
    pub once: bool,
}

impl WatchArgs {
    /// Runs the view until `q`/Esc/Ctrl-C (or SIGTERM), or once with `--once`.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        if self.interval.is_zero() {
            return Err(
                Error::invalid("watch", "--interval", "the interval must be above zero")
                    .with_hint("e.g. --interval 1s"),
            );
        }
        let (_, deployer) = cx.deployer().await?;
        let sampler = Sampler::start(deployer.clone(), self.interval)?;
        let (send, lines) = mpsc::channel(256);
        let topology = &deployer.config().topology;
        let followers: Vec<_> = [Color::Blue, Color::Green]
            .into_iter()
            .map(|color| {
                let runtime = deployer.backends().runtime.clone();
                let container = topology.slot(color).container.clone();
                errors::follow(runtime, color, container, sampler.subscribe(), send.clone())
            })
            .collect();
        drop(send);
        let view = sampler.subscribe();
        let terminal = !cx.out.is_json() && std::io::stdout().is_terminal();
        let result = match (self.once, terminal) {
            (true, _) => once(view, lines, terminal, cx.out.is_json()).await,
            (false, true) => on_screen(view, lines).await,
            (false, false) => plain_lines(view, lines, cx.out.is_json()).await,
        };
        for follower in followers {
            follower.abort();
        }
        result
    }
}

/// Ctrl-C as a signal (a pipe's, or another process's `kill -INT`) and SIGTERM: how the view is stopped when
/// no key reaches it.
async fn stopped() {
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}

async fn on_screen(
    mut view: watch::Receiver<Arc<Snapshot>>,
    mut lines: mpsc::Receiver<(Color, String)>,
) -> Result<()> {
    let mut screen = Screen::enter()?;
    let mut keys = terminal::keys();
    let mut stop = std::pin::pin!(stopped());
    let mut model = WatchModel::default();
    loop {
        screen.draw(|frame| render::render(frame, &model))?;
        // Draw again on a new sample or a resize; error lines wait for the next sample.
        loop {
            tokio::select! {
                changed = view.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    model.update(view.borrow_and_update().clone());
                    break;
                }
                Some((color, line)) = lines.recv() => model.error_line(color, &line),
                input = keys.recv() => match input {
                    Some(Input::Redraw) => break,
                    Some(Input::Quit) | None => return Ok(()),
                },
                _ = &mut stop => return Ok(()),
            }
        }
    }
}

async fn plain_lines(
    mut view: watch::Receiver<Arc<Snapshot>>,
    mut lines: mpsc::Receiver<(Color, String)>,
    json: bool,
) -> Result<()> {
    let mut stop = std::pin::pin!(stopped());
    let mut model = WatchModel::default();
    loop {
        tokio::select! {
            changed = view.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                model.update(view.borrow_and_update().clone());
                println!("{}", plain::line(&model, json));
            }
            Some((color, line)) = lines.recv() => model.error_line(color, &line),
            _ = &mut stop => return Ok(()),
        }
    }
}

async fn once(
    mut view: watch::Receiver<Arc<Snapshot>>,
    mut lines: mpsc::Receiver<(Color, String)>,
    terminal: bool,
    json: bool,
) -> Result<()> {
    let mut model = WatchModel::default();
    while model.snapshot.sequence < 2 {
        tokio::select! {
            changed = view.changed() => {
                if changed.is_err() {
                    break;
                }
                model.update(view.borrow_and_update().clone());
            }
            Some((color, line)) = lines.recv() => model.error_line(color, &line),
        }
    }
    while let Ok((color, line)) = lines.try_recv() {
        model.error_line(color, &line);
    }
    if terminal {
        let width = ratatui::crossterm::terminal::size().map_or(120, |(w, _)| w);
        print!("{}", render::screen_text(&model, width, ONCE_HEIGHT));
    } else {
        println!("{}", plain::line(&model, json));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
