//! Continuous backups and point-in-time recovery against real etcd + two Patroni nodes + pgBackRest: one
//! cluster for this binary, set up once (WAL archiving through Patroni, one full backup); the tests recover
//! the whole cluster, so they take turns.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::DatabaseCluster;
use connect_core::LocalHost;
use connect_core::database::DatabaseClusterExt;
use connect_core::testing::require_program;
use connect_core::vocabulary::CheckStatus;
use connect_db::PatroniCluster;
use connect_db::pitr::{BackupKind, RecoveryTarget, TableChecksum};
use connect_db::testing::{TestCluster, leader_client};
use tokio::sync::{Mutex, MutexGuard, OnceCell};

/// The archive timeout of the tests: the RPO a lost server may cost.
const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(5);

struct Fixture {
    cluster: Mutex<TestCluster>,
}

static FIXTURE: OnceCell<Option<Fixture>> = OnceCell::const_new();

async fn fixture(test: &str) -> Option<&'static Fixture> {
    FIXTURE
        .get_or_init(|| async {
            require_program(test, "pgbackrest", &[])?;
            let cluster = TestCluster::start(test, Default::default()).await?;
            let db = client(&cluster, "postgres");
            let set_up = db.configure_continuous_backups().await.expect("configure");
            assert!(set_up.checked && set_up.archive_command.contains("archive-push"));
            let full = db.base_backup(BackupKind::Full).await.expect("full backup");
            assert_eq!(full.kind, "full");
            Some(Fixture {
                cluster: Mutex::new(cluster),
            })
        })
        .await
        .as_ref()
}

fn client(c: &TestCluster, db: &str) -> PatroniCluster {
    c.client(db)
        .with_continuous_backups(Arc::new(LocalHost::new()), c.pitr_config(ARCHIVE_TIMEOUT))
}

async fn create_database(c: &TestCluster, name: &str, sql: &str) -> PatroniCluster {
    c.fresh_database(name).await.expect("create database");
    let app = client(c, name);
    let db = leader_client(&app).await.expect("connect");
    db.batch_execute(sql).await.expect("schema and rows");
    app
}

/// The cluster, taken for one test, and a fresh database `name` made by `sql`, with its checksums before the
/// test changes anything; `None` when skipping.
async fn prepared(test: &str, name: &str, sql: &str) -> Option<Prepared> {
    let cluster = fixture(test).await?.cluster.lock().await;
    let app = create_database(&cluster, name, sql).await;
    let before = app.table_checksums().await.expect("checksums before");
    Some(Prepared { cluster, app, before })
}

struct Prepared {
    cluster: MutexGuard<'static, TestCluster>,
    app: PatroniCluster,
    before: Vec<TableChecksum>,
}

