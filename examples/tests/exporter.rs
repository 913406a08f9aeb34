//! Issue 16 item 3: the exporter's OpenMetrics over the in-memory stack, and a real Prometheus
//! (`/usr/bin/prometheus`, loopback, its own temp dir, scraping every second) storing a deploy's switch.

use std::net::SocketAddr;
use std::time::Duration;

use connect_core::engine::{DeployConfig, Deployer};
use connect_core::memory::{AppBehavior, MemoryStack};
use connect_core::model::Release;
use connect_examples::ops::exporter::{CONTENT_TYPE, Exporter};
use connect_examples::prometheus::TestPrometheus;
use tokio::net::TcpListener;

fn release(v: &str) -> Release {
    Release::new("connect", v).unwrap()
}

/// A stack under 100 requests a second with v1 live on blue, and an exporter sampling it every `interval`.
async fn stack(interval: Duration) -> (MemoryStack, Deployer, Exporter, SocketAddr) {
    let config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    let stack = MemoryStack::new(&config.topology);
    for v in ["v1", "v2"] {
        let behavior = AppBehavior {
            ready_after: Duration::from_millis(200),
            ..AppBehavior::default()
        };
        stack.add_image(&release(v).image, behavior);
    }
    stack.router.set_load(100);
    stack.cluster.set_continuous_backup(Some(continuous_backup()));
    let deployer = Deployer::new(stack.backends(), config).unwrap();
    deployer.deploy(release("v1")).await.unwrap();
    let exporter = Exporter::start(deployer.clone(), interval).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = exporter.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (stack, deployer, exporter, address)
}

/// pgBackRest's state as the in-memory cluster reports it: a full backup an hour old, archiving fine.
fn continuous_backup() -> connect_core::database::ContinuousBackupState {
    connect_core::database::ContinuousBackupState {
        stanza: "connect".into(),
        last_archived_wal: Some("000000010000000000000007".into()),
        last_archived_age_s: Some(5),
        archive_failing: false,
        last_full_backup: Some("20261206-100000F".into()),
        last_full_age_s: Some(3600),
        last_backup: None,
        last_backup_age_s: None,
        backups: 1,
        recoverable_from_unix: None,
    }
}

/// `GET path` on `address`: the status and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let response = connect_examples::testing::request(address, "GET", path, "")
        .await
        .expect("the server answers");
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

/// The value of the sample line `series` (exact name and labels) in an OpenMetrics text.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_serves_the_snapshot_and_the_deploy_events() {
    let (_stack, deployer, exporter, address) = stack(Duration::from_millis(100)).await;
    deployer.deploy(release("v2")).await.unwrap();
    deployer.rollback().await.unwrap();
    // The samples after the rollback: two, so the rates have an interval.
    let mut view = exporter.subscribe();
    for _ in 0..2 {
        view.changed().await.unwrap();
    }
    let (status, text) = get(address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(text.contains("# TYPE connect_http_responses counter"), "{text}");
    assert_eq!(value(&text, r#"connect_live{color="blue"}"#), Some(1.0), "{text}");
    assert_eq!(value(&text, r#"connect_live{color="green"}"#), Some(0.0));
    assert_eq!(value(&text, "connect_standby_present"), Some(1.0));
    assert!(value(&text, r#"connect_http_responses_total{color="blue"}"#).unwrap() > 0.0);
    assert_eq!(
        value(&text, r#"connect_http_responses_5xx_total{color="green"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"connect_container_running{color="green"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"connect_container_memory_bytes{color="blue"}"#),
        Some(48.0 * 1048576.0)
    );
    assert_eq!(
        value(&text, r#"connect_db_replication_lag_bytes{replica="patroni2"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"connect_deploys_total{outcome="succeeded"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(&text, r#"connect_rollbacks_total{cause="instant"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"connect_step_duration_seconds_count{step="switch"}"#),
        Some(3.0)
    );
    // The continuous backups, read with the first sample, aged by the wall clock since (well under a minute).
    let full_age = value(&text, "connect_backup_last_full_age_seconds").unwrap();
    assert!((3600.0..3660.0).contains(&full_age), "{full_age}");
    assert!(value(&text, "connect_backup_last_archived_wal_age_seconds").unwrap() >= 5.0);
    assert_eq!(value(&text, "connect_backup_archive_failing"), Some(0.0));
    // A scrape counts nothing twice.
    let (_, again) = get(address, "/metrics").await;
    assert_eq!(
        value(&again, r#"connect_deploys_total{outcome="succeeded"}"#),
        Some(2.0)
    );
    assert_eq!(get(address, "/").await.0, 404);
    assert!(CONTENT_TYPE.starts_with("application/openmetrics-text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_stores_the_switch_from_blue_to_green() {
    let (_stack, deployer, _exporter, exporter_at) = stack(Duration::from_millis(500)).await;
    let Some(prometheus) = TestPrometheus::start("exporter_prometheus", &[exporter_at]).unwrap() else {
        return;
    };
    let scraped = prometheus
        .until(r#"connect_live{color="blue"}"#, Duration::from_secs(30), |v| {
            v == 1.0
        })
        .await;
    assert_eq!(
        scraped,
        Some(1.0),
        "Prometheus scraped the exporter with blue live"
    );
    let blue_before = prometheus
        .until(
            r#"increase(connect_http_responses_total{color="blue"}[5s])"#,
            Duration::from_secs(15),
            |v| v > 0.0,
        )
        .await;
    assert!(
        blue_before.unwrap_or(0.0) > 0.0,
        "blue answered before the switch"
    );

    deployer.deploy(release("v2")).await.unwrap();
    let green = prometheus
        .until(
            r#"increase(connect_http_responses_total{color="green"}[5s])"#,
            Duration::from_secs(15),
            |v| v > 0.0,
        )
        .await;
    assert!(green.unwrap_or(0.0) > 0.0, "green answers after the switch");
    let blue_after = prometheus
        .until(
            r#"increase(connect_http_responses_total{color="blue"}[3s])"#,
            Duration::from_secs(15),
            |v| v == 0.0,
        )
        .await;
    assert_eq!(blue_after, Some(0.0), "blue answers nothing once drained");
    assert_eq!(
        prometheus.query(r#"connect_live{color="green"}"#).await,
        Some(1.0)
    );
    assert_eq!(
        prometheus
            .query("max_over_time(connect_live{color=\"blue\"}[1m])")
            .await,
        Some(1.0)
    );
    assert_eq!(
        prometheus.query("sum(connect_http_responses_5xx_total)").await,
        Some(0.0),
        "zero 5xx"
    );
    let deploys = prometheus
        .until(
            r#"connect_deploys_total{outcome="succeeded"}"#,
            Duration::from_secs(10),
            |v| v == 2.0,
        )
        .await;
    assert_eq!(deploys, Some(2.0));
}
