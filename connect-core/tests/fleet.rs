//! Several app hosts in one deploy (issue 18.1), on in-memory hosts behind one in-memory HAProxy backend:
//! every host switched together, a host that never gets healthy (abort, or left out by policy), a host's
//! connection cut mid-deploy, the rollback of every host at once, the refused configurations, the watch
//! after the switch (`fleet/watch.rs`), and web and worker roles (`fleet/roles.rs`).

use connect_core::ErrorKind;
use connect_core::engine::fleet::{Fleet, FleetPolicy};
use connect_core::engine::{DeployConfig, OperationRecord, Outcome, Step, StepStatus};
use connect_core::memory::{AppBehavior, FaultKind, MemoryFleet};
use connect_core::model::{CanaryPolicy, Color, Release};

#[path = "fleet/aborts.rs"]
mod aborts;
#[path = "fleet/joined.rs"]
mod joined;
#[path = "fleet/role_change.rs"]
mod role_change;
#[path = "fleet/roles.rs"]
mod roles;
#[path = "fleet/watch.rs"]
mod watch;

const HOSTS: [&str; 3] = ["web1", "web2", "web3"];

fn release(version: &str) -> Release {
    Release::new("connect", version).unwrap()
}

fn fleet(stack: &MemoryFleet, policy: FleetPolicy) -> Fleet {
    Fleet::new(stack.app_hosts(), stack.shared(), DeployConfig::runbook(), policy).unwrap()
}

/// Three hosts with v1 live on blue everywhere, v2 present on every host.
async fn with_v1_live(policy: FleetPolicy) -> (MemoryFleet, Fleet) {
    let stack = MemoryFleet::new(&HOSTS);
    stack.add_image(&release("v1").image, AppBehavior::default());
    stack.add_image(&release("v2").image, AppBehavior::default());
    let fleet = fleet(&stack, policy);
    fleet.deploy(release("v1")).await.unwrap();
    (stack, fleet)
}

/// The servers HAProxy sends traffic to, by name.
async fn live_servers(stack: &MemoryFleet) -> Vec<String> {
    connect_core::testing::live_servers(&stack.router).await.unwrap()
}

/// `host`'s engine runs `version` as `behavior` says, whatever the other hosts' do.
fn runs_on(stack: &MemoryFleet, host: &str, version: &str, behavior: AppBehavior) {
    let runtime = &stack.host(host).unwrap().runtime;
    runtime.add_image(&release(version).image, behavior);
}

/// `host`'s engine runs `version` logging an error line per request: its verify fails.
fn logs_errors(stack: &MemoryFleet, host: &str, version: &str) {
    let error_lines = 50;
    runs_on(
        stack,
        host,
        version,
        AppBehavior {
            error_lines,
            ..Default::default()
        },
    );
}

/// `host`'s engine runs `version` never healthy: its health gate fails.
fn never_healthy(stack: &MemoryFleet, host: &str, version: &str) {
    let becomes_healthy = false;
    runs_on(
        stack,
        host,
        version,
        AppBehavior {
            becomes_healthy,
            ..Default::default()
        },
    );
}

/// `record`'s `step` passed and its detail says `text`.
fn step_says(record: &OperationRecord, step: Step, text: &str) {
    let found = record
        .step(step)
        .unwrap_or_else(|| panic!("no {step} step: {record:?}"));
    assert_eq!(found.status, StepStatus::Ok, "{found:?}");
    assert!(found.detail.contains(text), "{step}: {}", found.detail);
}

/// HAProxy sends traffic to `servers` exactly, and every host's journal matches what runs.
async fn settled_on(stack: &MemoryFleet, fleet: &Fleet, servers: &[&str]) {
    assert_eq!(live_servers(stack).await, servers);
    let differences = fleet.status().await.differences();
    assert!(differences.is_empty(), "{differences:?}");
}

async fn journal_live(fleet: &Fleet, host: &str) -> Option<Color> {
    fleet.deployer(host).unwrap().journal().await.unwrap().live
}