/// A recovery keeps the data directory it replaced only until the recovered one leads.
fn assert_nothing_left_aside(c: &TestCluster) {
    for node in &c.nodes {
        let aside = format!("{}.connect-before-recovery", node.data_dir().display());
        assert!(!std::path::Path::new(&aside).exists(), "{aside} left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_to_a_restore_point_undoes_a_destructive_migration() {
    let Some(Prepared {
        cluster: c,
        app,
        before,
    }) = prepared(
        "recovery_to_a_restore_point_undoes_a_destructive_migration",
        "shop",
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz DEFAULT now());
         INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 5000) g;
         CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint, total numeric);
         INSERT INTO orders (user_id, total) SELECT g % 5000 + 1, g * 1.5 FROM generate_series(1, 20000) g;",
    )
    .await
    else {
        return;
    };
    assert_eq!(before.iter().map(|t| t.rows).sum::<i64>(), 25_000, "{before:?}");

    // The deploy's Backup step: a restore point, then the migration that destroys data.
    let point = app
        .restore_point("connect-pitr-test")
        .await
        .expect("restore point");
    let pg = leader_client(&app).await.expect("connect");
    pg.batch_execute(
        "ALTER TABLE users DROP COLUMN email; DELETE FROM orders WHERE id % 2 = 0;
         INSERT INTO orders (user_id, total) VALUES (1, 1);",
    )
    .await
    .expect("destructive migration");
    assert_ne!(app.table_checksums().await.expect("after migration"), before);

    let state = app.continuous_backup().await.expect("state").expect("configured");
    assert!(
        state.last_full_backup.is_some() && !state.archive_failing,
        "{state:?}"
    );
    assert_ne!(state.verdict(Duration::from_secs(900)).0, CheckStatus::Fail);

    let report = app
        .recover(&RecoveryTarget::RestorePoint {
            name: point.name.clone(),
            lsn: Some(point.lsn.clone()),
        })
        .await
        .expect("recover to the restore point");
    eprintln!("recovered to {}: {report:?}", point.name);
    let after = app.table_checksums().await.expect("checksums after");
    assert_eq!(
        after, before,
        "every row from before the migration is back, and nothing after it"
    );
    assert_eq!(report.rebuilt.len(), 1);
    assert_nothing_left_aside(&c);
    c.wait_healthy(Duration::from_secs(120))
        .await
        .expect("replica streams again");
    // The new timeline archives too: a restore point on it is reachable by the next recovery.
    app.base_backup(BackupKind::Incr)
        .await
        .expect("incremental backup after the recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_to_the_latest_after_the_database_is_destroyed_loses_at_most_the_archive_interval() {
    let test = "recovery_to_the_latest_after_the_database_is_destroyed_loses_at_most_the_archive_interval";
    let Some(f) = fixture(test).await else {
        return;
    };
    let c = f.cluster.lock().await;
    let app = create_database(
        &c,
        "ledger",
        "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())",
    )
    .await;
    // Rows written one by one until the database is destroyed: each acknowledged commit with its time.
    let writer_pg = app.leader_postgres().await.expect("leader");
    let stop = Arc::new(tokio::sync::Notify::new());
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let db = writer_pg.connect().await.expect("connect");
            let mut acked: Vec<(i64, Instant)> = Vec::new();
            for id in 1_i64.. {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                let insert = db.execute("INSERT INTO events (id) VALUES ($1)", &params);
                tokio::select! {
                    r = insert => match r {
                        Ok(_) => acked.push((id, Instant::now())),
                        Err(_) => break,
                    },
                    _ = stop.notified() => break,
                }
            }
            acked
        })
    };
    // Writes until the archive timeout has closed two more segments (not by size: these rows are small).
    let leader = app.leader_postgres().await.expect("leader");
    let start = leader.archiver().await.expect("archiver").archived_count;
    connect_core::wait::poll_until(
        "test",
        "archiver",
        6 * ARCHIVE_TIMEOUT,
        Duration::from_millis(500),
        || async {
            Ok(match leader.archiver().await {
                Ok(a) if a.archived_count >= start + 2 => Ok(()),
                Ok(a) => Err(format!("{} archived", a.archived_count - start)),
                Err(e) => Err(e.to_string()),
            })
        },
    )
    .await
    .expect("segments archived by the timeout");
    // The server's database is lost; the repository (the second disk) survives. A lost row's age is counted to
    // the moment the loss begins: rows acknowledged while the files were being removed count as age zero.
    let destroyed = Instant::now();
    c.lose_data().await.expect("lose the data");
    stop.notify_one();
    let acked = writer.await.expect("writer");
    assert!(acked.len() > 100, "the writer wrote {} rows", acked.len());

    let report = app
        .recover(&RecoveryTarget::Latest)
        .await
        .expect("recover to the latest");
    let db = leader_client(&app).await.expect("connect");
    let present: BTreeSet<i64> = db
        .query("SELECT id FROM events", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<&(i64, Instant)> = acked.iter().filter(|(id, _)| !present.contains(id)).collect();
    let oldest_lost = lost.iter().map(|(_, t)| destroyed.duration_since(*t)).max();
    eprintln!(
        "RPO: {} of {} acknowledged rows lost, the oldest written {oldest_lost:?} before the loss (archive_timeout {ARCHIVE_TIMEOUT:?}); {report:?}",
        lost.len(),
        acked.len()
    );
    // Only rows of the last archive interval (plus the archiver's own latency: a pgbackrest process per
    // segment) may be gone. At a load average of 17 the oldest lost row was 8.4 s old (the removal counted).
    assert!(
        oldest_lost.is_none_or(|age| age <= ARCHIVE_TIMEOUT + Duration::from_secs(5)),
        "lost rows older than the archive interval: {oldest_lost:?}"
    );
    assert!(
        present.len() <= acked.len() + 1,
        "no row that was never acknowledged beyond the one in flight"
    );
    c.wait_healthy(Duration::from_secs(120))
        .await
        .expect("replica streams again");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_to_a_time_keeps_what_was_committed_before_it() {
    let Some(Prepared {
        cluster: c,
        app,
        before,
    }) = prepared(
        "recovery_to_a_time_keeps_what_was_committed_before_it",
        "clock",
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text);
         INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 1000) g;",
    )
    .await
    else {
        return;
    };
    let pg = leader_client(&app).await.expect("connect");
    // A recovery to a time starts from a backup that ended in an earlier second (pgBackRest's rule): the
    // fixture's backup may have ended a moment ago, so the target waits for the server's clock to pass it.
    let newest_stop = app
        .continuous_backup_info()
        .await
        .expect("info")
        .backups
        .last()
        .expect("a backup")
        .stop_unix;
    connect_core::wait::poll_until(
        "test",
        "the clock",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let now: f64 = pg
                .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
                .await
                .map_err(|e| {
                    connect_core::Error::new(connect_core::ErrorKind::Failed, "test", "clock", e.to_string())
                })?
                .get(0);
            Ok(if now >= (newest_stop + 1) as f64 {
                Ok(())
            } else {
                Err(format!("{now}"))
            })
        },
    )
    .await
    .expect("the server's clock passes the backup");
    // The moment after the first 1000 rows committed, as the server's clock says it.
    let at: String = pg
        .query_one("SELECT clock_timestamp()::text", &[])
        .await
        .expect("time")
        .get(0);
    pg.batch_execute("INSERT INTO notes (body) SELECT 'later' FROM generate_series(1, 500); DELETE FROM notes WHERE id <= 10;")
        .await
        .expect("later writes");
    let report = app
        .recover(&RecoveryTarget::Time(at.clone()))
        .await
        .expect("recover to a time");
    eprintln!("recovered to {at}: {report:?}");
    assert_eq!(app.table_checksums().await.expect("after"), before);
    c.wait_healthy(Duration::from_secs(120))
        .await
        .expect("replica streams again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_that_cannot_reach_its_target_leaves_the_cluster_as_it_was() {
    let Some(Prepared {
        cluster: c,
        app,
        before,
    }) = prepared(
        "a_recovery_that_cannot_reach_its_target_leaves_the_cluster_as_it_was",
        "kept",
        "CREATE TABLE items (id bigserial PRIMARY KEY, body text);
         INSERT INTO items (body) SELECT 'item ' || g FROM generate_series(1, 2000) g;",
    )
    .await
    else {
        return;
    };
    let leader = c.client("postgres").patroni().cluster().await.expect("members");

    // Before every backup: refused while everything runs, nothing paused or stopped.
    let early = app
        .recover(&RecoveryTarget::Time("2001-01-01 00:00:00+00".into()))
        .await
        .expect_err("no backup ends before 2001");
    assert_eq!(early.kind(), connect_core::ErrorKind::NotFound, "{early}");
    assert!(early.message().contains("no backup ended before"), "{early}");
    assert_eq!(app.table_checksums().await.expect("still serving"), before);

    // A restore point never created: the backup is restored, the replay ends without reaching it, and the
    // data directory it replaced is put back.
    let failed = app
        .recover(&RecoveryTarget::RestorePoint {
            name: "connect-never-created".into(),
            lsn: None,
        })
        .await
        .expect_err("a restore point never created is never reached");
    eprintln!("{failed}");
    assert!(
        failed.hint().is_some_and(|h| h.starts_with("nothing changed")),
        "{failed:?}"
    );
    c.wait_healthy(Duration::from_secs(120))
        .await
        .expect("the cluster runs again");
    assert_eq!(
        app.table_checksums().await.expect("after the failed recovery"),
        before,
        "every row is still there"
    );
    let after = c.client("postgres").patroni().cluster().await.expect("members");
    let leaders = |ms: &[connect_db::PatroniMember]| {
        ms.iter()
            .filter(|m| m.member.role == connect_core::database::Role::Leader)
            .map(|m| m.member.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(leaders(&after), leaders(&leader), "the same leader");
    assert_nothing_left_aside(&c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_follows_a_switchover_to_the_other_member() {
    let Some(f) = fixture("archiving_follows_a_switchover_to_the_other_member").await else {
        return;
    };
    let c = f.cluster.lock().await;
    let app = client(&c, "postgres");
    let before = app.leader().await.expect("leader").name;
    let other = app.switchover(None).await.expect("switchover");
    assert_ne!(other.name, before);
    // A backup waits until the new leader's WAL of its end is in the repository: archiving from the member
    // that was a replica when archiving was set up.
    let backup = app
        .base_backup(BackupKind::Incr)
        .await
        .expect("a backup from the new leader");
    let state = app.continuous_backup().await.expect("state").expect("configured");
    assert!(!state.archive_failing, "{state:?}");
    assert_eq!(backup.kind, "incr");
    // Back where it was, for the other tests.
    app.switchover(Some(&before)).await.expect("switchover back");
    c.wait_healthy(Duration::from_secs(120))
        .await
        .expect("replica streams again");
}
