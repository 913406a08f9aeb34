//! Cluster health, switchover, restore points, migrations and bad input.

use std::time::Duration;

use crate::common::{self, LEADERSHIP, app_database, cluster};
use connect_core::ErrorKind;
use connect_core::database::{DatabaseCluster, DatabaseClusterExt, Role};
use connect_core::testing::free_port;
use connect_db::migrations::{MigrationState, MigrationTool, check_migrations};
use connect_db::{HealthCheck, Patroni, PgTarget, Postgres, Readiness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reports_one_leader_a_streaming_replica_and_health() {
    let Some(c) = cluster("cluster_health").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = c.client("postgres");
    let members = db.members().await.expect("members");
    assert_eq!(members.len(), 2, "{members:?}");
    let leader = db.leader().await.expect("leader");
    let replica = members.iter().find(|m| m.role == Role::Replica).expect("replica");
    assert!(replica.is_running(), "{replica:?}");
    // Other tests of this binary write meanwhile, so Patroni's lag figure need not be 0 at this instant: the
    // replica reports a lag, and it catches up with the leader's current WAL position.
    assert!(replica.lag_bytes.is_some(), "{replica:?}");
    let caught_up = db
        .wait_replicas_caught_up(Duration::from_secs(60))
        .await
        .expect("caught up");
    assert!(caught_up.iter().any(|m| m.name == replica.name), "{caught_up:?}");
    assert!(leader.timeline.is_some_and(|t| t >= 1));

    let patroni = db.patroni();
    let cl = patroni.cluster().await.expect("cluster");
    let leader_api = cl
        .iter()
        .find(|m| m.member.name == leader.name)
        .and_then(|m| m.api_url.clone())
        .expect("api");
    let replica_api = cl
        .iter()
        .find(|m| m.member.name == replica.name)
        .and_then(|m| m.api_url.clone())
        .expect("api");
    assert!(
        patroni
            .health(&leader_api, HealthCheck::Primary)
            .await
            .expect("primary")
    );
    assert!(
        !patroni
            .health(&replica_api, HealthCheck::Primary)
            .await
            .expect("primary")
    );
    assert!(
        patroni
            .health(&replica_api, HealthCheck::Replica)
            .await
            .expect("replica")
    );
    assert!(
        patroni
            .health(&replica_api, HealthCheck::ReplicaWithLag(1 << 20))
            .await
            .expect("lag")
    );
    assert!(
        patroni
            .health(&leader_api, HealthCheck::ReadOnly)
            .await
            .expect("read-only")
    );
    for check in [HealthCheck::Health, HealthCheck::Liveness, HealthCheck::Readiness] {
        assert!(
            patroni.health(&leader_api, check.clone()).await.expect("health"),
            "{check:?}"
        );
    }
    let status = patroni.node_status(&leader_api).await.expect("/patroni");
    assert_eq!(status["role"], "master", "Patroni 3 says master: {status}");

    let pg = db.leader_postgres().await.expect("leader pg");
    assert_eq!(pg.readiness().await, Readiness::Accepting);
    assert!(!pg.is_in_recovery().await.expect("recovery"));
    let lags = pg.replication().await.expect("pg_stat_replication");
    assert_eq!(lags.len(), 1, "{lags:?}");
    assert_eq!(lags[0].name, replica.name);
    assert_eq!(lags[0].state, "streaming");
    let replica_pg = db.member_postgres(&replica.name).await.expect("replica pg");
    assert!(replica_pg.is_in_recovery().await.expect("recovery"));
    assert_eq!(
        replica_pg
            .check_query("SELECT count(*) FROM pg_database")
            .await
            .expect("reads on the replica"),
        pg.check_query("SELECT count(*) FROM pg_database")
            .await
            .expect("reads on the leader"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_archiver_is_healthy_after_a_switch_of_wal_file() {
    let Some(c) = cluster("wal_archiver").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let pg = c.client("postgres").leader_postgres().await.expect("leader");
    let before = pg.archiver().await.expect("archiver");
    assert_eq!(before.archive_mode, "on");
    let client = pg.connect().await.expect("connect");
    client
        .batch_execute("CREATE TEMP TABLE t AS SELECT 1; SELECT pg_switch_wal()")
        .await
        .expect("switch wal");
    let archived = connect_core::wait::poll_until(
        "test",
        "archiver",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let pg = pg.clone();
            let n = before.archived_count;
            async move {
                let a = pg.archiver().await?;
                Ok(if a.archived_count > n {
                    Ok(a)
                } else {
                    Err(format!("{a:?}"))
                })
            }
        },
    )
    .await
    .expect("a segment archived");
    assert!(archived.is_healthy(), "{archived:?}");
    assert!(archived.last_archived_wal.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_passes_the_database_conformance_suite() {
    let Some(c) = cluster("database_conformance").await else {
        return;
    };
    let _g = LEADERSHIP.write().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = connect_db::testing::pg_bin("pg_dump");
    let backups = connect_db::backup::BackupConfig::new(dir.path().to_str().expect("utf-8 temp dir"))
        .bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"));
    let db = app_database(c, "conformance", 3).await.with_backups(
        std::sync::Arc::new(connect_core::local::LocalHost::new()),
        backups,
    );
    connect_core::conformance::database_suite(&db).await;
    let kept = std::fs::read_dir(dir.path())
        .expect("backup dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "dump"))
        })
        .count();
    assert_eq!(kept, 2, "the suite's three backups, kept to two on disk");
    assert_eq!(db.check_query().await.expect("check query"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_to_any_replica_leaves_a_cluster_that_takes_writes() {
    let Some(c) = cluster("switchover").await else {
        return;
    };
    let _g = LEADERSHIP.write().await;
    let db = app_database(c, "switchover", 5).await;
    let old = db.leader().await.expect("leader");
    let old_history = db.patroni().history().await.expect("history").len();
    let new = db.switchover(None).await.expect("switchover");
    assert_ne!(new.name, old.name);
    assert!(new.timeline > old.timeline, "{old:?} -> {new:?}");
    // Answering again: the new leader takes writes, the old one streams from it.
    let pg = db.leader_postgres().await.expect("leader");
    pg.connect()
        .await
        .expect("connect")
        .batch_execute("INSERT INTO users (email) VALUES ('after-switch@example.com')")
        .await
        .expect("write on the new leader");
    assert_eq!(db.check_query().await.expect("count"), 6);
    let members = db
        .wait_replicas_caught_up(Duration::from_secs(60))
        .await
        .expect("old leader streams");
    assert!(
        members
            .iter()
            .any(|m| m.name == old.name && m.role == Role::Replica)
    );
    // Patroni writes the timeline history to etcd a few loops after the promotion.
    connect_core::wait::poll_until(
        "test",
        "history",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let h = db.patroni().history().await?;
            Ok(if h.len() > old_history {
                Ok(())
            } else {
                Err(format!("{h:?}"))
            })
        },
    )
    .await
    .expect("history grew");
    // Switching to the member that already leads is refused before anything is posted.
    let e = db.switchover(Some(&new.name)).await.expect_err("already leads");
    assert_eq!(e.kind(), ErrorKind::Refused);
    // Patroni's own refusal, with its words: a switchover "from" a member that does not lead.
    let e = db
        .patroni()
        .switchover_from(&old.name, Some(&new.name))
        .await
        .expect_err("not the leader");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(
        e.message().contains("412") && e.message().contains("leader name does not match"),
        "{e}"
    );
    db.switchover(Some(&old.name)).await.expect("switch back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_points_carry_lsn_and_timeline() {
    let Some(c) = cluster("restore_points").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = c.client("postgres");
    let leader = db.leader().await.expect("leader");
    let p1 = db.restore_point("deploy-1").await.expect("restore point");
    let p2 = db.restore_point("deploy-2").await.expect("restore point");
    assert!(p1.lsn.contains('/'), "{p1:?}");
    assert_ne!(p1.lsn, p2.lsn);
    assert_eq!(Some(p1.timeline), leader.timeline);
    assert_eq!(
        db.restore_point(&"x".repeat(64)).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_unfinished_migration_is_refused_by_name_with_its_logs() {
    let Some(c) = cluster("migrations").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "migrations", 1).await;
    let target = common::leader_target(&db).await;
    assert!(check_migrations(&target).await.expect("no tables yet").is_empty());
    let client = Postgres::new(target.clone()).connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
               finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text,
               rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(),
               applied_steps_count integer NOT NULL DEFAULT 0);
             INSERT INTO _prisma_migrations VALUES ('1', 'c1', now(), '20251001_init', NULL, NULL, now() - interval '1 day', 1);",
        )
        .await
        .expect("prisma table");
    let before = check_migrations(&target).await.expect("clean");
    assert_eq!(before[0].tool, MigrationTool::Prisma);
    assert_eq!(before[0].applied(), ["20251001_init"]);

    client
        .batch_execute(
            "INSERT INTO _prisma_migrations VALUES ('2', 'c2', NULL, '20251013_add_sessions',
               'Database error: relation \"sessions\" already exists', NULL, now(), 0);",
        )
        .await
        .expect("failed row");
    let e = check_migrations(&target)
        .await
        .expect_err("a failed migration blocks");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.target().contains("20251013_add_sessions"), "{e}");
    assert!(
        e.message().contains("relation \"sessions\" already exists"),
        "{e}"
    );
    assert!(e.hint().is_some_and(|h| h.contains("migrate resolve")), "{e}");

    // Marked rolled back, it no longer blocks; a row with no end and no log is unfinished and does.
    client
        .batch_execute(
            "UPDATE _prisma_migrations SET rolled_back_at = now() WHERE id = '2';
             INSERT INTO _prisma_migrations VALUES ('3', 'c3', NULL, '20251014_backfill', NULL, NULL, now(), 0);",
        )
        .await
        .expect("rows");
    let e = check_migrations(&target).await.expect_err("unfinished blocks");
    assert!(e.message().contains("20251014_backfill is unfinished"), "{e}");
    client
        .batch_execute(
            "UPDATE _prisma_migrations SET finished_at = now(), applied_steps_count = 1 WHERE id = '3'",
        )
        .await
        .expect("finish");
    let after = check_migrations(&target).await.expect("clean again");
    assert_eq!(after[0].applied_since(&before[0]), ["20251014_backfill"]);
    assert!(
        after[0]
            .migrations
            .iter()
            .any(|m| m.state == MigrationState::RolledBack)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_and_flyway_failures_are_refused_too() {
    let Some(c) = cluster("migrations_sqlx_flyway").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "migrations_other", 1).await;
    let target = common::leader_target(&db).await;
    let client = Postgres::new(target.clone()).connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
               installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
               checksum bytea NOT NULL, execution_time bigint NOT NULL);
             INSERT INTO _sqlx_migrations VALUES (1, 'init', now(), true, '\\x00', 1), (2, 'add index', now(), false, '\\x00', 1);",
        )
        .await
        .expect("sqlx table");
    let e = check_migrations(&target).await.expect_err("sqlx failure blocks");
    assert!(e.target().contains("_sqlx_migrations/2_add index"), "{e}");
    client
        .batch_execute(
            "DELETE FROM _sqlx_migrations WHERE version = 2;
             CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50),
               description varchar(200) NOT NULL, type varchar(20) NOT NULL, script varchar(1000) NOT NULL,
               checksum int, installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(),
               execution_time int NOT NULL, success boolean NOT NULL);
             INSERT INTO flyway_schema_history VALUES (1, '1', 'init', 'SQL', 'V1__init.sql', 0, 'app', now(), 1, true),
               (2, '2', 'drop legacy', 'SQL', 'V2__drop_legacy.sql', 0, 'app', now(), 1, false);",
        )
        .await
        .expect("flyway table");
    let e = check_migrations(&target)
        .await
        .expect_err("flyway failure blocks");
    assert!(e.target().contains("flyway_schema_history/2_drop legacy"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("flyway repair")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_permission_denied() {
    let Some(c) = cluster("wrong_credentials").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let leader = c.client("postgres").leader_postgres().await.expect("leader");
    let bad = Postgres::new(leader.target().clone().password("not-the-password"));
    let e = bad.check_query("SELECT 1").await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.message().contains("password authentication failed"), "{e}");
    // pg_isready says the server is up all the same.
    assert_eq!(bad.readiness().await, Readiness::Accepting);
    let missing = Postgres::new(leader.target().database("no_such_db"));
    assert_eq!(
        missing.check_query("SELECT 1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let e = c
        .client("postgres")
        .with_check_query("SELECT 'x'")
        .check_query()
        .await
        .expect_err("not a number");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn patroni_and_postgres_unreachable_are_unavailable() {
    let port = free_port();
    let p = Patroni::new(&[format!("http://127.0.0.1:{port}")]).expect("client");
    let e = p.members().await.expect_err("nobody there");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert_eq!(
        p.switchover(None).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert_eq!(
        Patroni::new::<&str>(&[]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        Patroni::new(&["127.0.0.1:8008"]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let pg = Postgres::new(PgTarget::new("postgres", "postgres").at("127.0.0.1", port));
    assert_eq!(pg.readiness().await, Readiness::NoResponse);
    assert_eq!(
        pg.check_query("SELECT 1").await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_reload_through_patroni() {
    let Some(c) = cluster("restart_reload").await else {
        return;
    };
    // A restarted replica stops streaming for a moment: keep other tests out.
    let _g = LEADERSHIP.write().await;
    let db = c.client("postgres");
    let replica = db
        .members()
        .await
        .expect("members")
        .into_iter()
        .find(|m| m.role == Role::Replica)
        .expect("replica");
    let pg = db.member_postgres(&replica.name).await.expect("replica pg");
    let started = |pg: Postgres| async move {
        pg.check_query("SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8")
            .await
            .expect("start time")
    };
    let before = started(pg.clone()).await;
    db.patroni().reload(&replica.name).await.expect("reload");
    db.patroni().restart(&replica.name).await.expect("restart");
    let after = started(pg.clone()).await;
    assert!(after > before, "a new postmaster: {before} -> {after}");
    let reloaded = db
        .patroni()
        .node_status(
            &c.nodes
                .iter()
                .find(|n| n.name == replica.name)
                .expect("node")
                .rest_url(),
        )
        .await
        .expect("/patroni");
    assert_eq!(reloaded["state"], "running", "{reloaded}");
    assert_eq!(
        db.patroni().restart("no-such-member").await.unwrap_err().kind(),
        ErrorKind::Refused
    );
    db.wait_replicas_caught_up(Duration::from_secs(60))
        .await
        .expect("streaming again");
}