#[tokio::test(start_paused = true)]
async fn every_host_switches_together_and_keeps_its_standby() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );

    let report = fleet.deploy(release("v2")).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert!(report.left_out().is_empty());
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"]
    );
    for host in HOSTS {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        assert_eq!(journal.live, Some(Color::Green), "{host}");
        assert_eq!(
            journal.standby(),
            Some(Color::Blue),
            "{host} keeps blue as its warm standby"
        );
        assert_eq!(journal.slots[&Color::Green].release.version, "v2");
        let last = journal.history.last().unwrap();
        assert_eq!(last.outcome, Outcome::Succeeded);
        let switch = last.step(Step::Switch).unwrap();
        assert!(
            switch
                .detail
                .contains("web1, web2, web3 switched together in one router exchange"),
            "{}",
            switch.detail
        );
        let containers = stack.host(host).unwrap().runtime.container_names();
        assert_eq!(containers, ["connect_app1", "connect_app2"], "{host}");
    }
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_host_never_healthy_aborts_everywhere_and_nothing_switches() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    let broken = Release::new("connect", "v3").unwrap();
    stack.add_image(&broken.image, AppBehavior::default());
    // Only web2's engine runs v3 badly.
    stack.host("web2").unwrap().runtime.add_image(
        &broken.image,
        AppBehavior {
            becomes_healthy: false,
            ..AppBehavior::default()
        },
    );

    let err = fleet.deploy(broken).await.unwrap_err();
    assert!(
        err.to_string().contains("web2"),
        "the error names the host: {err}"
    );
    assert!(
        err.to_string().contains("2 of 3 hosts ready, 3 required"),
        "{err}"
    );
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"],
        "nothing switched"
    );
    for host in HOSTS {
        assert_eq!(journal_live(&fleet, host).await, Some(Color::Blue), "{host}");
        let containers = stack.host(host).unwrap().runtime.container_names();
        assert_eq!(
            containers,
            ["connect_app1"],
            "{host}: the unverified v3 is removed"
        );
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        let last = journal.history.last().unwrap();
        assert_eq!(last.release.as_ref().unwrap().version, "v3");
        assert_ne!(last.outcome, Outcome::Succeeded, "{host}");
        assert!(journal.intent.is_none(), "{host}: settled");
    }
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn by_policy_the_healthy_hosts_switch_and_the_failed_one_is_left_out() {
    let policy = FleetPolicy {
        min_healthy_hosts: Some(2),
    };
    let (stack, fleet) = with_v1_live(policy).await;
    let v3 = release("v3");
    stack.add_image(&v3.image, AppBehavior::default());
    stack.host("web2").unwrap().runtime.add_image(
        &v3.image,
        AppBehavior {
            becomes_healthy: false,
            ..AppBehavior::default()
        },
    );

    let report = fleet.deploy(v3).await.unwrap();
    assert_eq!(report.in_rotation(), ["web1", "web3"]);
    assert_eq!(report.left_out(), ["web2"]);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web3_green"],
        "web2 takes no traffic: every server runs v3"
    );
    let web2 = fleet.deployer("web2").unwrap().journal().await.unwrap();
    assert_eq!(web2.live, None, "the journal says web2 is out of rotation");
    let last = web2.history.last().unwrap();
    assert!(
        matches!(last.outcome, Outcome::Failed { .. }),
        "{:?}",
        last.outcome
    );
    assert!(
        last.steps
            .iter()
            .any(|s| s.step == Step::Switch && s.detail.contains("left out of rotation: web1, web3 switched")),
        "{:?}",
        last.steps
    );
    for host in ["web1", "web3"] {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        let switch = journal.history.last().unwrap().step(Step::Switch).cloned();
        assert!(switch.unwrap().detail.contains("left out of rotation: web2"));
    }
    assert!(
        fleet.status().await.differences().is_empty(),
        "{:?}",
        fleet.status().await.differences()
    );

    // Fixed, the next deploy brings web2 back into rotation.
    let v4 = release("v4");
    stack.add_image(&v4.image, AppBehavior::default());
    let report = fleet.deploy(v4).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert_eq!(live_servers(&stack).await.len(), 3);
}

