//! The deterministic fault sweep, in the manner of FoundationDB's simulation and TigerBeetle's
//! VOPR: for each operation, count the backend calls of a clean run, then for every call and every fault kind
//! (fails before acting, applies then fails, hangs, the process dies there) run the operation on a fresh
//! in-memory stack, check the invariants (see `invariants.rs`), let a new process run the same operation
//! again, and check them once more. Paused tokio time makes the thousands of cases cost seconds.
//!
//! Each test prints its cases and violations (run with `--nocapture` to see them when it passes) and fails
//! on any violation, unless `SWEEP_REPORT_ONLY=1`, which only prints them.

mod cases;
mod fleet;
mod invariants;
mod report;

use std::time::Duration;

use cases::{CaseReport, KINDS, Op, Scenario, plain, run_case};
use connect_core::model::{CanaryPolicy, DeployPolicy, OldColorPolicy, WatchPolicy};
use connect_core::ship::BuildOn;
use report::report;

const WARM: OldColorPolicy = OldColorPolicy::WarmStandby;

async fn sweep(scenario: Scenario) {
    let CaseReport {
        op_calls,
        mut violations,
    } = run_case(&scenario, None).await;
    let mut cases = 1;
    for i in 1..=op_calls {
        for kind in KINDS {
            violations.extend(run_case(&scenario, Some((i, kind))).await.violations);
            cases += 1;
        }
    }
    report(scenario.name, op_calls, cases, &violations);
    let report_only = std::env::var("SWEEP_REPORT_ONLY").is_ok_and(|v| v == "1");
    assert!(
        report_only || violations.is_empty(),
        "sweep {}: {} violations (listed above; SWEEP_REPORT_ONLY=1 prints them without failing)",
        scenario.name,
        violations.len()
    );
}

#[tokio::test(start_paused = true)]
async fn first_deploy() {
    sweep(Scenario {
        name: "first deploy",
        policy: WARM,
        tuning: plain,
        setup: &[],
        migration: false,
        op: Op::Deploy("v1"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_over_live() {
    sweep(Scenario {
        name: "deploy v2 over v1",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_over_live_and_standby() {
    sweep(Scenario {
        name: "deploy v3 over v2 + standby v1",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1"), Op::Deploy("v2")],
        migration: false,
        op: Op::Deploy("v3"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn instant_rollback() {
    sweep(Scenario {
        name: "instant rollback",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1"), Op::Deploy("v2")],
        migration: false,
        op: Op::Rollback,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn full_rollback() {
    sweep(Scenario {
        name: "full rollback to v1",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1"), Op::Deploy("v2"), Op::Rollback],
        migration: false,
        op: Op::RollbackTo("v1"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn retire_standby() {
    sweep(Scenario {
        name: "retire standby",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1"), Op::Deploy("v2")],
        migration: false,
        op: Op::Retire,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn adopt() {
    sweep(Scenario {
        name: "adopt",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1"), Op::Deploy("v2")],
        migration: false,
        op: Op::Adopt,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_balanced() {
    sweep(Scenario {
        name: "deploy v2 balanced",
        policy: OldColorPolicy::Balanced,
        tuning: plain,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_retire_after() {
    sweep(Scenario {
        name: "deploy v2 retire-after 1h",
        policy: OldColorPolicy::RetireAfter {
            window: Duration::from_secs(3600),
        },
        tuning: plain,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_with_migration() {
    sweep(Scenario {
        name: "deploy v2 over v1 with a migration",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1")],
        migration: true,
        op: Op::Deploy("v2"),
    })
    .await;
}

fn pruning(policy: &mut DeployPolicy) {
    // v1..v3 are on the server from the start, newest first v3, v2: only v1 goes, once it is neither live
    // nor standby.
    policy.keep_releases = Some(2);
}

#[tokio::test(start_paused = true)]
async fn deploy_pruning() {
    sweep(Scenario {
        name: "deploy v3 over v2 + standby v1, keep 2",
        policy: WARM,
        tuning: pruning,
        setup: &[Op::Deploy("v1"), Op::Deploy("v2")],
        migration: false,
        op: Op::Deploy("v3"),
    })
    .await;
}

fn watched(policy: &mut DeployPolicy) {
    policy.watch = WatchPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
}

fn canary(policy: &mut DeployPolicy) {
    policy.watch = WatchPolicy::new(Duration::from_secs(5), Duration::from_secs(5));
    policy.canary = Some(CanaryPolicy::new(vec![10, 50], Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn deploy_watched() {
    sweep(Scenario {
        name: "deploy v2 over v1, watched",
        policy: WARM,
        tuning: watched,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn instant_rollback_watched() {
    sweep(Scenario {
        name: "instant rollback, watched",
        policy: WARM,
        tuning: watched,
        setup: &[Op::Deploy("v1"), Op::Deploy("v2")],
        migration: false,
        op: Op::Rollback,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_canary() {
    sweep(Scenario {
        name: "deploy v2 over v1, canary 10/50",
        policy: WARM,
        tuning: canary,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn maintenance() {
    sweep(Scenario {
        name: "maintenance",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::Maintenance,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_shipping_a_local_image() {
    sweep(Scenario {
        name: "deploy v4 over v1, shipped from a local image",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::DeployFromImage("v4"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn first_deploy_building_locally() {
    sweep(Scenario {
        name: "first deploy of v4, built locally and shipped",
        policy: WARM,
        tuning: plain,
        setup: &[],
        migration: false,
        op: Op::DeployFromContext("v4", BuildOn::Local),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploy_building_on_the_server() {
    sweep(Scenario {
        name: "deploy v4 over v1, built on the server",
        policy: WARM,
        tuning: plain,
        setup: &[Op::Deploy("v1")],
        migration: false,
        op: Op::DeployFromContext("v4", BuildOn::Server),
    })
    .await;
}

#[test]
fn the_unbounded_mark_is_past_every_deadline_of_the_policy() {
    let p = connect_core::model::DeployPolicy::default();
    for (name, d) in [
        ("health", p.health_deadline),
        ("migration", p.migration_deadline),
        ("drain", p.drain_deadline),
        ("router", p.router_deadline),
        ("backup", p.backup.deadline),
    ] {
        assert!(
            cases::UNBOUNDED_AFTER > d,
            "{name} deadline {d:?} is past the sweep's mark"
        );
    }
}
