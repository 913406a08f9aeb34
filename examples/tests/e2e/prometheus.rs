//! Issue 16 item 3 on the real stack: a real Prometheus (loopback, its own temp dir, 1 s scrapes) scrapes
//! `connect-ops exporter`'s exporter, sampling the stack over its one SSH connection, during a deploy under
//! load; PromQL over what it stored shows the traffic moving from blue to green at the switch, and zero 5xx.

use std::net::SocketAddr;
use std::time::Duration;

use connect_core::engine::Outcome;
use connect_core::model::Color;
use connect_examples::ops::exporter::Exporter;
use connect_examples::prometheus::TestPrometheus;
use connect_examples::stack::StackOptions;
use tokio::net::TcpListener;

use crate::common::{assert_journal_true, assert_one_healthy_color, load, serial, stop_load, v1_live};

/// Long enough for Prometheus to see two scrapes on either side of the switch.
const STORED: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_switch_from_blue_to_green_with_zero_5xx() {
    let _one = serial().await;
    let Some((stack, deployer)) = v1_live(StackOptions::new("e2e_prometheus")).await else {
        return;
    };
    let exporter = Exporter::start(deployer.clone(), Duration::from_secs(1)).expect("the sampler starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let exporter_at: SocketAddr = listener.local_addr().expect("address");
    let serving = exporter.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    let Some(prometheus) = TestPrometheus::start("e2e_prometheus", &[exporter_at]).expect("prometheus")
    else {
        return;
    };
    let load = load(&stack, "before");
    let blue = r#"increase(connect_http_responses_total{color="blue"}[5s])"#;
    let before = prometheus.until(blue, STORED, |v| v > 0.0).await;
    assert!(
        before.unwrap_or(0.0) > 0.0,
        "blue answered before the switch: {before:?}"
    );

    load.phase("deploy v2");
    let record = deployer.deploy(stack.release("v2")).await.expect("the deploy");
    assert_eq!(record.outcome, Outcome::Succeeded);
    load.phase("after");
    let green = r#"increase(connect_http_responses_total{color="green"}[5s])"#;
    let after = prometheus.until(green, STORED, |v| v > 0.0).await;
    assert!(
        after.unwrap_or(0.0) > 0.0,
        "green answers after the switch: {after:?}"
    );
    let drained = prometheus.until(blue, STORED, |v| v == 0.0).await;
    assert_eq!(drained, Some(0.0), "blue answers nothing once drained");
    let traffic = stop_load(load).await;

    assert_eq!(
        prometheus.query(r#"connect_live{color="green"}"#).await,
        Some(1.0)
    );
    let was_live = r#"max_over_time(connect_live{color="blue"}[5m])"#;
    assert_eq!(
        prometheus.query(was_live).await,
        Some(1.0),
        "blue was live before"
    );
    assert_eq!(
        prometheus.query("sum(connect_http_responses_5xx_total)").await,
        Some(0.0),
        "zero 5xx"
    );
    let deploys = r#"connect_deploys_total{outcome="succeeded"}"#;
    assert!(
        prometheus.until(deploys, STORED, |v| v >= 2.0).await >= Some(2.0),
        "v1 and v2 counted"
    );
    let switch = r#"connect_step_duration_seconds_count{step="switch"}"#;
    assert!(
        prometheus.query(switch).await >= Some(2.0),
        "the switch's duration observed"
    );
    assert_eq!(traffic.total.failed, 0, "no request failed: {traffic}");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
    assert_journal_true(&deployer).await;
}
