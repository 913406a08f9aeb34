//! Deploy time over 1, 2 and 4 app hosts (issue 18.1), on the real programs: app hosts each with its own
//! Docker Engine and sshd in its own network namespace (`stack::fleet::FleetStack`), one HAProxy, 16
//! keep-alive clients through it during every timed deploy. Releases ship from this machine's engine.
//!
//! Every round starts its hosts from the same state and times a release none of them has: v1 deployed
//! (untimed; a host that joins in this round gets it for the first time) and each host's standby retired,
//! so every host runs v1 alone; then the round's own release (`hosts-<n>`: v1 with a version layer of its
//! own, built here) timed from the call to the recorded journals (lock, parallel preflight, ship of that one
//! layer, start and health gate, one switch, drain, verify, record). Each round prints where its time went:
//! per step the slowest host (the hosts run a step in parallel, then wait for each other), the rest being the
//! engine's own serial work (locks, settling, the records), and how busy the machine's CPUs were.
//!
//! `cargo bench -p connect-examples --bench hosts` (as root, with the programs `scripts/test.sh` installs);
//! `HOSTS_BENCH_CLIENTS=0` runs it without the load, to tell the load's share of the CPU from the deploy's.
//! The last line is JSON: `{"hosts_1_s", "hosts_2_s", "hosts_4_s", "failed_requests"}`. Goal: 4 hosts take at
//! most 1.5x the time of 1, and no request fails.

use std::time::{Duration, Instant};

use connect_core::engine::fleet::{Fleet, FleetPolicy, FleetReport};
use connect_core::vocabulary::Step;
use connect_examples::stack::fleet::FleetStack;
use connect_haproxy::testing::Load;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        // Under `cargo test`, examples/tests/fleet.rs runs the same stack; a benchmark is only a benchmark.
        println!("hosts: run with `cargo bench -p connect-examples --bench hosts`");
        return Ok(());
    }
    let clients: usize = match std::env::var("HOSTS_BENCH_CLIENTS") {
        Ok(n) => n.parse()?,
        Err(_) => 16,
    };
    let Some(stack) = FleetStack::start("bench_hosts", 4).await? else {
        anyhow::bail!("the programs this benchmark needs are missing (see the SKIP line above)");
    };
    println!(
        "{clients} keep-alive clients; load average before: {}",
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    let mut figures = Vec::new();
    let mut failed = 0;
    for count in [1, 2, 4] {
        let fleet = stack.fleet(count, FleetPolicy::default()).await?;
        same_start(&stack, &fleet).await?;
        let version = format!("hosts-{count}");
        let release = stack.releases.build_extra(&version, None).await?;
        let load = (clients > 0).then(|| Load::start(stack.http_addr(), clients, Duration::from_secs(300)));
        let (cpu, own) = (CpuTimes::read()?, own_cpu_ms()?);
        let started = Instant::now();
        let report = fleet.deploy_from(release, stack.source(&version)).await?;
        let took = started.elapsed();
        let (busy, own) = (cpu.busy_since()?, own_cpu_ms()?.saturating_sub(own));
        let (ok, lost) = match load {
            Some(load) => {
                let seen = load.stop().await;
                (seen.ok, seen.failed)
            }
            None => (0, 0),
        };
        failed += lost;
        println!(
            "{count} host(s): deploy {:.2} s, {} in rotation, {} requests, {lost} failed; CPUs {:.0}% busy, \
             this process (engine and load) {own} ms of CPU",
            took.as_secs_f64(),
            report.in_rotation().len(),
            ok + lost,
            busy * 100.0,
        );
        breakdown(&report, took);
        figures.push(took.as_secs_f64());
    }
    println!("4 hosts / 1 host: {:.2}x (goal 1.5x)", figures[2] / figures[0]);
    println!(
        "{{\"hosts_1_s\": {:.3}, \"hosts_2_s\": {:.3}, \"hosts_4_s\": {:.3}, \"failed_requests\": {failed}}}",
        figures[0], figures[1], figures[2]
    );
    Ok(())
}

/// Puts every host of `fleet` on v1 with no standby, whatever earlier rounds left there, so the timed deploy
/// does the same work on each: ship one layer, start the idle color, switch, drain the old one.
async fn same_start(stack: &FleetStack, fleet: &Fleet) -> anyhow::Result<()> {
    fleet.deploy_from(stack.release("v1"), stack.source("v1")).await?;
    for host in fleet.hosts() {
        let deployer = fleet.deployer(host).expect("a host of the fleet");
        if deployer.journal().await?.standby().is_some() {
            deployer.retire_standby().await?;
        }
    }
    Ok(())
}

/// Prints each host's steps, then per step the slowest host's time (the hosts run each step in parallel
/// and meet before the switch), and what the steps leave of the deploy's wall time: the engine's serial
/// work around them (locks, reading and settling the journals, writing the records, releasing the locks).
fn breakdown(report: &FleetReport, took: Duration) {
    let mut slowest: Vec<(Step, u64)> = Vec::new();
    for host in &report.hosts {
        let Some(record) = &host.record else {
            println!("  {}: no record ({:?})", host.host, host.error);
            continue;
        };
        let steps: Vec<String> = record
            .steps
            .iter()
            .map(|s| format!("{} {}", s.step, s.duration_ms))
            .collect();
        println!(
            "  {}: {} ms recorded: {} (ms)",
            host.host,
            record.duration_ms,
            steps.join(", ")
        );
        for s in &record.steps {
            match slowest.iter_mut().find(|(step, _)| *step == s.step) {
                Some((_, ms)) => *ms = (*ms).max(s.duration_ms),
                None => slowest.push((s.step, s.duration_ms)),
            }
        }
    }
    let in_steps: u64 = slowest.iter().map(|(_, ms)| ms).sum();
    let wall = took.as_millis() as u64;
    let line: Vec<String> = slowest.iter().map(|(s, ms)| format!("{s} {ms}")).collect();
    println!(
        "  slowest host per step: {} (ms); sum {in_steps} ms; outside the steps {} ms of {wall} ms",
        line.join(", "),
        wall.saturating_sub(in_steps)
    );
}

/// This process's CPU time so far, user and system, in milliseconds (`/proc/self/stat`'s utime and stime,
/// in the kernel's USER_HZ ticks, 100 a second on Linux): the engine's own work (hashing, compressing,
/// SSH) and the load generator's.
fn own_cpu_ms() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Ok(fields.iter().sum::<u64>() * 10)
}

/// The machine's CPU time counters (`/proc/stat`'s first line): busy and total jiffies.
struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    fn read() -> anyhow::Result<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal …: idle and iowait are the CPUs' idle time.
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        let total: u64 = fields.iter().take(8).sum();
        Ok(CpuTimes {
            busy: total.saturating_sub(idle),
            total,
        })
    }

    /// The share of the machine's CPU time spent busy since `self` was read (every process's, the other
    /// helpers' builds too).
    fn busy_since(&self) -> anyhow::Result<f64> {
        let now = CpuTimes::read()?;
        let total = now.total.saturating_sub(self.total).max(1);
        Ok(now.busy.saturating_sub(self.busy) as f64 / total as f64)
    }
}
