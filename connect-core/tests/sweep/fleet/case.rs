//! One case of the fleet sweep: a fresh fleet brought to the scenario's start, one fault at one call of one
//! source, the checks, a recovery by a new process, the checks again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_core::Result;
use connect_core::engine::DeployConfig;
use connect_core::engine::fleet::{Fleet, FleetReport, Role};
use connect_core::memory::{AppBehavior, FaultKind, Faults, MemoryFleet};
use connect_core::model::{Color, WatchPolicy};

use super::probe::Probe;
use super::{FleetOp, FleetScenario};
use crate::cases::{Kind, LEASE_EXPIRY, UNBOUNDED_AFTER, Violation, release};
use crate::invariants as inv;

/// What the harness and the call hooks share during one case.
struct Watch {
    probe: Probe,
    verified: Mutex<BTreeSet<String>>,
    /// Some deploy returned Ok with a host in rotation, so a live server must exist from now on.
    deployed: AtomicBool,
    phase: Mutex<&'static str>,
    /// The trapped source's call count before the operation began.
    base: AtomicU64,
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

    fn succeeded(&self, op: FleetOp) {
        if let FleetOp::Deploy(v) = op {
            self.verified.lock().unwrap().insert(v.to_string());
            self.deployed.store(true, Ordering::SeqCst);
        }
    }
}

fn fleet(stack: &MemoryFleet, scenario: &FleetScenario, holder: &str) -> Fleet {
    let mut config = DeployConfig {
        holder: holder.into(),
        ..DeployConfig::runbook()
    };
    if scenario.migration {
        config.app.migration = Some(vec!["migrate".into()]);
    }
    if scenario.watch {
        // Two samples: enough calls to fault each read of the watch without a long sweep.
        config.policy.watch = WatchPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    }
    let mut hosts = stack.app_hosts();
    if holder == "setup" {
        for h in &mut hosts {
            h.role = scenario.role_before(&h.name).unwrap_or(h.role);
        }
    }
    Fleet::new(hosts, stack.shared(), config, scenario.policy).unwrap()
}

/// The fault sources, in a fixed order: the shared backends, then each host's machine and engine.
fn sources(stack: &MemoryFleet) -> Vec<(String, Faults)> {
    let mut all = vec![("shared".to_string(), stack.faults().clone())];
    all.extend(
        stack
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.host.faults().clone())),
    );
    all
}

async fn prepare(scenario: &FleetScenario) -> (MemoryFleet, Arc<Watch>) {
    // A host whose role changes has its servers in the backend whichever role it has.
    let servers: Vec<(&str, Role)> = scenario
        .hosts()
        .into_iter()
        .map(|(h, role)| (h, scenario.role_before(h).map_or(role, |_| Role::Web)))
        .collect();
    let mut stack = MemoryFleet::with_roles(&servers);
    for h in &mut stack.hosts {
        h.role = scenario
            .hosts()
            .into_iter()
            .find(|(n, _)| *n == h.name)
            .map_or(h.role, |(_, r)| r);
    }
    stack.router.set_load(100);
    for v in ["v1", "v2", "v3"] {
        stack.add_image(&release(v).image, AppBehavior::default());
    }
    let watch = Arc::new(Watch {
        probe: Probe { stack: stack.clone() },
        verified: Mutex::default(),
        deployed: AtomicBool::new(false),
        phase: Mutex::new("setup"),
        base: AtomicU64::new(0),
        found: Mutex::default(),
    });
    let setup = fleet(&stack, scenario, "setup");
    for op in scenario.setup {
        op.run(&setup)
            .await
            .unwrap_or_else(|e| panic!("{}: the clean setup step {op:?} failed: {e}", scenario.name));
        watch.succeeded(*op);
    }
    if let (Some(v), Some(worker)) = (scenario.worker_lacks, stack.host(super::WORKER)) {
        worker.runtime.remove_image(&release(v).image);
    }
    (stack, watch)
}

/// How the faulted operation ended.
enum Ended {
    Returned(Result<FleetReport>),
    Died,
    Unbounded,
}

