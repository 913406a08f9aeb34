//! Issue 14 on the real stack, on one stack under load: a release with a destructive migration is refused
//! before anything changed (14.3), and a canary whose release breaks at 10 % is rolled back without ever
//! reaching 50 % (14.5), the failed requests counted in that phase only.

use std::net::SocketAddr;
use std::time::Duration;

use connect_core::engine::{Deployer, Event, Outcome, Step};
use connect_core::model::{CanaryPolicy, Color, WatchPolicy};
use connect_core::{ErrorKind, TrafficRouter};
use connect_examples::stack::{StackOptions, runbook};
use connect_examples::testing::request;

use crate::common::{
    assert_journal_true, assert_nothing_half_made, assert_one_healthy_color, load, serial, stop_load, v1_live,
};

/// The destructive migration the refused release brings, after the one v2 applied.
const DROP_PATH: &str = "ALTER TABLE \"visits\" DROP COLUMN \"path\";\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_migration_is_refused_and_a_canary_breaking_at_10_percent_never_reaches_50() {
    let _one = serial().await;
    let Some((stack, _)) = v1_live(StackOptions::new("e2e_safety_net")).await else {
        return;
    };
    let mut config = stack.deploy_config();
    config.app.migrations_dir = Some(connect_examples::demo_image::IMAGE_MIGRATIONS.into());
    let deployer = Deployer::new(stack.backends(), config.clone()).expect("a valid config");
    deployer
        .deploy(stack.release("v2"))
        .await
        .expect("v2 with its migration");
    assert_eq!(
        runbook::applied_migrations(&stack).await.expect("table"),
        ["20260101000000_create_visits"]
    );

    // 14.3: v4 drops a column v2 (live, green) still writes.
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&shipped).expect("the shipped migrations") {
        let entry = entry.expect("entry");
        let to = dir.path().join(entry.file_name());
        std::fs::create_dir_all(&to).expect("dir");
        std::fs::copy(entry.path().join("migration.sql"), to.join("migration.sql")).expect("copy");
    }
    let drop = dir.path().join("20260201000000_drop_visit_path");
    std::fs::create_dir_all(&drop).expect("dir");
    std::fs::write(drop.join("migration.sql"), DROP_PATH).expect("write");
    let v4 = stack.build_release("v4", dir.path()).await.expect("v4 builds");
    let containers = stack.containers().await.expect("containers");
    let load = load(&stack, "refused");
    let err = deployer
        .deploy(v4)
        .await
        .expect_err("a destructive migration is refused");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("20260201000000_drop_visit_path"),
        "names the migration: {shown}"
    );
    assert!(
        shown.to_ascii_uppercase().contains("DROP COLUMN"),
        "names the statement: {shown}"
    );
    assert!(
        err.hint().is_some_and(|h| h.contains("expand/contract")),
        "{err:?}"
    );
    assert_eq!(
        stack.containers().await.expect("containers"),
        containers,
        "nothing started"
    );
    assert_eq!(
        runbook::applied_migrations(&stack).await.expect("table"),
        ["20260101000000_create_visits"],
        "nothing migrated"
    );
    assert!(runbook::table_exists(&stack, "visits").await.expect("visits"));
    let record = deployer
        .journal()
        .await
        .expect("journal")
        .history
        .last()
        .cloned()
        .expect("record");
    assert!(
        matches!(
            record.outcome,
            Outcome::Failed {
                step: Step::CheckMigrations,
                ..
            }
        ),
        "{:?}",
        record.outcome
    );
    assert!(record.backup.is_none(), "refused before the backup");

    // 14.5: v3 goes to blue by 10 %, then 50 %; it breaks at the first sample of the 10 % step.
    let mut canary = config;
    canary.policy.watch = WatchPolicy::new(Duration::from_secs(10), Duration::from_secs(2));
    canary.policy.canary = Some(CanaryPolicy::new(vec![10, 50], Duration::from_secs(20)));
    let blue: SocketAddr = ([127, 0, 0, 1], canary.topology.blue.host_port).into();
    let deployer = Deployer::new(stack.backends(), canary).expect("a valid canary");
    let mut events = deployer.subscribe();
    load.phase("canary 10 %");
    let breaker = async {
        loop {
            match events.recv().await {
                Ok(Event::WatchSample {
                    color: Color::Blue,
                    share_percent: 10,
                    ..
                }) => {
                    load.phase("erroring");
                    let set = request(blue, "POST", "/admin/mode", "erroring")
                        .await
                        .expect("mode");
                    assert_eq!(set.status, 200);
                    return;
                }
                Ok(Event::OperationFinished { .. }) | Err(_) => {
                    panic!("the deploy ended before its first canary sample")
                }
                Ok(_) => {}
            }
        }
    };
    let (deployed, ()) = tokio::join!(deployer.deploy(stack.release("v3")), breaker);
    let mut shares = Vec::new();
    let mut breach = None;
    while let Ok(e) = events.try_recv() {
        if let Event::WatchSample {
            share_percent,
            breach: b,
            ..
        } = e
        {
            shares.push(share_percent);
            breach = breach.or(b);
        }
    }
    let traffic = stop_load(load).await;

    let err = deployed.expect_err("the canary breached");
    assert_eq!(err.kind(), ErrorKind::Unhealthy, "{err}");
    assert!(shares.iter().all(|s| *s == 10), "never past 10 %: {shares:?}");
    let why = breach.expect("a sample reported the breach");
    assert!(why.contains("5xx") || why.contains("error lines"), "{why}");
    for phase in ["refused", "canary 10 %"] {
        let p = traffic.phase(phase).expect("phase");
        assert_eq!(p.failed, 0, "no failed request in {phase}: {p:?}");
    }
    let erroring = traffic.phase("erroring").expect("the erroring phase");
    for reason in erroring.failures.keys() {
        assert_eq!(reason, "status 500", "only the release's own 500s: {erroring:?}");
    }
    eprintln!(
        "safety net: destructive migration refused ({} requests, 0 failed); canary broke at 10 %: {} of {} \
         requests failed with 500 before the rollback ({why})",
        traffic.phase("refused").map_or(0, |p| p.requests),
        erroring.failed,
        erroring.requests
    );
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
    let record = deployer
        .journal()
        .await
        .expect("journal")
        .history
        .last()
        .cloned()
        .expect("record");
    assert!(
        matches!(
            record.outcome,
            Outcome::RolledBack {
                step: Step::Canary,
                ..
            }
        ),
        "{:?}",
        record.outcome
    );
    let weights: Vec<u32> = stack
        .router()
        .servers()
        .await
        .expect("servers")
        .iter()
        .map(|s| s.weight)
        .collect();
    assert_eq!(weights, [100, 100], "HAProxy's weights restored");
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}
