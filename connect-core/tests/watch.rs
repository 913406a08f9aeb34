//! On the in-memory backends, in paused time: the watch after the switch (and after an instant rollback), the
//! canary, and maintenance mode.

mod common;

use std::time::Duration;

use common::{Fixture, release};
use connect_core::engine::{DeployConfig, Event, OperationKind, Outcome, Step};
use connect_core::memory::AppBehavior;
use connect_core::model::{CanaryPolicy, Color, WatchPolicy};
use connect_core::router::TrafficRouter;
use connect_core::{Error, ErrorKind};
use tokio::sync::broadcast::Receiver;

const INTERVAL: Duration = Duration::from_secs(5);

fn watched(window: Duration, canary: Option<CanaryPolicy>) -> DeployConfig {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.policy.watch = WatchPolicy::new(window, INTERVAL);
    config.policy.canary = canary;
    config
}

/// v1 live on blue under 100 requests a second.
async fn v1_live(config: DeployConfig) -> Fixture {
    let f = Fixture::with_config(config);
    f.stack.router.set_load(100);
    f.deployer.deploy(release("v1")).await.unwrap();
    f
}

fn samples(rx: &mut Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if matches!(e, Event::WatchSample { .. }) {
            out.push(e);
        }
    }
    out
}

fn erroring_after(after: Duration) -> AppBehavior {
    AppBehavior {
        errors_after: Some(after),
        ..AppBehavior::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_good_release_is_watched_for_the_window_and_stays() {
    let f = v1_live(watched(Duration::from_secs(60), None)).await;
    let mut rx = f.deployer.subscribe();
    let report = f.deployer.deploy(release("v2")).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let watch = report
        .steps
        .iter()
        .find(|s| s.step == Step::Watch)
        .expect("a watch step");
    assert!(watch.duration_ms >= 60_000, "{watch:?}");
    let samples = samples(&mut rx);
    assert_eq!(samples.len(), 12, "one sample every 5 s for 60 s");
    let Some(Event::WatchSample {
        responses,
        responses_5xx,
        breach,
        ..
    }) = samples.last()
    else {
        unreachable!()
    };
    // 100 requests a second for 60 s, all on green.
    assert!((5_900..=6_000).contains(responses), "{responses}");
    assert_eq!((*responses_5xx, breach.clone()), (0, None));
    f.assert_live(Color::Green).await;
}

/// The release starts answering 500 at each sample's time in turn: the watch rolls it back at the first sample
/// that sees it, with the figures in the outcome, and blue serves again.
#[tokio::test(start_paused = true)]
async fn a_release_that_breaks_during_the_watch_is_rolled_back_at_each_sample() {
    for sample in 1..=6u32 {
        let f = v1_live(watched(Duration::from_secs(30), None)).await;
        // The health gate takes 1.5 s; the watch begins right after the switch and verify.
        let breaks_at = Duration::from_millis(1500) + INTERVAL * (sample - 1) + Duration::from_millis(500);
        let v2 = f.image("v2-bad", erroring_after(breaks_at));
        let mut rx = f.deployer.subscribe();
        let e: Error = f.deployer.deploy(v2).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unhealthy, "{e}");
        assert!(e.to_string().contains("5xx"), "{e}");
        let samples = samples(&mut rx);
        assert_eq!(
            samples.len() as u32,
            sample,
            "breached at sample {sample}: {samples:?}"
        );
        assert!(
            matches!(samples.last(), Some(Event::WatchSample { breach: Some(_), responses_5xx, .. }) if *responses_5xx > 0)
        );
        f.assert_live(Color::Blue).await;
        let journal = f.journal().await;
        let record = journal.history.last().unwrap();
        assert!(
            matches!(&record.outcome, Outcome::RolledBack { step: Step::Watch, error, .. } if error.contains("responses were 5xx")),
            "{:?}",
            record.outcome
        );
        assert_eq!(journal.slots[&Color::Blue].release.version, "v1");
        assert!(
            !journal.slots.contains_key(&Color::Green),
            "the failed release is not kept"
        );
        assert!(journal.intent.is_none());
        assert_eq!(f.containers(), ["connect_app1"]);
    }
}

#[tokio::test(start_paused = true)]
async fn restarts_and_slow_answers_are_breaches_too() {
    let f = v1_live(watched(Duration::from_secs(30), None)).await;
    let crashing = f.image(
        "v2-crashing",
        AppBehavior {
            restarts_every: Some(Duration::from_secs(12)),
            ..AppBehavior::default()
        },
    );
    let e = f.deployer.deploy(crashing).await.unwrap_err();
    assert!(e.to_string().contains("1 container restarts"), "{e}");
    f.assert_live(Color::Blue).await;

    let slow = f.image(
        "v2-slow",
        AppBehavior {
            response_time: Duration::from_millis(900),
            ..AppBehavior::default()
        },
    );
    let e = f.deployer.deploy(slow).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("average response time 900 ms (the old color 20 ms"),
        "{e}"
    );
    f.assert_live(Color::Blue).await;
}

