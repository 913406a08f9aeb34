//! The health gate passes on the first of two signals: Docker's health status, or the app itself answering
//! its health path on the color's port through the host.

mod common;

use std::time::Duration;

use common::{Fixture, release};
use connect_core::engine::{Event, Step};
use connect_core::host::Endpoint;
use connect_core::memory::AppBehavior;
use connect_core::model::Color;
use connect_core::testing::drain_events;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers every request on `port` of the in-memory server with `status`, as the app would.
fn serve(f: &Fixture, port: u16, status: &'static str) {
    let mut conns = f.stack.host.listen(Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port,
    });
    tokio::spawn(async move {
        while let Some(mut conn) = conns.recv().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
}

fn gate_ms(record: &connect_core::engine::OperationRecord) -> u64 {
    record
        .steps
        .iter()
        .find(|s| s.step == Step::HealthGate)
        .expect("a health gate")
        .duration_ms
}

#[tokio::test(start_paused = true)]
async fn an_app_answering_its_health_path_passes_the_gate_before_docker_says_so() {
    let f = Fixture::with_v1_live().await;
    // Docker's check would take 5 s to call v2 healthy; the app answers at once.
    let slow_check = AppBehavior {
        ready_after: Duration::from_secs(5),
        ..AppBehavior::default()
    };
    let v2 = f.image("v2", slow_check);
    serve(
        &f,
        f.deployer.config().topology.slot(Color::Green).host_port,
        "200 OK",
    );
    let mut events = f.deployer.subscribe();
    let record = f.deployer.deploy(v2).await.unwrap();
    assert!(gate_ms(&record) < 500, "the gate waited {} ms", gate_ms(&record));
    let answering = drain_events(&mut events)
        .into_iter()
        .any(|e| matches!(e, Event::HealthAttempt { ref health, .. } if health == "answering"));
    assert!(answering, "the event says the app answered");
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn an_app_answering_5xx_waits_for_docker() {
    let f = Fixture::with_v1_live().await;
    serve(
        &f,
        f.deployer.config().topology.slot(Color::Green).host_port,
        "503 Service Unavailable",
    );
    let record = f.deployer.deploy(release("v2")).await.unwrap();
    assert!(
        gate_ms(&record) >= 1500,
        "Docker's 1.5 s decided: {} ms",
        gate_ms(&record)
    );
}

#[tokio::test(start_paused = true)]
async fn verify_takes_the_apps_answer_while_docker_has_not_judged_yet() {
    use connect_core::ContainerRuntime;
    use connect_core::runtime::{ContainerSpec, slot_labels};
    use connect_core::vocabulary::CheckStatus;

    let f = Fixture::new();
    let unjudged = AppBehavior {
        ready_after: Duration::from_secs(60),
        ..AppBehavior::default()
    };
    let v9 = f.image("v9", unjudged);
    let slot = f.deployer.config().topology.slot(Color::Green).clone();
    f.stack
        .runtime
        .start(&ContainerSpec {
            name: slot.container.clone(),
            image: v9.image.clone(),
            labels: slot_labels("connect", Color::Green, &v9),
            env: Default::default(),
            ports: vec![(3000, slot.host_port)],
            command: None,
            health_path: Some("/api/health".into()),
            stop_grace: Duration::from_secs(1),
        })
        .await
        .unwrap();
    let health = |report: connect_core::engine::CheckReport| {
        report
            .checks
            .into_iter()
            .find(|c| c.name == "health")
            .expect("a health check")
    };
    let since = std::time::SystemTime::now();
    let silent = health(f.deployer.verify_color(Color::Green, since).await.unwrap());
    assert_eq!(
        silent.status,
        CheckStatus::Fail,
        "starting and not answering: {silent:?}"
    );

    serve(&f, slot.host_port, "200 OK");
    let answering = health(f.deployer.verify_color(Color::Green, since).await.unwrap());
    assert_eq!(answering.status, CheckStatus::Pass, "{answering:?}");
    assert!(answering.detail.contains("answered 200"), "{answering:?}");
}
