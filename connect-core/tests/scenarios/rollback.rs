//! Going back: the instant rollback (one switch to the standby) and its refusals, the full rollback
//! through the health gate, and the automatic switch back when verification or the smoke path fails.

use connect_core::ErrorKind;
use connect_core::engine::{DeployConfig, OperationKind, Outcome, Step, StepStatus};
use connect_core::memory::AppBehavior;
use connect_core::model::Color;

use crate::common::{Fixture, release};

#[tokio::test(start_paused = true)]
async fn instant_rollback_is_one_switch_and_keeps_the_bad_release_drained() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    let record = f.deployer.rollback().await.unwrap();

    f.assert_live(Color::Blue).await;
    assert_eq!(record.kind, OperationKind::InstantRollback);
    assert_eq!(record.release.unwrap().version, "v1");
    assert_eq!(
        f.containers(),
        ["connect_app1", "connect_app2"],
        "nothing restarted"
    );
    assert!(f.stack.runtime.jobs().is_empty());
    assert!(
        record.duration_ms < 1000,
        "no container start in an instant rollback: {} ms",
        record.duration_ms
    );

    // Rolling forward again is the same call.
    f.deployer.rollback().await.unwrap();
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn instant_rollback_without_standby_is_refused_with_the_way_out() {
    let f = Fixture::with_v1_live().await;
    let err = f.deployer.rollback().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.hint().unwrap().contains("rollback_to"), "{err}");
    f.assert_live(Color::Blue).await;
    let last = f.journal().await.history.pop().unwrap();
    assert_eq!(last.kind, OperationKind::InstantRollback);
    assert!(matches!(last.outcome, Outcome::Failed { .. }));
}

#[tokio::test(start_paused = true)]
async fn instant_rollback_refuses_a_crashed_standby() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    f.stack.runtime.crash("connect_app1");
    let err = f.deployer.rollback().await.unwrap_err();
    // The crashed standby is drift (stopped container) or refusal; either way traffic stays on green.
    assert!(
        matches!(err.kind(), ErrorKind::Drift | ErrorKind::Refused),
        "{err}"
    );
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn full_rollback_redeploys_a_journal_release_through_the_health_gate() {
    let f = Fixture::with_v1_live().await;
    f.deployer.deploy(release("v2")).await.unwrap();
    f.deployer.deploy(release("v3")).await.unwrap(); // blue v3 live, green v2 standby
    f.assert_live(Color::Blue).await;

    let record = f.deployer.rollback_to("v1").await.unwrap();
    assert_eq!(record.kind, OperationKind::FullRollback);
    assert!(
        record
            .steps
            .iter()
            .any(|s| s.step == Step::HealthGate && s.status == StepStatus::Ok)
    );
    f.assert_live(Color::Green).await;
    let journal = f.journal().await;
    assert_eq!(journal.slots[&Color::Green].release.version, "v1");
    assert_eq!(journal.slots[&Color::Blue].release.version, "v3");

    let err = f.deployer.rollback_to("v9").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains("v1"),
        "the error lists known versions: {err}"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_verification_switches_back_to_the_standby() {
    let f = Fixture::with_v1_live().await;
    f.image(
        "v2",
        AppBehavior {
            error_lines: 50,
            ..AppBehavior::default()
        },
    );
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert!(err.to_string().contains("rolled back"), "{err}");
    assert!(err.to_string().contains("50 error lines"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"]);
    let last = f.journal().await.history.pop().unwrap();
    assert!(
        matches!(
            last.outcome,
            Outcome::RolledBack {
                step: Step::Verify,
                ..
            }
        ),
        "{:?}",
        last.outcome
    );
    assert!(
        last.steps
            .iter()
            .any(|s| s.step == Step::SwitchBack && s.status == StepStatus::Ok)
    );
}

/// Serves every connection to `port` on the in-memory server with `status`, as the new color's app would.
fn answer_http(f: &Fixture, port: u16, status: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conns = f.stack.host.listen(connect_core::host::Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port,
    });
    tokio::spawn(async move {
        while let Some(mut c) = conns.recv().await {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await;
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = c.write_all(answer.as_bytes()).await;
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_release_whose_smoke_path_answers_5xx_is_rolled_back() {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.app.smoke_paths = vec!["/".into()];
    let f = Fixture::with_config(config);
    answer_http(&f, 3000, 200);
    f.deployer.deploy(release("v1")).await.unwrap();
    answer_http(&f, 3001, 502);

    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unhealthy);
    assert!(
        err.to_string().contains("GET / on port 3001 answered 502"),
        "{err}"
    );
    f.assert_live(Color::Blue).await;
    let last = f.journal().await.history.last().cloned().unwrap();
    assert_eq!(last.outcome.failed_step(), Some(Step::Verify));

    // verify_color on its own reports the same check.
    let report = f
        .deployer
        .verify_color(Color::Green, std::time::SystemTime::now())
        .await
        .unwrap();
    let smoke = report.checks.iter().find(|c| c.name == "smoke /").unwrap();
    assert_eq!(smoke.status, connect_core::engine::CheckStatus::Fail, "{smoke:?}");
}
