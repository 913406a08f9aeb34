//! Each fault on its own stack with v1 live under load. Every test ends with traffic on one healthy color, the
//! failed requests the fault itself caused counted (and no other), the journal telling the truth, and nothing
//! half-made left on the server.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::database::DatabaseClusterExt;
use connect_core::engine::{Deployer, Event, OperationKind, Outcome, Step};
use connect_core::model::Color;
use connect_core::wait::poll_until;
use connect_examples::load::LoadReport;
use connect_examples::stack::runbook::{self, V2_MIGRATION};
use connect_examples::stack::{Stack, StackOptions};
use tokio::sync::broadcast::Receiver;

use crate::common::{
    assert_journal_true, assert_nothing_half_made, assert_one_healthy_color, load, serial, stop_load, v1_live,
};

/// Waits until the operation starts `step`; `false` if it finished without getting there.
async fn at_step(events: &mut Receiver<Event>, step: Step) -> bool {
    loop {
        match events.recv().await {
            Ok(Event::StepStarted { step: s }) if s == step => return true,
            Ok(Event::OperationFinished { .. }) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// Asserts that the only failed requests are in `phase` and for `reasons`; returns how many there were.
fn failures_only(report: &LoadReport, phase: &str, reasons: &[&str]) -> u64 {
    for p in &report.phases {
        if p.name != phase {
            assert_eq!(p.failed, 0, "no failed request outside {phase}: {p:?}");
        }
    }
    let p = report.phase(phase).expect("the fault's phase");
    for reason in p.failures.keys() {
        assert!(
            reasons.contains(&reason.as_str()),
            "{phase}: only {reasons:?} may fail, not {reason}: {p:?}"
        );
    }
    p.failed
}

/// The stack's deployer with its config changed by `change`.
fn deployer_with(stack: &Stack, change: impl FnOnce(&mut connect_core::engine::DeployConfig)) -> Deployer {
    let mut config = stack.deploy_config();
    change(&mut config);
    Deployer::new(stack.backends(), config).expect("a valid config")
}

/// The last operation in the journal.
async fn last_record(deployer: &Deployer) -> connect_core::engine::OperationRecord {
    let journal = deployer.journal().await.expect("journal");
    journal.history.last().cloned().expect("an operation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_never_healthy_is_removed_and_traffic_stays_on_blue() {
    let _one = serial().await;
    let Some((stack, _)) = v1_live(StackOptions::new("e2e_never_healthy")).await else {
        return;
    };
    let deployer = deployer_with(&stack, |c| {
        c.app.env.insert("APP_MODE".into(), "unhealthy".into());
        c.policy.health_deadline = Duration::from_secs(4);
    });
    let load = load(&stack, "deploy v2");
    let err = deployer.deploy(stack.release("v2")).await.unwrap_err();
    let traffic = stop_load(load).await;

    assert!(
        matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Unhealthy),
        "{err}"
    );
    assert_eq!(failures_only(&traffic, "deploy v2", &[]), 0);
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Blue);
    let record = last_record(&deployer).await;
    assert_eq!(record.outcome.failed_step(), Some(Step::HealthGate), "{record:?}");
    assert_eq!(
        stack.containers().await.expect("containers"),
        [deployer.config().topology.blue.container.clone()],
        "green's container was removed"
    );
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_failing_verification_is_rolled_back_automatically() {
    let _one = serial().await;
    let Some((stack, _)) = v1_live(StackOptions::new("e2e_failing_verify")).await else {
        return;
    };
    // Healthy by its health endpoint, but its main route answers 500 and logs errors.
    let deployer = deployer_with(&stack, |c| {
        c.app.env.insert("APP_MODE".into(), "erroring".into());
        c.app.smoke_paths = vec!["/".into()];
    });
    let load = load(&stack, "deploy v2");
    let err = deployer.deploy(stack.release("v2")).await.unwrap_err();
    load.phase("after");
    let traffic = stop_load(load).await;

    assert_eq!(err.kind(), ErrorKind::Unhealthy, "{err}");
    assert!(err.to_string().contains("answered 500"), "{err}");
    // The requests green answered between the switch and the rollback are the fault's own.
    let caused = failures_only(&traffic, "deploy v2", &["status 500"]);
    eprintln!("requests failed by the erroring release before the rollback: {caused}");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Blue);
    let record = last_record(&deployer).await;
    assert!(
        matches!(
            record.outcome,
            Outcome::RolledBack {
                step: Step::Verify,
                ..
            }
        ),
        "{record:?}"
    );
    assert_eq!(record.live_after, Some(Color::Blue));
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_connection_cut_mid_deploy_is_ridden_out_or_rerun_once() {
    let _one = serial().await;
    let options = StackOptions {
        cuttable_ssh: true,
        ..StackOptions::new("e2e_ssh_cut")
    };
    let Some((stack, deployer)) = v1_live(options).await else {
        return;
    };
    let load = load(&stack, "deploy v2 (cut)");
    let mut events = deployer.subscribe();
    let (first, reached) = tokio::join!(deployer.deploy(stack.release("v2")), async {
        let reached = at_step(&mut events, Step::HealthGate).await;
        stack.cut_ssh();
        reached
    });
    assert!(reached, "the cut came during the health gate");

    // The SSH connection reconnects and the engine retries what is safe to repeat, so the deploy may ride the
    // cut out. If it did not, the same deploy again, as an operator would re-run the command: refused (naming
    // the holder) while the cut deploy's lock lease runs, then it takes the lock over and settles what the
    // cut deploy left. No manual step either way.
    load.phase("re-run");
    let rerun = match first {
        Ok(record) => {
            eprintln!("the deploy rode out the cut: {:?}", record.outcome);
            Ok(record)
        }
        Err(err) => {
            eprintln!("cut mid-deploy: {err}");
            let lease = deployer.config().policy.lock_lease;
            poll_until(
                "re-run",
                "deploy v2",
                lease * 4,
                Duration::from_millis(500),
                || async {
                    match deployer.deploy(stack.release("v2")).await {
                        Err(e) if e.kind() == ErrorKind::Conflict => {
                            assert!(e.to_string().contains(&deployer.config().holder), "{e}");
                            Ok(Err(e.to_string()))
                        }
                        other => Ok(Ok(other)),
                    }
                },
            )
            .await
            .expect("the lock's lease runs out")
        }
    };
    load.phase("after");
    let traffic = stop_load(load).await;
    let rerun = rerun.unwrap_or_else(|e| panic!("the deploy, or its re-run, deploys: {e}"));

    assert_eq!(rerun.outcome, Outcome::Succeeded);
    assert!(
        stack.sshd_connections() >= 2,
        "the SSH connection was opened again after the cut"
    );
    assert_eq!(failures_only(&traffic, "re-run", &[]), 0);
    assert_eq!(traffic.phase("deploy v2 (cut)").expect("phase").failed, 0);
    assert_eq!(
        runbook::applied_migrations(&stack).await.expect("migrations"),
        [V2_MIGRATION],
        "the migration is recorded once"
    );
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
    let journal = deployer.journal().await.expect("journal");
    let deploys: Vec<&Outcome> = journal
        .history
        .iter()
        .filter(|r| r.kind == OperationKind::Deploy)
        .map(|r| &r.outcome)
        .collect();
    assert_eq!(deploys.last(), Some(&&Outcome::Succeeded), "{deploys:?}");
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}

/// `reload` on the master CLI, waited for until a new worker serves.
async fn reload_by_hand(master: &connect_haproxy::RuntimeApi) -> connect_core::Result<()> {
    let before: Vec<u32> = master.show_proc().await?.workers.iter().map(|w| w.pid).collect();
    master.raw("reload").await?;
    connect_core::wait::poll_until(
        "reload",
        "haproxy master",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            // The master re-executes itself to reload: its socket refuses connections for a moment.
            Ok(match master.show_proc().await {
                Ok(now) if now.workers.iter().any(|w| !before.contains(&w.pid)) => Ok(()),
                Ok(_) => Err(format!("still the old workers {before:?}")),
                Err(e) => Err(e.to_string()),
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_reloaded_by_someone_else_mid_deploy_keeps_the_switch() {
    let _one = serial().await;
    let Some((stack, deployer)) = v1_live(StackOptions::new("e2e_reload")).await else {
        return;
    };
    let load = load(&stack, "deploy v2");
    let mut events = deployer.subscribe();
    let master = stack.haproxy.master();
    let (deployed, reloaded) = tokio::join!(deployer.deploy(stack.release("v2")), async {
        // Right after the switch: the new state exists only in the running worker and the state file. An
        // operator's `reload` on the master CLI (what `systemctl reload haproxy` does) saves nothing first.
        if !at_step(&mut events, Step::Drain).await {
            return None;
        }
        Some(reload_by_hand(&master).await)
    });
    load.phase("after");
    let traffic = stop_load(load).await;

    reloaded
        .expect("the deploy reached the drain")
        .expect("someone else's reload succeeded");
    let record = deployed.unwrap_or_else(|e| panic!("the deploy survives the reload: {e}"));
    assert_eq!(record.outcome, Outcome::Succeeded);
    assert_eq!(failures_only(&traffic, "deploy v2", &[]), 0);
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patroni_leader_killed_during_the_migration_stops_the_deploy_before_the_switch() {
    let _one = serial().await;
    let Some((mut stack, deployer)) = v1_live(StackOptions::new("e2e_leader_killed")).await else {
        return;
    };
    let seed = runbook::seed_fingerprint(&stack).await.expect("seed");
    let database = stack.database();
    let leader = database.leader().await.expect("a leader");
    // What the replica has not received yet would be lost with the leader: that is replication's promise,
    // not the deploy's. The test starts from a caught-up replica.
    database
        .wait_replicas_caught_up(Duration::from_secs(30))
        .await
        .expect("the replica caught up");
    let load = load(&stack, "deploy v2");
    let mut events = deployer.subscribe();
    let v2 = stack.release("v2");
    let cluster = &mut stack.cluster;
    let (deployed, reached) = tokio::join!(deployer.deploy(v2), async {
        let reached = at_step(&mut events, Step::Migrate).await;
        if reached {
            cluster.node_mut(&leader.name).expect("the leader's node").crash();
        }
        reached
    });
    assert!(reached, "the leader died during the migration");
    let err = deployed.expect_err("the migration cannot run without a leader");
    eprintln!("leader killed during the migration: {err}");
    let record = last_record(&deployer).await;
    assert_eq!(record.outcome.failed_step(), Some(Step::Migrate), "{record:?}");
    assert!(
        !record.steps.iter().any(|s| s.step == Step::Switch),
        "no switch was tried"
    );

    // Patroni promotes the replica once the dead leader's key expires; the app's connection string follows.
    let promoted = connect_db::testing::wait_promotion(&database, &leader, Duration::from_secs(90))
        .await
        .expect("the replica is promoted");
    eprintln!("{} promoted, timeline {:?}", promoted.name, promoted.timeline);
    load.phase("after failover");
    let rerun = deployer.deploy(stack.release("v2")).await;
    load.phase("after");
    let traffic = stop_load(load).await;

    // Blue's main route queries the database: while there was no leader, it answered 500. Those are the
    // fault's; nothing else failed.
    let caused = failures_only(&traffic, "deploy v2", &["status 500", "status 503"]);
    eprintln!("requests failed while the cluster had no leader: {caused}");
    assert_eq!(
        runbook::seed_fingerprint(&stack).await.expect("seed"),
        seed,
        "nothing lost"
    );
    let rerun = rerun.unwrap_or_else(|e| panic!("deploying on the new leader: {e}"));
    assert_eq!(rerun.outcome, Outcome::Succeeded);
    assert_eq!(
        runbook::applied_migrations(&stack).await.expect("migrations"),
        [V2_MIGRATION]
    );
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}

/// A small tmpfs, unmounted on drop: a disk that can really be filled.
struct SmallDisk(tempfile::TempDir, u64);

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs needs root: {status}");
        SmallDisk(dir, u64::from(megabytes) << 20)
    }

    /// Writes a file of `percent` of the disk's size.
    fn fill(&self, percent: u64) {
        let bytes = usize::try_from(self.1 * percent / 100).expect("a small disk");
        std::fs::write(self.0.path().join("fill"), vec![7u8; bytes]).expect("fill the disk");
    }

    fn path(&self) -> String {
        self.0.path().display().to_string()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_over_the_fail_threshold_is_refused_by_preflight() {
    let _one = serial().await;
    let Some((stack, _)) = v1_live(StackOptions::new("e2e_disk_full")).await else {
        return;
    };
    let disk = SmallDisk::mount(16);
    disk.fill(97);
    let deployer = deployer_with(&stack, |c| c.policy.disk_paths.push(disk.path()));
    let load = load(&stack, "deploy v2");
    let err = deployer.deploy(stack.release("v2")).await.unwrap_err();
    let traffic = stop_load(load).await;

    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(
        err.to_string().contains(&disk.path()),
        "the error names the disk: {err}"
    );
    assert_eq!(failures_only(&traffic, "deploy v2", &[]), 0);
    let record = last_record(&deployer).await;
    assert_eq!(record.outcome.failed_step(), Some(Step::Preflight), "{record:?}");
    assert!(
        runbook::applied_migrations(&stack)
            .await
            .expect("migrations")
            .is_empty(),
        "nothing ran"
    );
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Blue);
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}
