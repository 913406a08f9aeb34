//! One case: a fresh stack brought to the scenario's starting point, one fault at one call of the operation,
//! the checks, a recovery by a new process, the checks again.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_core::engine::{DeployConfig, Deployer, Journal, Status};
use connect_core::memory::{AppBehavior, FaultKind, MemoryStack};
use connect_core::model::{DeployPolicy, OldColorPolicy, Release};
use connect_core::ship::{BuildOn, ReleaseSource};
use connect_core::{ErrorKind, Result};

use crate::invariants::{self as inv, Probe};

/// Longer than any deadline of the engine's policy (the longest is the backup's, two hours), plus ten
/// minutes: an operation still running after it would never end. Paused time makes waiting for it free.
pub(crate) const UNBOUNDED_AFTER: Duration = Duration::from_secs(2 * 3600 + 600);
/// Time given to a dead process's lock lease to run out before the next process tries.
pub(crate) const LEASE_EXPIRY: Duration = Duration::from_secs(600);

/// An image on the machine running the deploy, not on the server.
pub(crate) const LOCAL_IMAGE: &str = "connect-dev:latest";
/// A build context on the machine running the deploy.
pub(crate) const CONTEXT: &str = "/home/dev/connect";

/// An operation of the engine's public API.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Deploy(&'static str),
    /// A deploy that ships the release from the local image [`LOCAL_IMAGE`] first.
    DeployFromImage(&'static str),
    /// A deploy that builds the release from [`CONTEXT`] where it is told, then ships it.
    DeployFromContext(&'static str, BuildOn),
    Rollback,
    RollbackTo(&'static str),
    Retire,
    Adopt,
    /// Work behind the maintenance page.
    Maintenance,
}

impl Op {
    /// Runs it; on success returns the version it deployed through the health gate and verification.
    async fn run(self, deployer: &Deployer) -> Result<Option<String>> {
        let deployed = |v: &str| Some(v.to_string());
        match self {
            Op::Deploy(v) => deployer.deploy(release(v)).await.map(|_| deployed(v)),
            Op::DeployFromImage(v) => deployer
                .deploy_from(release(v), ReleaseSource::local_image(LOCAL_IMAGE))
                .await
                .map(|_| deployed(v)),
            Op::DeployFromContext(v, on) => deployer
                .deploy_from(release(v), ReleaseSource::build_context(CONTEXT, on))
                .await
                .map(|_| deployed(v)),
            Op::RollbackTo(v) => deployer.rollback_to(v).await.map(|_| deployed(v)),
            Op::Rollback => deployer.rollback().await.map(|_| None),
            Op::Retire => deployer.retire_standby().await.map(|_| None),
            Op::Adopt => deployer.adopt().await.map(|_| None),
            Op::Maintenance => deployer
                .with_maintenance("sweep", || async { Ok(()) })
                .await
                .map(|()| None),
        }
    }
}

/// A starting point and the operation swept from it.
pub(crate) struct Scenario {
    pub name: &'static str,
    pub policy: OldColorPolicy,
    /// More of the policy (the watch, the canary); [`plain`] leaves it as the runbook's.
    pub tuning: fn(&mut DeployPolicy),
    pub setup: &'static [Op],
    /// The app has a migration: the table check, restore point, backup and one-off container are swept too.
    pub migration: bool,
    pub op: Op,
}

/// The runbook's policy as it is.
pub(crate) fn plain(_: &mut DeployPolicy) {}

/// A fault the harness injects at one call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Fault(FaultKind),
    /// The call hangs and the harness drops the operation right there: the process died at that call.
    Die,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Fault(k) => k.fmt(f),
            Kind::Die => f.write_str("die"),
        }
    }
}

