//! A restore interrupted after an irreversible step (the fresh database made, the live one
//! offline, the live one renamed aside) leaves a record, and the next call finishes or undoes it: the live
//! name always exists and accepts connections afterwards.

use connect_core::ErrorKind;
use connect_core::local::LocalHost;
use connect_db::backup::{BackupConfig, logical_backup};
use connect_db::restore::{RecoveryAction, RestoreOptions, recover_restore, restore_logical, restore_status};
use connect_db::testing::{arm_failpoint, pg_bin};
use connect_db::{PgTarget, Postgres};

use crate::common::{LEADERSHIP, app_database, cluster, leader_target};

fn config(dir: &tempfile::TempDir) -> BackupConfig {
    let bin = pg_bin("pg_dump");
    BackupConfig::new(dir.path().to_str().expect("utf-8"))
        .bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"))
}

async fn count(target: &PgTarget) -> connect_core::Result<i64> {
    Postgres::new(target.clone())
        .check_query("SELECT COUNT(*) FROM users")
        .await
}

async fn databases_like(target: &PgTarget, pattern: &str) -> i64 {
    Postgres::new(target.database("postgres"))
        .check_query(&format!(
            "SELECT COUNT(*) FROM pg_database WHERE datname LIKE '{pattern}'"
        ))
        .await
        .expect("count")
}

/// Runs a restore until it reaches `point`, then drops it there: what a crash leaves.
async fn restore_interrupted_at(point: &str, target: &PgTarget, dump: &str, cfg: &BackupConfig) {
    let reached = arm_failpoint(point, &target.dbname);
    let host = LocalHost::new();
    let options = RestoreOptions::default();
    tokio::select! {
        r = restore_logical(&host, target, dump, cfg, &options) => panic!("the restore ran past {point}: {r:?}"),
        _ = reached => {}
    }
}

/// The rows of a database a restore renamed aside: it was taken offline before, so it is let in first.
async fn count_kept(target: &PgTarget, kept: &str) -> i64 {
    Postgres::new(target.database("postgres"))
        .connect()
        .await
        .expect("connect")
        .batch_execute(&format!("ALTER DATABASE \"{kept}\" WITH ALLOW_CONNECTIONS true"))
        .await
        .expect("allow");
    count(&target.database(kept)).await.expect("count kept")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_interrupted_at_any_step_is_repaired_by_the_next_call() {
    let Some(c) = cluster("restore_interrupted").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "crashy", 30).await;
    let target = leader_target(&db).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir);
    let host = LocalHost::new();
    let dump = logical_backup(&host, &target, "c1", &cfg)
        .await
        .expect("backup")
        .path;
    // After the backup the live database changes, so "restored" and "left as it was" can be told apart.
    Postgres::new(target.clone())
        .connect()
        .await
        .expect("connect")
        .batch_execute("DELETE FROM users WHERE id > 10")
        .await
        .expect("delete");

    // 1. Stopped while filling the fresh copy: the live database was never touched; the copy is dropped.
    restore_interrupted_at("restore.restoring", &target, &dump, &cfg).await;
    let s = restore_status(&host, &target, &cfg, "postgres")
        .await
        .expect("status")
        .expect("a record");
    assert_eq!(s.action, RecoveryAction::DropFresh, "{s:?}");
    assert_eq!(count(&target).await.expect("live untouched"), 10);
    let done = recover_restore(&host, &target, &cfg, "postgres")
        .await
        .expect("recover")
        .expect("repaired");
    assert_eq!(done.action, RecoveryAction::DropFresh);
    assert_eq!(databases_like(&target, "crashy\\_restoring%").await, 0);
    assert!(
        restore_status(&host, &target, &cfg, "postgres")
            .await
            .expect("status")
            .is_none()
    );

    // 2. Stopped with the live database offline, not yet renamed: it refuses connections...
    restore_interrupted_at("restore.offline", &target, &dump, &cfg).await;
    let e = count(&target).await.expect_err("offline");
    assert!(e.message().contains("55000"), "not accepting connections: {e}");
    let s = restore_status(&host, &target, &cfg, "postgres")
        .await
        .expect("status")
        .expect("a record");
    assert_eq!(s.action, RecoveryAction::PutLiveBack, "{s:?}");
    assert!(s.live_exists && s.fresh_exists && !s.previous_exists);
    // ...until the next restore, which first puts it back, then restores as asked.
    let report = restore_logical(&host, &target, &dump, &cfg, &RestoreOptions::default())
        .await
        .expect("the next restore");
    assert_eq!(count(&target).await.expect("restored"), 30);
    assert_eq!(databases_like(&target, "crashy\\_restoring%").await, 0);
    let kept = report.previous_kept_as.expect("kept");
    assert_eq!(
        count_kept(&target, &kept).await,
        10,
        "the put-back database was the one swapped out"
    );

    // 3. Stopped after the live database was renamed aside: the live name is missing...
    Postgres::new(target.clone())
        .connect()
        .await
        .expect("connect")
        .batch_execute("DELETE FROM users WHERE id > 20")
        .await
        .expect("delete");
    restore_interrupted_at("restore.renamed_aside", &target, &dump, &cfg).await;
    assert_eq!(
        count(&target).await.expect_err("no live name").kind(),
        ErrorKind::NotFound
    );
    let s = restore_status(&host, &target, &cfg, "postgres")
        .await
        .expect("status")
        .expect("a record");
    assert_eq!(s.action, RecoveryAction::FinishSwap, "{s:?}");
    // ...until recover_restore finishes the swap: the restored copy takes the name, the old one is kept.
    recover_restore(&host, &target, &cfg, "postgres")
        .await
        .expect("recover")
        .expect("repaired");
    assert_eq!(count(&target).await.expect("restored and online"), 30);
    assert_eq!(
        count_kept(&target, &s.marker.previous).await,
        20,
        "the old one is kept"
    );
    assert!(
        recover_restore(&host, &target, &cfg, "postgres")
            .await
            .expect("nothing left")
            .is_none()
    );
}
