//! The runbook's safety net around a migration, inside the deploy: the migration table checked before (a
//! failed or unfinished row refuses) and after (exit 0 is not enough), a verified backup recorded in the
//! operation's record, kept to the policy's number, and what happens when any of it fails.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{Fixture, config, release};
use connect_core::ErrorKind;
use connect_core::database::{DatabaseCluster, Member, RestorePoint};
use connect_core::engine::{Backends, DeployConfig, Deployer, Step, StepStatus};
use connect_core::memory::{AppBehavior, MemoryCluster};
use connect_core::migrations::{Migration, MigrationState, MigrationTable, MigrationTool};
use connect_core::model::Color;

fn row(name: &str, state: MigrationState, logs: Option<&str>) -> Migration {
    Migration {
        name: name.into(),
        state,
        logs: logs.map(str::to_string),
        started_unix: None,
    }
}

fn prisma(rows: Vec<Migration>) -> Vec<MigrationTable> {
    vec![MigrationTable {
        tool: MigrationTool::Prisma,
        migrations: rows,
    }]
}

/// Makes the migration's one-off container leave `tables` behind, as a real migrator writes its table.
fn migration_leaves(f: &Fixture, tables: Vec<MigrationTable>) {
    let cluster = f.stack.cluster.clone();
    f.stack.faults().on_call(move |_, operation, _| {
        if operation == "runtime.run_once" {
            cluster.set_migration_tables(tables.clone());
        }
    });
}

fn step_status(record: &connect_core::engine::OperationRecord, step: Step) -> StepStatus {
    record
        .steps
        .iter()
        .find(|s| s.step == step)
        .unwrap_or_else(|| panic!("no {step} in {record:?}"))
        .status
}