/// Retryable kinds (Unavailable, Timeout) are mostly absorbed by the engine's retry layer on repeatable
/// calls, so non-retryable ones (Failed, Refused) are swept too: they reach every undo path.
pub(crate) const KINDS: [Kind; 8] = [
    Kind::Fault(FaultKind::FailBefore(ErrorKind::Unavailable)),
    Kind::Fault(FaultKind::FailBefore(ErrorKind::Timeout)),
    Kind::Fault(FaultKind::FailBefore(ErrorKind::Failed)),
    Kind::Fault(FaultKind::ApplyThenFail(ErrorKind::Unavailable)),
    Kind::Fault(FaultKind::ApplyThenFail(ErrorKind::Timeout)),
    Kind::Fault(FaultKind::ApplyThenFail(ErrorKind::Refused)),
    Kind::Fault(FaultKind::Hang),
    Kind::Die,
];

/// One invariant broken in one case.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub invariant: &'static str,
    /// `clean`, or the injected kind.
    pub kind: String,
    /// The trapped call, counted from the operation's first (0 when clean).
    pub call: u64,
    /// The trapped call's operation and target.
    pub at: String,
    /// When it was seen: during the operation, after it, during or after recovery.
    pub phase: &'static str,
    pub detail: String,
}

/// What a case yields: how many calls its operation made, and what broke.
pub(crate) struct CaseReport {
    pub op_calls: u64,
    pub violations: Vec<Violation>,
}

pub(crate) fn release(version: &str) -> Release {
    Release::new("connect", version).unwrap()
}

/// What the harness and the call hook share during one case.
struct Watch {
    probe: Probe,
    /// Some deploy returned Ok, so a live server must exist from now on.
    deployed: AtomicBool,
    /// Calls made before the operation began.
    base: AtomicU64,
    phase: Mutex<&'static str>,
    verified: Mutex<BTreeSet<String>>,
    /// (invariant, phase, detail), the first of each invariant only: one root cause repeats at every call.
    found: Mutex<Vec<(&'static str, &'static str, String)>>,
}

impl Watch {
    fn record(&self, invariant: &'static str, detail: String) {
        let phase = *self.phase.lock().unwrap();
        let mut found = self.found.lock().unwrap();
        if !found.iter().any(|(i, _, _)| *i == invariant) {
            found.push((invariant, phase, detail));
        }
    }

    fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap() = phase;
    }

    /// Notes a successful operation's release as verified.
    fn succeeded(&self, version: Option<String>) {
        if let Some(v) = version {
            self.verified.lock().unwrap().insert(v);
            self.deployed.store(true, Ordering::SeqCst);
        }
    }

    fn check_error(&self, error: &connect_core::Error) {
        if let Some(d) = inv::error_tells_truth(&error.to_string(), &self.probe) {
            self.record(inv::ERROR_TRUTH, d);
        }
    }
}

fn deployer(stack: &MemoryStack, scenario: &Scenario, holder: &str) -> Deployer {
    let mut config = DeployConfig {
        holder: holder.into(),
        ..DeployConfig::runbook()
    };
    config.policy.old_color = scenario.policy;
    (scenario.tuning)(&mut config.policy);
    if scenario.migration {
        config.app.migration = Some(vec!["migrate".into()]);
    }
    Deployer::new(stack.backends(), config).unwrap()
}

/// A fresh stack brought to the scenario's starting point without faults, and the watch over it.
async fn prepare(scenario: &Scenario) -> (MemoryStack, Arc<Watch>) {
    let topology = DeployConfig::runbook().topology;
    let stack = MemoryStack::new(&topology);
    // Clients, so the watch has figures to judge.
    stack.router.set_load(100);
    for v in ["v1", "v2", "v3"] {
        stack.add_image(&release(v).image, AppBehavior::default());
    }
    stack.runtime.add_local_image(LOCAL_IMAGE, AppBehavior::default());
    stack.runtime.add_build_context(CONTEXT, AppBehavior::default());
    let watch = Arc::new(Watch {
        probe: Probe {
            stack: stack.clone(),
            topology,
        },
        deployed: AtomicBool::new(false),
        base: AtomicU64::new(0),
        phase: Mutex::new("setup"),
        verified: Mutex::default(),
        found: Mutex::default(),
    });
    let setup = deployer(&stack, scenario, "setup");
    for op in scenario.setup {
        let version = op
            .run(&setup)
            .await
            .unwrap_or_else(|e| panic!("{}: the clean setup step {op:?} failed: {e}", scenario.name));
        watch.succeeded(version);
    }
    (stack, watch)
}

