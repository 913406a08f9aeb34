//! The deploy lock (held, broken, raced by a concurrent deploy) and drift: traffic switched by hand or a
//! container gone is reported until adopted.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::engine::{DeployConfig, OperationKind};
use connect_core::model::Color;
use connect_core::router::{AdminState, TrafficRouter};

use crate::common::{self, Fixture, release};

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
