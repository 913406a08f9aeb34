//! Backups before a migration and restores, with rows compared, and the ways a restore must refuse.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::database::DatabaseCluster;
use connect_core::host::{HostExt, PutOptions};
use connect_core::local::LocalHost;
use connect_db::backup::{BackupConfig, backup_before_migration, list_backups, logical_backup};
use connect_db::restore::{RestoreOptions, drop_previous, restore_logical};
use connect_db::testing::pg_bin;
use connect_db::{PatroniCluster, Postgres};

use crate::common::{LEADERSHIP, app_database, cluster, leader_target};

fn config(dir: &tempfile::TempDir) -> BackupConfig {
    let bin = pg_bin("pg_dump");
    let mut c = BackupConfig::new(dir.path().to_str().expect("utf-8 temp dir"))
        .bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"));
    c.keep = 2;
    c
}

async fn emails(db: &PatroniCluster) -> Vec<String> {
    let pg = db.leader_postgres().await.expect("leader");
    let rows = pg
        .connect()
        .await
        .expect("connect")
        .query("SELECT email FROM users ORDER BY id", &[])
        .await
        .expect("select");
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_brings_the_rows_back_and_the_replica_follows() {
    let Some(c) = cluster("backup_restore").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "shop", 500).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir);
    let host = LocalHost::new();
    let target = leader_target(&db).await;
    let before = emails(&db).await;

    let made = backup_before_migration(&host, &db, &target, "20251013-1400", &cfg)
        .await
        .expect("backup");
    assert_eq!(made.restore_point.name, "connect-20251013-1400");
    assert!(made.restore_point.lsn.contains('/'));
    assert_eq!(made.backup.database, "shop");
    assert!(made.backup.toc_entries > 3, "{:?}", made.backup);
    assert_eq!(made.backup.sha256.len(), 64);
    let sidecar = host
        .read_file(&format!("{}.sha256", made.backup.path))
        .await
        .expect("read")
        .expect("sidecar");
    assert!(String::from_utf8_lossy(&sidecar).starts_with(&made.backup.sha256));

    // The "migration" goes wrong: rows lost, a column dropped.
    let pg = db.leader_postgres().await.expect("leader");
    pg.connect()
        .await
        .expect("connect")
        .batch_execute("DELETE FROM users WHERE id % 2 = 0; ALTER TABLE users DROP COLUMN created_at")
        .await
        .expect("damage");
    assert_eq!(db.check_query().await.expect("count"), 250);

    let report = restore_logical(
        &host,
        &target,
        &made.backup.path,
        &cfg,
        &RestoreOptions::default(),
    )
    .await
    .expect("restore");
    assert_eq!(report.database, "shop");
    assert!(report.took >= report.pg_restore_took && report.took > Duration::ZERO);
    assert_eq!(emails(&db).await, before, "every row is back, in order");
    let kept = report
        .previous_kept_as
        .clone()
        .expect("the damaged database is kept");

    // The replica follows through the WAL.
    db.wait_replicas_caught_up(Duration::from_secs(60))
        .await
        .expect("caught up");
    let replica = db
        .members()
        .await
        .expect("members")
        .into_iter()
        .find(|m| m.role == connect_core::database::Role::Replica)
        .expect("replica");
    let on_replica = db.member_postgres(&replica.name).await.expect("replica pg");
    assert_eq!(
        on_replica
            .check_query("SELECT COUNT(*) FROM users")
            .await
            .expect("count"),
        500
    );
    assert_eq!(
        on_replica.check_query("SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'created_at'").await.expect("column"),
        1
    );
    drop_previous(&host, &target, "postgres", &kept)
        .await
        .expect("drop the kept database");
    assert_eq!(
        drop_previous(&host, &target, "postgres", "shop")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_n_backups_are_kept() {
    let Some(c) = cluster("backup_keep").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "keep", 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir);
    let target = leader_target(&db).await;
    let mut made = Vec::new();
    for deploy in ["d1", "d2", "d3"] {
        let b = backup_before_migration(&LocalHost::new(), &db, &target, deploy, &cfg)
            .await
            .expect("backup");
        made.push(b);
    }
    assert_eq!(made[2].pruned, [made[0].backup.path.clone()]);
    let left = list_backups(&LocalHost::new(), &cfg, "keep").await.expect("list");
    assert_eq!(left, [made[1].backup.path.clone(), made[2].backup.path.clone()]);
    assert!(!std::path::Path::new(&format!("{}.sha256", made[0].backup.path)).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_truncated_tampered_and_foreign_dumps_are_refused_and_the_live_database_stays() {
    let Some(c) = cluster("restore_refusals").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "ledger", 40).await;
    let other = app_database(c, "ledger_other", 7).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir);
    let host = LocalHost::new();
    let target = leader_target(&db).await;
    let good = logical_backup(&host, &target, "good", &cfg)
        .await
        .expect("backup");
    let opts = RestoreOptions::default();
    let base = dir.path().to_str().expect("utf-8");

    // Not a dump at all.
    let garbage = format!("{base}/garbage.dump");
    host.write_file(&garbage, b"PGDMP but not really".to_vec(), PutOptions::default())
        .await
        .expect("write");
    let e = restore_logical(&host, &target, &garbage, &cfg, &opts)
        .await
        .expect_err("corrupt");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");

    // Valid header, data cut off: --list passes, pg_restore --exit-on-error fails.
    let bytes = std::fs::read(&good.path).expect("read dump");
    let truncated = format!("{base}/truncated.dump");
    host.write_file(
        &truncated,
        bytes[..bytes.len() * 2 / 3].to_vec(),
        PutOptions::default(),
    )
    .await
    .expect("write");
    let e = restore_logical(&host, &target, &truncated, &cfg, &opts)
        .await
        .expect_err("truncated");
    assert!(matches!(e.kind(), ErrorKind::Failed | ErrorKind::Corrupt), "{e}");

    // A dump whose bytes no longer match its recorded checksum.
    let tampered = format!("{base}/tampered.dump");
    let mut t = bytes.clone();
    let last = t.len() - 1;
    t[last] ^= 0xff;
    host.write_file(&tampered, t, PutOptions::default())
        .await
        .expect("write");
    host.write_file(
        &format!("{tampered}.sha256"),
        format!("{}  x\n", good.sha256).into_bytes(),
        PutOptions::default(),
    )
    .await
    .expect("write");
    let e = restore_logical(&host, &target, &tampered, &cfg, &opts)
        .await
        .expect_err("tampered");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.message().contains("SHA-256"), "{e}");

    // A good dump of another database.
    let foreign = logical_backup(&host, &leader_target(&other).await, "other", &cfg)
        .await
        .expect("backup");
    let e = restore_logical(&host, &target, &foreign.path, &cfg, &opts)
        .await
        .expect_err("foreign");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.message().contains("ledger_other"), "{e}");

    // Through all of it the live database kept its rows, and no half-restored database is left behind.
    assert_eq!(db.check_query().await.expect("count"), 40);
    let leftovers = Postgres::new(target.database("postgres"))
        .check_query("SELECT COUNT(*) FROM pg_database WHERE datname LIKE 'ledger\\_restoring%' OR datname LIKE 'ledger\\_before%'")
        .await
        .expect("count");
    assert_eq!(leftovers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_with_wrong_credentials_is_permission_denied_and_leaves_no_file() {
    let Some(c) = cluster("backup_wrong_password").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "secret", 1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir);
    let bad = leader_target(&db).await.password("wrong");
    let e = logical_backup(&LocalHost::new(), &bad, "x", &cfg)
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "no dump, no password file left: {left:?}");
    assert_eq!(
        logical_backup(&LocalHost::new(), &bad, "bad id", &cfg)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}