/// Runs one case: clean when `trap` is `None`, else `kind` at the operation's call number `i`.
pub(crate) async fn run_case(scenario: &Scenario, trap: Option<(u64, Kind)>) -> CaseReport {
    let (stack, watch) = prepare(scenario).await;
    let faults = stack.faults().clone();
    let base = faults.calls();
    watch.base.store(base, Ordering::SeqCst);
    let hook = watch.clone();
    faults.on_call(move |call, op, target| {
        if hook.deployed.load(Ordering::SeqCst)
            && let Some(d) = inv::serving(&hook.probe)
        {
            let n = call - hook.base.load(Ordering::SeqCst);
            hook.record(inv::SERVING, format!("before call {n} ({op} {target}): {d}"));
        }
    });

    watch.set_phase("operation");
    if let Some((i, kind)) = trap {
        let fault = match kind {
            Kind::Fault(k) => k,
            Kind::Die => FaultKind::Hang,
        };
        faults.trap(base + i, fault);
    }
    let ended = run_faulted(&stack, scenario, trap.map(|(_, k)| k)).await;
    let op_calls = faults.calls() - base;
    faults.clear_traps();

    watch.set_phase("after operation");
    let at = trap
        .and_then(|(i, _)| faults.call_log().get((base + i - 1) as usize).cloned())
        .map_or_else(String::new, |(op, target)| format!("{op} {target}"));
    if let Some((i, _)) = trap
        && op_calls < i
    {
        watch.record(
            inv::HARNESS,
            format!("the trap at call {i} never fired: the run made {op_calls} calls"),
        );
    }
    match &ended {
        Ended::Returned(Ok(version)) => watch.succeeded(version.clone()),
        Ended::Returned(Err(e)) => {
            watch.check_error(e);
            if trap.is_none() {
                watch.record(inv::HARNESS, format!("the clean run failed: {e}"));
            }
        }
        Ended::Died => {}
        Ended::Unbounded => watch.record(
            inv::UNBOUNDED,
            format!("still running {UNBOUNDED_AFTER:?} after the fault"),
        ),
    }
    check_after_operation(&watch, &stack, scenario).await;

    // A new process runs the same operation again, unless it succeeded: then there is nothing to finish (and
    // retiring twice is refused by design).
    if !matches!(ended, Ended::Returned(Ok(_))) {
        recover(&watch, &stack, scenario, matches!(ended, Ended::Returned(_))).await;
    }
    watch.set_phase("after recovery");
    check_after_recovery(&watch, &stack, scenario).await;

    let (kind, call) = trap.map_or(("clean".to_string(), 0), |(i, k)| (k.to_string(), i));
    let violations = watch
        .found
        .lock()
        .unwrap()
        .drain(..)
        .map(|(invariant, phase, detail)| Violation {
            invariant,
            kind: kind.clone(),
            call,
            at: at.clone(),
            phase,
            detail,
        })
        .collect();
    CaseReport { op_calls, violations }
}

/// The same operation by a new process, after one that failed (`returned`) or was dropped.
async fn recover(watch: &Watch, stack: &MemoryStack, scenario: &Scenario, returned: bool) {
    if !returned {
        // Not synchronisation: the dead process's lock lease must run out before a new process may take over,
        // and paused time makes the wait free.
        tokio::time::sleep(LEASE_EXPIRY).await;
    }
    watch.set_phase("recovery");
    let recovery = deployer(stack, scenario, "recovery");
    match tokio::time::timeout(UNBOUNDED_AFTER, scenario.op.run(&recovery)).await {
        Ok(Ok(version)) => watch.succeeded(version),
        // The failed retire's own undo finished removing the standby: there is nothing left to retire, and
        // the after-recovery checks confirm it is gone.
        Ok(Err(e)) if matches!(scenario.op, Op::Retire) && e.kind() == ErrorKind::NotFound => {}
        Ok(Err(e)) => {
            watch.check_error(&e);
            let refused_by_lock = e.kind() == ErrorKind::Conflict && e.to_string().contains("lock");
            let invariant = if refused_by_lock {
                inv::LOCKED
            } else {
                inv::RECOVERY
            };
            watch.record(invariant, format!("the recovery's {:?} failed: {e}", scenario.op));
        }
        Err(_) => watch.record(inv::UNBOUNDED, "the recovery never ended".into()),
    }
}

