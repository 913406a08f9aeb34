//! What watching costs (issue 16): the metrics sampler over the in-memory stack (the same calls a real
//! server gets, counted by the stack), sampling every 100 ms for 5 s with 1 and then 10 viewers, each viewer
//! reading every snapshot as a terminal view would. Everything runs on one thread (a current-thread
//! runtime), so that thread's CPU time (`/proc/thread-self/schedstat`, nanoseconds) is the sampler's plus
//! its viewers'.
//!
//! `cargo bench -p connect-examples --bench metrics`; under `cargo test` (no `--bench` argument) it runs for
//! a tenth of the time, as a smoke test. The last line is JSON:
//! `{"calls_per_s_1", "calls_per_s_10", "cpu_ms_per_s_1", "cpu_ms_per_s_10"}`; the cost must not grow with
//! viewers, and the bench fails if calls per second do.

use std::time::{Duration, Instant};

use connect_core::engine::{DeployConfig, Deployer};
use connect_core::memory::{AppBehavior, MemoryStack};
use connect_core::metrics::Sampler;
use connect_core::model::Release;

const INTERVAL: Duration = Duration::from_millis(100);

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let first = text.split_whitespace().next().unwrap_or("0");
    Ok(first.parse()?)
}

/// Calls per second to the backends and CPU milliseconds per second with `viewers` viewers.
async fn measure(
    stack: &MemoryStack,
    deployer: &Deployer,
    viewers: usize,
    run: Duration,
) -> anyhow::Result<(f64, f64)> {
    let sampler = Sampler::start(deployer.clone(), INTERVAL)?;
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let mut view = sampler.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut responses = 0u64;
            while view.changed().await.is_ok() {
                // What a view reads of each snapshot.
                let s = view.borrow_and_update().clone();
                responses += s
                    .colors
                    .iter()
                    .filter_map(|c| c.traffic.as_ref())
                    .map(|t| t.responses_total)
                    .sum::<u64>();
            }
            responses
        }));
    }
    let (calls, cpu, start) = (stack.faults().calls(), thread_cpu_ns()?, Instant::now());
    tokio::time::sleep(run).await; // measuring over a duration, not waiting for a condition
    let elapsed = start.elapsed().as_secs_f64();
    let (calls, cpu) = (stack.faults().calls() - calls, thread_cpu_ns()? - cpu);
    drop(sampler);
    for t in tasks {
        t.abort();
    }
    Ok((calls as f64 / elapsed, cpu as f64 / 1e6 / elapsed))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let scale = if std::env::args().any(|a| a == "--bench") {
        1.0
    } else {
        0.1
    };
    let run = Duration::from_secs_f64(5.0 * scale);
    let config = DeployConfig {
        holder: "bench".into(),
        ..DeployConfig::runbook()
    };
    let stack = MemoryStack::new(&config.topology);
    let behavior = AppBehavior {
        ready_after: Duration::from_millis(50),
        ..AppBehavior::default()
    };
    for v in ["v1", "v2"] {
        stack.add_image(&Release::new("connect", v)?.image, behavior.clone());
    }
    stack.router.set_load(100);
    let deployer = Deployer::new(stack.backends(), config)?;
    deployer.deploy(Release::new("connect", "v1")?).await?;
    deployer.deploy(Release::new("connect", "v2")?).await?;

    let (calls_1, cpu_1) = measure(&stack, &deployer, 1, run).await?;
    let (calls_10, cpu_10) = measure(&stack, &deployer, 10, run).await?;
    println!(
        "1 viewer: {calls_1:.1} calls/s, {cpu_1:.2} ms CPU/s; 10 viewers: {calls_10:.1} calls/s, {cpu_10:.2} ms CPU/s"
    );
    // One sample's calls more or less over the run is the timer's jitter, not the viewers.
    let slack = 9.0 / run.as_secs_f64() + 1.0;
    anyhow::ensure!(
        calls_10 <= calls_1 + slack,
        "calls grew with viewers: {calls_1:.1}/s with 1, {calls_10:.1}/s with 10"
    );
    println!(
        "{}",
        serde_json::json!({
            "calls_per_s_1": (calls_1 * 10.0).round() / 10.0,
            "calls_per_s_10": (calls_10 * 10.0).round() / 10.0,
            "cpu_ms_per_s_1": (cpu_1 * 100.0).round() / 100.0,
            "cpu_ms_per_s_10": (cpu_10 * 100.0).round() / 100.0,
        })
    );
    Ok(())
}
