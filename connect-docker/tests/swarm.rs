//! The Swarm backend against a real swarm (issue 18.2): a manager and a worker engine, each a private dockerd
//! in its own network namespace, joined over a veth pair (`connect_docker::testing::TestSwarm`). One swarm for
//! the whole binary, the phases in order: the runtime conformance suite; blue then green as services, both
//! serving through their host-mode published ports; a full rollback of green to the old release; the worker's
//! engine stopped under the live color, which Swarm reschedules onto the manager. With `CONNECT_REAL_TESTS=1`
//! a missing program fails the test.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::test_app_fixture;
use connect_core::conformance::runtime_suite;
use connect_core::model::{Color, ImageRef};
use connect_core::runtime::{ContainerSpec, slot_labels};
use connect_core::{ContainerRuntime, ErrorKind};
use connect_docker::testing::{Availability, TestScope, TestSwarm, WORKER_ADDR, test_slot_options};
use connect_docker::{Restart, SlotOptions, Swarm};

/// A color's service as the engine's start step would ask for it.
fn color_spec(scope: &TestScope, color: Color, version: &str, port: u16) -> ContainerSpec {
    let release = scope.release(version);
    let slot = if color == Color::Blue { "app1" } else { "app2" };
    ContainerSpec {
        name: format!("{}_{slot}", scope.prefix),
        image: release.image.clone(),
        labels: slot_labels(&scope.prefix, color, &release),
        env: BTreeMap::from([("CONNECT_COLOR".to_string(), color.to_string())]),
        ports: vec![(3000, port)],
        command: None,
        health_path: Some("/api/health".into()),
        stop_grace: Duration::from_secs(2),
    }
}

/// Polls `GET /api/color` at `addr:port` until it answers 200 with `color`.
async fn serves(swarm: &TestSwarm, addr: &str, port: u16, color: Color) -> Duration {
    let t = Instant::now();
    connect_core::wait::poll_until(
        "test.serves",
        addr,
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            Ok(match swarm.http_get(addr, port, "/api/color").await {
                Ok((200, body)) if body == color.to_string() => Ok(()),
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{color} does not answer on {addr}:{port}: {e}; tasks: {}",
            tasks(swarm)
        )
    });
    t.elapsed()
}