/// web3's connection is cut as its idle color starts: a dropped SSH connection mid-deploy.
async fn cut_at_start_idle(stack: &MemoryFleet, fleet: &Fleet) {
    cut_at(stack, fleet, "web3", Step::StartIdle).await;
}

/// `host`'s connection is cut as its `step` starts.
async fn cut_at(stack: &MemoryFleet, fleet: &Fleet, host: &'static str, step: Step) {
    let mut events = fleet.deployer(host).unwrap().subscribe();
    let stack = stack.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if matches!(event, connect_core::engine::Event::StepStarted { step: s } if s == step) {
                stack.cut(host);
                return;
            }
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_cut_connection_mid_deploy_aborts_everywhere_by_default() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    cut_at_start_idle(&stack, &fleet).await;
    let err = fleet.deploy(release("v2")).await.unwrap_err();
    assert!(
        err.to_string().contains("web3 live blue (left for later"),
        "{err}"
    );
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );
    for host in ["web1", "web2"] {
        assert_eq!(journal_live(&fleet, host).await, Some(Color::Blue));
        let containers = stack.host(host).unwrap().runtime.container_names();
        assert_eq!(containers, ["connect_app1"], "{host}");
        // Its record says the fleet stopped it before the switch because of web3, not at a step of its own.
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        match &journal.history.last().unwrap().outcome {
            Outcome::Failed { step, error, .. } => {
                assert_eq!(*step, Step::Switch, "{host}");
                assert!(
                    error.contains("aborted everywhere") && error.contains("web3"),
                    "{error}"
                );
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    // Back online, the next deploy settles what web3 was left with and succeeds everywhere.
    stack.reconnect("web3");
    let report = fleet.deploy(release("v2")).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"]
    );
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cut_connection_mid_deploy_is_left_out_by_policy() {
    let policy = FleetPolicy {
        min_healthy_hosts: Some(2),
    };
    let (stack, fleet) = with_v1_live(policy).await;
    cut_at_start_idle(&stack, &fleet).await;
    let report = fleet.deploy(release("v2")).await.unwrap();
    assert_eq!(report.left_out(), ["web3"]);
    let web3 = &report.hosts[2];
    assert!(web3.error.is_some(), "the report says why web3 is out");
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);
    for host in ["web1", "web2"] {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        let switch = journal.history.last().unwrap().step(Step::Switch).cloned();
        assert!(
            switch.unwrap().detail.contains("left out of rotation: web3"),
            "{host}'s journal says which host was left out"
        );
    }
}

/// Found by the fleet sweep: a host whose journal could not take the outcome once traffic had moved made the
/// fleet's deploy a success, and its stale journal was never settled.
#[tokio::test(start_paused = true)]
async fn a_journal_that_cannot_take_the_outcome_makes_the_deploy_an_error_the_next_one_settles() {
    // The runs are deterministic: a twin stack's clean deploy numbers web3's calls, and the last write of
    // its journal is the outcome's.
    let (twin, twin_fleet) = with_v1_live(FleetPolicy::default()).await;
    let faults = twin.host("web3").unwrap().host.faults().clone();
    let base = faults.calls();
    twin_fleet.deploy(release("v2")).await.unwrap();
    let outcome_write = faults.call_log()[base as usize..]
        .iter()
        .rposition(|(op, target)| op == "host.put_file" && target.contains("journal"))
        .expect("the deploy writes web3's journal") as u64
        + 1;

    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    let web3 = stack.host("web3").unwrap().host.faults().clone();
    web3.trap(
        web3.calls() + outcome_write,
        FaultKind::FailBefore(ErrorKind::Failed),
    );
    let err = fleet.deploy(release("v2")).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("web3") && text.contains("journal could not be written"),
        "{text}"
    );
    assert!(!text.contains("web1: "), "only web3's journal failed: {text}");
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"],
        "traffic moved on every host, as the error says"
    );
    // web3's journal still declares the deploy's intent: status tells it, and the next deploy settles it.
    let differences = fleet.status().await.differences();
    assert!(
        differences.iter().any(|d| d.starts_with("web3:")),
        "{differences:?}"
    );
    stack.add_image(&release("v3").image, AppBehavior::default());
    let report = fleet.deploy(release("v3")).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert!(fleet.status().await.differences().is_empty());
    // Settling put web3 back on its last recorded color before the deploy, so its colors may now differ
    // from the others'; what matters is that every host serves v3 from the color its journal names.
    assert_eq!(live_servers(&stack).await.len(), HOSTS.len());
    for host in HOSTS {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        let live = journal.live.expect("in rotation");
        assert_eq!(journal.slots[&live].release.version, "v3", "{host}");
    }
}

