//! The operator's hooks: real commands (on this machine, or on the "server", here a `LocalHost` holding the
//! journal) at each point of an operation, with the operation's facts in their environment. A failing gate
//! stops the deploy before traffic moves; a failing hook after the switch changes nothing but its own step.
//! Real processes run, so these tests use real time (the apps are made ready in 10 ms).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::Fixture;
use connect_core::ErrorKind;
use connect_core::engine::{Backends, DeployConfig, Deployer, Hook, HookPoint, Outcome, Step, StepStatus};
use connect_core::local::LocalHost;
use connect_core::memory::AppBehavior;
use connect_core::model::{Color, Release};

/// A hook that appends its point and facts to `log`, one line per run.
fn logging(point: HookPoint, log: &Path) -> Hook {
    Hook::new(
        point,
        [
            "sh",
            "-c",
            "echo \"$CONNECT_HOOK $CONNECT_KIND $CONNECT_RELEASE $CONNECT_LIVE_BEFORE>$CONNECT_LIVE_AFTER\" >> \"$0\"",
            &log.display().to_string(),
        ],
    )
}

fn failing(point: HookPoint) -> Hook {
    Hook::new(
        point,
        ["sh", "-c", "echo smoke test: /checkout answered 502 >&2; exit 3"],
    )
}

/// A fixture whose apps are ready at once (real time passes here) and whose config has `hooks`.
fn with_hooks(hooks: Vec<Hook>) -> (Fixture, Release, Release) {
    let config = DeployConfig {
        holder: "test".into(),
        hooks,
        ..DeployConfig::runbook()
    };
    let f = Fixture::with_config(config);
    let quick = AppBehavior {
        ready_after: Duration::from_millis(10),
        ..AppBehavior::default()
    };
    let (v1, v2) = (f.image("v1", quick.clone()), f.image("v2", quick));
    (f, v1, v2)
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn hooks_run_at_their_points_with_the_operations_facts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let points = [
        HookPoint::BeforeDeploy,
        HookPoint::AfterShip,
        HookPoint::BeforeSwitch,
        HookPoint::AfterDeploy,
        HookPoint::AfterRollback,
    ];
    let (f, v1, v2) = with_hooks(points.iter().map(|p| logging(*p, &log)).collect());
    f.deployer.deploy(v1).await.unwrap();
    std::fs::remove_file(&log).unwrap();

    let record = f.deployer.deploy(v2).await.unwrap();
    assert_eq!(
        lines(&log),
        [
            "before_deploy deploy v2 blue>blue",
            "after_ship deploy v2 blue>blue",
            "before_switch deploy v2 blue>blue",
            "after_deploy deploy v2 blue>green",
        ]
    );
    let hooks: Vec<_> = record.steps.iter().filter(|s| s.step == Step::Hook).collect();
    assert_eq!(hooks.len(), 4, "{:?}", record.steps);
    assert!(hooks.iter().all(|s| s.status == StepStatus::Ok), "{hooks:?}");

    std::fs::remove_file(&log).unwrap();
    f.deployer.rollback().await.unwrap();
    assert_eq!(lines(&log), ["after_rollback instant_rollback v1 green>blue"]);
}

#[tokio::test]
async fn a_failing_gate_before_the_switch_stops_the_deploy_with_traffic_untouched() {
    let (f, v1, v2) = with_hooks(vec![failing(HookPoint::BeforeSwitch)]);
    // The first deploy's gate fails too: nothing was live, nothing is.
    let err = f.deployer.deploy(v1.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    assert!(f.live_servers().await.is_empty());

    let f = Fixture::with_config(DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    });
    let quick = AppBehavior {
        ready_after: Duration::from_millis(10),
        ..AppBehavior::default()
    };
    f.image("v1", quick.clone());
    f.deployer.deploy(v1).await.unwrap();
    let gated = Deployer::new(
        f.stack.backends(),
        DeployConfig {
            holder: "test".into(),
            hooks: vec![failing(HookPoint::BeforeSwitch)],
            ..DeployConfig::runbook()
        },
    )
    .unwrap();
    f.image("v2", quick);
    let err = gated.deploy(v2).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("before_switch `sh -c"), "the hook is named: {text}");
    assert!(
        text.contains("exited 3: smoke test: /checkout answered 502"),
        "its exit and stderr: {text}"
    );
    assert!(err.hint().unwrap().contains("before traffic moved"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"], "the new color was removed");
}

#[tokio::test]
async fn a_failing_hook_after_the_deploy_leaves_it_succeeded() {
    let (f, v1, _) = with_hooks(vec![failing(HookPoint::AfterDeploy)]);
    let record = f.deployer.deploy(v1).await.unwrap();
    assert_eq!(record.outcome, Outcome::Succeeded);
    let hook = record.steps.iter().find(|s| s.step == Step::Hook).unwrap();
    assert_eq!(hook.status, StepStatus::Failed);
    assert!(hook.detail.contains("does not change the outcome"), "{hook:?}");
    f.assert_live(Color::Blue).await;
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_and_stops_the_deploy() {
    let mut slow = Hook::new(HookPoint::BeforeDeploy, ["sleep", "30"]);
    slow.timeout = Duration::from_millis(200);
    let (f, v1, _) = with_hooks(vec![slow]);
    let started = std::time::Instant::now();
    let err = f.deployer.deploy(v1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "killed, not waited for"
    );
    assert!(f.containers().is_empty(), "nothing started");
}

#[tokio::test]
async fn a_server_hook_runs_on_the_server_host() {
    let server = tempfile::tempdir().unwrap();
    let (f, v1, _) = with_hooks(vec![]);
    let log = server.path().join("after.log");
    let mut config = DeployConfig {
        holder: "test".into(),
        state_dir: server.path().join("state").display().to_string(),
        hooks: vec![logging(HookPoint::AfterDeploy, &log).on_server()],
        ..DeployConfig::runbook()
    };
    config.policy.disk_paths = vec![server.path().display().to_string()];
    std::fs::create_dir(server.path().join("state")).unwrap();
    let backends = Backends {
        host: Arc::new(LocalHost::new()),
        ..f.stack.backends()
    };
    Deployer::new(backends, config).unwrap().deploy(v1).await.unwrap();
    assert_eq!(lines(&log), ["after_deploy deploy v1 >blue"]);
}

#[test]
fn a_hook_without_a_program_is_refused_when_the_deployer_is_made() {
    let f = Fixture::new();
    let config = DeployConfig {
        hooks: vec![Hook::new(HookPoint::BeforeDeploy, Vec::<String>::new())],
        ..DeployConfig::runbook()
    };
    let err = Deployer::new(f.stack.backends(), config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}
