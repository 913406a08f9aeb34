//! The old color's policies: balanced (both colors serve), retire-after (the standby's window), and the
//! drain that waits for in-flight requests.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::engine::{DeployConfig, Event, Step};
use connect_core::model::{Color, OldColorPolicy};
use connect_core::router::{AdminState, TrafficRouter};
use connect_core::testing::drain_events;

use crate::common::{Fixture, release};

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
