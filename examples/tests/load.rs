//! The load generator's counting, against the demo app and against small servers that close connections
//! in each of the ways that matter: between requests (not a failure) and with a request unanswered (a failure).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::wait::poll_until;
use connect_examples::http::{self, response_bytes};
use connect_examples::load::{Load, LoadConfig};
use connect_examples::testing::DemoApp;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_connect-demo-app");

async fn wait_completed(load: &Load, n: u64) {
    poll_until(
        "wait requests",
        "load",
        Duration::from_secs(30),
        Duration::from_millis(5),
        || {
            let done = load.completed();
            async move {
                Ok(if done >= n {
                    Ok(())
                } else {
                    Err(format!("{done} requests"))
                })
            }
        },
    )
    .await
    .unwrap();
}

fn config(target: SocketAddr) -> LoadConfig {
    LoadConfig {
        max_duration: Duration::from_secs(60),
        ..LoadConfig::new(target)
    }
}

#[tokio::test]
async fn failures_are_counted_in_the_phase_that_caused_them() {
    let app = DemoApp::start(Path::new(BIN), &[]).await.unwrap();
    let load = Load::start(config(app.addr())).unwrap();
    load.phase("healthy");
    let mark = load.completed();
    wait_completed(&load, mark + 300).await;
    // Requests sent while the switch is under way may be answered either way; they count in "switch". The
    // switch waits until every request of "healthy" has its outcome, so none of them can see the new mode.
    load.phase("switch");
    poll_until(
        "wait phase settled",
        "load",
        Duration::from_secs(30),
        Duration::from_millis(2),
        || {
            let pending = load.pending("healthy");
            async move {
                Ok(if pending == Some(0) {
                    Ok(())
                } else {
                    Err(format!("{pending:?} pending"))
                })
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(load.pending("no such phase"), None);
    app.set_mode("erroring").await.unwrap();
    load.phase("erroring");
    let mark = load.completed();
    wait_completed(&load, mark + 300).await;
    let report = load.stop().await;
    println!("{report}");

    let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["start", "healthy", "switch", "erroring"]);
    let healthy = report.phase("healthy").unwrap();
    assert!(healthy.requests >= 300 - 64, "{healthy:?}");
    assert_eq!((healthy.failed, healthy.ok), (0, healthy.requests), "{healthy:?}");
    assert_eq!(report.phase("start").unwrap().failed, 0);
    let erroring = report.phase("erroring").unwrap();
    assert!(erroring.requests >= 300 - 64, "{erroring:?}");
    assert_eq!(erroring.failed, erroring.requests, "{erroring:?}");
    assert_eq!(
        erroring.failures.get("status 500"),
        Some(&erroring.failed),
        "{erroring:?}"
    );
    assert!(
        erroring.p50_ms > 0.0 && erroring.p50_ms <= erroring.p99_ms && erroring.p99_ms <= erroring.max_ms
    );
    // 64 keep-alive connections, opened once each and never closed by the app.
    assert_eq!(report.total.connects, 64, "{:?}", report.total);
    assert_eq!(report.total.closed_by_server, 0);
    let sum: u64 = report.phases.iter().map(|p| p.requests).sum();
    assert_eq!(sum, report.total.requests);
    assert_eq!(
        report.total.failed,
        report.phases.iter().map(|p| p.failed).sum::<u64>()
    );
}

/// A keep-alive server answering 200 to every request; `close_after` responses on a connection, it closes it:
/// with a `Connection: close` header when `announce`, else silently once the connection has been idle for
/// `idle_close`.
async fn closing_server(close_after: usize, announce: bool, idle_close: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                for served in 1.. {
                    let next = if served > 1 && !idle_close.is_zero() {
                        // Idle too long: close, as HAProxy's `timeout http-keep-alive` does.
                        match tokio::time::timeout(idle_close, http::read_request(&mut read)).await {
                            Ok(r) => r,
                            Err(_) => return,
                        }
                    } else {
                        http::read_request(&mut read).await
                    };
                    let Ok(Some(_)) = next else { return };
                    let last = served % close_after == 0;
                    let keep_alive = !(last && announce);
                    if write
                        .write_all(&response_bytes(200, "text/plain", b"ok", keep_alive))
                        .await
                        .is_err()
                        || !keep_alive
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_connection_close_announced_by_the_server_is_not_a_failure() {
    let addr = closing_server(3, true, Duration::ZERO).await;
    let report = Load::start(LoadConfig {
        max_requests: 3_000,
        ..config(addr)
    })
    .unwrap()
    .finish()
    .await;
    let t = &report.total;
    assert_eq!((t.requests, t.ok, t.failed), (3_000, 3_000, 0), "{report}");
    // Every third answer closes its connection: about a thousand reconnects, each counted, none failed.
    assert!(t.closed_by_server >= 900, "{report}");
    // Each close is followed by a new connection, except after a connection's very last request.
    assert!(
        t.connects <= 64 + t.closed_by_server && t.connects >= t.closed_by_server,
        "{report}"
    );
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_not_a_failure() {
    // The server closes a connection idle for 5 ms; each connection pauses 60 ms between requests, like a
    // user between clicks, so every second request finds its connection closed and opens a new one.
    let addr = closing_server(usize::MAX, false, Duration::from_millis(5)).await;
    let load = LoadConfig {
        connections: 64,
        max_requests: 256,
        pace: Duration::from_millis(60),
        ..config(addr)
    };
    let report = Load::start(load).unwrap().finish().await;
    let t = &report.total;
    assert_eq!((t.requests, t.failed), (256, 0), "{report}");
    assert_eq!(
        t.closed_by_server,
        256 - 64,
        "every reuse found the connection closed: {report}"
    );
    assert_eq!(t.connects, 256, "{report}");
}

#[tokio::test]
async fn a_request_without_an_answer_is_a_failure() {
    // Reads each request, then closes without answering (a worker killed mid-request).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut read = BufReader::new(stream);
            let _ = http::read_request(&mut read).await;
        }
    });
    let report = Load::start(LoadConfig {
        connections: 8,
        max_requests: 40,
        ..config(addr)
    })
    .unwrap()
    .finish()
    .await;
    let t = &report.total;
    assert_eq!((t.requests, t.ok, t.failed), (40, 0, 40), "{report}");
    assert_eq!(t.failures.get("closed before response"), Some(&40), "{report}");
    assert_eq!(t.p99_ms, 0.0, "no answer, no latency");

    // Nobody listening: every request fails to connect.
    server.abort();
    let _ = server.await;
    let report = Load::start(LoadConfig {
        connections: 4,
        max_requests: 12,
        ..config(addr)
    })
    .unwrap()
    .finish()
    .await;
    assert_eq!(report.total.failures.get("connect"), Some(&12), "{report}");
}

#[tokio::test]
async fn the_load_stops_by_itself_at_its_bounds() {
    let app = DemoApp::start(Path::new(BIN), &[]).await.unwrap();
    let report = Load::start(LoadConfig {
        max_requests: 500,
        ..config(app.addr())
    })
    .unwrap()
    .finish()
    .await;
    assert_eq!((report.total.requests, report.total.ok), (500, 500), "{report}");

    let timed = LoadConfig {
        max_duration: Duration::from_millis(300),
        ..LoadConfig::new(app.addr())
    };
    let load = Load::start(timed).unwrap();
    let report = load.finish().await;
    assert!(report.elapsed_s >= 0.3, "{report}");
    assert!(
        report.total.requests > 0 && report.total.requests < 1_000_000,
        "{report}"
    );
    assert_eq!(report.total.failed, 0, "{report}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["total"]["requests"], report.total.requests);
}

#[tokio::test]
async fn impossible_configurations_are_refused() {
    let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for bad in [
        LoadConfig {
            connections: 0,
            ..LoadConfig::new(target)
        },
        LoadConfig {
            max_duration: Duration::ZERO,
            ..LoadConfig::new(target)
        },
        LoadConfig {
            path: "no-slash".into(),
            ..LoadConfig::new(target)
        },
        LoadConfig {
            host: "a b".into(),
            ..LoadConfig::new(target)
        },
    ] {
        assert_eq!(
            Load::start(bad).err().map(|e| e.kind()),
            Some(ErrorKind::InvalidInput)
        );
    }
}
