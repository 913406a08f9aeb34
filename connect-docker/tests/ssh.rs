//! The Engine API through an SSH connection, the way a remote server is driven: the connect-core sshd harness
//! on 127.0.0.1, an `SshHost`, and every API request a `direct-streamlocal` channel on that one connection to
//! the engine's socket. sshd runs on this machine, so "remote" is the local engine (and, for the transfer, a
//! second daemon with its own socket), reached only through sshd.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{base_and_release, with_scope};
use connect_core::model::Color;
use connect_core::runtime::{ContainerSpec, ContainerState, Health, slot_labels};
use connect_core::ssh::SshHost;
use connect_core::testing::{Sshd, free_port};
use connect_core::{ContainerRuntime, Host};
use connect_docker::testing::{SecondDaemon, test_app_context, test_slot_options};
use connect_docker::{DEFAULT_SOCKET, Docker, TransferMethod, TransferOptions};

async fn docker_over_ssh(sshd: &Sshd) -> (SshHost, Docker) {
    let ssh = SshHost::connect(sshd.config()).await.expect("ssh connect");
    let host: Arc<dyn Host> = Arc::new(ssh.clone());
    let docker = Docker::connect_via(host, DEFAULT_SOCKET)
        .await
        .expect("the engine through ssh")
        .with_slot_options(test_slot_options());
    (ssh, docker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_lives_and_goes_through_one_ssh_connection() {
    with_scope("via-ssh", |local, scope| async move {
        let Some(sshd) = Sshd::start("docker via ssh").await else {
            return;
        };
        let image = scope
            .build(
                &local,
                "v1",
                test_app_context(None, &[], &[("TESTAPP_ERRORS", "2")]).unwrap(),
            )
            .await
            .unwrap();
        let before = sshd.accepted_connections();
        let (ssh, docker) = docker_over_ssh(&sshd).await;
        assert!(
            docker.location().ends_with(&format!(":{DEFAULT_SOCKET}")),
            "{}",
            docker.location()
        );

        let ping = docker.api().ping().await.expect("ping through ssh");
        assert_eq!(ping, "OK");
        let version = docker.engine_version().await.unwrap();
        assert_eq!(version, local.engine_version().await.unwrap(), "the same engine");
        assert!(!docker.api_version().is_empty());
        let seen = docker
            .image(&image)
            .await
            .unwrap()
            .expect("the image, seen through ssh");
        assert!(seen.tags.contains(&image.to_string()), "{seen:?}");

        let release = scope.release("v1");
        let name = format!("{}-green", scope.prefix);
        let since = SystemTime::now() - Duration::from_secs(2);
        let spec = ContainerSpec {
            name: name.clone(),
            image: image.clone(),
            labels: slot_labels(&scope.prefix, Color::Green, &release),
            env: BTreeMap::from([("CONNECT_COLOR".to_string(), "green".to_string())]),
            ports: vec![(3000, free_port())],
            command: None,
            health_path: Some("/api/health".into()),
            stop_grace: Duration::from_secs(5),
        };
        let started = docker.start(&spec).await.expect("start through ssh");
        assert_eq!(started.state, ContainerState::Running);
        let healthy = docker
            .wait_healthy(&name, Duration::from_secs(30))
            .await
            .expect("healthy through ssh");
        assert_eq!(healthy.health, Health::Healthy);
        assert_eq!(healthy.release(), Some("v1"));

        let out = docker
            .exec(&name, &["/app".into(), "echo".into(), "migrate".into()])
            .await
            .expect("exec through ssh");
        assert_eq!((out.exit_code, out.output.trim()), (0, "migrate"));
        let failed = docker
            .exec(&name, &["/app".into(), "exit".into(), "4".into()])
            .await
            .unwrap();
        assert_eq!(failed.exit_code, 4);

        let report = docker.log_report(&name, since).await.expect("logs through ssh");
        assert_eq!(report.error_lines, 2, "{:?}", report.lines);
        assert!(
            report.lines.iter().any(|l| l.starts_with("listening on 3000")),
            "{:?}",
            report.lines
        );

        // Requests at once: each its own channel, all on the one connection.
        let calls = (0..20).map(|_| docker.inspect(&name));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| r.as_ref().is_ok_and(|i| i.is_some())));

        docker.stop(&name, Duration::from_secs(5)).await.expect("stop");
        assert_eq!(
            docker.inspect(&name).await.unwrap().unwrap().state,
            ContainerState::Exited
        );
        docker.remove(&name).await.expect("remove");
        assert!(docker.inspect(&name).await.unwrap().is_none());
        assert!(
            local.inspect(&name).await.unwrap().is_none(),
            "gone from the engine itself"
        );

        assert_eq!(
            sshd.accepted_connections() - before,
            1,
            "sshd accepted one TCP connection for everything"
        );
        assert_eq!(ssh.connections_opened(), 1, "no reconnect");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_ships_to_an_engine_reached_through_ssh() {
    with_scope("transfer-via-ssh", |local, scope| async move {
        let Some(sshd) = Sshd::start("transfer via ssh").await else {
            return;
        };
        // A distinct destination: the same engine would already hold every layer and the image itself.
        let Some(daemon) = SecondDaemon::start("transfer via ssh").await else {
            return;
        };
        let (v1, v2) = base_and_release(&local, &scope, 1 << 20, 11).await;

        let before = sshd.accepted_connections();
        let ssh = SshHost::connect(sshd.config()).await.expect("ssh connect");
        let host: Arc<dyn Host> = Arc::new(ssh.clone());
        let dest = Docker::connect_via(host, &daemon.socket())
            .await
            .expect("the second engine through ssh");
        assert!(dest.image(&v1).await.unwrap().is_none(), "a fresh engine");

        let first = local
            .transfer_image(&dest, &v1, &TransferOptions::default())
            .await
            .expect("v1 through ssh");
        assert_eq!(first.method, TransferMethod::Incremental);
        assert_eq!(first.layers_sent, first.layers_total);
        assert!(first.wire_bytes > 1 << 20, "{first:?}");
        let second = local
            .transfer_image(&dest, &v2, &TransferOptions::default())
            .await
            .expect("v2 through ssh");
        assert_eq!(second.method, TransferMethod::Incremental);
        assert_eq!(second.layers_sent, 1, "only the new layer: {second:?}");
        assert!(second.wire_bytes < 40_000, "{second:?}");

        let src = local.image_info(&v2.to_string()).await.unwrap().unwrap();
        let there = dest
            .image_info(&v2.to_string())
            .await
            .unwrap()
            .expect("v2 tagged on the destination");
        assert_eq!((there.id, there.layers), (src.id, src.layers));
        assert_eq!(sshd.accepted_connections() - before, 1);
        assert_eq!(ssh.connections_opened(), 1);
        // The second daemon's copies go with its data root when it stops.
    })
    .await;
}
