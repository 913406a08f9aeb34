//! The fleet's commands on in-memory hosts (`MemoryFleet`): what they return and the exit code of each
//! failure, as for one host. The real programs run them as subprocesses in `tests/fleet.rs`.

use connect_core::engine::DeployConfig;
use connect_core::engine::fleet::{Fleet, FleetPolicy};
use connect_core::memory::{AppBehavior, MemoryFleet};
use connect_core::model::{Color, Release};

use super::{deploy, rollback, status};
use crate::ops::{Output, exit_code};

const HOSTS: [&str; 3] = ["web1", "web2", "web3"];

fn release(version: &str) -> Release {
    Release::new("connect", version).unwrap()
}

/// Three hosts with v1 and v2 on every engine, v1 deployed.
async fn v1_live() -> (MemoryFleet, Fleet, Output) {
    let stack = MemoryFleet::new(&HOSTS);
    for v in ["v1", "v2"] {
        stack.add_image(&release(v).image, AppBehavior::default());
    }
    let fleet = Fleet::new(
        stack.app_hosts(),
        stack.shared(),
        DeployConfig::runbook(),
        FleetPolicy::default(),
    )
    .unwrap();
    let out = Output::new(true);
    deploy(&fleet, release("v1"), None, &out).await.unwrap();
    (stack, fleet, out)
}

#[tokio::test(start_paused = true)]
async fn deploy_status_and_rollback_cover_every_host() {
    let (_stack, fleet, out) = v1_live().await;
    let report = deploy(&fleet, release("v2"), None, &out).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    for h in &report.hosts {
        assert_eq!(h.live, Some(Color::Green), "{}", h.host);
        let record = h.record.as_ref().expect("each host's record");
        assert_eq!(record.release.as_ref().unwrap().version, "v2");
    }
    let seen = status(&fleet, &out).await.unwrap();
    assert_eq!(seen.hosts.len(), 3);
    assert!(seen.differences().is_empty(), "{:?}", seen.differences());
    assert!(
        seen.hosts
            .iter()
            .all(|h| h.status.as_ref().unwrap().live == Some(Color::Green))
    );

    let back = rollback(&fleet, &out).await.unwrap();
    assert!(back.hosts.iter().all(|h| h.live == Some(Color::Blue)), "{back:?}");
}

#[tokio::test(start_paused = true)]
async fn a_host_never_healthy_is_exit_1_and_a_held_lock_exit_3() {
    let (stack, fleet, out) = v1_live().await;
    let broken = release("v3");
    stack.add_image(&broken.image, AppBehavior::default());
    let unhealthy = AppBehavior {
        becomes_healthy: false,
        ..AppBehavior::default()
    };
    stack
        .host("web2")
        .unwrap()
        .runtime
        .add_image(&broken.image, unhealthy);
    let err = deploy(&fleet, broken, None, &out).await.unwrap_err();
    assert_eq!(exit_code(&err), 1, "{err}");
    assert!(err.to_string().contains("web2"), "{err}");

    // web3's lock held by someone else: nothing starts anywhere, and it is exit 3 as for one host.
    let held = fleet.deployer("web3").unwrap().hold_lock().await.unwrap();
    let err = deploy(&fleet, release("v2"), None, &out).await.unwrap_err();
    assert_eq!(exit_code(&err), 3, "{err}");
    assert!(err.to_string().contains("web3"), "{err}");
    held.release().await.unwrap();
    let seen = status(&fleet, &out).await.unwrap();
    assert!(
        seen.hosts
            .iter()
            .all(|h| h.status.as_ref().unwrap().live == Some(Color::Blue))
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_that_cannot_be_read_is_exit_5_after_the_others_are_printed() {
    let (stack, fleet, out) = v1_live().await;
    stack.cut("web2");
    let err = status(&fleet, &out).await.unwrap_err();
    assert_eq!(exit_code(&err), 5, "{err}");
    assert_eq!(err.target(), "web2");
}
