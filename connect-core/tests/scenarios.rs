//! The engine end to end on the in-memory backends: the happy path, both rollbacks, and every step failing.
//! Each test asserts where traffic ends, which containers remain and what the journal says.

mod common;

use std::time::Duration;

use common::{Fixture, release};
use connect_core::ErrorKind;
use connect_core::engine::{DeployConfig, Event, OperationKind, Outcome, Step, StepStatus};
use connect_core::memory::AppBehavior;
use connect_core::model::{Color, OldColorPolicy};
use connect_core::router::{AdminState, TrafficRouter};
use connect_core::testing::drain_events;

#[tokio::test(start_paused = true)]
async fn first_deploy_puts_blue_live() {
    let f = Fixture::new();
    let record = f.deployer.deploy(release("v1")).await.unwrap();
    assert_eq!(record.outcome, Outcome::Succeeded);
    assert_eq!((record.live_before, record.live_after), (None, Some(Color::Blue)));
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"]);
    assert!(
        record.release.unwrap().digest.is_some(),
        "the image's id is recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn deploy_switches_to_green_and_keeps_blue_as_warm_standby() {
    let f = Fixture::with_v1_live().await;
    let mut rx = f.deployer.subscribe();
    let record = f.deployer.deploy(release("v2")).await.unwrap();

    f.assert_live(Color::Green).await;
    assert_eq!(
        f.containers(),
        ["connect_app1", "connect_app2"],
        "blue stays up as the standby"
    );
    assert_eq!(
        f.stack.router.server("app1").await.unwrap().admin,
        AdminState::Drain
    );
    let journal = f.journal().await;
    assert_eq!(journal.standby(), Some(Color::Blue));
    assert_eq!(journal.slots[&Color::Green].release.version, "v2");
    assert_eq!(journal.slots[&Color::Blue].release.version, "v1");
    assert_eq!(journal.history.len(), 2);

    let steps: Vec<Step> = record
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Ok)
        .map(|s| s.step)
        .collect();
    assert_eq!(
        steps,
        [
            Step::Reconcile,
            Step::Preflight,
            Step::StageImage,
            Step::StartIdle,
            Step::HealthGate,
            Step::Switch,
            Step::Drain,
            Step::Verify
        ]
    );
    let health = record.steps.iter().find(|s| s.step == Step::HealthGate).unwrap();
    assert!(
        health.duration_ms >= 1500,
        "the simulated start-up took its 1.5 s: {health:?}"
    );

    let events = drain_events(&mut rx);
    assert!(matches!(
        events.first(),
        Some(Event::OperationStarted {
            kind: OperationKind::Deploy,
            target: Color::Green,
            ..
        })
    ));
    assert!(matches!(
        events.last(),
        Some(Event::OperationFinished { succeeded: true, .. })
    ));
    let attempts = events
        .iter()
        .filter(|e| matches!(e, Event::HealthAttempt { .. }))
        .count();
    assert!(
        attempts >= 2,
        "health attempts are reported while waiting: {attempts}"
    );
    assert!(events.contains(&Event::StepStarted { step: Step::Record }));
}

#[tokio::test(start_paused = true)]
async fn instant_rollback_is_one_switch_and_keeps_the_bad_release_drained() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    let record = f.deployer.rollback().await.unwrap();

    f.assert_live(Color::Blue).await;
    assert_eq!(record.kind, OperationKind::InstantRollback);
    assert_eq!(record.release.unwrap().version, "v1");
    assert_eq!(
        f.containers(),
        ["connect_app1", "connect_app2"],
        "nothing restarted"
    );
    assert!(f.stack.runtime.jobs().is_empty());
    assert!(
        record.duration_ms < 1000,
        "no container start in an instant rollback: {} ms",
        record.duration_ms
    );

    // Rolling forward again is the same call.
    f.deployer.rollback().await.unwrap();
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn instant_rollback_without_standby_is_refused_with_the_way_out() {
    let f = Fixture::with_v1_live().await;
    let err = f.deployer.rollback().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.hint().unwrap().contains("rollback_to"), "{err}");
    f.assert_live(Color::Blue).await;
    let last = f.journal().await.history.pop().unwrap();
    assert_eq!(last.kind, OperationKind::InstantRollback);
    assert!(matches!(last.outcome, Outcome::Failed { .. }));
}

