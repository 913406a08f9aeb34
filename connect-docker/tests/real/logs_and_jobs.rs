//! What runs inside: logs since an instant with their error lines counted, `exec` exit codes, and one-off
//! jobs (a migration) that report their exit code, time out, and leave no container behind.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use connect_core::runtime::OneOff;
use connect_core::testing::free_port;
use connect_core::{ContainerRuntime, ErrorKind};
use connect_docker::testing::{test_app_context, test_slot_options};
use connect_docker::{ONE_OFF_LABEL, Secrets, SlotOptions};

use super::spec;
use crate::common::with_scope;

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
