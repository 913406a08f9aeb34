//! The migration step: its own deadline (never the health gate's), what is reported when it had to be
//! stopped, and a restore point name that fits PostgreSQL for any version.

mod common;

use std::time::Duration;

use common::{Fixture, release};
use connect_core::ErrorKind;
use connect_core::engine::Step;
use connect_core::memory::AppBehavior;
use connect_core::model::{Color, Release};

fn migrating_for(f: &Fixture, version: &str, takes: Duration) -> Release {
    f.image(
        version,
        AppBehavior {
            migration_takes: takes,
            ..AppBehavior::default()
        },
    )
}

#[tokio::test(start_paused = true)]
async fn a_migration_longer_than_the_health_deadline_is_not_cut() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    let health = f.deployer.config().policy.health_deadline;
    let v2 = migrating_for(&f, "v2", health * 5);
    let record = f.deployer.deploy(v2).await.unwrap();
    let migrate = record.steps.iter().find(|s| s.step == Step::Migrate).unwrap();
    assert!(
        migrate.duration_ms >= (health * 5).as_millis() as u64,
        "{migrate:?}"
    );
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn a_migration_past_its_deadline_is_stopped_and_reported_from_the_migration_table() {
    let f = Fixture::with_migration();
    f.deployer.deploy(release("v1")).await.unwrap();
    f.stack
        .cluster
        .set_applied_migrations(&["20260101_create_visits", "20260102_add_index"]);
    let deadline = f.deployer.config().policy.migration_deadline;
    let v2 = migrating_for(&f, "v2", deadline + Duration::from_secs(1));
    let err = f.deployer.deploy(v2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let text = err.to_string();
    assert!(text.contains("migration deadline"), "{text}");
    assert!(
        text.contains("the migration table lists as applied: 20260101_create_visits, 20260102_add_index"),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("migration_deadline"), "{err}");
    f.assert_live(Color::Blue).await;
    assert_eq!(f.containers(), ["connect_app1"], "nothing was started");
}

#[tokio::test(start_paused = true)]
async fn a_release_with_the_longest_version_gets_a_valid_restore_point() {
    let f = Fixture::with_migration();
    let long = Release::new("connect", &"9".repeat(128)).unwrap();
    f.stack.add_image(&long.image, AppBehavior::default());
    let record = f.deployer.deploy(long).await.unwrap();
    let point = record.restore_point.expect("a restore point");
    assert!(point.name.len() <= 63, "{}", point.name);
    assert_eq!(f.stack.cluster.restore_points(), [point]);
}
