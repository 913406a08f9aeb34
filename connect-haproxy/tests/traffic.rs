//! Against the real HAProxy: per-server figures for the watch, canary weights sharing the traffic, and the
//! maintenance page under load. With `CONNECT_REAL_TESTS=1` a missing haproxy fails every test here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use connect_core::router::AdminState;
use connect_core::wait::poll_until;
use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::testing::{Load, MAINTENANCE_HTML, TestStack};
use connect_haproxy::{Haproxy, MaintenancePage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(10);

/// The shared stack: blue (`app1`) live, green (`app2`) drained, both checked UP.
async fn stack(test: &str) -> Option<TestStack> {
    TestStack::start(test).await.expect("the test stack starts")
}

/// One `GET /` on its own connection: status, headers (lower-case names) and body.
async fn get(addr: SocketAddr) -> (u16, BTreeMap<String, String>, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut conn = BufReader::new(stream);
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: connect.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut status_line = String::new();
    conn.read_line(&mut status_line).await.expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = String::new();
    conn.read_to_string(&mut body).await.expect("body");
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_count_each_servers_responses() {
    let Some(s) = stack("figures_count_each_servers_responses").await else {
        return;
    };
    let before = s.hx.figures().await.expect("figures");
    let blue_before = before.iter().find(|f| f.name == "app1").expect("app1").clone();
    for _ in 0..25 {
        let (status, headers, _) = get(s.proc.http_addr()).await;
        assert_eq!(
            (status, headers.get("x-version").map(String::as_str)),
            (200, Some("blue"))
        );
    }
    let after = s.hx.figures().await.expect("figures");
    let blue = after.iter().find(|f| f.name == "app1").expect("app1");
    let green = after.iter().find(|f| f.name == "app2").expect("app2");
    assert_eq!(blue.responses - blue_before.responses, 25, "{after:?}");
    assert_eq!(blue.responses_5xx, 0);
    assert!(blue.total_sessions >= 25);
    assert_eq!(green.responses, 0, "green is drained: {after:?}");

    // HAProxy's own Prometheus exporter, rendered from `ProxyConfig::prometheus`, counts the same.
    let prometheus = s.proc.config.prometheus.expect("the harness enables it");
    let mut conn = BufReader::new(TcpStream::connect(prometheus).await.expect("connect"));
    conn.get_mut()
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut text = String::new();
    conn.read_to_string(&mut text).await.expect("metrics");
    let series = r#"haproxy_server_http_responses_total{proxy="be_app",server="app1",code="2xx"} "#;
    let counted: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} in {text}"));
    assert_eq!(counted, blue.responses, "HAProxy's exporter and show stat agree");
}

/// The canary's weights: app2 at 10 beside app1's 90 gets a tenth of the requests (HAProxy's weighted round
/// robin is within one request of it per hundred, depending on where in its cycle the test starts), and setting them back gives all new requests to the switch's target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_weights_share_the_traffic() {
    let Some(s) = stack("canary_weights_share_the_traffic").await else {
        return;
    };
    s.hx.set_weight("app2", 10).await.expect("weight");
    s.hx.set_weight("app1", 90).await.expect("weight");
    s.hx.set_state("app2", AdminState::Ready).await.expect("ready");
    s.hx.wait_live("app2", DEADLINE).await.expect("live");
    let mut by_version: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..200 {
        let (status, headers, _) = get(s.proc.http_addr()).await;
        assert_eq!(status, 200);
        *by_version.entry(headers["x-version"].clone()).or_default() += 1;
    }
    let to_green = by_version.get("green").copied().unwrap_or(0);
    assert!((18..=22).contains(&to_green), "{by_version:?}");
    let figures = s.hx.figures().await.expect("figures");
    let green = figures.iter().find(|f| f.name == "app2").expect("app2");
    assert_eq!(
        green.responses,
        u64::from(to_green),
        "the router counted what the clients saw"
    );
    // Back to the configured weights, then the switch.
    s.hx.set_weight("app1", 100).await.expect("weight");
    s.hx.set_weight("app2", 100).await.expect("weight");
    s.hx.switch(Some("app1"), "app2", DEADLINE).await.expect("switch");
    let weights: Vec<u32> =
        s.hx.servers()
            .await
            .expect("servers")
            .iter()
            .map(|x| x.weight)
            .collect();
    assert_eq!(weights, [100, 100]);
    let (_, headers, _) = get(s.proc.http_addr()).await;
    assert_eq!(headers["x-version"], "green");
}