#[tokio::test(start_paused = true)]
async fn rollback_puts_every_host_back_on_its_standby_in_one_switch() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    fleet.deploy(release("v2")).await.unwrap();
    let report = fleet.rollback().await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );
    for host in HOSTS {
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        assert_eq!(journal.live, Some(Color::Blue));
        assert_eq!(
            journal.standby(),
            Some(Color::Green),
            "{host}: v2 stays up to roll forward"
        );
        let last = journal.history.last().unwrap();
        assert_eq!(last.release.as_ref().unwrap().version, "v1");
        assert!(last.steps.iter().any(|s| s.step == Step::Switch
            && s.status == StepStatus::Ok
            && s.detail.contains("one router exchange (3 servers)")));
    }
    assert!(fleet.status().await.differences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn rollback_is_refused_everywhere_when_a_host_has_no_standby() {
    let (stack, fleet) = with_v1_live(FleetPolicy::default()).await;
    let err = fleet.rollback().await.unwrap_err();
    assert!(err.to_string().contains("no warm standby"), "{err}");
    assert_eq!(err.operation(), "fleet.rollback", "{err}");
    assert!(
        !err.hint().unwrap_or_default().contains("min_healthy_hosts"),
        "{err}"
    );
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );
}

#[tokio::test(start_paused = true)]
async fn one_host_fleet_deploys_as_a_deployer_does() {
    let stack = MemoryFleet::new(&["web1"]);
    stack.add_image(&release("v1").image, AppBehavior::default());
    stack.add_image(&release("v2").image, AppBehavior::default());
    let fleet = fleet(&stack, FleetPolicy::default());
    fleet.deploy(release("v1")).await.unwrap();
    fleet.deploy(release("v2")).await.unwrap();
    assert_eq!(live_servers(&stack).await, ["web1_green"]);
    assert_eq!(journal_live(&fleet, "web1").await, Some(Color::Green));
}

#[test]
fn refused_fleets_name_the_fix() {
    let stack = MemoryFleet::new(&HOSTS);
    let new = |hosts, config, policy| Fleet::new(hosts, stack.shared(), config, policy).unwrap_err();

    let err = new(Vec::new(), DeployConfig::runbook(), FleetPolicy::default());
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let mut twice = stack.app_hosts();
    twice[1].name = "web1".into();
    let err = new(twice, DeployConfig::runbook(), FleetPolicy::default());
    assert!(err.to_string().contains("two hosts have this name"), "{err}");

    let mut shared_server = stack.app_hosts();
    shared_server[1].topology = shared_server[0].topology.clone();
    let err = new(shared_server, DeployConfig::runbook(), FleetPolicy::default());
    assert!(
        err.to_string().contains("two slots share this HAProxy server"),
        "{err}"
    );

    for n in [0, 4] {
        let err = new(
            stack.app_hosts(),
            DeployConfig::runbook(),
            FleetPolicy {
                min_healthy_hosts: Some(n),
            },
        );
        assert!(err.to_string().contains("min_healthy_hosts"), "{err}");
    }

    let mut canary = DeployConfig::runbook();
    canary.policy.canary = Some(CanaryPolicy::default());
    let err = new(stack.app_hosts(), canary, FleetPolicy::default());
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.hint().unwrap().contains("turn it off"), "{err}");
}
