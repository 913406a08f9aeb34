//! A worker that joined the fleet at the release a rollback leaves: it has no image of the release the web
//! hosts go back to. The rollback goes on (the web hosts' standbys, the workers that can follow), and that
//! worker keeps its release, which its record, the report and every web host's record say, with the fix.

use connect_core::ErrorKind;
use connect_core::engine::fleet::{Fleet, FleetPolicy, Role};
use connect_core::engine::{DeployConfig, OperationKind, Outcome, Step};
use connect_core::memory::{AppBehavior, MemoryFleet};

use super::{live_servers, release, step_says};

const HOSTS: [(&str, Role); 4] = [
    ("web1", Role::Web),
    ("web2", Role::Web),
    ("jobs1", Role::Worker),
    ("jobs2", Role::Worker),
];

fn version_on(journal: &connect_core::engine::Journal) -> String {
    journal.slots[&journal.live.unwrap()].release.version.clone()
}

/// Before: the rollback was refused ("the worker no longer has connect:v1"), the web hosts kept v2.
#[tokio::test(start_paused = true)]
async fn a_worker_that_joined_at_v2_keeps_it_while_every_other_host_rolls_back_to_v1() {
    let stack = MemoryFleet::with_roles(&HOSTS);
    for v in ["v1", "v2"] {
        stack.add_image(&release(v).image, AppBehavior::default());
    }
    let jobs2 = stack.host("jobs2").unwrap();
    jobs2.runtime.remove_image(&release("v1").image);
    let config = DeployConfig::runbook;
    // v1 is deployed before jobs2 joins; v2 is its first release.
    let without_jobs2 = stack
        .app_hosts()
        .into_iter()
        .filter(|h| h.name != "jobs2")
        .collect();
    let before = Fleet::new(without_jobs2, stack.shared(), config(), FleetPolicy::default()).unwrap();
    before.deploy(release("v1")).await.unwrap();
    let fleet = Fleet::new(
        stack.app_hosts(),
        stack.shared(),
        config(),
        FleetPolicy::default(),
    )
    .unwrap();
    fleet.deploy(release("v2")).await.unwrap();

    let report = fleet.rollback().await.unwrap();
    assert_eq!(report.in_rotation(), ["web1", "web2", "jobs1", "jobs2"]);
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    for host in ["web1", "web2", "jobs1"] {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        assert_eq!(version_on(&journal), "v1", "{host}");
        let last = journal.history.last().unwrap();
        assert_eq!(last.outcome, Outcome::Succeeded, "{host}");
        if host.starts_with("web") {
            step_says(last, Step::Switch, "jobs2 keeps v2");
        }
    }
    // jobs2 runs v2 as before, and its journal says the rollback did not reach it, and why.
    let journal = fleet.deployer("jobs2").unwrap().journal().await.unwrap();
    assert_eq!(version_on(&journal), "v2");
    assert_eq!(stack.host("jobs2").unwrap().runtime.container_names().len(), 1);
    let last = journal.history.last().unwrap();
    assert_eq!(last.kind, OperationKind::FullRollback);
    let Outcome::Failed { step, kind, error } = &last.outcome else {
        panic!("{:?}", last.outcome);
    };
    assert_eq!((*step, *kind), (Step::StageImage, ErrorKind::NotFound));
    assert!(
        error.contains("jobs2 never ran v1 (it joined the fleet later)")
            && error.contains("it keeps v2 while the web hosts go back to v1")
            && error.contains("fix: ship connect:v1 to jobs2 and deploy v1"),
        "{error}"
    );
    assert_eq!(report.hosts[3].error.as_deref(), Some(error.as_str()));
    assert!(fleet.status().await.differences().is_empty());

    // The fix the record names: v1 shipped to jobs2, a deploy of v1 brings every host to it.
    jobs2
        .runtime
        .add_image(&release("v1").image, AppBehavior::default());
    fleet.deploy(release("v1")).await.unwrap();
    for host in ["web1", "web2", "jobs1", "jobs2"] {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        assert_eq!(version_on(&journal), "v1", "{host}");
    }
    assert!(fleet.status().await.differences().is_empty());
}
