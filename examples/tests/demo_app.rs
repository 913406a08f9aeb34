//! The demo app as a process on 127.0.0.1: routes, modes (by env and by the admin endpoint), the health
//! check command, and the graceful stop on SIGTERM. Without a database or Redis; see `demo_app_real.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use connect_core::wait::poll_until;
use connect_examples::testing::{DemoApp, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_connect-demo-app");

fn body(r: &connect_examples::http::Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn json(r: &connect_examples::http::Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", body(r)))
}

#[tokio::test]
async fn routes_answer_without_database_or_redis() {
    let app = DemoApp::start(Path::new(BIN), &[("APP_VERSION", "v7")])
        .await
        .unwrap();
    let a = app.addr();
    let health = request(a, "GET", "/api/health", "").await.unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(
        json(&health),
        serde_json::json!({"status": "healthy", "version": "v7"})
    );
    let version = request(a, "GET", "/version", "").await.unwrap();
    assert_eq!(
        (version.status, json(&version)["version"].as_str()),
        (200, Some("v7"))
    );
    let main = request(a, "GET", "/", "").await.unwrap();
    assert_eq!(main.status, 200);
    let text = body(&main);
    assert!(text.contains("Connect") && text.contains("version v7"), "{text}");
    assert!(
        text.contains("database: not configured") && text.contains("redis: not configured"),
        "{text}"
    );
    assert_eq!(request(a, "GET", "/nope", "").await.unwrap().status, 404);
    assert_eq!(request(a, "POST", "/", "").await.unwrap().status, 405);
    assert_eq!(request(a, "DELETE", "/admin/mode", "").await.unwrap().status, 405);
    let bad = request(a, "POST", "/admin/mode", "sleepy").await.unwrap();
    assert_eq!(bad.status, 400);
    assert!(body(&bad).contains("sleepy"), "{}", body(&bad));
    assert_eq!(app.error_lines(), 0, "{:?}", app.stderr_lines());
}

#[tokio::test]
async fn the_admin_endpoint_switches_modes_while_it_runs() {
    let app = DemoApp::start(Path::new(BIN), &[]).await.unwrap();
    let a = app.addr();

    app.set_mode("unhealthy").await.unwrap();
    let health = request(a, "GET", "/api/health", "").await.unwrap();
    assert_eq!(
        (health.status, json(&health)["status"].as_str()),
        (503, Some("unhealthy"))
    );
    assert_eq!(
        request(a, "GET", "/", "").await.unwrap().status,
        200,
        "the process still serves"
    );

    app.set_mode("erroring").await.unwrap();
    assert_eq!(
        app.error_lines(),
        0,
        "switching modes is not an error: {:?}",
        app.stderr_lines()
    );
    assert_eq!(
        request(a, "GET", "/api/health", "").await.unwrap().status,
        200,
        "passes the health gate"
    );
    for _ in 0..3 {
        let main = request(a, "GET", "/", "").await.unwrap();
        assert_eq!(main.status, 500);
        assert!(body(&main).contains("Connect"));
    }
    poll_until(
        "count error lines",
        "demo app",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            let n = app.error_lines();
            async move {
                Ok(if n == 3 {
                    Ok(())
                } else {
                    Err(format!("{n} error lines"))
                })
            }
        },
    )
    .await
    .unwrap();
    assert!(
        app.stderr_lines().iter().any(|l| l.starts_with("ERROR ")),
        "{:?}",
        app.stderr_lines()
    );

    // The query string works as well as the body.
    let slow = request(a, "POST", "/admin/mode?mode=slow+300", "").await.unwrap();
    assert_eq!(json(&slow)["slow_ms"], 300);
    let started = Instant::now();
    assert_eq!(request(a, "GET", "/api/health", "").await.unwrap().status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(request(a, "GET", "/admin/mode", "").await.unwrap().status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "the admin endpoint is never slowed"
    );

    app.set_mode("healthy").await.unwrap();
    let mode = request(a, "GET", "/admin/mode", "").await.unwrap();
    assert_eq!(json(&mode)["mode"], "healthy");
    assert_eq!(request(a, "GET", "/", "").await.unwrap().status, 200);
}

#[tokio::test]
async fn modes_come_from_the_environment_too() {
    let app = DemoApp::start(Path::new(BIN), &[("APP_MODE", "unhealthy")])
        .await
        .unwrap();
    assert_eq!(
        request(app.addr(), "GET", "/api/health", "")
            .await
            .unwrap()
            .status,
        503
    );
    let app = DemoApp::start(Path::new(BIN), &[("APP_MODE", "erroring")])
        .await
        .unwrap();
    assert_eq!(request(app.addr(), "GET", "/", "").await.unwrap().status, 500);

    // A slow starter: unhealthy until APP_READY_AFTER_MS has passed, then healthy by itself.
    let started = Instant::now();
    let app = DemoApp::start(Path::new(BIN), &[("APP_READY_AFTER_MS", "400")])
        .await
        .unwrap();
    assert_eq!(
        request(app.addr(), "GET", "/api/health", "")
            .await
            .unwrap()
            .status,
        503
    );
    poll_until(
        "wait healthy",
        "demo app",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let s = request(app.addr(), "GET", "/api/health", "").await?.status;
            Ok(if s == 200 { Ok(()) } else { Err(format!("{s}")) })
        },
    )
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn the_healthcheck_command_exits_by_the_health_answer() {
    let app = DemoApp::start(Path::new(BIN), &[]).await.unwrap();
    let port = app.addr().port().to_string();
    let check = || {
        std::process::Command::new(BIN)
            .arg("healthcheck")
            .env("PORT", &port)
            .output()
            .unwrap()
    };
    assert!(check().status.success());
    app.set_mode("unhealthy").await.unwrap();
    let out = check();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("503"), "{out:?}");
    drop(app);
    let out = std::process::Command::new(BIN).arg("bogus").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("healthcheck"),
        "{out:?}"
    );
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_closes_idle_connections() {
    let mut app = DemoApp::start(Path::new(BIN), &[("APP_MODE", "slow"), ("APP_SLOW_MS", "700")])
        .await
        .unwrap();
    let a = app.addr();

    // An idle keep-alive connection, already used once (the admin endpoint is never slowed).
    let mut idle = BufReader::new(TcpStream::connect(a).await.unwrap());
    idle.get_mut()
        .write_all(b"GET /admin/mode HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let first = connect_examples::http::read_response(&mut idle).await.unwrap();
    assert_eq!((first.status, first.close), (200, false));

    let in_flight = tokio::spawn(async move { request(a, "GET", "/", "").await });
    poll_until(
        "wait in flight",
        "demo app",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || async {
            let r = request(a, "GET", "/admin/mode", "").await?;
            let n = serde_json::from_slice::<serde_json::Value>(&r.body)
                .map(|v| v["in_flight"].as_u64())
                .ok()
                .flatten();
            Ok(if n == Some(1) {
                Ok(())
            } else {
                Err(format!("in_flight {n:?}"))
            })
        },
    )
    .await
    .unwrap();

    app.terminate().await.unwrap();
    let answered = in_flight.await.unwrap().unwrap();
    assert_eq!(
        answered.status, 200,
        "the request in flight at SIGTERM is answered"
    );
    assert!(answered.close, "with Connection: close");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the idle connection is closed without a word");
    let status = app.wait(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(a).await.is_err(), "no longer listening");
    assert!(
        app.stderr_lines().iter().any(|l| l.contains("stopped")),
        "{:?}",
        app.stderr_lines()
    );
}
