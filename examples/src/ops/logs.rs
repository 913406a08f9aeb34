//! `logs [COLOR|--release V] [-f] [-n N]`: a color's container log, through the runtime (Docker over the
//! one SSH connection).

use clap::Args;
use connect_core::model::Color;
use connect_core::runtime::LogQuery;
use connect_core::{Error, ErrorKind, Result};
use futures::StreamExt;

use super::Context;

/// Which container: a color by name or role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The color taking traffic (per the journal).
    Live,
    /// The warm standby.
    Standby,
    /// Blue's container.
    Blue,
    /// Green's container.
    Green,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Whose log: live (default), standby, blue or green.
    #[arg(value_enum, conflicts_with = "release")]
    pub color: Option<Which>,
    /// The color running this release (per the journal).
    #[arg(long, value_name = "VERSION")]
    pub release: Option<String>,
    /// Keep printing new lines until Ctrl-C (or the container stops).
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last lines to print first.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
}

impl LogsArgs {
    /// Prints the log; with `--follow`, until Ctrl-C, which is a normal end (exit 0).
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let (_, deployer) = cx.deployer().await?;
        let journal = deployer.journal().await?;
        let color = match (&self.release, self.color.unwrap_or(Which::Live)) {
            (Some(version), _) => journal
                .slots
                .iter()
                .find(|(_, s)| s.release.version == *version)
                .map(|(c, _)| *c)
                .ok_or_else(|| {
                    let running: Vec<String> = journal
                        .slots
                        .iter()
                        .map(|(c, s)| format!("{c}: {}", s.release.version))
                        .collect();
                    Error::new(
                        ErrorKind::InvalidInput,
                        "logs",
                        version,
                        format!("no color runs release {version} (running: {running:?})"),
                    )
                    .with_hint("name a running release, or a color: connect-ops logs blue")
                })?,
            (None, Which::Blue) => Color::Blue,
            (None, Which::Green) => Color::Green,
            (None, Which::Live) => journal.live.ok_or_else(|| no_color("live"))?,
            (None, Which::Standby) => journal.standby().ok_or_else(|| no_color("standby"))?,
        };
        let container = deployer.config().topology.slot(color).container.clone();
        let query = LogQuery {
            tail: Some(self.lines),
            follow: self.follow,
        };
        let mut lines = deployer.backends().runtime.logs(&container, query).await?;
        let print = |line: String| {
            cx.out.result(
                &serde_json::json!({"color": color, "container": container, "line": line}),
                &line,
            )
        };
        if !self.follow {
            while let Some(line) = lines.next().await {
                print(line?);
            }
            return Ok(());
        }
        let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            tokio::select! {
                line = lines.next() => match line {
                    Some(line) => print(line?),
                    None => {
                        cx.out.note(&format!("({container} stopped)"));
                        return Ok(());
                    }
                },
                // Ctrl-C is how a follow ends: the log printed so far is the result.
                _ = &mut stop => return Ok(()),
            }
        }
    }
}

fn no_color(role: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "logs",
        role,
        format!("the journal has no {role} color"),
    )
    .with_hint("name a color: connect-ops logs blue (connect-ops status shows what runs)")
}
