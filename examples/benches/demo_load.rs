//! How much load the generator and the demo app sustain on this machine, so the end-to-end run knows its
//! baseline: 64 keep-alive connections on the demo app's main route (no database, no Redis) for 3 s, then a
//! phase in slow mode (50 ms) for 2 s.
//!
//! `cargo bench -p connect-examples --bench demo_load`; under `cargo test` (no `--bench` argument) it runs
//! for a tenth of the time, as a smoke test. The last line is JSON:
//! `{"connections", "requests", "failed_requests", "requests_per_s", "p50_ms", "p99_ms", "slow_p50_ms"}`.

use std::path::Path;
use std::time::Duration;

use connect_examples::load::{Load, LoadConfig};
use connect_examples::testing::DemoApp;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scale = if std::env::args().any(|a| a == "--bench") {
        1.0
    } else {
        0.1
    };
    let (healthy_for, slow_for) = (
        Duration::from_secs_f64(3.0 * scale),
        Duration::from_secs_f64(2.0 * scale),
    );
    let app = DemoApp::start(Path::new(env!("CARGO_BIN_EXE_connect-demo-app")), &[]).await?;
    let load = Load::start(LoadConfig {
        max_duration: Duration::from_secs(60),
        ..LoadConfig::new(app.addr())
    })?;
    load.phase("healthy");
    tokio::time::sleep(healthy_for).await; // measuring a duration, not waiting for a condition
    load.phase("slow");
    app.set_mode("slow 50").await?;
    tokio::time::sleep(slow_for).await;
    let report = load.stop().await;
    println!("{report}");
    let healthy = report
        .phase("healthy")
        .ok_or_else(|| anyhow::anyhow!("no healthy phase"))?;
    let slow = report
        .phase("slow")
        .ok_or_else(|| anyhow::anyhow!("no slow phase"))?;
    println!(
        "{}",
        serde_json::json!({
            "connections": 64,
            "requests": report.total.requests,
            "failed_requests": report.total.failed,
            "requests_per_s": (healthy.requests as f64 / healthy_for.as_secs_f64()).round(),
            "p50_ms": healthy.p50_ms,
            "p99_ms": healthy.p99_ms,
            "slow_p50_ms": slow.p50_ms,
        })
    );
    Ok(())
}
