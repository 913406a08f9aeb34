//! The engine after things went wrong mid-operation: a dropped (killed) operation, a lock whose lease
//! expired, a switch that half-applied, a journal from a newer version, a tag that moved.

mod common;

use std::time::Duration;

use common::{Fixture, release};
use connect_core::ErrorKind;
use connect_core::engine::{Deployer, Event, JOURNAL_FORMAT, OperationKind, Outcome, Step};
use connect_core::host::{HostExt, PutOptions};
use connect_core::memory::AppBehavior;
use connect_core::model::Color;
use connect_core::router::{AdminState, TrafficRouter};

const JOURNAL: &str = "/opt/connect/state/journal.json";

/// Drops `deploy(version)` once it is in its health gate (its new container started): the process died
/// mid-deploy.
async fn kill_deploy_after_start(f: &Fixture, version: &str) {
    let mut events = f.deployer.subscribe();
    let deploy = f.deployer.deploy(release(version));
    tokio::select! {
        r = deploy => panic!("the deploy should still be in its health gate: {r:?}"),
        () = async {
            // The health gate waits 1.5 s of simulated start-up, so the deploy is inside it when this fires.
            loop {
                match events.recv().await {
                    Ok(Event::StepStarted { step: Step::HealthGate, .. }) => break,
                    Ok(_) => {}
                    Err(e) => panic!("the deploy's events ended before its health gate: {e}"),
                }
            }
        } => {}
    }
}

#[tokio::test(start_paused = true)]
async fn a_killed_deploy_is_settled_by_the_next_process_after_its_lease() {
    let f = Fixture::with_v1_live().await;
    kill_deploy_after_start(&f, "v2").await;
    assert_eq!(
        f.containers(),
        ["connect_app1", "connect_app2"],
        "green was started"
    );

    // Another process, while the dead one's lease still runs: refused, with when it ends.
    let next = Deployer::new(f.stack.backends(), f.deployer.config().clone()).unwrap();
    let err = next.deploy(release("v3")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("lease ends in"), "{err}");
    let status = next.status().await.unwrap();
    assert!(
        status
            .differences
            .iter()
            .any(|d| d.contains("has not recorded its outcome")),
        "status shows the pending intent: {:?}",
        status.differences
    );

    // The lease runs out (nothing renews it), and the same deploy from the new process goes through.
    tokio::time::sleep(f.deployer.config().policy.lock_lease).await;
    let record = next.deploy(release("v3")).await.unwrap();
    assert_eq!(record.outcome, Outcome::Succeeded);
    f.assert_live(Color::Green).await;
    let journal = f.journal().await;
    assert_eq!(journal.slots[&Color::Green].release.version, "v3");
    assert_eq!(
        journal.slots[&Color::Blue].release.version,
        "v1",
        "the standby is the verified v1, never the killed deploy's v2"
    );
    let interrupted = &journal.history[journal.history.len() - 2];
    assert_eq!(interrupted.kind, OperationKind::Deploy);
    assert_eq!(interrupted.release.as_ref().unwrap().version, "v2");
    let Outcome::Interrupted { resolution } = &interrupted.outcome else {
        panic!("the killed deploy is recorded as interrupted: {interrupted:?}");
    };
    assert!(
        resolution.contains("connect_app2 removed") && resolution.contains("had expired"),
        "{resolution}"
    );
    assert!(next.status().await.unwrap().lock.is_none());
}

#[tokio::test(start_paused = true)]
async fn adopt_after_a_killed_deploy_never_adopts_the_unverified_release() {
    let f = Fixture::with_v1_live().await;
    kill_deploy_after_start(&f, "v2").await;
    tokio::time::sleep(f.deployer.config().policy.lock_lease).await;
    let next = Deployer::new(f.stack.backends(), f.deployer.config().clone()).unwrap();
    let journal = next.adopt().await.unwrap();
    assert_eq!(journal.live, Some(Color::Blue));
    assert!(!journal.slots.contains_key(&Color::Green), "{journal:?}");
    assert_eq!(f.containers(), ["connect_app1"]);
}

