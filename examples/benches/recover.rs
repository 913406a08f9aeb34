//! Continuous backups and point-in-time recovery of a ~1 GB database (`pgbench -i`) on the real etcd + two
//! Patroni nodes of PostgreSQL 15, with pgBackRest's repository in a directory of its own (the second disk).
//!
//! 1. PITR: a full backup, every table's rows and checksum, a restore point, a destructive migration
//!    (`DELETE` a tenth of the accounts, `DROP COLUMN`), then recovery to the restore point: `pitr_s` from the
//!    call until the leader takes writes at the point (pause, stop, restore, replay, leader key), and
//!    `pitr_reformed_s` until the replica is rebuilt and streaming too; checked by the checksums being equal.
//! 2. RPO: rows written one by one while the archive timeout closes segments, the database destroyed (both
//!    postmasters SIGKILLed, both data directories removed), recovery to the latest: `rows_lost` and `rpo_s`
//!    (the age of the oldest lost row at the loss; 0 when none was lost).
//!
//! `cargo bench -p connect-examples --bench recover` (as root, with the programs `scripts/test.sh`
//! installs; `CONNECT_BENCH_DB_MB` for another size, `CONNECT_BENCH_ARCHIVE_TIMEOUT_S` for another archive
//! timeout, 10 by default). The last line is JSON: `{"db_mb", "rpo_s", "pitr_s", "pitr_reformed_s", "recover_s",
//! "rows_lost"}`.
//! `recover_s` (a whole server recovered from its backups, issue 17 item 4) is not measured here: null.
//! Goals: PITR < 30 s per GB; rows lost only within the archive timeout.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::LocalHost;
use connect_core::database::DatabaseCluster;
use connect_db::pitr::{BackupKind, RecoveryTarget};
use connect_db::testing::{PG_PASSWORD, TestCluster, pg_bin};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("recover: run with `cargo bench -p connect-examples --bench recover`");
        return;
    }
    let db_mb = env_u64("CONNECT_BENCH_DB_MB", 1024);
    let archive_timeout = Duration::from_secs(env_u64("CONNECT_BENCH_ARCHIVE_TIMEOUT_S", 10));
    let Some(cluster) = TestCluster::start("bench_recover", Default::default()).await else {
        eprintln!("etcd, Patroni or PostgreSQL 15 is missing; nothing measured");
        return;
    };
    let host = Arc::new(LocalHost::new());
    let admin = cluster.client("postgres");
    let leader = admin.leader_postgres().await.expect("leader");
    leader
        .connect()
        .await
        .expect("connect")
        .batch_execute("CREATE DATABASE bench")
        .await
        .expect("create database");
    let db = cluster
        .client("bench")
        .with_continuous_backups(host, cluster.pitr_config(archive_timeout));

    // pgbench's scale 1 is ~15 MB on disk.
    let scale = (db_mb / 15).max(1);
    let t = Instant::now();
    let target = leader.target();
    let out = std::process::Command::new(pg_bin("pgbench"))
        .env("PGPASSWORD", PG_PASSWORD)
        .args([
            "-h",
            &target.host,
            "-p",
            &target.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-i", "-q", "-s", &scale.to_string(), "bench"])
        .output()
        .expect("pgbench");
    assert!(
        out.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bench_pg = db.leader_postgres().await.expect("leader");
    let size = bench_pg
        .check_query("SELECT pg_database_size('bench')")
        .await
        .expect("size");
    let measured_mb = size as f64 / 1_048_576.0;
    println!(
        "pgbench -i -s {scale}: {measured_mb:.0} MB in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    db.configure_continuous_backups().await.expect("pitr setup");
    println!(
        "setup (archive_command through Patroni, stanza, check): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let full = db.base_backup(BackupKind::Full).await.expect("full backup");
    println!(
        "full backup {}: {:.1} s, {} MB in the repository",
        full.label,
        t.elapsed().as_secs_f64(),
        full.repo_bytes / 1_048_576
    );

    // 1. PITR to a deploy's restore point after a destructive migration.
    let t = Instant::now();
    let before = db.table_checksums().await.expect("checksums");
    println!(
        "checksums of {} tables: {:.1} s",
        before.len(),
        t.elapsed().as_secs_f64()
    );
    let point = db
        .restore_point("connect-bench-migration")
        .await
        .expect("restore point");
    bench_pg
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "SET statement_timeout = 0; DELETE FROM pgbench_accounts WHERE aid % 10 = 0;
             ALTER TABLE pgbench_branches DROP COLUMN filler;",
        )
        .await
        .expect("destructive migration");
    let pitr = db
        .recover(&RecoveryTarget::RestorePoint {
            name: point.name.clone(),
            lsn: Some(point.lsn.clone()),
        })
        .await
        .expect("recover to the restore point");
    let after = db.table_checksums().await.expect("checksums after");
    assert_eq!(
        after, before,
        "the recovery brought back every row from before the migration"
    );
    println!(
        "PITR to {}: {:.1} s (restore {:.1} s, replay {:.1} s, writable after {:.1} s, replica rebuilt in {:.1} s); checksums equal",
        point.name,
        pitr.took.as_secs_f64(),
        pitr.restore.as_secs_f64(),
        pitr.replay.as_secs_f64(),
        pitr.to_writable.as_secs_f64(),
        pitr.rebuild.as_secs_f64()
    );

    // 2. RPO: continuous writes, the database destroyed, recovery to the latest.
    let pg = db.leader_postgres().await.expect("leader");
    let client = pg.connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())",
        )
        .await
        .expect("ledger");
    let stop = Arc::new(tokio::sync::Notify::new());
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acked: Vec<(i64, Instant)> = Vec::new();
            for id in 1_i64.. {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                tokio::select! {
                    r = client.execute("INSERT INTO ledger (id) VALUES ($1)", &params) => match r {
                        Ok(_) => acked.push((id, Instant::now())),
                        Err(_) => break,
                    },
                    _ = stop.notified() => break,
                }
            }
            acked
        })
    };
    let start = pg.archiver().await.expect("archiver").archived_count;
    connect_core::wait::poll_until(
        "bench",
        "archiver",
        archive_timeout * 6,
        Duration::from_millis(500),
        || async {
            Ok(match pg.archiver().await {
                Ok(a) if a.archived_count >= start + 2 => Ok(()),
                Ok(a) => Err(format!("{} archived", a.archived_count - start)),
                Err(e) => Err(e.to_string()),
            })
        },
    )
    .await
    .expect("segments archived by the timeout");
    cluster.lose_data().await.expect("lose the data");
    let lost_at = Instant::now();
    stop.notify_one();
    let acked = writer.await.expect("writer");
    let latest = db
        .recover(&RecoveryTarget::Latest)
        .await
        .expect("recover to the latest");
    let present: BTreeSet<i64> = db
        .leader_postgres()
        .await
        .expect("leader")
        .connect()
        .await
        .expect("connect")
        .query("SELECT id FROM ledger", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<Duration> = acked
        .iter()
        .filter(|(id, _)| !present.contains(id))
        .map(|(_, t)| lost_at.duration_since(*t))
        .collect();
    let rpo = lost.iter().max().copied().unwrap_or_default();
    println!(
        "RPO: {} of {} acknowledged rows lost, the oldest {:.1} s old (archive_timeout {} s); recovery to the latest {:.1} s (writable after {:.1} s)",
        lost.len(),
        acked.len(),
        rpo.as_secs_f64(),
        archive_timeout.as_secs(),
        latest.took.as_secs_f64(),
        latest.to_writable.as_secs_f64()
    );
    println!("recover_s is whole-server recovery (issue 17 item 4): not measured here");
    println!(
        "{}",
        serde_json::json!({
            "db_mb": measured_mb.round(),
            "rpo_s": (rpo.as_secs_f64() * 10.0).round() / 10.0,
            "pitr_s": (pitr.to_writable.as_secs_f64() * 10.0).round() / 10.0,
            "pitr_reformed_s": (pitr.took.as_secs_f64() * 10.0).round() / 10.0,
            "recover_s": null,
            "rows_lost": lost.len(),
        })
    );
}
