//! Issue 16 item 3: the exporter's OpenMetrics over the in-memory stack, and a real Prometheus
//! (`/usr/bin/prometheus`, loopback, its own temp dir, scraping every second) storing a deploy's switch.

use std::net::SocketAddr;
use std::time::Duration;

use connect_core::engine::{DeployConfig, Deployer};
use connect_core::memory::{AppBehavior, MemoryStack};
use connect_core::model::Release;
use connect_core::testing::{free_port, require_program};
use connect_examples::http::read_response;
use connect_examples::ops::exporter::{CONTENT_TYPE, Exporter};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
    let deployer = Deployer::new(stack.backends(), config).unwrap();
    deployer.deploy(release("v1")).await.unwrap();
    let exporter = Exporter::start(deployer.clone(), interval).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = exporter.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (stack, deployer, exporter, address)
}

/// `GET path` on `address`: the status and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    try_get(address, path).await.expect("the server answers")
}

/// `GET path`, `None` while nothing listens there.
async fn try_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    let response = read_response(&mut BufReader::new(stream)).await.ok()?;
    Some((response.status, String::from_utf8(response.body).unwrap()))
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
    // A scrape counts nothing twice.
    let (_, again) = get(address, "/metrics").await;
    assert_eq!(
        value(&again, r#"connect_deploys_total{outcome="succeeded"}"#),
        Some(2.0)
    );
    assert_eq!(get(address, "/").await.0, 404);
    assert!(CONTENT_TYPE.starts_with("application/openmetrics-text"));
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One number from an instant PromQL query over Prometheus's HTTP API; `None` for an empty result.
async fn query(prometheus: SocketAddr, q: &str) -> Option<f64> {
    // Not yet listening (it is starting) or not yet ready (503) is "no value yet".
    let (status, body) = try_get(prometheus, &format!("/api/v1/query?query={}", encode(q))).await?;
    if status == 503 {
        return None;
    }
    assert_eq!(status, 200, "{q}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = json["data"]["result"].as_array()?.first()?.clone();
    result["value"][1].as_str()?.parse().ok()
}

/// Polls (every 200 ms, Prometheus has no event to wait on) until `q` gives a value `ok` accepts, for at
/// most `within`; returns the last value.
async fn until(prometheus: SocketAddr, q: &str, within: Duration, ok: impl Fn(f64) -> bool) -> Option<f64> {
    let end = tokio::time::Instant::now() + within;
    loop {
        let v = query(prometheus, q).await;
        if v.is_some_and(&ok) || tokio::time::Instant::now() > end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_stores_the_switch_from_blue_to_green() {
    let Some(prometheus) = require_program("exporter_prometheus", "prometheus", &["/usr/bin/prometheus"])
    else {
        return;
    };
    let (_stack, deployer, _exporter, exporter_at) = stack(Duration::from_millis(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: connect\n    \
             static_configs:\n      - targets: ['{exporter_at}']\n"
        ),
    )
    .unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let scraped = until(
        web,
        r#"connect_live{color="blue"}"#,
        Duration::from_secs(30),
        |v| v == 1.0,
    )
    .await;
    assert_eq!(
        scraped,
        Some(1.0),
        "Prometheus scraped the exporter with blue live"
    );
    let blue_before = until(
        web,
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
    let green = until(
        web,
        r#"increase(connect_http_responses_total{color="green"}[5s])"#,
        Duration::from_secs(15),
        |v| v > 0.0,
    )
    .await;
    assert!(green.unwrap_or(0.0) > 0.0, "green answers after the switch");
    let blue_after = until(
        web,
        r#"increase(connect_http_responses_total{color="blue"}[3s])"#,
        Duration::from_secs(15),
        |v| v == 0.0,
    )
    .await;
    assert_eq!(blue_after, Some(0.0), "blue answers nothing once drained");
    assert_eq!(query(web, r#"connect_live{color="green"}"#).await, Some(1.0));
    assert_eq!(
        query(web, "max_over_time(connect_live{color=\"blue\"}[1m])").await,
        Some(1.0)
    );
    assert_eq!(
        query(web, "sum(connect_http_responses_5xx_total)").await,
        Some(0.0),
        "zero 5xx"
    );
    let deploys = until(
        web,
        r#"connect_deploys_total{outcome="succeeded"}"#,
        Duration::from_secs(10),
        |v| v == 2.0,
    )
    .await;
    assert_eq!(deploys, Some(2.0));
    child.kill().await.unwrap();
}
