//! The demo app against a real PostgreSQL 15 and Redis 7 on 127.0.0.1: the main route's query and call, and
//! `connect-demo-app migrate` recording in `_prisma_migrations` as Prisma does, failures included.
//! Skips loudly without PostgreSQL or Redis, fails with `CONNECT_REAL_TESTS=1`.

use std::path::{Path, PathBuf};
use std::process::Output;

use connect_examples::testing::{DemoApp, Postgres, RedisServer, request};

const BIN: &str = env!("CARGO_BIN_EXE_connect-demo-app");

fn migrate(url: &str, dir: Option<&Path>) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("migrate")
        .env("DATABASE_URL", url)
        .env_remove("MIGRATIONS_DIR");
    if let Some(dir) = dir {
        cmd.arg(dir);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn migrations_dir(migrations: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "connect-migrations-{}-{}",
        std::process::id(),
        migrations.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for (name, sql) in migrations {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("migration.sql"), sql).unwrap();
    }
    std::fs::write(dir.join("migration_lock.toml"), "provider = \"postgresql\"\n").unwrap();
    dir
}

#[tokio::test]
async fn the_main_route_queries_postgresql_and_calls_redis() {
    let test = "the_main_route_queries_postgresql_and_calls_redis";
    let (Some(pg), Some(redis)) = (
        Postgres::start(test).await.unwrap(),
        RedisServer::start(test).await.unwrap(),
    ) else {
        return;
    };
    let db_url = pg.url("postgres");
    let redis_url = redis.url();
    let app = DemoApp::start(
        Path::new(BIN),
        &[("DATABASE_URL", &db_url), ("REDIS_URL", &redis_url)],
    )
    .await
    .unwrap();
    for hit in 1..=2 {
        let main = request(app.addr(), "GET", "/", "").await.unwrap();
        let body = String::from_utf8_lossy(&main.body).into_owned();
        assert_eq!(main.status, 200, "{body}");
        assert!(
            body.contains("Connect") && body.contains("database: ok, PostgreSQL 15"),
            "{body}"
        );
        assert!(body.contains(&format!("redis: ok, hit {hit}")), "{body}");
    }
    assert_eq!(app.error_lines(), 0, "{:?}", app.stderr_lines());

    // Redis gone: the main route fails with 500 and an error line, health stays a process check.
    drop(redis);
    let main = request(app.addr(), "GET", "/", "").await.unwrap();
    assert_eq!(main.status, 500, "{}", String::from_utf8_lossy(&main.body));
    assert_eq!(
        request(app.addr(), "GET", "/api/health", "")
            .await
            .unwrap()
            .status,
        200
    );
    connect_core::wait::poll_until(
        "count error lines",
        "demo app",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(10),
        || {
            let n = app.error_lines();
            async move {
                Ok(if n == 1 {
                    Ok(())
                } else {
                    Err(format!("{n} error lines"))
                })
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn migrate_records_each_migration_as_prisma_does() {
    let Some(pg) = Postgres::start("migrate_records_each_migration_as_prisma_does")
        .await
        .unwrap()
    else {
        return;
    };
    let url = pg.url("postgres");
    let client = pg.client("postgres").await.unwrap();

    // The embedded migration, then nothing left to do.
    let out = migrate(&url, None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Applied migration 20260101000000_create_visits"),
        "{}",
        text(&out)
    );
    let out = migrate(&url, None);
    assert!(
        out.status.success() && text(&out).contains("No pending migrations"),
        "{}",
        text(&out)
    );
    client
        .execute("INSERT INTO visits (path) VALUES ('/')", &[])
        .await
        .unwrap();

    // A directory: the embedded one is recorded already, the next one applies, the one after fails.
    let embedded = connect_examples::demo_app::embedded_migrations();
    let dir = migrations_dir(&[
        (&embedded[0].name, &embedded[0].sql),
        (
            "20260201000000_add_referrer",
            "ALTER TABLE visits ADD COLUMN referrer TEXT;",
        ),
        (
            "20260301000000_broken",
            "CREATE TABLE half_made (id INT);\nALTER TABLE no_such_table ADD COLUMN x INT;",
        ),
    ]);
    let out = migrate(&url, Some(&dir));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("20260301000000_broken") && text(&out).contains("no_such_table"),
        "{}",
        text(&out)
    );

    let rows = client
        .query(
            r#"SELECT migration_name, checksum, finished_at IS NOT NULL, rolled_back_at IS NULL, applied_steps_count, logs
               FROM _prisma_migrations ORDER BY started_at"#,
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String, bool, bool, i32, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].2, rows[0].4),
        ("20260101000000_create_visits", true, 1)
    );
    assert_eq!(rows[0].1, embedded[0].checksum());
    assert_eq!(
        (rows[1].0.as_str(), rows[1].2, rows[1].4),
        ("20260201000000_add_referrer", true, 1)
    );
    let failed = &rows[2];
    assert_eq!(
        (failed.0.as_str(), failed.2, failed.3, failed.4),
        ("20260301000000_broken", false, true, 0)
    );
    assert!(
        failed.5.as_deref().is_some_and(|l| l.contains("no_such_table")),
        "{failed:?}"
    );
    // The failing script ran as one transaction: nothing of it stayed, the data before it did.
    let half: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'half_made'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(half, 0);
    let visits: i64 = client
        .query_one("SELECT count(*) FROM visits WHERE referrer IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(visits, 1);

    // As Prisma's P3009: while a failed migration is recorded, nothing else is applied.
    let fixed = migrations_dir(&[
        ("20260401000000_fine", "CREATE TABLE fine (id INT);"),
        ("20260301000000_broken", "CREATE TABLE half_made (id INT);"),
    ]);
    let out = migrate(&url, Some(&fixed));
    assert!(
        !out.status.success() && text(&out).contains("P3009"),
        "{}",
        text(&out)
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM _prisma_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 3);

    // Resolved as `prisma migrate resolve --rolled-back` would, the run goes on.
    client
        .execute(
            "UPDATE _prisma_migrations SET rolled_back_at = now() WHERE finished_at IS NULL",
            &[],
        )
        .await
        .unwrap();
    let out = migrate(&url, Some(&fixed));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("20260301000000_broken") && text(&out).contains("20260401000000_fine"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(fixed);

    // No database: a non-zero exit naming the problem, no panic.
    let out = migrate("postgresql://postgres@127.0.0.1:1/postgres", None);
    assert!(
        !out.status.success() && text(&out).contains("ERROR"),
        "{}",
        text(&out)
    );
}
