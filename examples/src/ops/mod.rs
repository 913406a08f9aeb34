//! The `connect-ops` command: deploy, roll back and look at a server from one config file (`connect.toml`).
//!
//! The binary (`examples/examples/connect-ops.rs`) only calls [`main`]. [`Command`] lists the subcommands,
//! one line each; each one's arguments and handler live in a module of their own, so adding a subcommand
//! touches one line here and one file. [`output`] is where text, JSON lines and progress go.

pub mod audit;
pub mod backup;
pub mod backup_all;
pub mod deploy;
pub mod docs;
pub mod exporter;
pub mod fleet;
pub mod inspect;
pub mod logs;
pub mod output;
pub mod pitr;
pub mod progress;
pub mod prune;
pub mod recover;
pub mod recover_db;
pub mod setup;
pub mod ship;
pub mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use connect_core::engine::Deployer;
use connect_core::{Error, ErrorKind};

use crate::config::ConnectConfig;
pub use output::Output;

/// The exit codes, as `--help` prints them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  the operation failed (traffic stayed where it was, or went back to the standby)
  2  bad input: the config file or an argument (nothing was touched)
  3  locked: another operation holds the deploy lock (it expires with its lease if that process is gone)
  4  drift: the journal and what runs disagree (status says how)
  5  unavailable: the server or one of its parts did not answer
  6  audit: a finding at or above --fail-on (the report says each one's fix)";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "connect-ops",
    version,
    about = "Deploy a web service blue-green to its own server, with zero downtime, and roll it back fast",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The config file.
    #[arg(long, short, global = true, default_value = "connect.toml")]
    pub config: PathBuf,
    /// Print events and the result as JSON lines on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log more on stderr (-v info, -vv debug); RUST_LOG takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands: one line each, the handler in its module.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented connect.toml for the runbook's layout.
    Init(setup::InitArgs),
    /// The config file.
    Config(setup::ConfigArgs),
    /// Preflight: the server, its disks and clock, Docker, the database leader, the cache.
    Check,
    /// Build and send release VERSION to the server, only the layers it lacks (no deploy).
    Ship(ship::ShipArgs),
    /// Deploy release VERSION (`<image>:VERSION`) blue-green, shipped first when `[release]` says how.
    Deploy(deploy::DeployArgs),
    /// Traffic back to the warm standby; with --to, a full rollback to a release in the journal.
    Rollback(deploy::RollbackArgs),
    /// Where things stand: the live color, each color's release, differences, the lock.
    Status,
    /// The journal's operations, newest first.
    History(inspect::HistoryArgs),
    /// The post-deploy checks on the live color.
    Verify,
    /// The deploy lock.
    Lock(inspect::LockArgs),
    /// A color's container log: the live one, the standby, blue, green, or the one running --release.
    Logs(logs::LogsArgs),
    /// Remove old release images beyond the newest N (never the live or standby one).
    Prune(prune::PruneArgs),
    /// A verified database backup: restore point, pg_dump, checksum, pg_restore --list.
    Backup(backup::BackupArgs),
    /// The database's backups on the server, newest first.
    Backups,
    /// One backup set of Redis, the uploads (rsync), the journal and the configs, with its manifest; copied off the host.
    BackupAll(backup_all::BackupAllArgs),
    /// Restore the database from a backup (the newest by default) into a fresh database swapped in.
    Restore(backup::RestoreArgs),
    /// The deployment live: traffic per color, containers, database, cache, the deploy's steps, error lines.
    Watch(watch::WatchArgs),
    /// Serve the live figures for Prometheus (OpenMetrics on /metrics), with deploy events from the journal.
    Exporter(exporter::ExporterArgs),
    /// The server's hardening: sshd, firewall, open ports, sockets, database, Redis, file modes (--fix: the safe ones).
    Audit(audit::AuditArgs),
    /// Continuous database backups (pgBackRest): setup, base backup, info, table checksums.
    Pitr(pitr::PitrArgs),
    /// Point-in-time recovery of the database cluster: --latest, --time T or --restore-point NAME.
    RecoverDb(recover_db::RecoverDbArgs),
    /// A whole server back (configs, database to the latest, Redis, uploads, the live release) from the backups.
    Recover(recover::RecoverArgs),
    /// Print a shell completion script.
    Completions(docs::CompletionsArgs),
    /// Print (or write) the man page.
    Man(docs::ManArgs),
}

