//! A slot's container: started, healthy, serving, stopped and removed; one that never turns healthy and
//! what its checks said; slots found by label and a compose container adopted.

use std::time::{Duration, SystemTime};

use connect_core::model::Color;
use connect_core::runtime::{ContainerState, Health, labels, slot_labels};
use connect_core::testing::free_port;
use connect_core::{ContainerRuntime, ErrorKind};
use connect_docker::testing::test_slot_options;
use connect_docker::{Restart, Secrets, SlotOptions};

use super::{http_get, spec};
use crate::common::with_scope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_runs_turns_healthy_serves_stops_and_goes() {
    with_scope("slot", |docker, scope| async move {
        let release = scope.release("v1");
        let image = scope.build_app(&docker, "v1").await.unwrap();
        let port = free_port();
        let mut labels = slot_labels(&scope.prefix, Color::Blue, &release);
        labels.insert("extra".into(), "yes".into());
        let options = SlotOptions {
            restart: Restart::UnlessStopped,
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            secrets: Secrets::parse("test.env", "DATABASE_URL=postgres://u:hunter2@db/connect\n").unwrap(),
            ..test_slot_options()
        };
        let name = format!("{}-blue", scope.prefix);
        let started = docker
            .start_slot(&spec(&name, &image, labels, port), &options)
            .await
            .expect("start");
        assert_eq!(started.state, ContainerState::Running);
        let info = docker
            .wait_container_healthy(&name, Duration::from_secs(30))
            .await
            .expect("healthy");
        assert_eq!(info.health, Health::Healthy);
        assert_eq!(info.release(), Some("v1"));
        assert!(info.started_at.is_some_and(|t| t <= SystemTime::now()));
        assert!(
            http_get(port, "/api/color").await.ends_with("blue"),
            "the env reached the app"
        );

        let raw = docker.api().inspect_container(&name, None).await.unwrap();
        let host = raw.host_config.unwrap();
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(
            host.restart_policy.unwrap().name.unwrap().to_string(),
            "unless-stopped"
        );
        let bindings = host.port_bindings.unwrap();
        let b = bindings["3000/tcp"].as_ref().unwrap();
        assert_eq!(b[0].host_ip.as_deref(), Some("127.0.0.1"));
        let env = raw.config.unwrap().env.unwrap();
        assert!(
            env.iter()
                .any(|e| e == "DATABASE_URL=postgres://u:hunter2@db/connect"),
            "the secret reached the container"
        );
        assert!(
            format!("{options:?}").contains("DATABASE_URL") && !format!("{options:?}").contains("hunter2")
        );

        let t = std::time::Instant::now();
        docker
            .stop_container(&name, Duration::from_secs(10))
            .await
            .expect("stop");
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "SIGTERM stopped it, no kill after the grace: {:?}",
            t.elapsed()
        );
        assert_eq!(
            docker.inspect_container(&name).await.unwrap().unwrap().state,
            ContainerState::Exited
        );
        docker.remove_container(&name).await.expect("remove");
        assert!(docker.inspect_container(&name).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_never_turns_healthy_reports_its_checks() {
    with_scope("never-healthy", |docker, scope| async move {
        let base = scope.build_app(&docker, "base").await.unwrap();
        let sick = scope
            .build_on(&docker, "sick", &base, &[("TESTAPP_HEALTH", "fail")])
            .await
            .unwrap();
        let name = format!("{}-green", scope.prefix);
        docker
            .start_slot(
                &spec(&name, &sick, scope.app_label(), free_port()),
                &test_slot_options(),
            )
            .await
            .unwrap();
        let err = docker
            .wait_container_healthy(&name, Duration::from_secs(30))
            .await
            .expect_err("never healthy");
        assert_eq!(err.kind(), ErrorKind::Unhealthy, "{err}");
        assert_eq!(err.target(), name);
        assert!(
            err.message().contains("500 Internal Server Error"),
            "carries the probe's output: {err}"
        );

        // A deadline shorter than the checks take is a timeout, also with the state.
        let slow = SlotOptions {
            health: connect_docker::HealthProbe {
                start_period: Duration::from_secs(60),
                interval: Duration::from_secs(30),
                ..test_slot_options().health
            },
            ..test_slot_options()
        };
        let name2 = format!("{}-slow", scope.prefix);
        docker
            .start_slot(&spec(&name2, &base, scope.app_label(), free_port()), &slow)
            .await
            .unwrap();
        let err = docker
            .wait_container_healthy(&name2, Duration::from_millis(800))
            .await
            .expect_err("deadline");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.message().contains("starting"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_listed_by_label_and_compose_containers_adopted() {
    with_scope("list-adopt", |docker, scope| async move {
        let image = scope.build_app(&docker, "20251013-1400").await.unwrap();
        let release = scope.release("20251013-1400");
        for color in [Color::Blue, Color::Green] {
            let name = format!("{}-{color}", scope.prefix);
            let mut s = spec(
                &name,
                &image,
                slot_labels(&scope.prefix, color, &release),
                free_port(),
            );
            s.health_path = None;
            docker.start_slot(&s, &test_slot_options()).await.unwrap();
        }
        let all = docker.list_containers(&scope.app_label()).await.unwrap();
        assert_eq!(all.len(), 2);
        let mut green = scope.app_label();
        green.insert(labels::COLOR.into(), "green".into());
        let only = docker.list(&green).await.unwrap();
        assert_eq!(
            only.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            [format!("{}-green", scope.prefix)]
        );

        // What docker-compose makes: its own labels, no Connect Ops labels, named <project>_<service>.
        let compose_name = format!("{}_app1", scope.prefix);
        docker
            .api()
            .create_container(
                Some(bollard::query_parameters::CreateContainerOptions {
                    name: Some(compose_name.clone()),
                    ..Default::default()
                }),
                bollard::models::ContainerCreateBody {
                    image: Some(image.to_string()),
                    labels: Some(std::collections::HashMap::from([
                        ("com.docker.compose.project".to_string(), scope.prefix.clone()),
                        ("com.docker.compose.service".to_string(), "app1".to_string()),
                    ])),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let adopted = docker
            .adopt(&compose_name, &scope.prefix, Color::Blue)
            .await
            .unwrap();
        assert_eq!(adopted.labels[labels::COLOR], "blue");
        assert_eq!(adopted.release(), Some("20251013-1400"));
        assert_eq!(adopted.state, ContainerState::Created);
        let missing = docker
            .adopt(&format!("{}_app9", scope.prefix), &scope.prefix, Color::Green)
            .await;
        assert_eq!(
            missing.expect_err("no such container").kind(),
            ErrorKind::NotFound
        );
    })
    .await;
}
