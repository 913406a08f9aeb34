//! The deploy lock held by a caller between operations (`Deployer::hold_lock`): it keeps operations out, is
//! renewed while held, released on request, and expires with its lease when the holder is gone.

mod common;

use common::{Fixture, release};
use connect_core::ErrorKind;
use connect_core::engine::{Deployer, OperationKind};
use connect_core::model::Color;

#[tokio::test(start_paused = true)]
async fn a_held_lock_keeps_operations_out_until_released() {
    let f = Fixture::with_v1_live().await;
    let held = f.deployer.hold_lock().await.unwrap();
    assert!(held.took_over().is_none());
    let lock = f
        .deployer
        .status()
        .await
        .unwrap()
        .lock
        .expect("the lock is visible");
    assert_eq!(lock.operation, OperationKind::Maintenance);

    // Well past the lease: the holder's task renews it, so another process is still refused.
    tokio::time::sleep(f.deployer.config().policy.lock_lease * 3).await;
    let other = Deployer::new(f.stack.backends(), f.deployer.config().clone()).unwrap();
    let err = other.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("maintenance"), "{err}");
    assert!(!held.is_lost());

    held.release().await.unwrap();
    assert!(other.status().await.unwrap().lock.is_none());
    other.deploy(release("v2")).await.unwrap();
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_lock_expires_with_its_lease() {
    let f = Fixture::with_v1_live().await;
    drop(f.deployer.hold_lock().await.unwrap());
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    tokio::time::sleep(f.deployer.config().policy.lock_lease).await;
    let again = f.deployer.hold_lock().await.unwrap();
    assert_eq!(
        again.took_over().map(|l| l.operation),
        Some(OperationKind::Maintenance)
    );
    again.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lock_broken_by_hand_is_reported_lost_on_release() {
    let f = Fixture::with_v1_live().await;
    let held = f.deployer.hold_lock().await.unwrap();
    f.deployer.break_lock().await.unwrap();
    let other = f.deployer.hold_lock().await.unwrap();
    // The first holder's next renewal finds someone else's token.
    tokio::time::sleep(f.deployer.config().policy.lock_lease / 2).await;
    assert!(held.is_lost());
    let err = held.release().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    other.release().await.unwrap();
    assert!(f.deployer.status().await.unwrap().lock.is_none());
}
