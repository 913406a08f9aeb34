//! The state of continuous database backups in preflight and status (issue 17.1), on the in-memory stack.

mod common;

use common::{Fixture, release};
use connect_core::database::ContinuousBackupState;
use connect_core::engine::CheckStatus;

fn state(archive_failing: bool, full: bool, archived_age_s: u64) -> ContinuousBackupState {
    ContinuousBackupState {
        stanza: "connect".into(),
        last_archived_wal: Some("000000010000000000000007".into()),
        last_archived_age_s: Some(archived_age_s),
        archive_failing,
        last_full_backup: full.then(|| "20261206-081500F".into()),
        last_full_age_s: full.then_some(3600),
        last_backup: full.then(|| "20261206-081500F".into()),
        last_backup_age_s: full.then_some(3600),
        backups: usize::from(full),
        recoverable_from_unix: None,
    }
}

fn verdict(report: &connect_core::vocabulary::CheckReport) -> Option<CheckStatus> {
    report
        .checks
        .iter()
        .find(|c| c.name == "continuous backup")
        .map(|c| c.status)
}

#[tokio::test(start_paused = true)]
async fn preflight_and_status_show_the_continuous_backup_state() {
    let f = Fixture::new();
    // Without continuous backups there is no such check, and status has nothing to say.
    assert_eq!(verdict(&f.deployer.preflight().await.unwrap()), None);
    assert_eq!(f.deployer.status().await.unwrap().continuous_backup, None);

    f.stack
        .cluster
        .set_continuous_backup(Some(state(false, true, 30)));
    assert_eq!(
        verdict(&f.deployer.preflight().await.unwrap()),
        Some(CheckStatus::Pass)
    );
    let status = f.deployer.status().await.unwrap();
    assert_eq!(
        status
            .continuous_backup
            .as_ref()
            .and_then(|s| s.last_full_backup.as_deref()),
        Some("20261206-081500F")
    );

    // Quiet for longer than the runbook's RPO: a warning, the deploy goes on.
    f.stack
        .cluster
        .set_continuous_backup(Some(state(false, true, 3600)));
    assert_eq!(
        verdict(&f.deployer.preflight().await.unwrap()),
        Some(CheckStatus::Warn)
    );
    f.deployer
        .deploy(release("v1"))
        .await
        .expect("a warning does not stop a deploy");

    // Archiving failing, or no base backup to start a recovery from: preflight fails and nothing deploys.
    for broken in [state(true, true, 30), state(false, false, 30)] {
        f.stack.cluster.set_continuous_backup(Some(broken));
        assert_eq!(
            verdict(&f.deployer.preflight().await.unwrap()),
            Some(CheckStatus::Fail)
        );
        let err = f.deployer.deploy(release("v2")).await.unwrap_err();
        assert!(err.to_string().contains("continuous backup"), "{err}");
        f.assert_live(connect_core::model::Color::Blue).await;
    }
}
