//! A real zero-downtime deploy on this machine, to watch: starts the local stack (sshd playing the server,
//! Docker through that one SSH connection, HAProxy in front of blue and green, etcd + Patroni + PostgreSQL,
//! Redis), brings v1 up, then runs the runbook under 64 keep-alive connections and prints the timeline and the
//! request counts of every phase. The deploy of v2 runs the whole safety net: its timeline shows the
//! migrations linted (`check_migrations`), the verified `backup`, `migrate` checked in `_prisma_migrations`,
//! the `watch` after the switch and `prune`, each with its figures. Everything listens on 127.0.0.1 and is
//! removed at the end.
//!
//! ```text
//! cargo run --example real_stack            # needs root, Docker, haproxy, sshd, etcd, patroni, postgres, redis
//! ```
//! `scripts/test.sh` installs the programs. The first run builds the demo app statically (a few minutes).

use std::process::ExitCode;

use std::time::Duration;

use connect_core::engine::Deployer;
use connect_core::model::WatchPolicy;
use connect_examples::demo_image;
use connect_examples::stack::{Stack, StackOptions, runbook};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = StackOptions {
        build_machine: true,
        ..StackOptions::new("real_stack")
    };
    println!("starting the stack (sshd, Docker via SSH, HAProxy, etcd + 2 Patroni + PostgreSQL, Redis)...");
    let stack = match Stack::try_start(options).await {
        Ok(Some(stack)) => stack,
        Ok(None) => {
            eprintln!("a program is missing (see SKIP above); run scripts/test.sh once to install them");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: starting the stack: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The runbook's deploy with the whole safety net: the release's pending migrations linted, a verified
    // backup, the migration checked in its table, the new color watched for 10 s after the switch (and
    // after the instant rollback), and release images beyond the newest 3 pruned.
    let mut config = stack.deploy_config();
    config.app.migrations_dir = Some(demo_image::IMAGE_MIGRATIONS.into());
    config.policy.watch = WatchPolicy::new(Duration::from_secs(10), Duration::from_secs(2));
    config.policy.keep_releases = Some(3);
    let deployer = match Deployer::new(stack.backends(), config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("HAProxy on http://{}; deploying v1...", stack.http_addr());
    if let Err(e) = runbook::bring_up_v1(&stack, &deployer).await {
        eprintln!("error: bringing v1 up: {e}");
        return ExitCode::FAILURE;
    }
    println!("v1 live on blue; the runbook under 64 keep-alive connections:\n");
    let (report, traffic) = match runbook::run_under_load(&stack, &deployer).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the load did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match report {
        Ok(report) => {
            println!("{report}\n");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the runbook stopped: {e}\n");
            ExitCode::FAILURE
        }
    };
    println!("requests through HAProxy, per phase:\n{traffic}\n");
    println!(
        "SSH connections to the server: {}; failed requests: {}",
        stack.sshd_connections(),
        traffic.total.failed
    );
    if traffic.total.failed > 0 {
        return ExitCode::FAILURE;
    }
    code
}