/// One case: `trap` is `(source index, call, kind)`, `None` for the clean run. Returns the calls the
/// operation made on every source and what broke.
pub(crate) async fn run_case(
    scenario: &FleetScenario,
    trap: Option<(usize, u64, Kind)>,
) -> (Vec<u64>, Vec<Violation>) {
    let (stack, watch) = prepare(scenario).await;
    let sources = sources(&stack);
    let bases: Vec<u64> = sources.iter().map(|(_, f)| f.calls()).collect();
    for (name, faults) in &sources {
        let hook = watch.clone();
        let name = name.clone();
        faults.on_call(move |call, op, target| {
            if hook.deployed.load(Ordering::SeqCst)
                && let Some(d) = hook.probe.some_server_serves()
            {
                hook.record(
                    inv::SERVING,
                    format!("before {name}'s call {call} ({op} {target}): {d}"),
                );
            }
        });
    }

    watch.set_phase("operation");
    let trapped = trap.map(|(s, i, kind)| {
        let faults = &sources[s].1;
        watch.base.store(bases[s], Ordering::SeqCst);
        let fault = match kind {
            Kind::Fault(k) => k,
            Kind::Die => FaultKind::Hang,
        };
        faults.trap(bases[s] + i, fault);
        (faults.clone(), kind)
    });
    let operator = fleet(&stack, scenario, "operator");
    let op = scenario.op.run(&operator);
    let raced = async {
        match &trapped {
            Some((faults, Kind::Die)) => {
                let tripped = faults.tripped();
                tokio::select! {
                    r = op => Ended::Returned(r),
                    _ = tripped => Ended::Died,
                }
            }
            _ => Ended::Returned(op.await),
        }
    };
    let ended = tokio::time::timeout(UNBOUNDED_AFTER, raced)
        .await
        .unwrap_or(Ended::Unbounded);
    drop(operator);
    let op_calls: Vec<u64> = sources
        .iter()
        .zip(&bases)
        .map(|((_, f), b)| f.calls() - b)
        .collect();
    for (_, f) in &sources {
        f.clear_traps();
    }

    watch.set_phase("after operation");
    let at = trap
        .and_then(|(s, i, _)| {
            let (name, faults) = &sources[s];
            faults
                .call_log()
                .get((bases[s] + i - 1) as usize)
                .map(|(op, target)| format!("{name}: {op} {target}"))
        })
        .unwrap_or_default();
    if let Some((s, i, _)) = trap
        && op_calls[s] < i
    {
        watch.record(
            inv::HARNESS,
            format!("the trap at call {i} never fired: {} calls", op_calls[s]),
        );
    }
    if trap.is_none()
        && let Some(d) = swept_what_it_says(&stack, scenario).await
    {
        watch.record(inv::HARNESS, d);
    }
    match &ended {
        Ended::Returned(Ok(_)) => watch.succeeded(scenario.op),
        Ended::Returned(Err(e)) if trap.is_none() => {
            watch.record(inv::HARNESS, format!("the clean run failed: {e}"));
        }
        Ended::Returned(Err(_)) | Ended::Died => {}
        Ended::Unbounded => watch.record(
            inv::UNBOUNDED,
            format!("still running {UNBOUNDED_AFTER:?} after the fault"),
        ),
    }
    check(&watch, &stack, scenario, false).await;

    if !matches!(ended, Ended::Returned(Ok(_))) {
        if !matches!(ended, Ended::Returned(_)) {
            // Not synchronisation: the dead process's leases must run out before a new one may take over.
            tokio::time::sleep(LEASE_EXPIRY).await;
        }
        watch.set_phase("recovery");
        let recovery = fleet(&stack, scenario, "recovery");
        match tokio::time::timeout(UNBOUNDED_AFTER, scenario.op.run(&recovery)).await {
            Ok(Ok(_)) => watch.succeeded(scenario.op),
            Ok(Err(e)) => watch.record(
                inv::RECOVERY,
                format!("the recovery's {:?} failed: {e}", scenario.op),
            ),
            Err(_) => watch.record(inv::UNBOUNDED, "the recovery never ended".into()),
        }
    }
    watch.set_phase("after recovery");
    check(&watch, &stack, scenario, true).await;

    let (kind, call) = trap.map_or(("clean".to_string(), 0), |(_, i, k)| (k.to_string(), i));
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
    (op_calls, violations)
}

