//! `connect-ops`: deploy, roll back and look at a server from one config file (`connect.toml`).
//!
//! ```text
//! connect-ops init                 # writes a commented connect.toml
//! connect-ops config check         # reads it, touches nothing
//! connect-ops check                # preflight
//! connect-ops deploy v2            # blue-green deploy of <image>:v2 (shipped first when [release] says how)
//! connect-ops ship v2 [--context DIR | --image REF]   # build and send only the missing layers
//! connect-ops rollback [--to v1]   # instant rollback, or a full one
//! connect-ops status | history | verify | lock status | lock break
//! ```
//!
//! Human output: progress on stderr, the result on stdout. `--json`: events and the result (or the error) as
//! JSON lines on stdout. Exit codes are listed in `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use connect_core::engine::{Deployer, Event, OperationRecord};
use connect_core::{Error, ErrorKind};
use connect_examples::config::{ConnectConfig, TEMPLATE};
use tokio::sync::broadcast::error::RecvError;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  the operation failed (traffic stayed where it was, or went back to the standby)
  2  bad input: the config file or an argument (nothing was touched)
  3  locked: another operation holds the deploy lock (it expires with its lease if that process is gone)
  4  drift: the journal and what runs disagree (status says how)
  5  unavailable: the server or one of its parts did not answer";

#[derive(Parser)]
#[command(
    name = "connect-ops",
    version,
    about = "Deploy a web service blue-green to its own server, with zero downtime, and roll it back fast",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The config file.
    #[arg(long, short, global = true, default_value = "connect.toml")]
    config: PathBuf,
    /// Print events and the result as JSON lines on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Log more on stderr (-v info, -vv debug); RUST_LOG takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented connect.toml for the runbook's layout.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// The config file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Preflight: the server, its disks and clock, Docker, the database leader, the cache.
    Check,
    /// Deploy release VERSION (`<image>:VERSION`) blue-green.
    Deploy {
        /// The release, as tagged on the server.
        version: String,
    },
    /// Build where configured and send release VERSION to the server (only the layers it lacks), without
    /// deploying it; nothing when the server has it.
    Ship(connect_examples::ops::ship::ShipArgs),
    /// Traffic back to the warm standby; with --to, a full rollback to a release in the journal.
    Rollback {
        /// Redeploy this release through the health gate instead.
        #[arg(long)]
        to: Option<String>,
    },
    /// Where things stand: the live color, each color's release, differences, the lock.
    Status,
    /// The journal's operations, newest first.
    History {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: usize,
    },
    /// The post-deploy checks on the live color.
    Verify,
    /// The deploy lock.
    Lock {
        #[command(subcommand)]
        action: LockAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Read the file and say what is wrong, without touching the server.
    Check,
}

#[derive(Subcommand)]
enum LockAction {
    /// Who holds the lock, and until when.
    Status,
    /// Remove the lock whoever holds it (for a holder you know is gone and cannot wait out).
    Break,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let out = Output { json: cli.json };
    match run(&cli, &out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::from(exit_code(&e))
        }
    }
}

async fn run(cli: &Cli, out: &Output) -> connect_core::Result<()> {
    if let Command::Init { force } = &cli.command {
        return init(&cli.config, *force, out);
    }
    let config = ConnectConfig::load(&cli.config)?;
    if let Command::Config {
        action: ConfigAction::Check,
    } = &cli.command
    {
        let server = format!(
            "{}@{}:{}",
            config.server.user, config.server.host, config.server.port
        );
        out.result(
            &serde_json::json!({"config": cli.config, "server": server, "image": config.app.image}),
            &format!(
                "{}: ok (server {server}, image {})",
                cli.config.display(),
                config.app.image
            ),
        );
        return Ok(());
    }
    if let Command::Ship(args) = &cli.command {
        return connect_examples::ops::ship::run(&config, args, cli.json)
            .await
            .map(drop);
    }
    let deployer = config.deployer().await?;
    match &cli.command {
        Command::Check => {
            let report = deployer.preflight().await?;
            out.result(&report, &checks(&report.checks));
            report.into_result("preflight", ErrorKind::Refused).map(drop)
        }
        Command::Deploy { version } => {
            let release = config.release(version)?;
            let operation = async {
                match config.release_source() {
                    Some(source) => deployer.deploy_from(release, source).await,
                    None => deployer.deploy(release).await,
                }
            };
            let record = with_events(&deployer, out, operation).await?;
            out.record(&record);
            Ok(())
        }
        Command::Rollback { to } => {
            let operation = async {
                match to {
                    Some(version) => deployer.rollback_to(version).await,
                    None => deployer.rollback().await,
                }
            };
            let record = with_events(&deployer, out, operation).await?;
            out.record(&record);
            Ok(())
        }
        Command::Status => {
            let status = deployer.status().await?;
            let color =
                |c: Option<connect_core::model::Color>| c.map_or("none".to_string(), |c| c.to_string());
            let mut text = format!("live {}, standby {}", color(status.live), color(status.standby));
            for (c, version) in &status.releases {
                text.push_str(&format!("\n  {c}: {version}"));
            }
            for d in &status.differences {
                text.push_str(&format!("\n  difference: {d}"));
            }
            if let Some(lock) = &status.lock {
                text.push_str(&format!("\n  locked by {} for {}", lock.holder, lock.operation));
            }
            out.result(&status, &text);
            Ok(())
        }
        Command::History { count } => {
            let journal = deployer.journal().await?;
            let recent: Vec<&OperationRecord> = journal.history.iter().rev().take(*count).collect();
            let text: Vec<String> = recent.iter().map(|r| summary(r)).collect();
            out.result(&recent, &text.join("\n"));
            Ok(())
        }
        Command::Verify => {
            let report = deployer.verify().await?;
            out.result(&report, &checks(&report.checks));
            report.into_result("verify", ErrorKind::Unhealthy).map(drop)
        }
        Command::Lock {
            action: LockAction::Status,
        } => {
            let lock = deployer.status().await?.lock;
            let text = lock.as_ref().map_or("not locked".to_string(), |l| {
                format!(
                    "locked by {} for {} since {}",
                    l.holder, l.operation, l.since_unix_ms
                )
            });
            out.result(&lock, &text);
            Ok(())
        }
        Command::Lock {
            action: LockAction::Break,
        } => {
            let broken = deployer.break_lock().await?;
            let text = broken.as_ref().map_or("there was no lock".to_string(), |l| {
                format!("broke the lock of {} ({})", l.holder, l.operation)
            });
            out.result(&broken, &text);
            Ok(())
        }
        Command::Init { .. } | Command::Config { .. } | Command::Ship(_) => unreachable!("handled above"),
    }
}

