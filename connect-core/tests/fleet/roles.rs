//! Web and worker hosts in one fleet: a worker has no HAProxy server, starts its new color beside the old
//! one, is required whatever `min_healthy_hosts` says, and stops its old color only once the web hosts'
//! switch is verified; a rollback brings it to the release the web hosts went back to.

use connect_core::ErrorKind;
use connect_core::engine::fleet::{Fleet, FleetPolicy, Role};
use connect_core::engine::{DeployConfig, OperationKind, Outcome, Step, StepStatus};
use connect_core::memory::{AppBehavior, MemoryFleet};
use connect_core::model::Color;

use super::{journal_live, live_servers, release};

const WEB_AND_WORKER: [(&str, Role); 3] = [("web1", Role::Web), ("web2", Role::Web), ("jobs1", Role::Worker)];

/// Two web hosts and a worker, v1 live everywhere, v2 and v3 on every host.
async fn with_v1_live(policy: FleetPolicy) -> (MemoryFleet, Fleet) {
    let stack = MemoryFleet::with_roles(&WEB_AND_WORKER);
    for v in ["v1", "v2", "v3"] {
        stack.add_image(&release(v).image, AppBehavior::default());
    }
    let fleet = Fleet::new(stack.app_hosts(), stack.shared(), DeployConfig::runbook(), policy).unwrap();
    fleet.deploy(release("v1")).await.unwrap();
    (stack, fleet)
}

fn containers(stack: &MemoryFleet, host: &str) -> Vec<String> {
    stack.host(host).unwrap().runtime.container_names()
}

