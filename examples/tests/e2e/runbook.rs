//! The runbook end to end under load: every phase, zero failed requests, one SSH connection.

use connect_core::engine::Outcome;
use connect_core::model::Color;
use connect_examples::stack::StackOptions;
use connect_examples::stack::runbook::{self, SEED_ROWS, V2_MIGRATION};

use crate::common::{
    assert_journal_true, assert_nothing_half_made, assert_one_healthy_color, print_app_errors, serial,
    v1_live,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_runbook_under_load_loses_no_request() {
    let _one = serial().await;
    let options = StackOptions {
        build_machine: true,
        ..StackOptions::new("e2e_runbook")
    };
    let Some((stack, deployer)) = v1_live(options).await else {
        return;
    };
    let seed = runbook::seed_fingerprint(&stack).await.expect("seed");
    assert_eq!(seed.0, SEED_ROWS);
    assert!(
        runbook::applied_migrations(&stack)
            .await
            .expect("migrations")
            .is_empty()
    );

    let since = std::time::SystemTime::now();
    let (report, traffic) = runbook::run_under_load(&stack, &deployer)
        .await
        .expect("the load starts");
    eprintln!("{traffic}");
    if traffic.total.failed > 0 {
        print_app_errors(&stack, &deployer, since).await;
    }
    let report = report.unwrap_or_else(|e| panic!("the runbook failed: {e}"));
    eprintln!("{report}");

    // v2 shipped only what v1 lacked.
    let transfer = report.transfer.as_ref().expect("shipped from the build machine");
    assert!(
        transfer.layers_sent < transfer.layers_total,
        "only the missing layers move: {transfer:?}"
    );
    // The deploy ran every step and recorded the migration.
    assert_eq!(report.deploy.outcome, Outcome::Succeeded);
    assert_eq!(report.deploy.live_after, Some(Color::Green));
    let point = report.deploy.restore_point.as_ref().expect("a restore point");
    assert!(point.name.starts_with("connect-"), "{point:?}");
    let migrate = report
        .deploy
        .steps
        .iter()
        .find(|s| s.step == connect_core::engine::Step::Migrate)
        .expect("migrate step");
    assert!(migrate.detail.contains(V2_MIGRATION), "{migrate:?}");
    assert_eq!(report.instant_rollback.live_after, Some(Color::Blue));
    assert_eq!(report.full_rollback.live_after, Some(Color::Green));
    assert_eq!(
        report.full_rollback.release.as_ref().map(|r| r.version.as_str()),
        Some("v1")
    );

    // The database is back to the backup: the seed rows exactly, no migration, no visits table.
    assert_eq!(runbook::seed_fingerprint(&stack).await.expect("seed"), seed);
    assert!(
        runbook::applied_migrations(&stack)
            .await
            .expect("migrations")
            .is_empty()
    );
    assert!(!runbook::table_exists(&stack, "visits").await.expect("visits"));

    // Nobody saw an error, in any phase, and every phase had traffic.
    for phase in &traffic.phases {
        assert_eq!(phase.failed, 0, "no failed request in {}: {phase:?}", phase.name);
    }
    for name in ["deploy v2", "instant rollback", "full rollback", "restore"] {
        let p = traffic.phase(name).unwrap_or_else(|| panic!("phase {name}"));
        assert!(p.requests > 0, "{name} was under load: {p:?}");
    }
    assert!(traffic.total.requests > 1000, "{:?}", traffic.total);

    // One SSH connection carried everything.
    assert_eq!(stack.sshd_connections(), 1, "one SSH connection");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}
