//! connect-docker against the Docker Engine on this machine. Every test builds its own images from the
//! static test app (no registry is reachable), names everything after itself and the process, and removes
//! what it made.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{test_app_fixture, with_scope};
use connect_core::conformance::runtime_suite;
use connect_core::model::Color;
use connect_core::runtime::{ContainerSpec, ContainerState, Health, OneOff, labels, slot_labels};
use connect_core::testing::free_port;
use connect_core::{ContainerRuntime, ErrorKind};
use connect_docker::testing::{SocketHost, test_app_context, test_slot_options};
use connect_docker::{Docker, ONE_OFF_LABEL, Restart, Secrets, SlotOptions};

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
async fn logs_since_count_errors_and_exec_reports_exit_codes() {
    with_scope("logs-exec", |docker, scope| async move {
        let image = scope
            .build(
                &docker,
                "v1",
                test_app_context(None, &[], &[("TESTAPP_ERRORS", "3")]).unwrap(),
            )
            .await
            .unwrap();
        let name = format!("{}-blue", scope.prefix);
        let before = SystemTime::now() - Duration::from_secs(2);
        let options = SlotOptions {
            secrets: Secrets::parse("env", "DATABASE_URL=postgres://u:hunter2@db/x").unwrap(),
            ..test_slot_options()
        };
        docker
            .start_slot(&spec(&name, &image, scope.app_label(), free_port()), &options)
            .await
            .unwrap();
        docker
            .wait_container_healthy(&name, Duration::from_secs(30))
            .await
            .unwrap();
        let report = docker.log_report(&name, before).await.unwrap();
        assert_eq!(report.error_lines, 3, "{:?}", report.lines);
        assert!(
            report.lines.iter().any(|l| l.starts_with("listening on 3000")),
            "{:?}",
            report.lines
        );
        assert!(
            report.lines.iter().all(|l| !l.contains("hunter2")),
            "no secret in the log"
        );
        let later = docker
            .log_report(&name, SystemTime::now() + Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(
            later.lines.is_empty(),
            "nothing written in the future: {:?}",
            later.lines
        );

        let ok = docker
            .exec_in(&name, &["/app".into(), "echo".into(), "pg_isready".into()])
            .await
            .unwrap();
        assert_eq!((ok.exit_code, ok.output.trim()), (0, "pg_isready"));
        let bad = docker
            .exec_in(&name, &["/app".into(), "exit".into(), "7".into()])
            .await
            .unwrap();
        assert_eq!(bad.exit_code, 7);
        assert!(bad.output.contains("exiting with 7"));
        let missing = docker.exec_in(&name, &["/no/such/program".into()]).await;
        assert!(
            missing.is_err() || missing.as_ref().is_ok_and(|o| o.exit_code != 0),
            "{missing:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_off_jobs_report_exit_codes_time_out_and_leave_nothing() {
    with_scope("one-off", |docker, scope| async move {
        let image = scope.build_app(&docker, "v1").await.unwrap();
        let job = |cmd: &[&str], deadline| OneOff {
            image: image.clone(),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::from([("MIGRATION".into(), "1".into())]),
            deadline,
            labels: Default::default(),
        };
        let ok = docker
            .run_once(&job(
                &["echo", "migrated", "4", "tables"],
                Duration::from_secs(30),
            ))
            .await
            .unwrap();
        assert_eq!((ok.exit_code, ok.output.trim()), (0, "migrated 4 tables"));
        let failed = docker
            .run_once(&job(&["exit", "2"], Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(failed.exit_code, 2);
        let err = docker
            .run_once(&job(&["sleep"], Duration::from_millis(1500)))
            .await
            .expect_err("times out");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        let missing = docker
            .run_once(&OneOff {
                image: scope.release("nope").image,
                ..job(&["echo"], Duration::from_secs(5))
            })
            .await;
        assert_eq!(missing.expect_err("no image").kind(), ErrorKind::NotFound);
        let left = docker
            .list_containers(&BTreeMap::from([(ONE_OFF_LABEL.to_string(), "true".to_string())]))
            .await
            .unwrap();
        assert!(
            left.iter().all(|c| !c.image.starts_with(&scope.prefix)),
            "one-off containers removed: {left:?}"
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_tag_list_layers_and_prune_all_but_the_last_releases() {
    with_scope("prune", |docker, scope| async move {
        let base = scope.build_app(&docker, "r1").await.unwrap();
        let mut refs = vec![base.clone()];
        for (i, v) in ["r2", "r3", "r4"].iter().enumerate() {
            let ctx = test_app_context(
                Some(&base.to_string()),
                &[("release.txt", v.as_bytes().to_vec())],
                &[],
            )
            .unwrap();
            let _ = i;
            refs.push(scope.build(&docker, v, ctx).await.unwrap());
        }
        let r4 = docker.image_info(&refs[3].to_string()).await.unwrap().unwrap();
        let r1 = docker.image_info(&refs[0].to_string()).await.unwrap().unwrap();
        assert_eq!(
            r4.layers.len(),
            r1.layers.len() + 1,
            "one layer on top of the base"
        );
        assert_eq!(
            r4.layers[..r1.layers.len()],
            r1.layers[..],
            "shares the base layers"
        );
        let alias = scope.release("live").image;
        docker.tag(&refs[3].to_string(), &alias).await.unwrap();
        assert_eq!(
            docker.image_info(&alias.to_string()).await.unwrap().unwrap().id,
            r4.id
        );
        let listed = docker.images(Some(&scope.prefix)).await.unwrap();
        assert!(listed.iter().all(|i| !i.layers.is_empty()));
        assert_eq!(listed.iter().flat_map(|i| i.tags.iter()).count(), 5, "{listed:?}");

        // Keep the newest (r4 and its alias); r2 is the standby and is protected; r1 and r3 go.
        let report = docker
            .prune_releases(&scope.prefix, 1, &[&refs[1]])
            .await
            .unwrap();
        let mut removed = report.removed.clone();
        removed.sort();
        assert_eq!(removed, [refs[0].to_string(), refs[2].to_string()], "{report:?}");
        assert!(
            docker.image_info(&refs[1].to_string()).await.unwrap().is_some(),
            "standby kept"
        );
        assert!(
            docker.image_info(&refs[3].to_string()).await.unwrap().is_some(),
            "newest kept"
        );
        assert!(docker.image_info(&refs[0].to_string()).await.unwrap().is_none());

        let bad = docker
            .build_release(
                connect_docker::BuildContext::new()
                    .dockerfile("FROM scratch\nCOPY missing /x\n")
                    .unwrap(),
                &scope.release("bad"),
            )
            .await
            .expect_err("a failing build");
        assert_eq!(bad.kind(), ErrorKind::Failed);
        assert!(
            bad.to_string().contains(&format!("{}:bad", scope.prefix)),
            "{bad}"
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_files_are_read_out_of_an_image_without_running_it() {
    with_scope("read-dir", |docker, scope| async move {
        let create = b"CREATE TABLE users (id int, legacy text);\n".to_vec();
        let drop = b"ALTER TABLE users DROP COLUMN legacy;\n".to_vec();
        let context = test_app_context(
            None,
            &[
                ("migrations/20260101_create_users/migration.sql", create.clone()),
                ("migrations/20260201_drop_legacy/migration.sql", drop.clone()),
                (
                    "migrations/migration_lock.toml",
                    b"provider = \"postgresql\"\n".to_vec(),
                ),
            ],
            &[],
        )
        .unwrap();
        let image = scope.build(&docker, "v1", context).await.unwrap();

        let files = ContainerRuntime::read_image_dir(&docker, &image, "/migrations", 1 << 20)
            .await
            .unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "20260101_create_users/migration.sql",
                "20260201_drop_legacy/migration.sql",
                "migration_lock.toml"
            ]
        );
        assert_eq!(files[0].data, create);
        assert_eq!(files[1].data, drop);

        let none = docker
            .read_image_dir(&image, "/no/such/dir", 1 << 20)
            .await
            .unwrap();
        assert!(none.is_empty(), "{none:?}");
        let big = docker
            .read_image_dir(&image, "/migrations", 10)
            .await
            .unwrap_err();
        assert_eq!(big.kind(), ErrorKind::Refused, "{big}");
        let bad = docker
            .read_image_dir(&image, "../etc", 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::InvalidInput, "{bad}");
        let missing = docker
            .read_image_dir(&scope.release("nope").image, "/migrations", 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");

        let left = docker
            .list_containers(&BTreeMap::from([(ONE_OFF_LABEL.to_string(), "true".to_string())]))
            .await
            .unwrap();
        assert!(
            left.iter().all(|c| !c.image.starts_with(&scope.prefix)),
            "the reading containers are removed: {left:?}"
        );
    })
    .await;
}
