//! The engine's ship step on real engines: the machine's Docker Engine is the build machine, a second dockerd
//! (its own socket, data root and network namespace) is the server. The rest of the deploy's backends are the
//! in-memory ones: a ship touches only the runtime.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::with_scope;
use connect_core::engine::{DeployConfig, Deployer, Event};
use connect_core::memory::MemoryStack;
use connect_core::ship::{BuildOn, ReleaseSource, ShipOutcome, ShipPhase, ShipReport};
use connect_core::testing::{drain_events, ship_progress};
use connect_core::{ContainerRuntime, ErrorKind};
use connect_docker::Docker;
use connect_docker::testing::{SecondDaemon, SocketHost, incompressible, test_app_binary};

/// A layer big enough for several progress reports (one about every MiB).
const DATA: usize = 3 << 20;

/// The tests of this file take turns. Both build on this machine's engine with the classic builder, sharing
/// its cache (the same `COPY app` step), and a test's cleanup removes its images with their untagged parents:
/// a build of the other in progress then failed to commit ("unknown parent image ID", seen once in CI).
static TURN: std::sync::LazyLock<tokio::sync::Mutex<()>> = std::sync::LazyLock::new(Default::default);

/// A build context on disk: the static test app, a data file, a Dockerfile.
fn write_context(dir: &Path, seed: u64) {
    std::fs::copy(test_app_binary().unwrap(), dir.join("app")).unwrap();
    std::fs::write(dir.join("data"), incompressible(DATA, seed)).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nCOPY data /data\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
}

fn deployer(server: Docker) -> Deployer {
    let config = DeployConfig {
        holder: "ship-test".into(),
        ..DeployConfig::runbook()
    };
    let mut backends = MemoryStack::new(&config.topology).backends();
    backends.runtime = Arc::new(server);
    Deployer::new(backends, config).unwrap()
}

fn shipped(events: &[Event]) -> Option<ShipReport> {
    events.iter().find_map(|e| match e {
        Event::Shipped(r) => Some(r.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_context_is_built_locally_shipped_once_and_then_not_again() {
    let _turn = TURN.lock().await;
    with_scope("ship-context", |docker, scope| async move {
        let Some(daemon) = SecondDaemon::start("ship-context").await else {
            return;
        };
        // The server through a Host, as over SSH; the build machine is the machine's engine.
        let server = Docker::connect_via(Arc::new(SocketHost), &daemon.socket())
            .await
            .expect("second engine")
            .with_build_machine(docker.clone());
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), 7);
        let source = ReleaseSource::build_context(dir.path(), BuildOn::Local);
        let release = scope.release("v1");
        let deployer = deployer(server.clone());
        let mut rx = deployer.subscribe();

        let started = std::time::Instant::now();
        let first = deployer
            .ship(release.clone(), source.clone())
            .await
            .expect("first ship");
        eprintln!(
            "first ship (build + send) took {:?}: {first:?}",
            started.elapsed()
        );
        let events = drain_events(&mut rx);
        assert_eq!(first.outcome, ShipOutcome::Sent, "{first:?}");
        assert!(first.built_locally);
        assert_eq!(
            first.layers_sent, first.layers_total,
            "an empty engine gets every layer"
        );
        assert!(first.bytes_sent > DATA as u64, "{first:?}");
        assert_eq!(shipped(&events), Some(first.clone()));

        let p = ship_progress(&events);
        assert!(
            p.iter().any(|e| e.0 == ShipPhase::Build),
            "the build is reported: {p:?}"
        );
        let send: Vec<_> = p.iter().filter(|e| e.0 == ShipPhase::Send).collect();
        assert!(send.len() >= 3, "the send is reported as it goes: {p:?}");
        for w in send.windows(2) {
            assert!(w[1].1 >= w[0].1 && w[1].3 >= w[0].3, "counts only grow: {p:?}");
        }
        let last = send.last().unwrap();
        assert_eq!(
            (last.1, last.3),
            (last.2, last.4),
            "the last report is complete: {p:?}"
        );
        assert!(last.4 > DATA as u64, "the data layer counts in the total: {p:?}");

        let local = docker
            .image_info(&release.image.to_string())
            .await
            .unwrap()
            .unwrap();
        let there = server
            .image(&release.image)
            .await
            .unwrap()
            .expect("tagged on the server");
        assert_eq!(
            (&there.id, &there.layers),
            (&local.id, &local.layers),
            "verified: the same image"
        );

        // The second run: the server has it, so nothing is built or sent.
        let started = std::time::Instant::now();
        let second = deployer.ship(release.clone(), source).await.expect("second ship");
        eprintln!("second ship took {:?}", started.elapsed());
        let events = drain_events(&mut rx);
        assert_eq!(
            (second.outcome, second.layers_sent, second.bytes_sent),
            (ShipOutcome::AlreadyPresent, 0, 0)
        );
        assert_eq!(second.image_id, first.image_id);
        assert!(
            ship_progress(&events).is_empty(),
            "nothing built, nothing sent: {events:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_image_ships_under_the_release_tag_and_a_server_builds_its_own() {
    let _turn = TURN.lock().await;
    with_scope("ship-local", |docker, scope| async move {
        let Some(daemon) = SecondDaemon::start("ship-local").await else {
            return;
        };
        let server = daemon
            .docker()
            .await
            .expect("second engine")
            .with_build_machine(docker.clone());
        let deployer = deployer(server.clone());
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), 11);

        // A local image under a development tag ships as the release.
        let dev = scope.release("dev");
        docker
            .build_release(connect_docker::BuildContext::from_dir(dir.path()).unwrap(), &dev)
            .await
            .unwrap();
        let v2 = scope.release("v2");
        let report = deployer
            .ship(v2.clone(), ReleaseSource::local_image(dev.image.to_string()))
            .await
            .expect("ship the local image");
        assert_eq!(report.outcome, ShipOutcome::Sent);
        let local = docker.image_info(&dev.image.to_string()).await.unwrap().unwrap();
        assert_eq!(report.image_id, local.id);
        assert!(server.image(&v2.image).await.unwrap().is_some());

        // The same tag on the server is another image now: refused, nothing changed there.
        write_context(dir.path(), 12);
        let other = scope.release("other");
        docker
            .build_release(
                connect_docker::BuildContext::from_dir(dir.path()).unwrap(),
                &other,
            )
            .await
            .unwrap();
        let err = deployer
            .ship(v2.clone(), ReleaseSource::local_image(other.image.to_string()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert_eq!(server.image(&v2.image).await.unwrap().unwrap().id, local.id);

        // Built on the server: the build machine never sees the release.
        let v3 = scope.release("v3");
        let report = deployer
            .ship(
                v3.clone(),
                ReleaseSource::build_context(dir.path(), BuildOn::Server),
            )
            .await
            .expect("build on the server");
        assert_eq!(
            (report.outcome, report.layers_sent),
            (ShipOutcome::BuiltOnServer, 0)
        );
        assert!(server.image(&v3.image).await.unwrap().is_some());
        assert!(docker.image_info(&v3.image.to_string()).await.unwrap().is_none());

        // A directory without a Dockerfile is refused before anything is sent.
        let empty = tempfile::tempdir().unwrap();
        let err = deployer
            .ship(
                scope.release("v4"),
                ReleaseSource::build_context(empty.path(), BuildOn::Server),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("Dockerfile"), "{err}");
    })
    .await;
}