#[tokio::test(start_paused = true)]
async fn instant_rollback_refuses_a_crashed_standby() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    f.stack.runtime.crash("connect_app1");
    let err = f.deployer.rollback().await.unwrap_err();
    // The crashed standby is drift (stopped container) or refusal; either way traffic stays on green.
    assert!(
        matches!(err.kind(), ErrorKind::Drift | ErrorKind::Refused),
        "{err}"
    );
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn full_rollback_redeploys_a_journal_release_through_the_health_gate() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    f.deployer.deploy(release("v3")).await.unwrap(); // blue v3 live, green v2 standby
    f.assert_live(Color::Blue).await;

    let record = f.deployer.rollback_to("v1").await.unwrap();
    assert_eq!(record.kind, OperationKind::FullRollback);
    assert!(
        record
            .steps
            .iter()
            .any(|s| s.step == Step::HealthGate && s.status == StepStatus::Ok)
    );
    f.assert_live(Color::Green).await;
    let journal = f.journal().await;
    assert_eq!(journal.slots[&Color::Green].release.version, "v1");
    assert_eq!(journal.slots[&Color::Blue].release.version, "v3");

    let err = f.deployer.rollback_to("v9").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains("v1"),
        "the error lists known versions: {err}"
    );
}

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

#[tokio::test(start_paused = true)]
async fn failed_verification_switches_back_to_the_standby() {
    let f = Fixture::with_v1_live().await;
    f.image(
        "v2",
        AppBehavior {
            error_lines: 50,
            ..AppBehavior::default()
        },
    );
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert!(err.to_string().contains("rolled back"), "{err}");
    assert!(err.to_string().contains("50 error lines"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"]);
    let last = f.journal().await.history.pop().unwrap();
    assert!(
        matches!(
            last.outcome,
            Outcome::RolledBack {
                step: Step::Verify,
                ..
            }
        ),
        "{:?}",
        last.outcome
    );
    assert!(
        last.steps
            .iter()
            .any(|s| s.step == Step::SwitchBack && s.status == StepStatus::Ok)
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_refuses_a_second_deploy_until_broken() {
    let f = Fixture::with_v1_live().await;
    // Another process holds the lock: the same state dir seen through a second deployer.
    let other = connect_core::engine::Deployer::new(
        f.stack.backends(),
        DeployConfig {
            holder: "ops@laptop pid 99".into(),
            ..DeployConfig::runbook()
        },
    )
    .unwrap();
    use connect_core::host::{HostExt, PutOptions};
    // A live holder: its lease runs for another hour.
    let since = common::unix_ms_now();
    let lock = format!(
        r#"{{"holder":"ops@laptop pid 99","operation":"deploy","since_unix_ms":{since},"token":"t99","lease_until_unix_ms":{}}}"#,
        since + 3_600_000
    );
    f.stack
        .host
        .write_file(
            "/opt/connect/state/deploy.lock",
            lock.into_bytes(),
            PutOptions::default(),
        )
        .await
        .unwrap();

    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string().contains("ops@laptop pid 99"),
        "names the holder: {err}"
    );
    assert!(
        err.to_string().contains(&since.to_string()) && err.to_string().contains("its lease ends in 35"),
        "says since when and until when: {err}"
    );
    assert!(err.hint().unwrap().contains("break"), "{err}");
    f.assert_live(Color::Blue).await;

    let broken = other.break_lock().await.unwrap().unwrap();
    assert_eq!(broken.holder, "ops@laptop pid 99");
    f.deployer.deploy(release("v2")).await.unwrap();
    f.assert_live(Color::Green).await;
    assert!(
        f.deployer.status().await.unwrap().lock.is_none(),
        "the lock is released after a deploy"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_deploys_one_wins_one_is_refused() {
    let f = Fixture::with_v1_live().await;
    let (a, b) = tokio::join!(f.deployer.deploy(release("v2")), f.deployer.deploy(release("v3")));
    let errors: Vec<_> = [&a, &b].into_iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "exactly one deploy runs: {a:?} {b:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Conflict);
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn traffic_switched_by_hand_is_drift_until_adopted() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    // Someone switches traffic back to blue by hand.
    f.stack.router.set_state("app1", AdminState::Ready).await.unwrap();
    f.stack.router.set_state("app2", AdminState::Drain).await.unwrap();

    let err = f.deployer.deploy(release("v3")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Drift);
    assert!(
        err.to_string()
            .contains("the journal says traffic goes to green, but HAProxy sends it to blue"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("adopt"));
    assert_eq!(
        f.containers(),
        ["connect_app1", "connect_app2"],
        "nothing was touched"
    );

    let journal = f.deployer.adopt().await.unwrap();
    assert_eq!(journal.live, Some(Color::Blue));
    assert_eq!(journal.history.last().unwrap().kind, OperationKind::Adopt);
    f.deployer.deploy(release("v3")).await.unwrap();
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn a_container_gone_is_drift() {
    use connect_core::ContainerRuntime;
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    f.stack
        .runtime
        .stop("connect_app1", Duration::ZERO)
        .await
        .unwrap();
    f.stack.runtime.remove("connect_app1").await.unwrap();
    let err = f.deployer.deploy(release("v3")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Drift);
    assert!(
        err.to_string()
            .contains("connect_app1, but that container is gone"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn balanced_policy_serves_the_new_release_from_both_colors() {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.policy.old_color = OldColorPolicy::Balanced;
    let f = Fixture::with_config(config);
    f.deployer.deploy(release("v1")).await.unwrap();
    f.deployer.deploy(release("v2")).await.unwrap();
    let mut live = f.live_servers().await;
    live.sort();
    assert_eq!(live, ["app1", "app2"]);
    let journal = f.journal().await;
    assert!(journal.balanced);
    assert!(journal.slots.values().all(|s| s.release.version == "v2"));
    assert_eq!(
        f.deployer.status().await.unwrap().differences,
        Vec::<String>::new()
    );
    assert_eq!(
        f.deployer.rollback().await.unwrap_err().kind(),
        ErrorKind::Refused,
        "no standby in balanced mode"
    );
}

#[tokio::test(start_paused = true)]
async fn retire_after_policy_records_the_window_and_retires_on_request() {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.policy.old_color = OldColorPolicy::RetireAfter {
        window: Duration::from_secs(600),
    };
    let f = Fixture::with_config(config);
    f.deployer.deploy(release("v1")).await.unwrap();
    f.deployer.deploy(release("v2")).await.unwrap();
    assert!(f.deployer.status().await.unwrap().standby_until_unix_ms.is_some());
    f.deployer.retire_standby().await.unwrap();
    assert_eq!(f.containers(), ["connect_app2"]);
    assert_eq!(
        f.stack.router.server("app1").await.unwrap().admin,
        AdminState::Maint
    );
    f.assert_live(Color::Green).await;
    assert_eq!(
        f.deployer.status().await.unwrap().differences,
        Vec::<String>::new()
    );
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_in_flight_requests_and_warns_past_its_deadline() {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.policy.drain_deadline = Duration::from_secs(5);
    let f = Fixture::with_config(config);
    f.deployer.deploy(release("v1")).await.unwrap();
    f.stack.router.add_sessions("app1", 8, Duration::from_secs(3));
    let record = f.deployer.deploy(release("v2")).await.unwrap();
    let drain_step = record.steps.iter().find(|s| s.step == Step::Drain).unwrap();
    assert!(
        drain_step.duration_ms >= 1000,
        "the drain waited for the sessions: {drain_step:?}"
    );
    assert_eq!(f.stack.router.server("app1").await.unwrap().current_sessions, 0);

    f.stack.router.add_sessions("app2", 2, Duration::from_secs(60));
    let mut rx = f.deployer.subscribe();
    f.deployer.deploy(release("v3")).await.unwrap();
    let warned = drain_events(&mut rx).into_iter().any(|e| {
        matches!(
            e,
            Event::Warning {
                step: Step::Drain,
                ..
            }
        )
    });
    assert!(warned, "a drain past its deadline is reported");
    f.assert_live(Color::Blue).await;
}

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
async fn balanced_policy_failure_on_the_old_color_keeps_one_consistent_live_color() {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.policy.old_color = OldColorPolicy::Balanced;
    let f = Fixture::with_config(config);
    f.deployer.deploy(release("v1")).await.unwrap();
    // Starting blue again (the balance step) fails; green already serves v2.
    f.stack
        .runtime
        .faults()
        .fail_on("runtime.start", "connect_app1", ErrorKind::Unavailable);
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    f.assert_live(Color::Green).await;
    assert_eq!(f.containers(), ["connect_app2"]);
    assert!(
        f.deployer.status().await.unwrap().differences.is_empty(),
        "journal and router agree"
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

/// Serves every connection to `port` on the in-memory server with `status`, as the new color's app would.
fn answer_http(f: &Fixture, port: u16, status: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conns = f.stack.host.listen(connect_core::host::Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port,
    });
    tokio::spawn(async move {
        while let Some(mut c) = conns.recv().await {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await;
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = c.write_all(answer.as_bytes()).await;
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_release_whose_smoke_path_answers_5xx_is_rolled_back() {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.app.smoke_paths = vec!["/".into()];
    let f = Fixture::with_config(config);
    answer_http(&f, 3000, 200);
    f.deployer.deploy(release("v1")).await.unwrap();
    answer_http(&f, 3001, 502);

    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unhealthy);
    assert!(
        err.to_string().contains("GET / on port 3001 answered 502"),
        "{err}"
    );
    f.assert_live(Color::Blue).await;
    let last = f.journal().await.history.last().cloned().unwrap();
    assert_eq!(last.outcome.failed_step(), Some(Step::Verify));

    // verify_color on its own reports the same check.
    let report = f
        .deployer
        .verify_color(Color::Green, std::time::SystemTime::now())
        .await
        .unwrap();
    let smoke = report.checks.iter().find(|c| c.name == "smoke /").unwrap();
    assert_eq!(smoke.status, connect_core::engine::CheckStatus::Fail, "{smoke:?}");
}
