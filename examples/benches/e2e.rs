//! The runbook end to end on the real local stack, under 64 keep-alive connections, measured: how long a
//! deploy takes from preflight to recorded, how much of that is the app starting and the image travelling, and
//! what is left, the SDK's own overhead. Builds v1 and v2 on a build machine (a second Docker Engine) and ships
//! v2 through the one SSH connection.
//!
//! `cargo bench -p connect-examples --bench e2e` (as root, with the programs `scripts/test.sh` installs). The
//! last line is JSON: `{"deploy_s", "app_ready_s", "transfer_s", "overhead_s", "sshd_connections", "requests",
//! "failed_requests", "p99_ms"}`, with `overhead_s = deploy_s - app_ready_s - transfer_s`.
//! Goals: `overhead_s` under 1, `sshd_connections` 1, `failed_requests` 0.

use connect_examples::stack::{Stack, StackOptions, runbook};

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
    let (report, traffic) = runbook::run_under_load(&stack, &deployer).await?;
    println!("{traffic}");
    let report = report?;
    println!("{report}");

    let deploy_s = report.deploy_took.as_secs_f64();
    let app_ready_s = report.app_ready.as_secs_f64();
    let transfer_s = report.transfer_took().as_secs_f64();
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let figures = serde_json::json!({
        "deploy_s": round(deploy_s),
        "app_ready_s": round(app_ready_s),
        "transfer_s": round(transfer_s),
        "overhead_s": round(deploy_s - app_ready_s - transfer_s),
        "sshd_connections": stack.sshd_connections(),
        "requests": traffic.total.requests,
        "failed_requests": traffic.total.failed,
        "p99_ms": round(traffic.total.p99_ms),
    });
    println!("{figures}");
    Ok(())
}
