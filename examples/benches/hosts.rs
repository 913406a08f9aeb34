//! Deploy time over 1, 2 and 4 app hosts (issue 18.1), on the real programs: app hosts each with its own
//! Docker Engine and sshd in its own network namespace (`stack::fleet::FleetStack`), one HAProxy, 16
//! keep-alive clients through it during every timed deploy. Releases ship from this machine's engine.
//!
//! For each host count: v1 deployed (untimed, it sets up the hosts), then v2 timed from the call to the
//! recorded journals (lock, parallel preflight, start and health gate, one switch, drain, verify, record).
//! `cargo bench -p connect-examples --bench hosts` (as root, with the programs `scripts/test.sh` installs).
//! The last line is JSON: `{"hosts_1_s", "hosts_2_s", "hosts_4_s", "failed_requests"}`. Goal: 4 hosts take at
//! most 1.5x the time of 1, and no request fails.

use std::time::{Duration, Instant};

use connect_core::engine::fleet::FleetPolicy;
use connect_examples::stack::fleet::FleetStack;
use connect_haproxy::testing::Load;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        // Under `cargo test`, examples/tests/fleet.rs runs the same stack; a benchmark is only a benchmark.
        println!("hosts: run with `cargo bench -p connect-examples --bench hosts`");
        return Ok(());
    }
    let Some(stack) = FleetStack::start("bench_hosts", 4).await? else {
        anyhow::bail!("the programs this benchmark needs are missing (see the SKIP line above)");
    };
    let mut figures = Vec::new();
    let mut failed = 0;
    for count in [1, 2, 4] {
        let fleet = stack.fleet(count, FleetPolicy::default()).await?;
        fleet.deploy_from(stack.release("v1"), stack.source("v1")).await?;
        let load = Load::start(stack.http_addr(), 16, Duration::from_secs(300));
        let started = Instant::now();
        let report = fleet.deploy_from(stack.release("v2"), stack.source("v2")).await?;
        let took = started.elapsed().as_secs_f64();
        let seen = load.stop().await;
        failed += seen.failed;
        println!(
            "{count} host(s): deploy {took:.2} s, {} in rotation, {} requests, {} failed",
            report.in_rotation().len(),
            seen.ok + seen.failed,
            seen.failed
        );
        // Where the time went, per host: its record's steps (the switch is the fleet's one exchange).
        for host in &report.hosts {
            let steps: Vec<String> = host
                .record
                .iter()
                .flat_map(|r| &r.steps)
                .map(|s| format!("{} {} ms", s.step, s.duration_ms))
                .collect();
            let total = host.record.as_ref().map_or(0, |r| r.duration_ms);
            println!("  {}: {total} ms: {}", host.host, steps.join(", "));
        }
        figures.push(took);
    }
    println!(
        "{{\"hosts_1_s\": {:.3}, \"hosts_2_s\": {:.3}, \"hosts_4_s\": {:.3}, \"failed_requests\": {failed}}}",
        figures[0], figures[1], figures[2]
    );
    Ok(())
}