/// Under load, the page answers every request with 503 and `Retry-After` while on; afterwards every request
/// is answered 200 again, and nothing but the page's 503s failed. The map file keeps the state for a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_page_under_load() {
    let Some(s) = stack("maintenance_page_under_load").await else {
        return;
    };
    assert!(!s.hx.maintenance().await.expect("read"));
    let load = Load::start(s.proc.http_addr(), 8, Duration::from_secs(60));
    let answered = |n: u64| {
        let load = &load;
        async move {
            poll_until(
                "test",
                "load answered",
                DEADLINE,
                Duration::from_millis(5),
                || async {
                    Ok(if load.answered() >= n {
                        Ok(())
                    } else {
                        Err(format!("{} answered", load.answered()))
                    })
                },
            )
            .await
            .expect("the load is answered");
        }
    };
    answered(50).await;
    s.hx.set_maintenance(true).await.expect("on");
    assert!(s.hx.maintenance().await.expect("read"));
    assert_eq!(
        std::fs::read_to_string(s.proc.maintenance_map()).expect("map file"),
        "maintenance on\n",
        "written back for a reload"
    );
    let (status, headers, body) = get(s.proc.http_addr()).await;
    assert_eq!(status, 503);
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("120"));
    assert_eq!(body, MAINTENANCE_HTML);
    // Our own requests meet the page too, beside the load's.
    let served_during = s.hx.figures().await.expect("figures");
    let mut page_answers = 0;
    for _ in 0..20 {
        let (status, headers, _) = get(s.proc.http_addr()).await;
        assert_eq!(
            (status, headers.get("retry-after").map(String::as_str)),
            (503, Some("120"))
        );
        page_answers += 1;
    }
    let after = s.hx.figures().await.expect("figures");
    let served = |f: &[connect_core::router::ServerFigures]| f.iter().map(|x| x.responses).sum::<u64>();
    assert_eq!(
        served(&after),
        served(&served_during),
        "no request reached a server while the page was on"
    );
    s.hx.set_maintenance(false).await.expect("off");
    let ok_before = load.answered();
    answered(ok_before + 50).await;
    let report = load.stop().await;
    let page = report.statuses.get(&503).copied().unwrap_or(0);
    assert!(page > 0, "the load saw the page: {report:?}");
    assert_eq!(
        report.failed, page,
        "only the page's 503s failed: {:?}",
        report.errors
    );
    assert_eq!(report.statuses.len(), 1, "{:?}", report.statuses);
    let (status, _, _) = get(s.proc.http_addr()).await;
    assert_eq!(status, 200);
    eprintln!(
        "maintenance under load: {} answered 200, {page} (and {page_answers} of ours) answered 503 + \
         Retry-After by the page",
        report.ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_needs_its_map() {
    let Some(s) = stack("maintenance_needs_its_map").await else {
        return;
    };
    let bare = Haproxy::new(s.hx.api().clone(), "be_app").expect("name");
    let e = bare.set_maintenance(true).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.hint().unwrap_or("").contains("with_maintenance_map"), "{e:?}");
    // The rendered config carries the page.
    let text = s.proc.config.render().expect("render");
    let page: &MaintenancePage = s.proc.config.maintenance.as_ref().expect("page");
    assert!(
        text.contains(&format!(
            "http-request return status 503 content-type \"text/html; charset=utf-8\" file {} hdr Retry-After 120",
            page.page.display()
        )),
        "{text}"
    );
}
