//! Continuous backups, point-in-time recovery and whole-server recovery of a ~1 GB database (`pgbench -i`
//! into the app's database) on the real local stack (etcd + two Patroni nodes of PostgreSQL 15, HAProxy,
//! Redis, the demo app in Docker, all through sshd), with pgBackRest's repository in a directory of its own
//! (the second disk).
//!
//! 1. PITR: a full backup, every table's rows and checksum, a restore point, a destructive migration
//!    (`DELETE` a tenth of the accounts, `DROP COLUMN`), then recovery to the restore point: `pitr_s` from the
//!    call until the leader takes writes at the point (pause, stop, restore, replay, leader key), and
//!    `pitr_reformed_s` until the replica is rebuilt and streaming too; checked by the checksums being equal.
//! 2. RPO: rows written one by one while the archive timeout closes segments, the database destroyed (both
//!    postmasters SIGKILLed, both data directories removed), recovery to the latest: `rows_lost` and `rpo_s`
//!    (the age of the oldest lost row at the loss; 0 when none was lost).
//! 3. Whole-server recovery (issue 17 item 4): a new full backup and a backup set (`connect-ops backup-all`,
//!    copied off the host), the server lost (its database destroyed, its config file gone), a second, fresh
//!    stack started, then `connect-ops recover --yes` onto it: `recover_s` is the recovery's own time (its
//!    `took_ms`: configs, PITR to the latest, Redis, uploads, journal, deploy, verify), checked by every
//!    table's rows and checksum being the lost server's and the app answering.
//!
//! `cargo bench -p connect-examples --bench recover` (as root, with the programs `scripts/test.sh`
//! installs; `CONNECT_BENCH_DB_MB` for another size, `CONNECT_BENCH_ARCHIVE_TIMEOUT_S` for another archive
//! timeout, 10 by default). The last line is JSON: `{"db_mb", "rpo_s", "pitr_s", "pitr_reformed_s",
//! "recover_s", "rows_lost"}`.
//! Goals: PITR < 30 s per GB; rows lost only within the archive timeout; whole recovery < 2 minutes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::database::DatabaseCluster;
use connect_core::{Host, LocalHost};
use connect_db::pitr::{BackupKind, RecoveryTarget};
use connect_db::testing::{PG_PASSWORD, pg_bin};
use connect_examples::stack::{DATABASE, Stack, StackOptions, runbook};
use connect_examples::testing::{connect_ops_json, request};

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
    let Some(old) = Stack::start(StackOptions::new("bench_recover_old")).await else {
        eprintln!("the local stack's programs are missing; nothing measured");
        return;
    };
    let deployer = old.deployer().expect("deploy config");
    runbook::bring_up_v1(&old, &deployer)
        .await
        .expect("v1 live on the server to lose");
    let cluster = &old.cluster;
    let host: Arc<dyn Host> = Arc::new(LocalHost::new());
    let pitr_config = cluster.pitr_config(archive_timeout);
    let db = old.database().with_continuous_backups(host, pitr_config.clone());
    let leader = db.leader_postgres().await.expect("leader");

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
        .args(["-i", "-q", "-s", &scale.to_string(), DATABASE])
        .output()
        .expect("pgbench");
    assert!(
        out.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bench_pg = db.leader_postgres().await.expect("leader");
    let size = bench_pg
        .check_query(&format!("SELECT pg_database_size('{DATABASE}')"))
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

    // 3. Whole-server recovery onto a fresh stack, from a new full backup and a backup set copied off the host.
    let work = tempfile::tempdir().expect("temp dir");
    let offhost = work.path().join("offhost");
    let app_conf = work.path().join("etc/connect/app.conf");
    std::fs::create_dir_all(app_conf.parent().expect("a parent")).expect("config dir");
    std::fs::write(&app_conf, "# the app's rendered config\nworkers = 4\n").expect("config");
    let old_toml = work.path().join("old.toml");
    let repo = pitr_config.repo_path.clone();
    std::fs::write(
        &old_toml,
        old.recovery_toml(&pitr_config, &repo, &offhost, &[&app_conf]),
    )
    .expect("old.toml");
    let t = Instant::now();
    let full = db.base_backup(BackupKind::Full).await.expect("full backup");
    println!(
        "full backup {} after the recoveries: {:.1} s",
        full.label,
        t.elapsed().as_secs_f64()
    );
    let env = [("CONNECT_E2E_PG_PASSWORD", PG_PASSWORD)];
    let t = Instant::now();
    let set = connect_ops_json(&old_toml, &["backup-all"], &env);
    assert_eq!(set.code, Some(0), "backup-all: {}", set.stderr);
    println!(
        "backup-all (set and off-host copy): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let before = db.table_checksums().await.expect("checksums before the loss");
    cluster.lose_data().await.expect("the server is lost");
    std::fs::remove_file(&app_conf).expect("the config is lost");

    let t = Instant::now();
    let new = Stack::start(StackOptions::new("bench_recover_new"))
        .await
        .expect("a second, fresh stack");
    new.releases.ship("v1").await.expect("v1 on the fresh server");
    println!("fresh stack started: {:.1} s", t.elapsed().as_secs_f64());
    let new_toml = work.path().join("new.toml");
    std::fs::write(
        &new_toml,
        new.recovery_toml(
            &new.cluster.pitr_config(archive_timeout),
            &repo,
            &offhost,
            &[&app_conf],
        ),
    )
    .expect("new.toml");
    let t = Instant::now();
    let run = connect_ops_json(&new_toml, &["recover", "--yes"], &env);
    let wall = t.elapsed();
    assert_eq!(run.code, Some(0), "recover: {}", run.stderr);
    let report = run.lines.last().expect("the recovery's report");
    let recover = Duration::from_millis(report["took_ms"].as_u64().expect("took_ms"));
    for step in report["steps"].as_array().expect("steps") {
        println!(
            "  {:<9} {:>6.1} s  {}",
            step["step"].as_str().unwrap_or("?"),
            step["took_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            step["detail"].as_str().unwrap_or("")
        );
    }
    let after = new.database().table_checksums().await.expect("checksums after");
    assert_eq!(after, before, "every row of the lost server is on the new one");
    let version = request(new.http_addr(), "GET", "/version", "")
        .await
        .expect("the app answers");
    assert!(
        String::from_utf8_lossy(&version.body).contains("v1"),
        "{version:?}"
    );
    println!(
        "whole-server recovery: {:.1} s (the command {:.1} s); checksums equal, v1 serving",
        recover.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!(
        "{}",
        serde_json::json!({
            "db_mb": measured_mb.round(),
            "rpo_s": (rpo.as_secs_f64() * 10.0).round() / 10.0,
            "pitr_s": (pitr.to_writable.as_secs_f64() * 10.0).round() / 10.0,
            "pitr_reformed_s": (pitr.took.as_secs_f64() * 10.0).round() / 10.0,
            "recover_s": (recover.as_secs_f64() * 10.0).round() / 10.0,
            "rows_lost": lost.len(),
        })
    );
}
