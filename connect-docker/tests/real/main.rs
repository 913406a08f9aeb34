//! connect-docker against the Docker Engine on this machine. Every test builds its own images from the
//! static test app (no registry is reachable), names everything after itself and the process, and removes
//! what it made.

#[path = "../common/mod.rs"]
mod common;
mod images;
mod logs_and_jobs;
mod slots;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{test_app_fixture, with_scope};
use connect_core::conformance::runtime_suite;
use connect_core::runtime::ContainerSpec;
use connect_core::testing::free_port;
use connect_core::{ContainerRuntime, ErrorKind};
use connect_docker::Docker;
use connect_docker::testing::{SocketHost, test_slot_options};

fn spec(
    name: &str,
    image: &connect_core::model::ImageRef,
    labels: BTreeMap<String, String>,
    port: u16,
) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: image.clone(),
        labels,
        env: BTreeMap::from([("CONNECT_COLOR".to_string(), "blue".to_string())]),
        ports: vec![(3000, port)],
        command: None,
        health_path: Some("/api/health".into()),
        stop_grace: Duration::from_secs(5),
    }
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the app");
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes() {
    with_scope("conformance", |docker, scope| async move {
        let healthy = scope.build_app(&docker, "ok").await.unwrap();
        let unhealthy = scope
            .build_on(&docker, "sick", &healthy, &[("TESTAPP_HEALTH", "fail")])
            .await
            .unwrap();
        let fixture = test_app_fixture(&healthy, &unhealthy, scope.prefix.clone());
        runtime_suite(&docker, &fixture).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_clear_errors_and_leaves_nothing() {
    with_scope("bad-input", |docker, scope| async move {
        let image = scope.build_app(&docker, "v1").await.unwrap();

        let no_daemon = Docker::connect_socket("/tmp/connect-no-such-docker.sock")
            .await
            .expect_err("no daemon");
        assert_eq!(no_daemon.kind(), ErrorKind::Unavailable, "{no_daemon}");
        assert!(
            no_daemon.to_string().contains("/tmp/connect-no-such-docker.sock"),
            "{no_daemon}"
        );
        assert!(no_daemon.hint().is_some());

        let name = format!("{}-blue", scope.prefix);
        let missing = docker
            .start_slot(
                &spec(
                    &name,
                    &scope.release("nope").image,
                    scope.app_label(),
                    free_port(),
                ),
                &test_slot_options(),
            )
            .await;
        let err = missing.expect_err("missing image");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&format!("{}:nope", scope.prefix)),
            "{err}"
        );
        assert!(docker.inspect_container(&name).await.unwrap().is_none());

        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = docker
            .start_slot(
                &spec(&name, &image, scope.app_label(), port),
                &test_slot_options(),
            )
            .await
            .expect_err("port taken");
        assert!(
            matches!(err.kind(), ErrorKind::Conflict | ErrorKind::Failed),
            "{err}"
        );
        assert!(
            err.to_string().contains(&name) && err.to_string().contains(&port.to_string()),
            "{err}"
        );
        assert!(
            docker.inspect_container(&name).await.unwrap().is_none(),
            "the half-made container was removed"
        );
        drop(taken);

        docker
            .start_slot(
                &spec(&name, &image, scope.app_label(), free_port()),
                &test_slot_options(),
            )
            .await
            .unwrap();
        let err = docker
            .start_slot(
                &spec(&name, &image, scope.app_label(), free_port()),
                &test_slot_options(),
            )
            .await
            .expect_err("conflict");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.to_string().contains(&name));
        let err = docker.remove_container(&name).await.expect_err("running");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert_eq!(
            docker
                .stop_container("connect-no-such-container", Duration::from_secs(1))
                .await
                .expect_err("missing")
                .kind(),
            ErrorKind::NotFound
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_travels_through_a_host_connection() {
    with_scope("via-host", |local, scope| async move {
        let image = scope.build_app(&local, "v1").await.unwrap();
        let docker = Docker::connect_via(Arc::new(SocketHost), connect_docker::DEFAULT_SOCKET)
            .await
            .expect("connect through the host")
            .with_slot_options(test_slot_options());
        let engine_api = docker.api().version().await.unwrap().api_version.unwrap();
        let (major, minor) = engine_api.split_once('.').unwrap();
        let (major, minor): (u32, u32) = (major.parse().unwrap(), minor.parse().unwrap());
        let negotiated = docker.api_version();
        let (a, b) = negotiated.split_once('.').unwrap();
        assert!(
            (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()) <= (major, minor),
            "negotiated {negotiated}, the engine speaks {engine_api}"
        );
        assert!(docker.location().starts_with("socket-host:"));
        assert!(docker.image(&image).await.unwrap().is_some());
        let name = format!("{}-blue", scope.prefix);
        docker
            .start(&spec(&name, &image, scope.app_label(), free_port()))
            .await
            .unwrap();
        docker
            .wait_healthy(&name, Duration::from_secs(30))
            .await
            .expect("healthy through the host");
        let out = docker
            .exec(&name, &["/app".into(), "echo".into(), "hi".into()])
            .await
            .unwrap();
        assert_eq!(out.output.trim(), "hi");
        // Many requests at once, each on its own connection from the host.
        let calls = (0..20).map(|_| docker.inspect(&name));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| r.as_ref().is_ok_and(|i| i.is_some())));
        docker.stop(&name, Duration::from_secs(5)).await.unwrap();
        docker.remove(&name).await.unwrap();

        let gone = Docker::connect_via(Arc::new(SocketHost), "/tmp/connect-no-such-docker.sock")
            .await
            .expect_err("no socket");
        assert_eq!(gone.kind(), ErrorKind::Unavailable, "{gone}");
    })
    .await;
}