/// The swarm's tasks as `docker service ps` shows them, for a failure's message.
fn tasks(swarm: &TestSwarm) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "-H",
            &format!("unix://{}", swarm.manager_socket()),
            "service",
            "ls",
            "-q",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut argv = vec!["-H".to_string(), format!("unix://{}", swarm.manager_socket())];
    argv.extend(["service", "ps", "--no-trunc"].map(String::from));
    argv.extend(out.split_whitespace().map(String::from));
    std::process::Command::new("docker")
        .args(&argv)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_swarm_deploys_blue_then_green_rolls_back_and_survives_a_lost_worker() {
    let test = "swarm";
    let started = Instant::now();
    let Some(mut swarm) = TestSwarm::start(test).await else {
        return;
    };
    eprintln!(
        "swarm of 2 nodes formed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let scope = TestScope::new(test);
    let manager = swarm.manager().await.unwrap();
    let healthy = scope.build_app(&manager, "v1").await.unwrap();
    let v2 = scope
        .build_on(&manager, "v2", &healthy, &[("RELEASE", "v2")])
        .await
        .unwrap();
    let unhealthy = scope
        .build_on(&manager, "sick", &healthy, &[("TESTAPP_HEALTH", "fail")])
        .await
        .unwrap();
    for image in [&healthy, &v2, &unhealthy] {
        swarm
            .load_on_worker(image)
            .await
            .expect("the image reaches the worker");
    }
    // Restart `any`: a task on a node that goes down is rescheduled only under it.
    let options = SlotOptions {
        restart: Restart::Always,
        ..test_slot_options()
    };
    let rt = Swarm::new(manager.with_slot_options(options))
        .await
        .expect("the manager is a swarm manager")
        .with_node(swarm.worker().await.unwrap())
        .await
        .expect("the worker is a swarm node");

    // 1. The ContainerRuntime promises, on services.
    let t = Instant::now();
    let fixture = test_app_fixture(&healthy, &unhealthy, format!("{}-conf", scope.prefix));
    runtime_suite(&rt, &fixture).await;
    eprintln!(
        "conformance suite on the swarm: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A start that cannot work says why, and leaves nothing.
    let missing = ImageRef::parse(&format!("{}:no-such-release", scope.prefix)).unwrap();
    let err = rt
        .start(&ContainerSpec {
            image: missing,
            ..color_spec(&scope, Color::Blue, "v1", 3000)
        })
        .await
        .expect_err("no image");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(rt.list(&scope.app_label()).await.unwrap().is_empty());
    // A color that never gets healthy fails its gate with Swarm's own error for the task.
    let sick = ContainerSpec {
        image: unhealthy.clone(),
        ..color_spec(&scope, Color::Green, "sick", 3001)
    };
    rt.start(&sick).await.expect("the sick color starts");
    let err = rt
        .wait_healthy(&sick.name, Duration::from_secs(60))
        .await
        .expect_err("never healthy");
    eprintln!("the sick color: {err}");
    assert_eq!(err.kind(), ErrorKind::Unhealthy, "{err}");
    assert!(err.message().contains("unhealthy container"), "{err}");
    rt.stop(&sick.name, Duration::from_secs(1)).await.expect("stop");
    rt.remove(&sick.name).await.expect("remove");
    // An engine outside any swarm is refused, with the fix (the machine's own engine: only read, never joined).
    if let Some(local) = connect_docker::testing::local_docker(test).await {
        let err = Swarm::new(local).await.expect_err("not a swarm manager");
        assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    }

    // 2. Blue (v1) then green (v2), both on the worker (the manager paused), each serving on its own port.
    swarm.set_manager_availability(Availability::Pause).await.unwrap();
    let blue = color_spec(&scope, Color::Blue, "v1", 3000);
    let green = color_spec(&scope, Color::Green, "v2", 3001);
    let t = Instant::now();
    rt.start(&blue).await.expect("blue starts");
    let info = rt
        .wait_healthy(&blue.name, Duration::from_secs(60))
        .await
        .expect("blue gets healthy");
    eprintln!("blue healthy in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(info.release(), Some("v1"));
    serves(&swarm, WORKER_ADDR, 3000, Color::Blue).await;
    let t = Instant::now();
    rt.start(&green).await.expect("green starts");
    rt.wait_healthy(&green.name, Duration::from_secs(60))
        .await
        .expect("green gets healthy");
    eprintln!("green healthy in {:.1} s", t.elapsed().as_secs_f64());
    serves(&swarm, WORKER_ADDR, 3001, Color::Green).await;
    // Blue stays up as the warm standby: the instant rollback is the router's switch back to it.
    serves(&swarm, WORKER_ADDR, 3000, Color::Blue).await;
    let listed: Vec<String> = rt
        .list(&scope.app_label())
        .await
        .unwrap()
        .into_iter()
        .map(|c| format!("{}={}", c.labels["ops.connect.color"], c.release().unwrap_or("?")))
        .collect();
    assert_eq!(listed, ["blue=v1", "green=v2"]);

    // 3. Full rollback of green to v1: the idle color replaced through the same health gate.
    rt.stop(&green.name, green.stop_grace).await.expect("green stops");
    assert!(
        swarm.http_get(WORKER_ADDR, 3001, "/api/color").await.is_err(),
        "a stopped color's port is free"
    );
    rt.remove(&green.name).await.expect("green goes");
    let green_v1 = color_spec(&scope, Color::Green, "v1", 3001);
    rt.start(&green_v1).await.expect("green starts on v1");
    let info = rt
        .wait_healthy(&green_v1.name, Duration::from_secs(60))
        .await
        .expect("green on v1 gets healthy");
    assert_eq!(info.release(), Some("v1"));
    serves(&swarm, WORKER_ADDR, 3001, Color::Green).await;

    // 4. The worker's engine stops: Swarm reschedules both colors onto the manager, where they serve again.
    // Its network namespace goes with it, and with it the veth pair: the manager is asked on its loopback.
    swarm
        .set_manager_availability(Availability::Active)
        .await
        .unwrap();
    let t = Instant::now();
    swarm.stop_worker();
    let back = serves(&swarm, "127.0.0.1", 3000, Color::Blue).await;
    serves(&swarm, "127.0.0.1", 3001, Color::Green).await;
    eprintln!(
        "worker stopped: blue serving on the manager after {:.1} s (stop included), {:.1} s of polling",
        t.elapsed().as_secs_f64(),
        back.as_secs_f64()
    );
    let info = rt
        .wait_healthy(&blue.name, Duration::from_secs(30))
        .await
        .expect("blue is healthy");
    assert!(info.is_serving(), "{info:?}");
    // What acts on the task's container now reaches the manager's engine.
    let out = rt
        .exec(&blue.name, &["/app".into(), "echo".into(), "moved".into()])
        .await
        .expect("exec in the rescheduled task");
    assert!(out.output.contains("moved"), "{out:?}");
    // Green goes while the lost node's task is still listed (running, as its engine last said): the stop
    // does not wait for an end that node can no longer report.
    let t = Instant::now();
    rt.stop(&green.name, green.stop_grace).await.expect("green stops");
    rt.remove(&green.name).await.expect("green goes");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(rt.list(&scope.app_label()).await.unwrap().len(), 1);
    eprintln!("test total: {:.1} s", started.elapsed().as_secs_f64());
}