#[tokio::test(start_paused = true)]
async fn a_switch_that_half_applied_is_settled_to_one_live_color() {
    let f = Fixture::with_v1_live().await;
    // Green is made ready, then draining blue fails: both take traffic for a moment.
    f.stack
        .router
        .faults()
        .fail_on("router.set_state", "app1", ErrorKind::Unavailable);
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    f.stack.router.faults().clear("router.set_state");
    assert!(err.to_string().contains("traffic is on blue"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(
        f.containers(),
        ["connect_app1"],
        "the unverified green is removed"
    );
    let record = f.journal().await.history.pop().unwrap();
    assert!(
        matches!(record.outcome, Outcome::RolledBack { .. }),
        "traffic had reached green and really went back: {:?}",
        record.outcome
    );
    assert!(f.deployer.status().await.unwrap().differences.is_empty());
}

#[tokio::test(start_paused = true)]
async fn router_reads_failing_mid_switch_never_leave_no_live_server() {
    let f = Fixture::with_v1_live().await;
    // Every read fails from the middle of the switch on: neither the switch nor its undo can see the router.
    f.stack
        .router
        .faults()
        .fail_after("router.servers", "be_app", 3, ErrorKind::Unavailable);
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    f.stack.router.faults().clear("router.servers");
    let live = f.live_servers().await;
    assert!(
        !live.is_empty(),
        "a live server whatever happened: {live:?} ({err})"
    );
    assert!(
        err.to_string().contains("where traffic is could not be read"),
        "the error claims nothing it could not see: {err}"
    );
    // The next operation settles what the failed one could not, then deploys.
    f.deployer.deploy(release("v3")).await.unwrap();
    f.assert_live(Color::Green).await;
    assert!(f.deployer.status().await.unwrap().differences.is_empty());
    let history = f.journal().await.history;
    assert!(
        history
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Interrupted { .. })),
        "the failed deploy's unsettled intent was settled and recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_journal_from_a_newer_version_is_refused_and_left_alone() {
    let f = Fixture::with_v1_live().await;
    let newer = format!(
        r#"{{"format":{},"live":"blue","future_field":true}}"#,
        JOURNAL_FORMAT + 1
    );
    f.stack
        .host
        .write_file(JOURNAL, newer.clone().into_bytes(), PutOptions::default())
        .await
        .unwrap();
    let err = f.deployer.status().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("format {}", JOURNAL_FORMAT + 1)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("reads format {JOURNAL_FORMAT}")),
        "{err}"
    );
    assert_eq!(
        err.kind(),
        f.deployer.deploy(release("v2")).await.unwrap_err().kind()
    );
    assert_eq!(err.kind(), f.deployer.adopt().await.unwrap_err().kind());
    let kept = f.stack.host.read_file(JOURNAL).await.unwrap().unwrap();
    assert_eq!(kept, newer.into_bytes(), "never moved, never rewritten");
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_journal_is_reported_read_only_and_kept_aside_only_by_adopt() {
    let f = Fixture::with_v1_live().await;
    f.stack
        .host
        .write_file(JOURNAL, b"{not json".to_vec(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(f.deployer.status().await.unwrap_err().kind(), ErrorKind::Corrupt);
    assert!(
        f.stack.host.read_file(JOURNAL).await.unwrap().is_some(),
        "status moves nothing"
    );
    let journal = f.deployer.adopt().await.unwrap();
    assert_eq!(journal.live, Some(Color::Blue));
    let files = f.stack.host.files();
    assert!(
        files
            .iter()
            .any(|p| p.starts_with(&format!("{JOURNAL}.corrupt-"))),
        "{files:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn full_rollback_refuses_a_tag_that_now_points_at_another_image() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    // v1 is rebuilt under the same tag: another image id.
    f.stack.runtime.remove_image(&release("v1").image);
    f.image("v1", AppBehavior::default());
    let err = f.deployer.rollback_to("v1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("the tag now points at"), "{err}");
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn an_instant_rollback_whose_switch_half_applied_is_finished() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    // Blue is made ready again, then draining green fails (a refusal: not retried), once.
    f.stack
        .router
        .faults()
        .fail_on_times("router.set_state", "app2", ErrorKind::Refused, 1);
    let err = f.deployer.rollback().await.unwrap_err();
    // The standby is a verified release the operator asked for: the rollback is finished, not undone.
    assert!(err.to_string().contains("traffic is on blue"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(
        f.stack.router.server("app2").await.unwrap().admin,
        AdminState::Drain,
        "green is the standby now"
    );
    assert_eq!(f.journal().await.standby(), Some(Color::Green));
    assert!(f.deployer.status().await.unwrap().differences.is_empty());
}

/// On the real filesystem through `LocalHost` (so `find` really runs): a holder killed while writing left
/// its hidden temporaries and an expired lock; the operation that takes over removes the temporaries and
/// nothing else.
#[tokio::test]
async fn temporaries_a_killed_writer_left_are_removed_by_the_takeover() {
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap().to_string();
    let mut config = connect_core::engine::DeployConfig {
        holder: "test".into(),
        state_dir: state.clone(),
        ..connect_core::engine::DeployConfig::runbook()
    };
    config.policy.disk_paths = vec![state.clone()];
    let stack = connect_core::memory::MemoryStack::new(&config.topology);
    let quick = AppBehavior {
        ready_after: Duration::from_millis(10),
        ..AppBehavior::default()
    };
    stack.add_image(&release("v1").image, quick);
    let mut backends = stack.backends();
    backends.host = Arc::new(connect_core::LocalHost::new());
    for (name, content) in [
        (".journal.json.tmp-4242-0", "half a journal"),
        (".deploy.lock.tmp-4242-1", "half a lock"),
        (
            "deploy.lock",
            r#"{"holder":"killed","operation":"deploy","since_unix_ms":1,"token":"dead","lease_until_unix_ms":2}"#,
        ),
        ("notes.txt", "an operator's file"),
    ] {
        std::fs::write(dir.path().join(name), content).unwrap();
    }

    let deployer = Deployer::new(backends, config).unwrap();
    deployer.deploy(release("v1")).await.unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["journal.json", "notes.txt"], "in {state}");
}

#[tokio::test(start_paused = true)]
async fn a_taker_that_died_mid_takeover_does_not_block_the_next_one() {
    let f = Fixture::with_v1_live().await;
    let state = "/opt/connect/state";
    let now = common::unix_ms_now();
    let dead = r#"{"holder":"killed","operation":"deploy","since_unix_ms":1,"token":"dead","lease_until_unix_ms":2}"#
        .to_string();
    let put = |path: String, bytes: Vec<u8>| {
        let host = f.stack.host.clone();
        async move {
            host.write_file(&path, bytes, PutOptions::default())
                .await
                .unwrap()
        }
    };
    put(format!("{state}/deploy.lock"), dead.into_bytes()).await;
    // Another process claimed the takeover a moment ago and is still at it: wait for it.
    put(
        format!("{state}/deploy.lock.takeover-dead"),
        (now + 60_000).to_string().into_bytes(),
    )
    .await;
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert!(err.to_string().contains("taking over"), "{err}");
    // That taker died: its claim ran out, and the next operation takes over.
    tokio::time::sleep(Duration::from_secs(61)).await;
    f.deployer.deploy(release("v2")).await.unwrap();
    f.assert_live(Color::Green).await;
    assert!(
        !f.stack.host.files().iter().any(|p| p.contains("takeover")),
        "{:?}",
        f.stack.host.files()
    );
}

#[tokio::test(start_paused = true)]
async fn a_lock_whose_reply_was_lost_is_recognised_as_ours() {
    use connect_core::memory::FaultKind;

    let f = Fixture::with_v1_live().await;
    let faults = f.stack.faults().clone();
    // The deploy's first call creates the lock: it is created, and the reply is lost.
    let first = faults.calls() + 1;
    faults.trap(first, FaultKind::ApplyThenFail(ErrorKind::Unavailable));
    f.deployer.deploy(release("v2")).await.unwrap();
    assert_eq!(
        faults.call_log()[first as usize - 1],
        (
            "host.put_file".to_string(),
            "/opt/connect/state/deploy.lock".to_string()
        ),
        "the trapped call took the lock"
    );
    f.assert_live(Color::Green).await;
    assert!(f.deployer.status().await.unwrap().lock.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_migration_container_a_killed_deploy_left_is_removed_by_the_takeover() {
    use connect_core::ContainerRuntime;
    use connect_core::runtime::{ContainerSpec, labels};

    let f = Fixture::with_v1_live().await;
    // The killed deploy's migration, still there, and its lock.
    f.stack
        .runtime
        .start(&ContainerSpec {
            name: "connect-one-off-4242-1".into(),
            image: release("v2").image,
            labels: [
                (labels::APP.to_string(), "connect".to_string()),
                (labels::ONE_OFF.to_string(), "true".to_string()),
            ]
            .into(),
            env: Default::default(),
            ports: vec![],
            command: Some(vec!["migrate".into()]),
            health_path: None,
            stop_grace: Duration::from_secs(1),
        })
        .await
        .unwrap();
    let dead = r#"{"holder":"killed","operation":"deploy","since_unix_ms":1,"token":"dead","lease_until_unix_ms":2}"#;
    f.stack
        .host
        .write_file(
            "/opt/connect/state/deploy.lock",
            dead.as_bytes().to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let mut events = f.deployer.subscribe();
    f.deployer.deploy(release("v2")).await.unwrap();
    assert_eq!(
        f.containers(),
        ["connect_app1", "connect_app2"],
        "the one-off is gone"
    );
    let said = connect_core::testing::drain_events(&mut events).into_iter().any(|e| {
        matches!(e, connect_core::engine::Event::Warning { message, .. } if message.contains("connect-one-off-4242-1"))
    });
    assert!(said, "the removal is reported");
}
