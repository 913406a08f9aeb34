//! What is recorded and read back: status and history, a later process reading the same journal, a
//! journal write failing, the post-deploy check, and a deploy cut off before it recorded.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::engine::{DeployConfig, Step};
use connect_core::memory::AppBehavior;
use connect_core::model::Color;
use connect_core::router::{AdminState, TrafficRouter};

use crate::common::{Fixture, release};

#[tokio::test(start_paused = true)]
async fn status_shows_live_color_releases_router_and_history() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    let status = f.deployer.status().await.unwrap();
    assert_eq!(status.live, Some(Color::Green));
    assert_eq!(status.standby, Some(Color::Blue));
    assert_eq!(
        status.releases,
        [(Color::Blue, "v1".to_string()), (Color::Green, "v2".to_string())]
    );
    assert_eq!(status.observed.ready_colors(), [Color::Green]);
    assert!(status.differences.is_empty());
    assert_eq!(status.recent.len(), 2);
    assert_eq!(
        status.recent[0].release.as_ref().unwrap().version,
        "v2",
        "newest first"
    );
}

#[tokio::test(start_paused = true)]
async fn a_later_process_reads_the_same_journal() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    let later = connect_core::engine::Deployer::new(f.stack.backends(), DeployConfig::runbook()).unwrap();
    assert_eq!(later.status().await.unwrap().live, Some(Color::Green));
    later.rollback().await.unwrap();
    f.assert_live(Color::Blue).await;
}

#[tokio::test(start_paused = true)]
async fn journal_write_failure_is_reported_not_hidden() {
    let f = Fixture::with_v1_live().await;
    f.stack.host.faults().fail_on(
        "host.put_file",
        "/opt/connect/state/journal.json",
        ErrorKind::Unavailable,
    );
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    // The intent could not be written before the first change, so nothing changed.
    assert!(
        err.to_string()
            .contains("the operation failed but the journal could not be written"),
        "{err}"
    );
    assert!(err.to_string().contains("traffic is on blue"), "{err}");
    assert_eq!(f.live_servers().await, ["app1"]);
    assert_eq!(
        f.containers(),
        ["connect_app1"],
        "the new color was never started"
    );
}

#[tokio::test(start_paused = true)]
async fn post_deploy_check_reports_every_check_of_the_live_color() {
    let f = Fixture::new();
    assert_eq!(
        f.deployer.verify().await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "nothing deployed yet"
    );
    f.deployer.deploy(release("v1")).await.unwrap();
    let report = f.deployer.verify().await.unwrap();
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["health", "router", "database", "cache", "logs"]);
    assert!(report.passed());
    f.stack.cache.faults().fail("cache.ping", ErrorKind::Unavailable);
    let report = f.deployer.verify().await.unwrap();
    assert!(!report.passed());
    assert_eq!(
        report
            .with_status(connect_core::engine::CheckStatus::Fail)
            .next()
            .unwrap()
            .name,
        "cache"
    );
}

#[tokio::test(start_paused = true)]
async fn an_aborted_deploy_keeps_the_failing_steps_fix() {
    let f = Fixture::with_v1_live().await;
    f.image(
        "v2",
        AppBehavior {
            ready_after: Duration::from_secs(600),
            ..AppBehavior::default()
        },
    );
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert!(err.hint().unwrap().contains("health_deadline"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_deploy_cut_off_before_it_recorded_is_cleaned_up_by_the_next_one() {
    use connect_core::ContainerRuntime;
    use connect_core::runtime::{ContainerSpec, slot_labels};
    let f = Fixture::with_v1_live().await;
    // What a deploy whose connection died after starting green leaves: green's container, v2, out of rotation,
    // unknown to the journal.
    let v2 = release("v2");
    f.stack
        .runtime
        .start(&ContainerSpec {
            name: "connect_app2".into(),
            image: v2.image.clone(),
            labels: slot_labels("connect", Color::Green, &v2),
            env: Default::default(),
            ports: vec![(3000, 3001)],
            command: None,
            health_path: Some("/api/health".into()),
            stop_grace: Duration::from_secs(10),
        })
        .await
        .unwrap();
    let status = f.deployer.status().await.unwrap();
    assert!(
        status
            .differences
            .iter()
            .any(|d| d.contains("interrupted operation")),
        "status still shows it: {:?}",
        status.differences
    );

    let record = f.deployer.deploy(v2).await.unwrap();
    let reconcile = record.steps.iter().find(|s| s.step == Step::Reconcile).unwrap();
    assert!(
        reconcile
            .detail
            .contains("an interrupted operation left connect_app2"),
        "{reconcile:?}"
    );
    f.assert_live(Color::Green).await;
    assert_eq!(f.containers(), ["connect_app1", "connect_app2"]);
    assert!(f.deployer.status().await.unwrap().differences.is_empty());

    // Traffic on the idle color is never a leftover: that is drift.
    f.stack.router.set_state("app1", AdminState::Ready).await.unwrap();
    assert_eq!(
        f.deployer.deploy(release("v3")).await.unwrap_err().kind(),
        ErrorKind::Drift
    );
}
