//! The switch through the runtime API against the runbook's way (rewrite the config, reload, wait until the
//! new worker serves the new color), on the same real HAProxy, under concurrent keep-alive load.
//!
//! `cargo bench -p connect-haproxy --bench switch`; the last line is JSON.

use std::time::{Duration, Instant};

use connect_core::wait::poll_until;
use connect_core::{Result, TrafficRouter};
use connect_haproxy::Command;
use connect_haproxy::testing::{HaproxyProcess, Load, TestApp, require_haproxy};

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too, without it: then a short smoke run.
fn sizes() -> (usize, usize) {
    if std::env::args().any(|a| a == "--bench") {
        (400, 10)
    } else {
        (20, 2)
    }
}
const CLIENTS: usize = 8;
const DEADLINE: Duration = Duration::from_secs(10);

fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (ms.len() - 1) as f64).round() as usize;
    ms[i.min(ms.len() - 1)]
}

/// Waits until `load` has had `n` more answers, so every switch happens with traffic flowing.
async fn traffic_flows(load: &Load, n: u64) -> Result<()> {
    let before = load.answered();
    poll_until("bench", "traffic", DEADLINE, Duration::from_millis(1), || async {
        Ok(if load.answered() >= before + n {
            Ok(())
        } else {
            Err("waiting for answers".to_string())
        })
    })
    .await
}

/// The runbook's way: the config marks the idle color `backup`, is rewritten, HAProxy reloads, and the
/// switch is done when a fresh request is answered by the new color.
async fn config_way_switch(proc: &HaproxyProcess, to_green: bool) -> Result<Duration> {
    let started = Instant::now();
    let mut config = proc.config.clone();
    config.state_file = None;
    config.servers[0].backup = to_green;
    config.servers[1].backup = !to_green;
    std::fs::write(&proc.config_path, config.render()?).map_err(|e| {
        connect_core::Error::new(connect_core::ErrorKind::Failed, "bench", "config", e.to_string())
    })?;
    // The runbook's reload, without our confirmation from `show proc`: the new color answering is the proof.
    let master = proc.master();
    poll_until(
        "bench.reload",
        "master",
        DEADLINE,
        Duration::from_millis(1),
        || async {
            Ok(match master.execute(&Command::Reload).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == connect_core::ErrorKind::Unavailable => Err(e.to_string()),
                Err(e) => return Err(e),
            })
        },
    )
    .await?;
    let want = if to_green { "green" } else { "blue" };
    poll_until(
        "bench.config_switch",
        want,
        DEADLINE,
        Duration::from_millis(1),
        || async {
            let probe = Load::start(proc.http_addr(), 1, Duration::from_secs(2));
            traffic_flows(&probe, 1).await?;
            let r = probe.stop().await;
            Ok(if r.by_version.contains_key(want) && r.by_version.len() == 1 {
                Ok(())
            } else {
                Err(format!("answered by {:?}", r.by_version))
            })
        },
    )
    .await?;
    Ok(started.elapsed())
}

async fn run(load_runtime: &tokio::runtime::Runtime) -> Result<()> {
    let (switches, config_switches) = sizes();
    // Without CONNECT_REAL_TESTS=1 a missing haproxy is a loud skip; with it, require_haproxy panics.
    let Some(program) = require_haproxy("bench switch") else {
        return Ok(());
    };
    let start_app = |version: &'static str| async move {
        load_runtime
            .spawn(TestApp::start(version, "/api/health"))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| connect_core::Error::new(connect_core::ErrorKind::Failed, "bench", version, e))
    };
    let blue = start_app("blue").await?;
    let green = start_app("green").await?;
    let proc = HaproxyProcess::start(&program, blue.addr, green.addr).await?;
    let hx = proc.haproxy();
    hx.wait_up("app1", DEADLINE).await?;
    hx.wait_up("app2", DEADLINE).await?;
    // Both servers start ready: green goes to drain, so blue alone takes the traffic.
    hx.switch(Some("app2"), "app1", DEADLINE).await?;

    // The load runs on its own runtime so the switch's latency is HAProxy's, not the load generator's queue.
    let load = {
        let _in_load_runtime = load_runtime.enter();
        Load::start(proc.http_addr(), CLIENTS, Duration::from_secs(600))
    };
    traffic_flows(&load, 100).await?;

    let (mut switch, mut rollback) = (Vec::new(), Vec::new());
    for i in 0..switches {
        traffic_flows(&load, 16).await?;
        if i % 2 == 0 {
            switch.push(hx.switch(Some("app1"), "app2", DEADLINE).await?.took);
        } else {
            rollback.push(hx.switch(Some("app2"), "app1", DEADLINE).await?.took);
        }
    }
    println!(
        "runtime API: {} switches blue->green p50 {:.2} ms p99 {:.2} ms; {} rollbacks green->blue p50 {:.2} ms p99 {:.2} ms",
        switch.len(),
        percentile(&switch, 50.0),
        percentile(&switch, 99.0),
        rollback.len(),
        percentile(&rollback, 50.0),
        percentile(&rollback, 99.0)
    );

    let mut config_way = Vec::new();
    for i in 0..config_switches {
        traffic_flows(&load, 16).await?;
        config_way.push(config_way_switch(&proc, i % 2 == 0).await?);
    }
    println!(
        "config rewrite + reload: {} switches p50 {:.2} ms p99 {:.2} ms",
        config_way.len(),
        percentile(&config_way, 50.0),
        percentile(&config_way, 99.0)
    );
    traffic_flows(&load, 16).await?;
    let report = load.stop().await;
    println!(
        "load: {CLIENTS} keep-alive clients, {} answered 200, {} failed, {} re-sent after an idle keep-alive \
         close (reloads), by version {:?}",
        report.ok, report.failed, report.resent_on_closed_idle, report.by_version
    );
    if !report.errors.is_empty() {
        println!("first failures: {:?}", report.errors);
    }
    let switch_p50 = percentile(&switch, 50.0);
    let config_p50 = percentile(&config_way, 50.0);
    println!(
        "{}",
        serde_json::json!({
            "switch_p50_ms": round(switch_p50),
            "switch_p99_ms": round(percentile(&switch, 99.0)),
            "rollback_p99_ms": round(percentile(&rollback, 99.0)),
            "config_reload_switch_p50_ms": round(config_p50),
            "speedup": round(config_p50 / switch_p50),
            "failed_requests": report.failed,
        })
    );
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let load_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(&load_runtime)) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
