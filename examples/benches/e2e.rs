//! The runbook end to end on the real local stack, measured. Three runs on one stack:
//!
//! 1. The runbook under 64 paced keep-alive connections (`/`, a database and Redis read per request): how long
//!    a deploy takes from preflight to recorded, how much of that is the app starting and the image
//!    travelling, what is left (the SDK's overhead), and the switch of the deploy and of the instant rollback,
//!    each from the call to HAProxy confirming.
//! 2. A flood: 64 unpaced keep-alive connections on the light route `/api/health` (no database, no Redis), the
//!    highest rate this machine sustains, while a deploy and an instant rollback switch traffic twice.
//! 3. A deploy with Docker's default health timing (a check every 2 s, as a new user gets it, instead of the
//!    harness's 100 ms): how long the health gate waits beside how long the app needs.
//!
//! `cargo bench -p connect-examples --bench e2e` (as root, with the programs `scripts/test.sh` installs). The
//! last line is JSON: `{"deploy_s", "app_ready_s", "transfer_s", "overhead_s", "switch_ms", "switch_step_ms",
//! "rollback_ms", "rollback_step_ms", "rollback_operation_ms",
//! "sshd_connections", "requests", "failed_requests", "p99_ms", "requests_per_s", "flood_requests",
//! "flood_failed", "health_gate_s", "default_app_ready_s"}`.
//! `switch_ms` and `rollback_ms` run from the switch call to HAProxy's confirmation; the `_step_ms` figures add
//! the state-file save after it, `rollback_operation_ms` is the whole instant rollback (lock, journal, drain).
//! Goals: `overhead_s` < 1, `switch_ms` < 5, `rollback_ms` < 20, `sshd_connections` 1, no failed request,
//! `requests_per_s` ≥ 3000, `health_gate_s` ≤ `default_app_ready_s` + 0.2.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::engine::{Deployer, Step};
use connect_core::model::Color;
use connect_examples::load::{Load, LoadConfig, LoadReport};
use connect_examples::stack::{Stack, StackOptions, runbook, slot_options};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        // Under `cargo test` the end-to-end tests already run this sequence; a benchmark is only a benchmark.
        println!("e2e: run with `cargo bench -p connect-examples --bench e2e`");
        return Ok(());
    }
    let options = StackOptions {
        build_machine: true,
        ..StackOptions::new("bench_e2e")
    };
    let stack = Stack::start(options).await.ok_or_else(|| {
        anyhow::anyhow!("a program of the stack is missing (scripts/test.sh installs them)")
    })?;
    let deployer = stack.deployer()?;
    runbook::bring_up_v1(&stack, &deployer).await?;

    // 1. The runbook, paced.
    let (report, traffic) = runbook::run_under_load(&stack, &deployer).await?;
    println!("{traffic}");
    let report = report?;
    println!("{report}");

    // 2. The flood.
    let (flood, flood_took) = flood(&stack, &deployer).await?;
    println!("flood on /api/health:\n{flood}");
    let requests_per_s = flood.total.requests as f64 / flood_took.as_secs_f64();

    // 3. Docker's default health timing.
    let (health_gate, default_app_ready) = default_health_deploy(&stack).await?;

    let deploy_s = report.deploy_took.as_secs_f64();
    let app_ready_s = report.app_ready.as_secs_f64();
    let transfer_s = report.transfer_took().as_secs_f64();
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0);
    let figures = serde_json::json!({
        "deploy_s": round(deploy_s),
        "app_ready_s": round(app_ready_s),
        "transfer_s": round(transfer_s),
        "overhead_s": round(deploy_s - app_ready_s - transfer_s),
        "switch_ms": ms(report.switch.confirmed),
        "switch_step_ms": ms(report.switch.step),
        "rollback_ms": ms(report.rollback_switch.confirmed),
        "rollback_step_ms": ms(report.rollback_switch.step),
        "rollback_operation_ms": report.instant_rollback.duration_ms,
        "sshd_connections": stack.sshd_connections(),
        "requests": traffic.total.requests,
        "failed_requests": traffic.total.failed,
        "p99_ms": round(traffic.total.p99_ms),
        "requests_per_s": requests_per_s.round(),
        "flood_requests": flood.total.requests,
        "flood_failed": flood.total.failed,
        "health_gate_s": round(health_gate.as_secs_f64()),
        "default_app_ready_s": round(default_app_ready.as_secs_f64()),
    });
    println!("{figures}");
    Ok(())
}

/// 64 unpaced connections on `/api/health` while v2 is deployed and rolled back instantly.
async fn flood(stack: &Stack, deployer: &Deployer) -> anyhow::Result<(LoadReport, Duration)> {
    let mut config = LoadConfig::new(stack.http_addr());
    config.path = "/api/health".into();
    config.first_phase = "flood: deploy v2".into();
    config.request_timeout = Duration::from_secs(15);
    let started = Instant::now();
    let load = Load::start(config)?;
    // A second of the flood alone first, so the rate is the machine's, not the start-up's.
    let steady = load.completed() + 1;
    connect_core::wait::poll_until(
        "flood",
        "warm-up",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            Ok(if load.completed() > steady + 1000 {
                Ok(())
            } else {
                Err("warming up".to_string())
            })
        },
    )
    .await?;
    let deployed = deployer.deploy(stack.release("v2")).await;
    load.phase("flood: instant rollback");
    let rolled_back = match &deployed {
        Ok(_) => Some(deployer.rollback().await),
        Err(_) => None,
    };
    load.phase("flood: after");
    let report = load.stop().await;
    let took = started.elapsed();
    deployed?;
    rolled_back.transpose()?;
    Ok((report, took))
}

/// Deploys v3 with Docker checking health every 2 s: the health gate's wait and the app's own start-up.
async fn default_health_deploy(stack: &Stack) -> anyhow::Result<(Duration, Duration)> {
    let mut options = slot_options();
    let defaults = connect_docker::HealthProbe::default();
    // The demo image is `FROM scratch` (no curl): its own health command, at Docker's default timing.
    options.health.interval = defaults.interval;
    options.health.timeout = defaults.timeout;
    options.health.retries = defaults.retries;
    let mut backends = stack.backends();
    backends.runtime = Arc::new(stack.docker.clone().with_slot_options(options));
    let deployer = Deployer::new(backends, stack.deploy_config())?;
    stack.releases.ship("v3").await?;
    // The idle color's port must be silent when the new container starts, or the old one would answer for it.
    if deployer.status().await?.standby.is_some() {
        deployer.retire_standby().await?;
    }
    let to = deployer.status().await?.live.map_or(Color::Blue, Color::other);
    let port = deployer.config().topology.slot(to).host_port;
    let deadline = deployer.config().policy.health_deadline;
    let mut events = deployer.subscribe();
    let mut steps = deployer.subscribe();
    let (deployed, app_ready) = tokio::join!(
        deployer.deploy(stack.release("v3")),
        runbook::app_ready_during(&mut events, port, deadline)
    );
    deployed?;
    Ok((runbook::step_took(&mut steps, Step::HealthGate)?, app_ready?))
}