/// The checks after the operation, and after recovery (`recovered`) the stricter ones.
async fn check(watch: &Watch, stack: &MemoryFleet, scenario: &FleetScenario, recovered: bool) {
    let probe = &watch.probe;
    if watch.deployed.load(Ordering::SeqCst)
        && let Some(d) = probe.some_server_serves()
    {
        watch.record(inv::SERVING, d);
    }
    if let Some(d) = probe.stray_containers() {
        watch.record(inv::CONTAINERS, d);
    }
    let observer = fleet(stack, scenario, "observer");
    let status = observer.status().await;
    let differences = status.differences();
    for (host, _) in scenario.hosts() {
        let Ok(journal) = observer.deployer(host).unwrap().journal().await else {
            watch.record(inv::JOURNAL_MATCHES, format!("{host}: journal unreadable"));
            continue;
        };
        // A difference `status` shows is told; only a silent mismatch breaks the invariant.
        let told = differences.iter().any(|d| d.starts_with(&format!("{host}:")));
        let recorded: Vec<Color> = journal.live.into_iter().collect();
        let live = probe.live(host);
        if !told && recorded != live {
            watch.record(
                inv::JOURNAL_MATCHES,
                format!("{host}: the journal says {recorded:?} is live, HAProxy sends traffic to {live:?}, and status shows no difference"),
            );
        }
        if recovered {
            let verified = watch.verified.lock().unwrap().clone();
            if let Some(d) = inv::verified_only(&journal, &verified) {
                watch.record(inv::VERIFIED, format!("{host}: {d}"));
            }
            if let Some(d) = probe.half_made(host, &journal) {
                watch.record(inv::HALF_MADE, d);
            }
        }
    }
    if !recovered {
        return;
    }
    if !differences.is_empty() {
        watch.record(inv::SETTLED, differences.join("; "));
    }
    let locked: Vec<String> = status
        .hosts
        .iter()
        .filter_map(|h| {
            h.status
                .as_ref()?
                .lock
                .as_ref()
                .map(|l| format!("{}: {}", h.host, l.holder))
        })
        .collect();
    if !locked.is_empty() {
        // A lock left by an unlock that failed for good must not block once its lease ran out (paused time).
        tokio::time::sleep(LEASE_EXPIRY).await;
        for (host, _) in scenario.hosts() {
            let deployer = observer.deployer(host).unwrap();
            let still = match deployer.adopt().await {
                Ok(_) => deployer.status().await.map(|s| s.lock),
                Err(e) => Err(e),
            };
            match still {
                Ok(None) => {}
                Ok(Some(l)) => watch.record(
                    inv::LOCKED,
                    format!("{host}: held by {} after its lease", l.holder),
                ),
                Err(e) => watch.record(
                    inv::LOCKED,
                    format!("{host}: still refuses after its lease ({locked:?}): {e}"),
                ),
            }
        }
    }
}

/// The clean run must have taken the path its scenario names: a role change carried out (its record says
/// so), a worker without the image kept out of the rollback; else the scenario sweeps a plain operation.
async fn swept_what_it_says(stack: &MemoryFleet, scenario: &FleetScenario) -> Option<String> {
    let (host, said) = match (scenario.becomes, scenario.worker_lacks) {
        (Some((host, Role::Worker)), _) => (host, "is a worker now, out of HAProxy's rotation"),
        (Some((host, Role::Web)), _) => (host, "was a worker"),
        (None, Some(_)) => (super::WORKER, "it keeps v2 while the web hosts go back to v1"),
        (None, None) => return None,
    };
    let observer = fleet(stack, scenario, "observer");
    let journal = observer.deployer(host)?.journal().await.ok()?;
    let carried = journal
        .history
        .iter()
        .flat_map(|r| &r.steps)
        .any(|s| s.detail.contains(said));
    (!carried).then(|| format!("{host}'s journal does not say \"{said}\": the scenario's path was not swept"))
}