/// How the faulted operation ended.
enum Ended {
    Returned(Result<Option<String>>),
    /// Dropped at the trapped call, as a process dies.
    Died,
    /// Dropped after [`UNBOUNDED_AFTER`].
    Unbounded,
}

async fn run_faulted(stack: &MemoryStack, scenario: &Scenario, kind: Option<Kind>) -> Ended {
    let op = scenario.op;
    // A process of its own: dropped with the operation when it dies.
    let operator = deployer(stack, scenario, "operator");
    let tripped = stack.faults().tripped();
    let raced = async {
        if matches!(kind, Some(Kind::Die)) {
            tokio::select! {
                r = op.run(&operator) => Ended::Returned(r),
                _ = tripped => Ended::Died,
            }
        } else {
            Ended::Returned(op.run(&operator).await)
        }
    };
    tokio::time::timeout(UNBOUNDED_AFTER, raced)
        .await
        .unwrap_or(Ended::Unbounded)
}

/// Status and journal as a new process reads them.
async fn observe(watch: &Watch, stack: &MemoryStack, scenario: &Scenario) -> Option<(Journal, Status)> {
    let observer = deployer(stack, scenario, "observer");
    match (observer.journal().await, observer.status().await) {
        (Ok(j), Ok(s)) => Some((j, s)),
        (Err(e), _) | (_, Err(e)) => {
            watch.record(inv::JOURNAL_MATCHES, format!("status unreadable: {e}"));
            None
        }
    }
}

async fn check_after_operation(watch: &Watch, stack: &MemoryStack, scenario: &Scenario) {
    let probe = &watch.probe;
    if watch.deployed.load(Ordering::SeqCst)
        && let Some(d) = inv::serving(probe)
    {
        watch.record(inv::SERVING, d);
    }
    if let Some(d) = inv::no_stray_container(probe) {
        watch.record(inv::CONTAINERS, d);
    }
    if let Some((journal, status)) = observe(watch, stack, scenario).await
        && let Some(d) = inv::journal_matches(&journal, &status, probe)
    {
        watch.record(inv::JOURNAL_MATCHES, d);
    }
}

async fn check_after_recovery(watch: &Watch, stack: &MemoryStack, scenario: &Scenario) {
    check_after_operation(watch, stack, scenario).await;
    let Some((journal, status)) = observe(watch, stack, scenario).await else {
        return;
    };
    if let Some(d) = inv::settled(&status) {
        watch.record(inv::SETTLED, d);
    }
    if let Some(d) = inv::verified_only(&journal, &watch.verified.lock().unwrap()) {
        watch.record(inv::VERIFIED, d);
    }
    if let Some(d) = inv::nothing_half_made(&journal, &watch.probe) {
        watch.record(inv::HALF_MADE, d);
    }
    if let Some(d) = inv::images_kept(&journal, &watch.probe) {
        watch.record(inv::IMAGES, d);
    }
    // A lock left by an unlock that failed for good (the server refusing the removal) is not a lock that
    // blocks forever as long as its lease runs out: let it (paused time, not synchronisation), then the next
    // operation must get through and leave no lock.
    if let Some(lock) = &status.lock {
        tokio::time::sleep(LEASE_EXPIRY).await;
        let next = deployer(stack, scenario, "observer");
        let after = match next.adopt().await {
            Ok(_) => next.status().await.map(|s| s.lock),
            Err(e) => Err(e),
        };
        match after {
            Ok(None) => {}
            Ok(Some(still)) => watch.record(
                inv::LOCKED,
                format!(
                    "the lock of {} outlived its lease and is held by {}",
                    lock.holder, still.holder
                ),
            ),
            Err(e) => watch.record(
                inv::LOCKED,
                format!(
                    "the lock of {} for {:?} still refuses after its lease: {e}",
                    lock.holder, lock.operation
                ),
            ),
        }
    }
}