/// What every handler gets: where the config file is and where output goes.
#[derive(Debug)]
pub struct Context {
    /// The config file's path (`--config`).
    pub config_path: PathBuf,
    /// Text, JSON lines, progress.
    pub out: Output,
}

impl Context {
    /// Reads and checks the config file.
    pub fn config(&self) -> connect_core::Result<ConnectConfig> {
        ConnectConfig::load(&self.config_path)
    }

    /// The config file and a [`Deployer`] connected to its server.
    pub async fn deployer(&self) -> connect_core::Result<(ConnectConfig, Deployer)> {
        let config = self.config()?;
        let deployer = config.deployer().await?;
        Ok((config, deployer))
    }

    /// The config file's path.
    pub fn path(&self) -> &Path {
        &self.config_path
    }
}

/// Runs `work` holding the deploy lock (recorded as a `maintenance` operation), so no deploy or rollback
/// overlaps a restore or a recovery; released afterwards, whether the work succeeded or not. A held lock is
/// exit 3, before `work` starts.
pub async fn under_deploy_lock<T>(
    cx: &Context,
    work: impl std::future::Future<Output = connect_core::Result<T>>,
) -> connect_core::Result<T> {
    let (_deployer, held) = take_deploy_lock(cx).await?;
    let result = work.await;
    let released = held.release().await;
    let value = result?;
    released?;
    Ok(value)
}

/// A [`Deployer`] and the deploy lock it holds. The lock file lives in `state_dir`, which a server that was
/// never deployed to (or was just rebuilt) does not have yet: `Host::put_file` makes it (0700), as it does
/// for every deploy and rollback.
pub async fn take_deploy_lock(
    cx: &Context,
) -> connect_core::Result<(Deployer, connect_core::engine::HeldLock)> {
    let (_, deployer) = cx.deployer().await?;
    let held = deployer.hold_lock().await?;
    Ok((deployer, held))
}

/// Parses the command line, runs it, prints the result or the error, and returns the documented exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let cx = Context {
        config_path: cli.config.clone(),
        out: Output::new(cli.json),
    };
    match run(cli.command, &cx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cx.out.error(&e);
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Runs one subcommand.
pub async fn run(command: Command, cx: &Context) -> connect_core::Result<()> {
    match command {
        Command::Init(args) => args.run(cx),
        Command::Config(args) => args.run(cx),
        Command::Check => inspect::check(cx).await,
        Command::Ship(args) => ship::run(&cx.config()?, &args, cx.out.is_json()).await.map(drop),
        Command::Deploy(args) => args.run(cx).await,
        Command::Rollback(args) => args.run(cx).await,
        Command::Status => inspect::status(cx).await,
        Command::History(args) => args.run(cx).await,
        Command::Verify => inspect::verify(cx).await,
        Command::Lock(args) => args.run(cx).await,
        Command::Logs(args) => args.run(cx).await,
        Command::Prune(args) => args.run(cx).await,
        Command::Backup(args) => args.run(cx).await,
        Command::Backups => backup::list(cx).await,
        Command::BackupAll(args) => args.run(cx).await,
        Command::Restore(args) => args.run(cx).await,
        Command::Watch(args) => args.run(cx).await,
        Command::Exporter(args) => args.run(cx).await,
        Command::Audit(args) => args.run(cx).await,
        Command::Pitr(args) => args.run(cx).await,
        Command::RecoverDb(args) => args.run(cx).await,
        Command::Recover(args) => args.run(cx).await,
        Command::Completions(args) => args.run(),
        Command::Man(args) => args.run(cx),
    }
}

/// The documented exit code of an error (see [`EXIT_CODES`]).
pub fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::InvalidInput => 2,
        ErrorKind::NotFound if e.operation().starts_with("config") => 2,
        ErrorKind::Conflict if e.operation() == "deploy.lock" => 3,
        ErrorKind::Refused if e.operation() == "audit" => 6,
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