#[tokio::test(start_paused = true)]
async fn the_watch_after_an_instant_rollback_goes_back_on_a_breach() {
    let f = Fixture::with_config(watched(Duration::from_secs(30), None));
    f.stack.router.set_load(100);
    // v1 passes its own watch, then starts failing two minutes after it started: by the time traffic is
    // rolled back to it, it answers 500.
    let v1 = f.image("v1-aging", erroring_after(Duration::from_secs(120)));
    f.deployer.deploy(v1).await.unwrap();
    f.deployer.deploy(release("v2")).await.unwrap();
    f.assert_live(Color::Green).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let mut rx = f.deployer.subscribe();
    let e = f.deployer.rollback().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unhealthy, "{e}");
    assert!(e.to_string().contains("traffic is on green again"), "{e}");
    assert_eq!(samples(&mut rx).len(), 1, "the first sample saw it");
    f.assert_live(Color::Green).await;
    let journal = f.journal().await;
    let record = journal.history.last().unwrap();
    assert_eq!(record.kind, OperationKind::InstantRollback);
    assert!(
        matches!(
            record.outcome,
            Outcome::RolledBack {
                step: Step::Watch,
                ..
            }
        ),
        "{:?}",
        record.outcome
    );
    assert_eq!(journal.standby(), Some(Color::Blue), "blue stays the standby");
    assert!(journal.intent.is_none());
    // A healthy standby: the rollback's watch passes and the rollback stands.
    let f = v1_live(watched(Duration::from_secs(30), None)).await;
    f.deployer.deploy(release("v2")).await.unwrap();
    let report = f.deployer.rollback().await.unwrap();
    assert!(report.steps.iter().any(|s| s.step == Step::Watch));
    f.assert_live(Color::Blue).await;
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_breaches_at_10_percent_never_reaches_50() {
    let canary = CanaryPolicy::new(vec![10, 50], Duration::from_secs(20));
    let f = v1_live(watched(Duration::from_secs(30), Some(canary))).await;
    let v2 = f.image("v2-bad", erroring_after(Duration::ZERO));
    let mut rx = f.deployer.subscribe();
    let e = f.deployer.deploy(v2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unhealthy, "{e}");
    let samples = samples(&mut rx);
    assert!(!samples.is_empty());
    for s in &samples {
        let Event::WatchSample { share_percent, .. } = s else {
            unreachable!()
        };
        assert_eq!(*share_percent, 10, "never past 10 %: {samples:?}");
    }
    f.assert_live(Color::Blue).await;
    let servers = f.stack.router.servers().await.unwrap();
    let weights: Vec<(String, u32)> = servers.iter().map(|s| (s.name.clone(), s.weight)).collect();
    assert_eq!(
        weights,
        [("app1".into(), 100), ("app2".into(), 100)],
        "weights restored"
    );
    let record = f.journal().await.history.last().cloned().unwrap();
    assert!(
        matches!(
            record.outcome,
            Outcome::RolledBack {
                step: Step::Canary,
                ..
            }
        ),
        "{:?}",
        record.outcome
    );
    // Every request after the rollback is blue's: the canary's 10 % share is all green ever answered.
    let figures = f.stack.router.figures().await.unwrap();
    let green = figures.iter().find(|x| x.name == "app2").unwrap();
    let blue = figures.iter().find(|x| x.name == "app1").unwrap();
    assert!(
        green.responses > 0 && green.responses * 5 < blue.responses,
        "{figures:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_good_canary_goes_through_every_step_then_switches() {
    let canary = CanaryPolicy::new(vec![10, 50], Duration::from_secs(10));
    let f = v1_live(watched(Duration::from_secs(10), Some(canary))).await;
    let mut rx = f.deployer.subscribe();
    let report = f.deployer.deploy(release("v2")).await.unwrap();
    let shares: Vec<u8> = samples(&mut rx)
        .iter()
        .map(|s| match s {
            Event::WatchSample { share_percent, .. } => *share_percent,
            _ => 0,
        })
        .collect();
    assert_eq!(shares, [10, 10, 50, 50, 100, 100]);
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.step == Step::Canary && s.detail.contains("[10, 50]"))
    );
    f.assert_live(Color::Green).await;
    let weights: Vec<u32> = f
        .stack
        .router
        .servers()
        .await
        .unwrap()
        .iter()
        .map(|s| s.weight)
        .collect();
    assert_eq!(weights, [100, 100]);
}

