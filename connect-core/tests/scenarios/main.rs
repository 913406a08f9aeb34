//! The engine end to end on the in-memory backends: the happy path, both rollbacks, and every step failing.
//! Each test asserts where traffic ends, which containers remain and what the journal says.

#[path = "../common/mod.rs"]
mod common;
mod failures;
mod journal;
mod lock_and_drift;
mod policies;
mod rollback;

use common::{Fixture, release};
use connect_core::engine::{Event, OperationKind, Outcome, Step, StepStatus};
use connect_core::model::Color;
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
