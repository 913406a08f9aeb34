//! The runbook's blue-green deployment, end to end, on the in-memory backends.
//!
//! ```text
//! cargo run --example blue_green                  # v1 live on blue, deploy v2 to green, roll back instantly
//! cargo run --example blue_green -- --fail-health # v2 never turns healthy: the deploy is aborted
//! ```
//!
//! Every step is printed as the engine reports it, with its duration; the final state comes from the journal
//! and from the router's own view.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use connect_core::engine::{DeployConfig, Deployer, Event, Outcome, Status};
use connect_core::memory::{AppBehavior, MemoryStack};
use connect_core::model::Release;

/// Deploy a new release blue-green on in-memory backends, then roll it back instantly.
#[derive(Parser)]
struct Args {
    /// The new release never becomes healthy, so the deploy must be aborted with traffic left in place.
    #[arg(long)]
    fail_health: bool,
    /// Print every event as a JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = DeployConfig {
        holder: "blue_green example".into(),
        ..DeployConfig::runbook()
    };
    let stack = MemoryStack::new(&config.topology);
    let v1 = Release::new("connect", "20251013-140000")?;
    let v2 = Release::new("connect", "20251014-090000")?;
    let starts = AppBehavior {
        ready_after: Duration::from_millis(800),
        ..AppBehavior::default()
    };
    stack.add_image(&v1.image, starts.clone());
    stack.add_image(
        &v2.image,
        AppBehavior {
            becomes_healthy: !args.fail_health,
            ..starts
        },
    );

    let deployer = Deployer::new(stack.backends(), config)?;
    let printer = tokio::spawn(print_events(deployer.subscribe(), args.json));

    // The printer tells the story from the engine's events; this function only decides what to run.
    deployer.deploy(v1).await?;
    let outcome = deployer.deploy(v2).await;
    let code = match &outcome {
        Ok(_) => {
            deployer.rollback().await?;
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::FAILURE,
    };

    let status = deployer.status().await?;
    drop(deployer);
    printer.await?;
    print_status(&status);
    if let Err(e) = outcome {
        let live = status.live.map_or("nothing".into(), |c| c.to_string());
        eprintln!("\nthe deploy was aborted and traffic stayed on the live color ({live}): {e}");
    }
    Ok(code)
}

async fn print_events(mut rx: tokio::sync::broadcast::Receiver<Event>, json: bool) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = match rx.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                println!("  ({n} events skipped)");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if json {
            // Events are plain data: serializing one cannot fail.
            println!("{}", serde_json::to_string(&event).unwrap_or_default());
            continue;
        }
        match event {
            Event::StepFinished {
                step,
                duration,
                detail,
            } => println!("  ok   {step:<13} {:>6} ms  {detail}", duration.as_millis()),
            Event::StepFailed {
                step,
                duration,
                error,
            } => println!("  FAIL {step:<13} {:>6} ms  {error}", duration.as_millis()),
            Event::StepSkipped { step, reason } => println!("  skip {step:<13}           {reason}"),
            Event::HealthAttempt {
                color,
                attempt,
                health,
            } => println!("       health        attempt {attempt}: {color} {health}"),
            Event::Warning { step, message } => println!("  warn {step:<13}           {message}"),
            Event::TrafficSwitched {
                to, confirmed_after, ..
            } => println!(
                "       switch        {to} confirmed live after {:.1} ms",
                confirmed_after.as_secs_f64() * 1000.0
            ),
            Event::OperationStarted {
                kind,
                release,
                target,
                ..
            } => {
                let what = release.map_or(String::new(), |r| format!(" {}", r.version));
                println!("\n== {kind:?}{what} -> {target}");
            }
            Event::OperationFinished {
                succeeded, duration, ..
            } => {
                println!(
                    "== {} in {} ms",
                    if succeeded { "done" } else { "FAILED" },
                    duration.as_millis()
                );
            }
            Event::StepStarted { .. } => {}
            // An event this program does not know yet (a newer engine).
            _ => {}
        }
    }
}

fn print_status(status: &Status) {
    println!("\n== final state");
    println!(
        "live:     {}",
        status.live.map_or("none".into(), |c| c.to_string())
    );
    println!(
        "standby:  {}",
        status.standby.map_or("none".into(), |c| c.to_string())
    );
    for (color, version) in &status.releases {
        println!("{color:<9} {version}");
    }
    println!("router:");
    for slot in &status.observed.slots {
        let s = &slot.server;
        println!(
            "  {:<5} {:<6} {:?} check {:?} weight {} sessions {}",
            slot.color, s.name, s.admin, s.check, s.weight, s.current_sessions
        );
    }
    println!("recent operations:");
    for op in &status.recent {
        let release = op.release.as_ref().map_or("-".into(), |r| r.version.clone());
        let outcome = match &op.outcome {
            Outcome::Succeeded => "succeeded".to_string(),
            Outcome::Failed { step, kind, .. } => format!("failed at {step} ({kind})"),
            Outcome::RolledBack { step, kind, .. } => format!("rolled back after {step} ({kind})"),
            Outcome::Interrupted { resolution } => format!("interrupted, then settled: {resolution}"),
            other => format!("{other:?}"),
        };
        let kind = format!("{:?}", op.kind);
        println!("  {kind:<17} {release:<16} {:>6} ms  {outcome}", op.duration_ms);
    }
}