#[tokio::test(start_paused = true)]
async fn maintenance_is_on_during_the_work_and_off_after_an_error_or_a_panic() {
    let f = v1_live(watched(Duration::ZERO, None)).await;
    let router = f.stack.router.clone();
    let seen = f
        .deployer
        .with_maintenance("database restore", || async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            router.maintenance().await
        })
        .await
        .unwrap();
    assert!(seen, "on while the work ran");
    assert!(!f.stack.router.maintenance().await.unwrap(), "off after it");
    assert!(
        (290..=310).contains(&f.stack.router.maintenance_answers()),
        "3 s at 100/s"
    );

    let e = f
        .deployer
        .with_maintenance("restore", || async {
            Err::<(), _>(Error::new(ErrorKind::Corrupt, "restore", "dump", "bad dump"))
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(!f.stack.router.maintenance().await.unwrap());

    let e = f
        .deployer
        .with_maintenance("restore", || async {
            if f.stack.router.maintenance().await.unwrap() {
                panic!("restore crashed");
            }
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("restore crashed"), "{e}");
    assert!(!f.stack.router.maintenance().await.unwrap());
    let journal = f.journal().await;
    assert!(journal.maintenance.is_none());
    let kinds: Vec<OperationKind> = journal.history.iter().rev().take(3).map(|r| r.kind).collect();
    assert_eq!(kinds, [OperationKind::Maintenance; 3]);
}

#[tokio::test(start_paused = true)]
async fn a_page_left_on_by_a_dropped_operation_is_turned_off() {
    let f = v1_live(watched(Duration::ZERO, None)).await;
    let router = f.stack.router.clone();
    let work = f.deployer.with_maintenance("restore", || async {
        std::future::pending::<connect_core::Result<()>>().await
    });
    // Dropped once the page is on, as a cancelled task would be.
    tokio::select! {
        _ = work => unreachable!("the work never ends"),
        _ = async {
            while !router.maintenance().await.unwrap() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => {}
    }
    assert!(
        f.journal().await.maintenance.is_some(),
        "recorded before it was turned on"
    );
    // The dropped operation's guard turns it off from a task of its own.
    connect_core::wait::poll_until(
        "test",
        "page off",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || async {
            Ok(if router.maintenance().await? {
                Err("still on".to_string())
            } else {
                Ok(())
            })
        },
    )
    .await
    .unwrap();
    // If that failed too, the record makes the next operation (which takes the lock over) turn it off; the
    // page is turned on by hand here to show it.
    router.set_maintenance(true).await.unwrap();
    // Paused time: the dead holder's lease runs out (the behaviour under test, not synchronisation).
    tokio::time::sleep(f.deployer.config().policy.lock_lease + Duration::from_secs(1)).await;
    f.deployer.deploy(release("v2")).await.unwrap();
    assert!(!f.stack.router.maintenance().await.unwrap());
    assert!(f.journal().await.maintenance.is_none());
}

#[tokio::test(start_paused = true)]
async fn bad_watch_and_canary_policies_are_refused() {
    let mut config = watched(Duration::from_secs(10), None);
    config.policy.watch.interval = Duration::from_secs(20);
    let e = connect_core::engine::Deployer::new(Fixture::new().stack.backends(), config).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    for steps in [vec![], vec![50, 10], vec![0, 50], vec![10, 100]] {
        let config = watched(
            Duration::from_secs(10),
            Some(CanaryPolicy::new(steps, Duration::from_secs(10))),
        );
        let e = connect_core::engine::Deployer::new(Fixture::new().stack.backends(), config).unwrap_err();
        assert!(e.to_string().contains("canary"), "{e}");
    }
    let config = watched(Duration::ZERO, Some(CanaryPolicy::default()));
    let e = connect_core::engine::Deployer::new(Fixture::new().stack.backends(), config).unwrap_err();
    assert!(e.hint().unwrap_or("").contains("watch.window"), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn a_canary_over_a_warm_standby_that_breaches_puts_both_weights_back() {
    let canary = CanaryPolicy::new(vec![10, 50], Duration::from_secs(20));
    let f = v1_live(watched(Duration::from_secs(30), Some(canary))).await;
    // v2 live on green, v1 the warm standby on blue: the canary's color held a release before.
    f.deployer.deploy(release("v2")).await.unwrap();
    let v3 = f.image("v3-bad", erroring_after(Duration::ZERO));
    let e = f.deployer.deploy(v3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unhealthy, "{e}");
    f.assert_live(Color::Green).await;
    let servers = f.stack.router.servers().await.unwrap();
    let weights: Vec<(String, u32)> = servers.iter().map(|s| (s.name.clone(), s.weight)).collect();
    assert_eq!(
        weights,
        [("app1".into(), 100), ("app2".into(), 100)],
        "weights restored"
    );
}
