//! What a fleet deploy given up says: the error's kind when a host cannot be reached, and the step each
//! host's record names when the deploy failed on another host after the switch.

use connect_core::ErrorKind;
use connect_core::engine::fleet::FleetPolicy;
use connect_core::engine::{Outcome, Step, StepStatus};
use connect_core::model::Color;

use super::{HOSTS, cut_at, journal_live, live_servers, logs_errors, release, settled_on, with_v1_live};

/// Before: a host whose connection was cut during its health gate held the fleet until the health deadline
/// and the abort said `timeout`, as if the app were slow.
#[tokio::test(start_paused = true)]
async fn a_host_cut_during_its_health_gate_is_unavailable_naming_the_host() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    cut_at(&stack, &fleet, "web3", Step::HealthGate).await;
    let err = fleet.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("web3: deploy.health_gate unavailable")
            && text.contains("web3 could not be reached to read connect_app2's health"),
        "{text}"
    );
    let hint = err.hint().unwrap_or_default();
    assert!(hint.starts_with("web3: check web3's SSH connection"), "{err}");
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"],
        "nothing switched"
    );
    // Back online, the next deploy settles what web3 was left with.
    stack.reconnect("web3");
    fleet.deploy(release("v2")).await.unwrap();
    settled_on(&stack, &fleet, &["web1_green", "web2_green", "web3_green"]).await;
}

/// Before: the hosts whose own verify passed recorded the failed deploy at `lock`, a step that never
/// failed, and as `failed` (traffic never moved) although their traffic had moved and come back.
#[tokio::test(start_paused = true)]
async fn a_verify_failing_on_one_host_is_each_hosts_rollback_at_verify() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    logs_errors(&stack, "web2", "v2");
    let err = fleet.deploy(release("v2")).await.unwrap_err();
    assert!(err.to_string().contains("verify failed on web2"), "{err}");
    assert!(!err.to_string().contains("at lock"), "{err}");
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );
    for host in HOSTS {
        assert_eq!(journal_live(&fleet, host).await, Some(Color::Blue), "{host}");
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        let last = journal.history.last().unwrap();
        let Outcome::RolledBack { step, error, .. } = &last.outcome else {
            panic!("{host}: traffic moved and came back: {:?}", last.outcome);
        };
        assert_eq!(*step, Step::Verify, "{host}: {error}");
        assert!(error.contains("web2"), "{host}: {error}");
        assert_eq!(last.live_after, Some(Color::Blue), "{host}");
        let switch = last.step(Step::Switch).unwrap();
        assert_eq!(switch.status, StepStatus::Ok, "{host} did switch");
    }
    // The hosts whose own verify passed say so beside the fleet's failure.
    for host in ["web1", "web3"] {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        let verifies: Vec<_> = journal
            .history
            .last()
            .unwrap()
            .steps
            .iter()
            .filter(|s| s.step == Step::Verify)
            .map(|s| s.status)
            .collect();
        assert_eq!(verifies, [StepStatus::Ok, StepStatus::Failed], "{host}");
    }
    assert!(fleet.status().await.differences().is_empty());
}
