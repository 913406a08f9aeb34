//! Hooks and pruning over several app hosts (issue 18.1): hooks run once per fleet operation on this
//! machine with the hosts in their environment, their steps in every host's record; a failing gate aborts
//! every host; pruning runs on each host in rotation after a deploy succeeds. Hooks are real processes, so
//! these tests use real time (the apps are ready in 10 ms).

use std::path::Path;
use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::engine::fleet::{Fleet, FleetPolicy};
use connect_core::engine::{DeployConfig, Hook, HookPoint, Step, StepStatus};
use connect_core::memory::{AppBehavior, MemoryFleet};
use connect_core::model::{Color, Release};
use connect_core::runtime::ContainerRuntime;

const HOSTS: [&str; 3] = ["web1", "web2", "web3"];

fn release(version: &str) -> Release {
    Release::new("connect", version).unwrap()
}

fn quick() -> AppBehavior {
    AppBehavior {
        ready_after: Duration::from_millis(10),
        ..AppBehavior::default()
    }
}

/// Three hosts with `versions` on every engine, under `config`.
fn fleet_with(config: DeployConfig, versions: &[&str]) -> (MemoryFleet, Fleet) {
    let stack = MemoryFleet::new(&HOSTS);
    for v in versions {
        stack.add_image(&release(v).image, quick());
    }
    let fleet = Fleet::new(stack.app_hosts(), stack.shared(), config, FleetPolicy::default()).unwrap();
    (stack, fleet)
}

/// A hook appending its point and the fleet's facts to `log`, one line per run.
fn logging(point: HookPoint, log: &Path) -> Hook {
    Hook::new(
        point,
        [
            "sh",
            "-c",
            "echo \"$CONNECT_HOOK $CONNECT_RELEASE hosts=$CONNECT_HOSTS fleet=$CONNECT_FLEET out=$CONNECT_HOSTS_LEFT_OUT\" >> \"$0\"",
            &log.display().to_string(),
        ],
    )
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn hooks_run_once_per_fleet_operation_with_the_hosts_in_their_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let points = [
        HookPoint::BeforeDeploy,
        HookPoint::AfterShip,
        HookPoint::BeforeSwitch,
        HookPoint::AfterDeploy,
        HookPoint::AfterRollback,
    ];
    let config = DeployConfig {
        hooks: points.iter().map(|p| logging(*p, &log)).collect(),
        ..DeployConfig::runbook()
    };
    let (_stack, fleet) = fleet_with(config, &["v1", "v2"]);
    fleet.deploy(release("v1")).await.unwrap();
    let report = fleet.deploy(release("v2")).await.unwrap();
    fleet.rollback().await.unwrap();

    let all = "web1,web2,web3";
    let each = |point: &str, version: &str, out: &str| {
        format!("{point} {version} hosts={all} fleet={all} out={out}")
    };
    let mut expected = Vec::new();
    for v in ["v1", "v2"] {
        expected.extend([
            each("before_deploy", v, ""),
            each("after_ship", v, ""),
            each("before_switch", v, ""),
            each("after_deploy", v, ""),
        ]);
    }
    // The rollback's release is the first host's standby: v1.
    expected.push(each("after_rollback", "v1", ""));
    assert_eq!(lines(&log), expected, "once per operation, not once per host");

    for h in &report.hosts {
        let record = h.record.as_ref().unwrap();
        let hooks = record.steps.iter().filter(|s| s.step == Step::Hook).count();
        assert_eq!(hooks, 4, "{}: every hook step in its record", h.host);
    }
}

#[tokio::test]
async fn a_failing_before_switch_hook_aborts_every_host_and_nothing_switches() {
    let failing = Hook::new(
        HookPoint::BeforeSwitch,
        ["sh", "-c", "echo smoke test: /checkout answered 502 >&2; exit 3"],
    );
    let (stack, fleet) = fleet_with(DeployConfig::runbook(), &["v1", "v2"]);
    fleet.deploy(release("v1")).await.unwrap();
    let config = DeployConfig {
        hooks: vec![failing],
        ..DeployConfig::runbook()
    };
    let gated = Fleet::new(stack.app_hosts(), stack.shared(), config, FleetPolicy::default()).unwrap();
    let err = gated.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    assert!(err.to_string().contains("before_switch hook failed"), "{err}");
    for host in HOSTS {
        let journal = gated.deployer(host).unwrap().journal().await.unwrap();
        assert_eq!(journal.live, Some(Color::Blue), "{host}: traffic never moved");
        assert!(journal.intent.is_none(), "{host}: settled");
        let last = journal.history.last().unwrap();
        let hook = last
            .steps
            .iter()
            .find(|s| s.step == Step::Hook)
            .expect("the hook's step");
        assert_eq!(hook.status, StepStatus::Failed, "{host}");
        assert!(hook.detail.contains("502"), "{host}: {hook:?}");
    }
}

#[tokio::test]
async fn hooks_on_the_server_are_refused_for_a_fleet() {
    let stack = MemoryFleet::new(&HOSTS);
    let config = DeployConfig {
        hooks: vec![Hook::new(HookPoint::AfterDeploy, ["true"]).on_server()],
        ..DeployConfig::runbook()
    };
    let err = Fleet::new(stack.app_hosts(), stack.shared(), config, FleetPolicy::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("CONNECT_HOSTS"), "{err}");
}

#[tokio::test]
async fn each_host_in_rotation_is_pruned_after_the_deploy() {
    let mut config = DeployConfig::runbook();
    config.policy.keep_releases = Some(0);
    // Each release arrives just before its deploy: keeping none beyond live and standby, every prune
    // removes what neither runs (v0 first, then v1).
    let (stack, fleet) = fleet_with(config, &["v0", "v1"]);
    fleet.deploy(release("v1")).await.unwrap();
    stack.add_image(&release("v2").image, quick());
    fleet.deploy(release("v2")).await.unwrap();
    stack.add_image(&release("v3").image, quick());
    let report = fleet.deploy(release("v3")).await.unwrap();
    for host in HOSTS {
        let images = stack
            .host(host)
            .unwrap()
            .runtime
            .list_images("connect")
            .await
            .unwrap();
        let tags: Vec<String> = images.into_iter().flat_map(|i| i.tags).collect();
        assert_eq!(
            tags,
            ["connect:v3", "connect:v2"],
            "{host}: live and standby kept"
        );
    }
    for h in &report.hosts {
        let record = h.record.as_ref().unwrap();
        let prune = record
            .steps
            .iter()
            .find(|s| s.step == Step::Prune)
            .expect("a prune step");
        assert_eq!(prune.status, StepStatus::Ok, "{}: {prune:?}", h.host);
    }
    fleet.rollback().await.expect("every standby's image is there");
}
