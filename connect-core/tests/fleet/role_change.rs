//! A host whose role changes in the config between deploys: a web host that becomes a worker leaves
//! HAProxy's rotation at the next deploy's switch and runs as a worker; a worker that becomes a web host
//! joins the rotation at the next switch. Before, each read as drift (or worse, see below).

use connect_core::engine::fleet::{Fleet, FleetPolicy, Role};
use connect_core::engine::{DeployConfig, OperationKind, Outcome, Step};
use connect_core::memory::{AppBehavior, MemoryFleet};
use connect_core::model::Color;
use connect_core::router::AdminState;

use super::{live_servers, logs_errors, never_healthy, release, settled_on, step_says};

const HOSTS: [&str; 3] = ["web1", "web2", "web3"];

/// A fleet over the stack's hosts, web unless `workers` names them.
fn fleet_with(stack: &MemoryFleet, workers: &[&str]) -> Fleet {
    let mut hosts = stack.app_hosts();
    for h in &mut hosts {
        if workers.contains(&h.name.as_str()) {
            h.role = Role::Worker;
        }
    }
    Fleet::new(
        hosts,
        stack.shared(),
        DeployConfig::runbook(),
        FleetPolicy::default(),
    )
    .unwrap()
}

/// Three hosts, each with a server per color in the backend, v1 to v4 on every engine; `workers` before the
/// change, v1 then v2 deployed.
async fn v2_live(workers: &[&str]) -> MemoryFleet {
    let stack = MemoryFleet::new(&HOSTS);
    for v in ["v1", "v2", "v3", "v4"] {
        stack.add_image(&release(v).image, AppBehavior::default());
    }
    let before = fleet_with(&stack, workers);
    before.deploy(release("v1")).await.unwrap();
    before.deploy(release("v2")).await.unwrap();
    stack
}

fn admin(stack: &MemoryFleet, server: &str) -> AdminState {
    let all = stack.router.snapshot();
    all.iter().find(|s| s.name == server).unwrap().admin
}

fn containers(stack: &MemoryFleet, host: &str) -> Vec<String> {
    stack.host(host).unwrap().runtime.container_names()
}

/// Before: the deploy "succeeded" with web3_green still ready in HAProxy while its container (the last web
/// color) was stopped by the worker's retire, and web3's warm standby retired as "left running by an
/// interrupted deploy".
#[tokio::test(start_paused = true)]
async fn a_web_host_that_becomes_a_worker_leaves_rotation_at_the_switch() {
    let stack = v2_live(&[]).await;
    assert_eq!(admin(&stack, "web3_green"), AdminState::Ready);
    let fleet = fleet_with(&stack, &["web3"]);
    // Until a deploy carries it out, status says what is pending rather than drift.
    assert_eq!(
        fleet.status().await.differences(),
        [
            "web3: a worker in the config, still a web host in HAProxy's rotation (web3_green): the next deploy \
          takes it out and runs it as a worker"
        ]
    );

    let report = fleet.deploy(release("v3")).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    for server in ["web3_blue", "web3_green"] {
        assert_eq!(admin(&stack, server), AdminState::Maint, "{server}");
    }
    // web3 runs v3 as a worker, one color.
    assert_eq!(containers(&stack, "web3"), ["connect_app1"]);
    let journal = fleet.deployer("web3").unwrap().journal().await.unwrap();
    assert_eq!(journal.live, Some(Color::Blue));
    assert_eq!(journal.standby(), None);
    assert_eq!(journal.slots[&Color::Blue].release.version, "v3");
    let [.., deploy, retire] = journal.history.as_slice() else {
        panic!("{:?}", journal.history)
    };
    assert_eq!(deploy.outcome, Outcome::Succeeded);
    step_says(
        deploy,
        Step::Retire,
        "web3's warm standby from when it was a web host",
    );
    let out = "web3_blue, web3_green drained and set to maint: web3 is a worker now";
    step_says(deploy, Step::Drain, out);
    assert_eq!(retire.kind, OperationKind::Retire);
    assert_eq!(retire.outcome, Outcome::Succeeded);
    assert!(fleet.status().await.differences().is_empty());

    // From then on it is a worker like any other.
    fleet.deploy(release("v4")).await.unwrap();
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);
    assert_eq!(containers(&stack, "web3"), ["connect_app2"]);
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_verify_puts_the_leaving_hosts_servers_back() {
    let stack = v2_live(&[]).await;
    let fleet = fleet_with(&stack, &["web3"]);
    logs_errors(&stack, "web1", "v3");
    let err = fleet.deploy(release("v3")).await.unwrap_err();
    assert!(err.to_string().contains("verify failed on web1"), "{err}");
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"],
        "web3 serves as before: the role change takes effect with a deploy that succeeds"
    );
    assert_eq!(containers(&stack, "web3"), ["connect_app2"]);
    let journal = fleet.deployer("web3").unwrap().journal().await.unwrap();
    assert_eq!(journal.live, Some(Color::Green));

    // The next deploy makes the change.
    let report = fleet.deploy(release("v4")).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    assert_eq!(admin(&stack, "web3_green"), AdminState::Maint);
    assert!(fleet.status().await.differences().is_empty());
}

