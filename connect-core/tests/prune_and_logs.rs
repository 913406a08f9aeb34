//! Pruning release images through the engine (never the live or standby image, whatever N says) and
//! container logs read and followed, on the in-memory backends.

use connect_core::ContainerRuntime;
use connect_core::ErrorKind;
use connect_core::engine::{DeployConfig, Deployer, Outcome, Step, StepStatus};
use connect_core::memory::{AppBehavior, MemoryStack};
use connect_core::model::{Color, Release};
use connect_core::runtime::LogQuery;
use futures::StreamExt;

/// v1..v3 deployed in turn (v3 live on blue, v2 the standby on green), v0 older and v4 newer, never deployed.
async fn three_deploys() -> (MemoryStack, Deployer) {
    let config = DeployConfig::runbook();
    let stack = MemoryStack::new(&config.topology);
    for v in ["v0", "v1", "v2", "v3", "v4"] {
        stack.add_image(&release(v).image, AppBehavior::default());
    }
    let deployer = Deployer::new(stack.backends(), config).unwrap();
    for v in ["v1", "v2", "v3"] {
        deployer.deploy(release(v)).await.unwrap();
    }
    let status = deployer.status().await.unwrap();
    assert_eq!(
        (status.live, status.standby),
        (Some(Color::Blue), Some(Color::Green))
    );
    (stack, deployer)
}

fn release(v: &str) -> Release {
    Release::new("connect", v).unwrap()
}

async fn tags(stack: &MemoryStack) -> Vec<String> {
    let images = stack.runtime.list_images("connect").await.unwrap();
    images.into_iter().flat_map(|i| i.tags).collect()
}

#[tokio::test(start_paused = true)]
async fn prune_keeps_the_newest_n_and_always_the_live_and_standby_images() {
    let (stack, deployer) = three_deploys().await;
    assert_eq!(
        tags(&stack).await,
        [
            "connect:v4",
            "connect:v3",
            "connect:v2",
            "connect:v1",
            "connect:v0"
        ],
        "newest first"
    );

    let dry = deployer.prune("connect", 0, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.removed, ["connect:v4", "connect:v1", "connect:v0"]);
    assert_eq!(tags(&stack).await.len(), 5, "a dry run removes nothing");

    let report = deployer.prune("connect", 1, false).await.unwrap();
    assert_eq!(report.removed, ["connect:v1", "connect:v0"]);
    let kept: Vec<(&str, &str)> = report
        .kept
        .iter()
        .map(|k| (k.reference.as_str(), k.reason.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            ("connect:v4", "one of the newest 1"),
            ("connect:v3", "live (blue)"),
            ("connect:v2", "standby (green)")
        ]
    );
    assert_eq!(tags(&stack).await, ["connect:v4", "connect:v3", "connect:v2"]);
    // Both colors still run, and instant rollback still has its standby image.
    deployer.rollback().await.expect("the standby is intact");
    assert!(
        deployer.status().await.unwrap().lock.is_none(),
        "the lock is released"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_removal_stops_prune_and_an_image_a_container_uses_is_kept_not_forced() {
    let (stack, deployer) = three_deploys().await;
    stack
        .faults()
        .fail_times("runtime.delete_image", ErrorKind::Failed, 1);
    let e = deployer.prune("connect", 0, false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert_eq!(tags(&stack).await.len(), 5, "it stopped at the first failure");

    // An image a container still uses is kept, with the runtime's reason, never forced.
    let config = deployer.config().clone();
    let other = Deployer::new(stack.backends(), config).unwrap();
    stack
        .runtime
        .start(&connect_core::runtime::ContainerSpec {
            name: "someone_else".into(),
            image: release("v0").image,
            labels: Default::default(),
            env: Default::default(),
            ports: vec![],
            command: None,
            health_path: None,
            stop_grace: std::time::Duration::from_secs(1),
        })
        .await
        .unwrap();
    let report = other.prune("connect", 0, false).await.unwrap();
    assert_eq!(report.removed, ["connect:v4", "connect:v1"]);
    let v0 = report
        .kept
        .iter()
        .find(|k| k.reference == "connect:v0")
        .expect("v0 kept");
    assert!(v0.reason.contains("someone_else"), "{v0:?}");
}

/// A deployer that prunes after each deploy, keeping `keep` beyond the live and standby images.
fn pruning(stack: &MemoryStack, keep: usize) -> Deployer {
    let mut config = DeployConfig::runbook();
    config.policy.keep_releases = Some(keep);
    Deployer::new(stack.backends(), config).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_deploy_prunes_as_its_last_step_and_a_failed_prune_changes_nothing_else() {
    let (stack, _) = three_deploys().await;
    let deployer = pruning(&stack, 0);
    // v4 goes live on green; v3 (blue) is the standby; v2, v1, v0 go.
    let record = deployer.deploy(release("v4")).await.unwrap();
    let step = record
        .steps
        .iter()
        .find(|s| s.step == Step::Prune)
        .expect("a prune step");
    assert_eq!(step.status, StepStatus::Ok);
    assert_eq!(step.detail, "removed 3 of connect (v2, v1, v0); kept 2");
    assert_eq!(
        record.steps.last().map(|s| s.step),
        Some(Step::Prune),
        "after everything else"
    );
    assert_eq!(tags(&stack).await, ["connect:v4", "connect:v3"]);
    deployer.rollback().await.expect("the standby's image is there");

    // A removal that fails is the prune step's failure, not the deploy's: v5 is live and recorded.
    stack.add_image(&release("v5").image, AppBehavior::default());
    stack.add_image(&release("v6").image, AppBehavior::default());
    stack
        .faults()
        .fail_times("runtime.delete_image", ErrorKind::Unavailable, 10);
    let record = deployer.deploy(release("v5")).await.unwrap();
    assert_eq!(record.outcome, Outcome::Succeeded);
    let step = record.steps.iter().find(|s| s.step == Step::Prune).unwrap();
    assert_eq!(step.status, StepStatus::Failed, "{step:?}");
    let status = deployer.status().await.unwrap();
    assert_eq!(status.live, Some(Color::Green), "{status:?}");
}

#[tokio::test(start_paused = true)]
async fn without_keep_releases_the_deploy_prunes_nothing() {
    let (stack, deployer) = three_deploys().await;
    let record = deployer.deploy(release("v4")).await.unwrap();
    assert!(record.steps.iter().all(|s| s.step != Step::Prune));
    assert_eq!(tags(&stack).await.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn logs_give_the_tail_then_follow_new_lines_until_the_container_stops() {
    let (stack, _deployer) = three_deploys().await;
    let rt = &stack.runtime;
    for line in ["one", "two", "three"] {
        rt.write_log("connect_app1", line).unwrap();
    }
    let tail: Vec<String> = rt
        .logs(
            "connect_app1",
            LogQuery {
                tail: Some(2),
                follow: false,
            },
        )
        .await
        .unwrap()
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert_eq!(tail, ["two", "three"]);

    let mut followed = rt
        .logs(
            "connect_app1",
            LogQuery {
                tail: Some(1),
                follow: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(followed.next().await.unwrap().unwrap(), "three");
    rt.write_log("connect_app1", "four").unwrap();
    assert_eq!(followed.next().await.unwrap().unwrap(), "four");
    rt.stop("connect_app1", std::time::Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        followed.next().await.is_none(),
        "the stream ends with the container"
    );

    let e = rt
        .logs("no_such", LogQuery::default())
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}
