//! Every step before the switch failing (preflight, image, migration, health gate, the router refusing):
//! the deploy stops there and traffic stays where it was.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::engine::{Event, Step};
use connect_core::memory::AppBehavior;
use connect_core::model::Color;
use connect_core::testing::drain_events;

use crate::common::{Fixture, release};

/// Runs a deploy of v2 over live v1 that must fail at `step`, and checks nothing moved.
async fn assert_failed_before_switch(f: &Fixture, version: &str, step: Step, kind: ErrorKind) {
    let err = f.deployer.deploy(release(version)).await.unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    assert!(
        err.to_string().matches("; fix: ").count() <= 1,
        "the hint once: {err}"
    );
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"], "no half-made container is left");
    let journal = f.journal().await;
    let last = journal.history.last().unwrap();
    assert_eq!(
        last.outcome.failed_step(),
        Some(step),
        "journal: {:?}",
        last.outcome
    );
    assert_eq!(last.live_after, Some(Color::Blue));
    assert!(!journal.slots.contains_key(&Color::Green));
}

#[tokio::test(start_paused = true)]
async fn disk_over_the_fail_threshold_refuses_in_preflight() {
    let f = Fixture::with_v1_live().await;
    f.stack.host.set_disk_usage("/opt/connect", 97);
    assert_failed_before_switch(&f, "v2", Step::Preflight, ErrorKind::Refused).await;
}

#[tokio::test(start_paused = true)]
async fn disk_over_the_warning_threshold_warns_and_deploys() {
    let f = Fixture::with_v1_live().await;
    f.stack.host.set_disk_usage("/opt/connect", 85);
    let mut rx = f.deployer.subscribe();
    f.deployer.deploy(release("v2")).await.unwrap();
    f.assert_live(Color::Green).await;
    let warned = drain_events(&mut rx)
        .into_iter()
        .any(|e| matches!(e, Event::Warning { step: Step::Preflight, message } if message.contains("85%")));
    assert!(warned, "the 85 % disk is reported");
}

#[tokio::test(start_paused = true)]
async fn unreachable_server_database_or_cache_refuses_in_preflight() {
    for (op, kind) in [
        ("host.run", ErrorKind::Unavailable),
        ("database.members", ErrorKind::Unavailable),
        ("cache.ping", ErrorKind::Unavailable),
    ] {
        let f = Fixture::with_v1_live().await;
        match op {
            "host.run" => f.stack.host.faults().fail(op, kind),
            "database.members" => f.stack.cluster.faults().fail(op, kind),
            _ => f.stack.cache.faults().fail(op, kind),
        }
        assert_failed_before_switch(&f, "v2", Step::Preflight, ErrorKind::Refused).await;
    }
}

#[tokio::test(start_paused = true)]
async fn no_database_leader_refuses_in_preflight() {
    let f = Fixture::with_v1_live().await;
    f.stack.cluster.kill_leader();
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert!(err.to_string().contains("no running leader"), "{err}");
    f.assert_live(Color::Blue).await;
}

#[tokio::test(start_paused = true)]
async fn missing_image_fails_stage_image() {
    let f = Fixture::with_v1_live().await;
    assert_failed_before_switch(&f, "v404", Step::StageImage, ErrorKind::NotFound).await;
}

#[tokio::test(start_paused = true)]
async fn failing_migration_stops_before_any_container_starts() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    f.image(
        "v2",
        AppBehavior {
            migration_exit: 1,
            ..AppBehavior::default()
        },
    );
    assert_failed_before_switch(&f, "v2", Step::Migrate, ErrorKind::Failed).await;
    let last = f.journal().await.history.pop().unwrap();
    assert!(
        last.restore_point.is_some(),
        "the restore point before the migration is recorded"
    );
    let jobs = f.stack.runtime.jobs();
    assert_eq!(
        jobs.last().unwrap().image.tag(),
        Some("v2"),
        "the migration ran from the NEW release's image"
    );
}

#[tokio::test(start_paused = true)]
async fn migration_runs_in_the_new_image_after_a_restore_point() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    let record = f.deployer.deploy(release("v2")).await.unwrap();
    let point = record.restore_point.expect("restore point");
    assert!(
        point.name.contains(&record.id),
        "the restore point is unique to the deploy: {}",
        point.name
    );
    assert_eq!(f.stack.cluster.restore_points().len(), 2);
    assert_eq!(f.stack.runtime.jobs().len(), 2);
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn never_healthy_release_is_removed_and_traffic_stays() {
    let f = Fixture::with_v1_live().await;
    f.image(
        "v2",
        AppBehavior {
            becomes_healthy: false,
            ..AppBehavior::default()
        },
    );
    assert_failed_before_switch(&f, "v2", Step::HealthGate, ErrorKind::Unhealthy).await;
}

#[tokio::test(start_paused = true)]
async fn too_slow_release_times_out_at_the_health_deadline() {
    let f = Fixture::with_v1_live().await;
    f.image(
        "v2",
        AppBehavior {
            ready_after: Duration::from_secs(600),
            ..AppBehavior::default()
        },
    );
    let t = tokio::time::Instant::now();
    assert_failed_before_switch(&f, "v2", Step::HealthGate, ErrorKind::Timeout).await;
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(62),
        "waited the 60 s deadline: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn router_refusing_the_switch_leaves_traffic_on_blue() {
    let f = Fixture::with_v1_live().await;
    // The start step's set_state(app2, maint) passes; the switch's set_state(app2, ready) is refused.
    f.stack
        .router
        .faults()
        .fail_after("router.set_state", "app2", 1, ErrorKind::Refused);
    assert_failed_before_switch(&f, "v2", Step::Switch, ErrorKind::Refused).await;
}