/// Before: refused as drift ("the journal says traffic goes to green, but HAProxy sends it to no color").
#[tokio::test(start_paused = true)]
async fn a_worker_that_becomes_a_web_host_joins_rotation_at_the_switch() {
    let stack = v2_live(&["web3"]).await;
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);
    let fleet = fleet_with(&stack, &[]);
    assert_eq!(
        fleet.status().await.differences(),
        [
            "web3: a web host in the config, still running as the worker it was (green): the next deploy brings \
          web3 into rotation"
        ]
    );

    let report = fleet.deploy(release("v3")).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );
    assert_eq!(admin(&stack, "web3_green"), AdminState::Maint);
    // Its worker color (green, v2) is retired once the deploy is recorded: no standby that answers no HTTP.
    assert_eq!(containers(&stack, "web3"), ["connect_app1"]);
    let journal = fleet.deployer("web3").unwrap().journal().await.unwrap();
    assert_eq!(journal.live, Some(Color::Blue));
    assert_eq!(journal.standby(), None);
    let [.., deploy, retire] = journal.history.as_slice() else {
        panic!("{:?}", journal.history)
    };
    assert_eq!(deploy.outcome, Outcome::Succeeded);
    step_says(deploy, Step::Reconcile, "web3 was a worker");
    assert_eq!(retire.kind, OperationKind::Retire);
    step_says(retire, Step::Retire, "the color web3 ran as a worker");
    assert!(fleet.status().await.differences().is_empty());

    // A web host like the others from then on: its next deploy keeps a warm standby, and a rollback moves it.
    fleet.deploy(release("v4")).await.unwrap();
    assert_eq!(containers(&stack, "web3"), ["connect_app1", "connect_app2"]);
    fleet.rollback().await.unwrap();
    settled_on(&stack, &fleet, &["web1_blue", "web2_blue", "web3_blue"]).await;
}

#[tokio::test(start_paused = true)]
async fn a_joining_host_that_fails_its_gate_stays_a_running_worker() {
    let stack = v2_live(&["web3"]).await;
    let fleet = fleet_with(&stack, &[]);
    never_healthy(&stack, "web3", "v3");
    let err = fleet.deploy(release("v3")).await.unwrap_err();
    assert!(err.to_string().contains("web3"), "{err}");
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);
    for server in ["web3_blue", "web3_green"] {
        assert_eq!(admin(&stack, server), AdminState::Maint, "{server}");
    }
    assert_eq!(
        containers(&stack, "web3"),
        ["connect_app2"],
        "its v2 worker still runs, its v3 is removed"
    );
    let journal = fleet.deployer("web3").unwrap().journal().await.unwrap();
    assert_eq!(journal.live, Some(Color::Green));
    assert!(journal.intent.is_none());

    // Fixed, the next deploy brings it in.
    stack
        .host("web3")
        .unwrap()
        .runtime
        .add_image(&release("v4").image, AppBehavior::default());
    fleet.deploy(release("v4")).await.unwrap();
    settled_on(&stack, &fleet, &["web1_blue", "web2_blue", "web3_blue"]).await;
}

/// Before: the rollback stopped web3's last web color (it rolled web3 back as a worker) while HAProxy still
/// sent it requests; and a worker turned web host was refused for "no warm standby", which named no cause.
#[tokio::test(start_paused = true)]
async fn a_rollback_before_the_deploy_that_changes_a_role_is_refused_naming_it() {
    let stack = v2_live(&[]).await;
    let err = fleet_with(&stack, &["web3"]).rollback().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("web3 is a worker in the config, but HAProxy still sends it requests (web3_green)"),
        "{err}"
    );
    assert!(err.hint().unwrap_or_default().contains("deploy first"), "{err}");
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"]
    );
    assert_eq!(
        containers(&stack, "web3"),
        ["connect_app1", "connect_app2"],
        "nothing touched, its warm standby included"
    );

    let stack = v2_live(&["web3"]).await;
    let err = fleet_with(&stack, &[]).rollback().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("web3 is a web host in the config, but it runs as the worker it was"),
        "{err}"
    );
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);
}