#[tokio::test(start_paused = true)]
async fn a_worker_follows_the_web_hosts_and_runs_one_color() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    assert_eq!(fleet.role("jobs1"), Some(Role::Worker));
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);

    let report = fleet.deploy(release("v2")).await.unwrap();
    assert_eq!(report.in_rotation(), ["web1", "web2", "jobs1"]);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green"],
        "the worker has no server"
    );
    let jobs = fleet.deployer("jobs1").unwrap().journal().await.unwrap();
    assert_eq!(jobs.live, Some(Color::Green));
    assert_eq!(jobs.standby(), None, "a running standby would take jobs");
    assert_eq!(jobs.slots[&Color::Green].release.version, "v2");
    assert_eq!(containers(&stack, "jobs1"), ["connect_app2"]);
    // The deploy's record, then the retire of the old color, once the deploy was recorded on every host.
    let [.., deploy, retire] = jobs.history.as_slice() else {
        panic!("{:?}", jobs.history)
    };
    assert_eq!(
        (deploy.kind, &deploy.outcome),
        (OperationKind::Deploy, &Outcome::Succeeded)
    );
    let switch = deploy.step(Step::Switch).unwrap();
    assert!(
        switch
            .detail
            .contains("runs beside the old until web1, web2 are verified"),
        "{}",
        switch.detail
    );
    assert_eq!(
        (retire.kind, &retire.outcome),
        (OperationKind::Retire, &Outcome::Succeeded)
    );
    let retired = retire.step(Step::Retire).unwrap();
    assert!(retired.detail.contains("blue stopped"), "{}", retired.detail);
    // The web hosts keep their warm standby as ever.
    for host in ["web1", "web2"] {
        assert_eq!(containers(&stack, host), ["connect_app1", "connect_app2"]);
    }
    assert!(
        fleet.status().await.differences().is_empty(),
        "{:?}",
        fleet.status().await.differences()
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_never_healthy_aborts_everywhere_whatever_min_healthy_hosts_says() {
    let policy = FleetPolicy {
        min_healthy_hosts: Some(1),
    };
    let (stack, fleet) = with_v1_live(policy).await;
    stack.host("jobs1").unwrap().runtime.add_image(
        &release("v3").image,
        AppBehavior {
            becomes_healthy: false,
            ..AppBehavior::default()
        },
    );
    let err = fleet.deploy(release("v3")).await.unwrap_err();
    assert!(
        err.to_string().contains("every worker is required; jobs1:"),
        "{err}"
    );
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    for host in ["web1", "web2", "jobs1"] {
        assert_eq!(containers(&stack, host), ["connect_app1"], "{host}");
        assert_eq!(journal_live(&fleet, host).await, Some(Color::Blue), "{host}");
    }
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_verify_after_the_switch_keeps_the_workers_old_color() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    // web2's v3 logs errors: its verify fails after the switch, and every host goes back.
    stack.host("web2").unwrap().runtime.add_image(
        &release("v3").image,
        AppBehavior {
            error_lines: 50,
            ..AppBehavior::default()
        },
    );
    let err = fleet.deploy(release("v3")).await.unwrap_err();
    assert!(err.to_string().contains("verify failed on web2"), "{err}");
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    assert_eq!(
        containers(&stack, "jobs1"),
        ["connect_app1"],
        "the worker's v3 is stopped and removed, its v1 never stopped"
    );
    let jobs = fleet.deployer("jobs1").unwrap().journal().await.unwrap();
    assert_eq!(jobs.live, Some(Color::Blue));
    assert_eq!(jobs.slots[&Color::Blue].release.version, "v1");
    // Its v3 took jobs and was stopped: rolled back at the step the deploy failed at, web2's verify.
    let outcome = &jobs.history.last().unwrap().outcome;
    assert!(matches!(outcome, Outcome::RolledBack { .. }), "{outcome:?}");
    assert_eq!(outcome.failed_step(), Some(Step::Verify));
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rollback_brings_the_worker_to_the_web_hosts_release() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    fleet.deploy(release("v2")).await.unwrap();

    let report = fleet.rollback().await.unwrap();
    assert_eq!(report.in_rotation(), ["web1", "web2", "jobs1"]);
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    let jobs = fleet.deployer("jobs1").unwrap().journal().await.unwrap();
    assert_eq!(jobs.live, Some(Color::Blue));
    assert_eq!(jobs.slots[&Color::Blue].release.version, "v1");
    assert_eq!(containers(&stack, "jobs1"), ["connect_app1"]);
    let last = jobs.history.last().unwrap();
    assert_eq!(last.kind, OperationKind::FullRollback);
    assert_eq!(last.outcome, Outcome::Succeeded);
    for step in [Step::StartIdle, Step::HealthGate, Step::Drain] {
        assert_eq!(last.step(step).unwrap().status, StepStatus::Ok, "{step}");
    }
    assert!(fleet.status().await.differences().is_empty());

    // And forward again: a deploy of v2 brings every host there, the worker included.
    fleet.deploy(release("v2")).await.unwrap();
    let jobs = fleet.deployer("jobs1").unwrap().journal().await.unwrap();
    assert_eq!(jobs.slots[&jobs.live.unwrap()].release.version, "v2");
}

/// Before: refused, so the web hosts stayed on v2 until v1 was shipped to the worker.
#[tokio::test(start_paused = true)]
async fn a_worker_whose_image_was_removed_keeps_its_release_while_the_web_hosts_roll_back() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    fleet.deploy(release("v2")).await.unwrap();
    stack
        .host("jobs1")
        .unwrap()
        .runtime
        .remove_image(&release("v1").image);

    let report = fleet.rollback().await.unwrap();
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    let jobs = &report.hosts[2];
    assert!(jobs.in_rotation, "its v2 still takes jobs");
    let why = jobs.error.as_deref().unwrap_or_default();
    assert!(
        why.contains("connect:v1 is no longer on jobs1: it keeps v2")
            && why.contains("fix: ship connect:v1 to jobs1"),
        "{why}"
    );
    assert_eq!(containers(&stack, "jobs1"), ["connect_app2"]);
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_worker_cut_mid_deploy_aborts_everywhere_and_the_next_deploy_settles_it() {
    let (stack, fleet) = with_v1_live(FleetPolicy {
        min_healthy_hosts: Some(1),
    })
    .await;
    super::cut_at(&stack, &fleet, "jobs1", Step::StartIdle).await;
    let err = fleet.deploy(release("v2")).await.unwrap_err();
    assert!(err.to_string().contains("jobs1"), "{err}");
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);

    stack.reconnect("jobs1");
    fleet.deploy(release("v2")).await.unwrap();
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);
    assert_eq!(containers(&stack, "jobs1"), ["connect_app2"]);
    assert!(fleet.status().await.differences().is_empty());
}

#[test]
fn a_fleet_of_workers_alone_is_refused() {
    let stack = MemoryFleet::with_roles(&[("jobs1", Role::Worker)]);
    let err = Fleet::new(
        stack.app_hosts(),
        stack.shared(),
        DeployConfig::runbook(),
        FleetPolicy::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("at least one web host"), "{err}");

    let stack = MemoryFleet::with_roles(&WEB_AND_WORKER);
    let err = Fleet::new(
        stack.app_hosts(),
        stack.shared(),
        DeployConfig::runbook(),
        FleetPolicy {
            min_healthy_hosts: Some(3),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("number of web hosts"), "{err}");
}