#[tokio::test(start_paused = true)]
async fn a_failed_migration_left_by_an_earlier_run_refuses_before_anything_changes() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    let points = f.stack.cluster.restore_points().len();
    let backups = f.stack.cluster.backups().len();
    f.stack.cluster.set_migration_tables(prisma(vec![
        row("20260101_create_visits", MigrationState::Applied, None),
        row(
            "20260102_add_index",
            MigrationState::Failed,
            Some("ERROR: relation \"visits_idx\" already exists"),
        ),
    ]));

    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let text = err.to_string();
    assert!(text.contains("20260102_add_index failed"), "{text}");
    assert!(
        text.contains("visits_idx\" already exists"),
        "the migration's log is quoted: {text}"
    );
    assert!(err.hint().unwrap().contains("prisma migrate resolve"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"], "nothing was started");
    assert_eq!(
        f.stack.cluster.restore_points().len(),
        points,
        "no restore point was made"
    );
    assert_eq!(f.stack.cluster.backups().len(), backups, "no backup was taken");
    assert!(
        f.stack
            .runtime
            .jobs()
            .iter()
            .filter(|j| j.image == release("v2").image)
            .count()
            == 0,
        "no migration ran"
    );
}

#[tokio::test(start_paused = true)]
async fn a_migration_that_exits_0_with_a_failed_row_stops_the_deploy_before_traffic_moves() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    migration_leaves(
        &f,
        prisma(vec![row(
            "20260201_add_sessions",
            MigrationState::Failed,
            Some("ERROR: column \"token\" contains null values"),
        )]),
    );

    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    let text = err.to_string();
    assert!(text.contains("exited 0, but the migration table says"), "{text}");
    assert!(text.contains("20260201_add_sessions failed"), "{text}");
    assert!(text.contains("contains null values"), "{text}");
    f.assert_live(Color::Blue).await;
    let journal = f.journal().await;
    let record = journal.history.last().unwrap();
    assert_eq!(step_status(record, Step::Migrate), StepStatus::Failed);
    assert!(
        record.backup.is_some(),
        "the backup taken before it is on the record: {record:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_good_migration_names_what_it_applied_and_the_backup_is_on_the_record() {
    let f = Fixture::with_migration();
    f.stack
        .cluster
        .set_applied_migrations(&["20260101_create_visits"]);
    f.deployer.deploy(release("v1")).await.unwrap();
    migration_leaves(
        &f,
        prisma(vec![
            row("20260101_create_visits", MigrationState::Applied, None),
            row("20260201_add_sessions", MigrationState::Applied, None),
        ]),
    );

    let record = f.deployer.deploy(release("v2")).await.unwrap();
    f.assert_live(Color::Green).await;
    let migrate = record.steps.iter().find(|s| s.step == Step::Migrate).unwrap();
    assert_eq!(migrate.detail, "applied 20260201_add_sessions");
    let check = record
        .steps
        .iter()
        .find(|s| s.step == Step::CheckMigrations)
        .unwrap();
    assert!(
        check.detail.contains("_prisma_migrations: 1 applied"),
        "{check:?}"
    );

    let backup = record.backup.as_ref().expect("a backup before the migration");
    let kept = f.stack.cluster.backups();
    assert_eq!(kept.last().unwrap().sha256, backup.sha256);
    assert_eq!(backup.sha256.len(), 64, "{backup:?}");
    assert!(
        backup.path.contains(&record.id),
        "named after the operation: {backup:?}"
    );
    let journal = f.journal().await;
    assert_eq!(
        journal.history.last().unwrap().backup.as_ref(),
        Some(backup),
        "the journal keeps it"
    );
    let order: Vec<Step> = record.steps.iter().map(|s| s.step).collect();
    let at = |s: Step| order.iter().position(|x| *x == s).unwrap();
    assert!(at(Step::CheckMigrations) < at(Step::RestorePoint));
    assert!(at(Step::RestorePoint) < at(Step::Backup));
    assert!(at(Step::Backup) < at(Step::Migrate));
}

#[tokio::test(start_paused = true)]
async fn backups_are_kept_to_the_policys_number() {
    let mut c = config(true);
    c.policy.backup.keep = 2;
    let f = Fixture::with_config(c);
    let mut records = Vec::new();
    for v in ["v1", "v2", "v3"] {
        records.push(f.deployer.deploy(release(v)).await.unwrap());
    }
    let kept: Vec<String> = f.stack.cluster.backups().into_iter().map(|b| b.path).collect();
    let taken: Vec<String> = records.iter().map(|r| r.backup.clone().unwrap().path).collect();
    assert_eq!(kept, taken[1..], "the two newest are kept");
    assert_eq!(
        records[2].backup.as_ref().unwrap().pruned,
        [taken[0].clone()],
        "the third removed the first"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_migration_the_policy_decides_whether_to_back_up() {
    let f = Fixture::new();
    let record = f.deployer.deploy(release("v1")).await.unwrap();
    assert_eq!(step_status(&record, Step::Backup), StepStatus::Skipped);
    assert!(record.backup.is_none());

    let mut c = config(false);
    c.policy.backup.every_deploy = true;
    let f = Fixture::with_config(c);
    let record = f.deployer.deploy(release("v1")).await.unwrap();
    assert_eq!(step_status(&record, Step::Backup), StepStatus::Ok);
    assert_eq!(step_status(&record, Step::Migrate), StepStatus::Skipped);
    assert_eq!(f.stack.cluster.backups().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_backup_stops_the_deploy_before_the_migration() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    f.stack
        .cluster
        .faults()
        .fail("database.backup", ErrorKind::Failed);

    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"]);
    assert!(
        !f.stack
            .runtime
            .jobs()
            .iter()
            .any(|j| j.image == release("v2").image),
        "no migration ran without its backup"
    );
}

/// A cluster that is not set up to take backups: the memory cluster with the trait's default `backup`.
#[derive(Debug)]
struct NoBackups(MemoryCluster);

#[async_trait]
impl DatabaseCluster for NoBackups {
    async fn members(&self) -> connect_core::Result<Vec<Member>> {
        self.0.members().await
    }
    async fn switchover(&self, candidate: Option<&str>) -> connect_core::Result<Member> {
        self.0.switchover(candidate).await
    }
    async fn restore_point(&self, name: &str) -> connect_core::Result<RestorePoint> {
        self.0.restore_point(name).await
    }
    async fn check_query(&self) -> connect_core::Result<i64> {
        self.0.check_query().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_cluster_that_cannot_back_up_refuses_a_migration_the_policy_wants_backed_up() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    let backends = Backends {
        database: Arc::new(NoBackups(f.stack.cluster.clone())),
        ..f.stack.backends()
    };
    let deployer = Deployer::new(backends.clone(), config(true)).unwrap();
    let err = deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.hint().unwrap().contains("with_backups"), "{err}");
    f.assert_live(Color::Blue).await;

    // The operator's explicit choice: no backup before migrations.
    let mut c = config(true);
    c.policy.backup.before_migration = false;
    let record = Deployer::new(backends, c)
        .unwrap()
        .deploy(release("v2"))
        .await
        .unwrap();
    assert_eq!(step_status(&record, Step::Backup), StepStatus::Skipped);
    f.assert_live(Color::Green).await;
}

const DIR: &str = "/app/prisma/migrations";

/// v1 and v2 with a migrations directory; v2 adds `20260201_drop_legacy`, whose SQL is `v2_sql`.
fn with_migration_files(f: &Fixture, v2_sql: &str) {
    let create = (
        "/app/prisma/migrations/20260101_create_users/migration.sql",
        "CREATE TABLE users (id int, legacy text);",
    );
    f.stack.runtime.add_image_files(&release("v1").image, &[create]);
    f.stack.runtime.add_image_files(
        &release("v2").image,
        &[
            create,
            (
                "/app/prisma/migrations/20260201_drop_legacy/migration.sql",
                v2_sql,
            ),
        ],
    );
    f.stack.cluster.set_applied_migrations(&["20260101_create_users"]);
}

fn linting(allow_destructive: bool) -> DeployConfig {
    let mut c = config(true);
    c.app.migrations_dir = Some(DIR.into());
    c.policy.allow_destructive_migrations = allow_destructive;
    c
}

#[tokio::test(start_paused = true)]
async fn a_destructive_pending_migration_under_a_live_old_color_is_refused_before_anything_changes() {
    let f = Fixture::with_config(linting(false));
    with_migration_files(
        &f,
        "-- the old color still reads it\nALTER TABLE users\n  DROP COLUMN legacy;\n",
    );
    f.deployer.deploy(release("v1")).await.unwrap();
    let (points, backups) = (
        f.stack.cluster.restore_points().len(),
        f.stack.cluster.backups().len(),
    );

    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("1 of the release's 2 migrations pending"),
        "only the new one is linted: {text}"
    );
    assert!(
        text.contains("20260201_drop_legacy (20260201_drop_legacy/migration.sql) line 2"),
        "{text}"
    );
    assert!(
        text.contains("DROP COLUMN legacy"),
        "the statement is quoted: {text}"
    );
    assert!(err.hint().unwrap().contains("expand/contract"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"], "nothing was started");
    assert_eq!(f.stack.cluster.restore_points().len(), points, "no restore point");
    assert_eq!(f.stack.cluster.backups().len(), backups, "no backup");
}

#[tokio::test(start_paused = true)]
async fn a_destructive_migration_goes_through_when_allowed_or_when_no_old_color_runs() {
    let drop = "ALTER TABLE users DROP COLUMN legacy;";
    let f = Fixture::with_config(linting(true));
    with_migration_files(&f, drop);
    f.deployer.deploy(release("v1")).await.unwrap();
    let record = f.deployer.deploy(release("v2")).await.unwrap();
    let check = record
        .steps
        .iter()
        .find(|s| s.step == Step::CheckMigrations)
        .unwrap();
    assert!(
        check.detail.contains("destructive (allowed by the policy)"),
        "{check:?}"
    );
    f.assert_live(Color::Green).await;

    // A first deploy: nothing serves the old code, so there is nothing to break.
    let f = Fixture::with_config(linting(false));
    with_migration_files(&f, drop);
    let record = f.deployer.deploy(release("v2")).await.unwrap();
    let check = record
        .steps
        .iter()
        .find(|s| s.step == Step::CheckMigrations)
        .unwrap();
    assert!(
        check.detail.contains("no old color runs against the database"),
        "{check:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_additive_migration_passes_the_lint_and_a_missing_directory_is_named() {
    let f = Fixture::with_config(linting(false));
    with_migration_files(
        &f,
        "ALTER TABLE users ADD COLUMN email text; CREATE INDEX users_email ON users (email);",
    );
    f.deployer.deploy(release("v1")).await.unwrap();
    let record = f.deployer.deploy(release("v2")).await.unwrap();
    let check = record
        .steps
        .iter()
        .find(|s| s.step == Step::CheckMigrations)
        .unwrap();
    assert!(
        check
            .detail
            .ends_with("1 of the release's 2 migrations pending, none destructive"),
        "{check:?}"
    );

    // A release whose directory holds only the tool's lock file has no migrations yet: nothing to lint.
    let v4 = f.image("v4", AppBehavior::default());
    let lock_file = format!("{DIR}/migration_lock.toml");
    f.stack
        .runtime
        .add_image_files(&v4.image, &[(&lock_file, "provider = \"postgresql\"\n")]);
    let record = f.deployer.deploy(v4).await.unwrap();
    let check = record
        .steps
        .iter()
        .find(|s| s.step == Step::CheckMigrations)
        .unwrap();
    assert!(check.detail.contains("no migrations yet"), "{check:?}");

    let err = f.deployer.deploy(release("v3")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("/app/prisma/migrations"), "{err}");
    assert!(err.hint().unwrap().contains("migrations_dir"), "{err}");
    f.assert_live(Color::Blue).await;
}