fn init(path: &std::path::Path, force: bool, out: &Output) -> connect_core::Result<()> {
    if path.exists() && !force {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "init",
            path.display().to_string(),
            "the file exists",
        )
        .with_hint("edit it, or pass --force to overwrite it"));
    }
    std::fs::write(path, TEMPLATE).map_err(|e| {
        Error::new(
            ErrorKind::Failed,
            "init",
            path.display().to_string(),
            e.to_string(),
        )
        .with_source(e)
    })?;
    out.result(
        &serde_json::json!({"written": path}),
        &format!(
            "wrote {}: set [server] host and [app] image, then `connect-ops config check`",
            path.display()
        ),
    );
    Ok(())
}

/// Runs `operation` while printing its events as they come.
async fn with_events<F>(
    deployer: &Deployer,
    out: &Output,
    operation: F,
) -> connect_core::Result<OperationRecord>
where
    F: std::future::Future<Output = connect_core::Result<OperationRecord>>,
{
    let mut events = deployer.subscribe();
    let mut operation = std::pin::pin!(operation);
    loop {
        tokio::select! {
            // Events first, so every one is out before the result.
            biased;
            event = events.recv() => match event {
                Ok(event) => out.event(&event),
                Err(RecvError::Lagged(n)) => out.note(&format!("({n} events skipped)")),
                Err(RecvError::Closed) => return operation.await,
            },
            result = &mut operation => {
                while let Ok(event) = events.try_recv() {
                    out.event(&event);
                }
                return result;
            }
        }
    }
}

/// Where things go: human text, or JSON lines.
struct Output {
    json: bool,
}

impl Output {
    fn event(&self, event: &Event) {
        if self.json {
            println!("{}", serde_json::to_string(event).unwrap_or_default());
            return;
        }
        let line = match event {
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
            } => {
                format!("  ok   {step:<13} {:>6} ms  {detail}", duration.as_millis())
            }
            Event::StepFailed {
                step,
                duration,
                error,
            } => {
                format!("  FAIL {step:<13} {:>6} ms  {error}", duration.as_millis())
            }
            Event::StepSkipped { step, reason } => format!("  skip {step:<13}           {reason}"),
            Event::Warning { step, message } => format!("  warn {step:<13}           {message}"),
            Event::TrafficSwitched {
                to, confirmed_after, ..
            } => format!(
                "       traffic on {to}, confirmed after {:.1} ms",
                confirmed_after.as_secs_f64() * 1000.0
            ),
            _ => return,
        };
        eprintln!("{line}");
    }

    fn note(&self, text: &str) {
        eprintln!("{text}");
    }

    fn result<T: serde::Serialize>(&self, value: &T, text: &str) {
        if self.json {
            println!("{}", serde_json::to_string(value).unwrap_or_default());
        } else {
            println!("{text}");
        }
    }

    fn record(&self, record: &OperationRecord) {
        self.result(record, &summary(record));
    }

    fn error(&self, e: &Error) {
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

fn summary(r: &OperationRecord) -> String {
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

fn checks(checks: &[connect_core::engine::Check]) -> String {
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

/// The documented exit code of an error (see [`EXIT_CODES`]).
fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::InvalidInput => 2,
        ErrorKind::NotFound if e.operation().starts_with("config") => 2,
        ErrorKind::Conflict if e.operation() == "deploy.lock" => 3,
        ErrorKind::Drift => 4,
        ErrorKind::Unavailable | ErrorKind::Timeout => 5,
        _ => 1,
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
