//! Backup and restore of a ~1 GB pgbench database (`pgbench -i -s 70`) on one PostgreSQL 15 server made with
//! initdb (no Patroni: the figures are PostgreSQL's, not the replica's), against the runbook's
//! `psql < dump.sql` on the same data.
//!
//! `cargo bench -p connect-db --bench restore` (set `BENCH_SCALE` for a smaller database, `BENCH_JOBS` for
//! `pg_restore -j`). The last line is
//! JSON: db_mb, backup_s, restore_s, psql_restore_s, restore_point_s.

use std::process::Stdio;
use std::time::Instant;

use connect_core::local::LocalHost;
use connect_db::Postgres;
use connect_db::backup::{BackupConfig, logical_backup};
use connect_db::restore::{RestoreOptions, restore_logical};
use connect_db::testing::{PG_PASSWORD, TestPostgres, pg_bin};

fn pg_tool(program: &str, port: u16) -> std::process::Command {
    let mut c = std::process::Command::new(pg_bin(program));
    c.env("PGPASSWORD", PG_PASSWORD)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"]);
    c
}

fn run(mut c: std::process::Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main]
async fn main() {
    let scale: u32 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(70);
    let Some(pg) = TestPostgres::start("bench_restore").await else {
        eprintln!("PostgreSQL 15 is not installed; nothing measured");
        return;
    };
    let port = pg.port;
    let admin = Postgres::new(pg.login());
    let admin_client = admin.connect().await.expect("connect");
    admin_client
        .batch_execute("CREATE DATABASE bench")
        .await
        .expect("createdb");
    admin_client
        .batch_execute("CREATE DATABASE bench_psql")
        .await
        .expect("createdb");

    let t = Instant::now();
    let mut init = pg_tool("pgbench", port);
    init.args(["-i", "-q", "-s", &scale.to_string(), "bench"]);
    run(init, "pgbench -i");
    println!("pgbench -i -s {scale}: {:.1} s", t.elapsed().as_secs_f64());
    let bench = Postgres::new(pg.login().database("bench"));
    let db_bytes = bench
        .check_query("SELECT pg_database_size('bench')")
        .await
        .expect("size");
    let db_mb = db_bytes as f64 / 1_048_576.0;
    let accounts = bench
        .check_query("SELECT COUNT(*) FROM pgbench_accounts")
        .await
        .expect("count");
    println!("database: {db_mb:.0} MB, {accounts} accounts");

    // Restore point: the median of 5, each including its own connection as a deploy would.
    let mut rp = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        bench
            .restore_point(&format!("bench-{i}"))
            .await
            .expect("restore point");
        rp.push(t.elapsed().as_secs_f64());
    }
    rp.sort_by(f64::total_cmp);
    let restore_point_s = rp[2];
    println!("restore point: {:.4} s (median of 5)", restore_point_s);

    let dir = pg.dir().join("backups");
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let bin = pg_bin("pg_dump");
    let config = BackupConfig::new(&dir_s).bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"));
    let host = LocalHost::new();
    let backup = logical_backup(&host, bench.target(), "bench", &config)
        .await
        .expect("backup");
    let backup_s = backup.took.as_secs_f64();
    println!(
        "backup (pg_dump -Fc + sha256 + pg_restore --list): {backup_s:.1} s, {:.0} MB dump",
        backup.bytes as f64 / 1_048_576.0
    );

    let jobs: u32 = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let options = RestoreOptions {
        jobs,
        ..RestoreOptions::default()
    };
    // Start from a clean slate: pgbench -i's WAL would otherwise be checkpointed during the restore.
    admin_client
        .batch_execute("CHECKPOINT")
        .await
        .expect("checkpoint");
    let report = restore_logical(&host, bench.target(), &backup.path, &config, &options)
        .await
        .expect("restore");
    let restore_s = report.took.as_secs_f64();
    println!(
        "restore (verify + pg_restore --exit-on-error -j{jobs} into a fresh database + swap): {restore_s:.1} s (pg_restore {:.1} s)",
        report.pg_restore_took.as_secs_f64()
    );
    assert_eq!(
        bench
            .check_query("SELECT COUNT(*) FROM pgbench_accounts")
            .await
            .expect("count"),
        accounts
    );
    if let Some(old) = &report.previous_kept_as {
        connect_db::restore::drop_previous(
            &connect_core::local::LocalHost::new(),
            bench.target(),
            "postgres",
            old,
        )
        .await
        .expect("drop previous");
    }

    // The runbook: a plain dump piped into psql, into an empty database.
    let sql = dir.join("dump.sql");
    let mut dump = pg_tool("pg_dump", port);
    dump.args(["-d", "bench", "-f", sql.to_str().expect("utf-8")]);
    run(dump, "pg_dump plain");
    admin_client
        .batch_execute("CHECKPOINT")
        .await
        .expect("checkpoint");
    let t = Instant::now();
    let mut psql = pg_tool("psql", port);
    psql.args(["-q", "-d", "bench_psql"])
        .stdin(std::fs::File::open(&sql).expect("dump.sql"))
        .stdout(Stdio::null());
    run(psql, "psql < dump.sql");
    let psql_restore_s = t.elapsed().as_secs_f64();
    println!("psql < dump.sql (runbook): {psql_restore_s:.1} s");
    let psql_db = Postgres::new(pg.login().database("bench_psql"));
    assert_eq!(
        psql_db
            .check_query("SELECT COUNT(*) FROM pgbench_accounts")
            .await
            .expect("count"),
        accounts
    );

    println!(
        "{}",
        serde_json::json!({
            "db_mb": (db_mb * 10.0).round() / 10.0,
            "backup_s": (backup_s * 100.0).round() / 100.0,
            "restore_s": (restore_s * 100.0).round() / 100.0,
            "psql_restore_s": (psql_restore_s * 100.0).round() / 100.0,
            "restore_point_s": (restore_point_s * 10000.0).round() / 10000.0,
        })
    );
}
