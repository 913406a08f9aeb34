//! The shared call sequence and the trapped fault kinds, on a whole [`MemoryStack`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{AppBehavior, FaultKind, MemoryStack, lock};
use crate::cache::Cache;
use crate::database::DatabaseCluster;
use crate::error::ErrorKind;
use crate::host::Host;
use crate::model::{ImageRef, Topology};
use crate::router::{AdminState, TrafficRouter};
use crate::runtime::{ContainerRuntime, ContainerSpec, Health};

fn stack() -> MemoryStack {
    MemoryStack::new(&Topology::runbook())
}

fn admin_of(stack: &MemoryStack, server: &str) -> AdminState {
    let servers = stack.router.snapshot();
    servers.iter().find(|s| s.name == server).expect("server").admin
}

#[tokio::test(start_paused = true)]
async fn calls_are_numbered_across_the_stacks_backends() {
    let s = stack();
    s.router.servers().await.unwrap();
    s.runtime.list(&BTreeMap::new()).await.unwrap();
    s.host.disk_usage("/").await.unwrap();
    s.cluster.members().await.unwrap();
    s.cache.ping().await.unwrap();

    for faults in [
        s.faults(),
        s.router.faults(),
        s.runtime.faults(),
        s.cluster.faults(),
    ] {
        assert_eq!(faults.calls(), 5, "one sequence, whichever backend's accessor");
    }
    let ops: Vec<String> = s.faults().call_log().into_iter().map(|(op, _)| op).collect();
    assert_eq!(
        ops,
        [
            "router.servers",
            "runtime.list",
            "host.disk_usage",
            "database.members",
            "cache.ping"
        ]
    );
    assert_eq!(s.faults().call_log()[2].1, "/", "the target is logged");
}

#[tokio::test(start_paused = true)]
async fn rules_still_aim_at_their_backend_when_shared() {
    let s = stack();
    s.router.faults().fail("router.set_state", ErrorKind::Unavailable);
    s.runtime.list(&BTreeMap::new()).await.unwrap();
    let err = s.router.set_state("app1", AdminState::Ready).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    s.runtime.faults().clear("router.set_state");
    s.router.set_state("app1", AdminState::Ready).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn fail_before_changes_nothing() {
    let s = stack();
    let faults = s.faults();
    faults.trap(faults.calls() + 1, FaultKind::FailBefore(ErrorKind::Timeout));
    let err = s.router.set_state("app1", AdminState::Ready).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(admin_of(&s, "app1"), AdminState::Maint);
    assert_eq!(faults.tripped().await, 1);
    s.router.set_state("app1", AdminState::Ready).await.unwrap();
    assert_eq!(admin_of(&s, "app1"), AdminState::Ready, "a trap fires once");
}

#[tokio::test(start_paused = true)]
async fn apply_then_fail_changes_then_reports_an_error() {
    let s = stack();
    let faults = s.faults();
    faults.trap(1, FaultKind::ApplyThenFail(ErrorKind::Unavailable));
    let err = s.router.set_state("app1", AdminState::Ready).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("after it applied"), "{err}");
    assert_eq!(admin_of(&s, "app1"), AdminState::Ready);
}

#[tokio::test(start_paused = true)]
async fn apply_then_fail_lets_a_waiting_body_finish() {
    let s = stack();
    let image = ImageRef::parse("connect:v1").unwrap();
    s.add_image(&image, AppBehavior::default());
    let spec = ContainerSpec {
        name: "connect_app1".into(),
        image,
        labels: BTreeMap::new(),
        env: BTreeMap::new(),
        ports: vec![(3000, 3000)],
        command: None,
        health_path: Some("/api/health".into()),
        stop_grace: Duration::from_secs(5),
    };
    s.runtime.start(&spec).await.unwrap();
    s.faults().trap(
        s.faults().calls() + 1,
        FaultKind::ApplyThenFail(ErrorKind::Unavailable),
    );
    let started = tokio::time::Instant::now();
    s.runtime
        .wait_healthy("connect_app1", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the wait ran to the end before the error replaced its result"
    );
    let info = s.runtime.inspect("connect_app1").await.unwrap().unwrap();
    assert_eq!(info.health, Health::Healthy);
}

#[tokio::test(start_paused = true)]
async fn hang_ends_only_by_timeout_or_drop() {
    let s = stack();
    let faults = s.faults().clone();
    faults.trap(1, FaultKind::Hang);
    let hung = tokio::time::timeout(
        Duration::from_secs(3600),
        s.router.set_state("app1", AdminState::Ready),
    )
    .await;
    assert!(hung.is_err(), "the caller's timeout ended it: {hung:?}");
    assert_eq!(admin_of(&s, "app1"), AdminState::Maint);

    // The process dies at the call: the harness drops the operation when the trap fires.
    faults.trap(2, FaultKind::Hang);
    let tripped = faults.tripped();
    tokio::select! {
        r = s.router.set_state("app2", AdminState::Ready) => panic!("a hung call returned: {r:?}"),
        call = tripped => assert_eq!(call, 2),
    }
    assert_eq!(admin_of(&s, "app2"), AdminState::Maint);
    s.router.set_state("app2", AdminState::Ready).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_hook_sees_the_state_between_calls() {
    let s = stack();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (router, log) = (s.router.clone(), seen.clone());
    s.faults().on_call(move |call, op, target| {
        let admin = router.snapshot()[0].admin;
        lock(&log).push((call, format!("{op} {target}"), admin));
    });
    s.router.set_state("app1", AdminState::Ready).await.unwrap();
    s.router.servers().await.unwrap();
    assert_eq!(
        *lock(&seen),
        [
            (1, "router.set_state app1".to_string(), AdminState::Maint),
            (2, "router.servers be_app".to_string(), AdminState::Ready),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn clear_traps_disarms_what_has_not_fired() {
    let s = stack();
    s.faults().trap(1, FaultKind::FailBefore(ErrorKind::Unavailable));
    s.faults().clear_traps();
    s.host.disk_usage("/").await.unwrap();
}
