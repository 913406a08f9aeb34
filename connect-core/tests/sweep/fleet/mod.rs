//! The sweep over a fleet (issue 18.1): two app hosts behind one HAProxy backend, every call of a fleet
//! operation faulted in turn on every fault source (the shared router, database and cache; each host's
//! machine and engine), then the same operation by a new process. The invariants are the one-host sweep's,
//! held per host, plus the fleet's own: traffic is never left on no serving server, and after recovery every
//! host's journal matches its servers and containers. The watched deploy adds the watch's reads (each host's
//! baseline before the switch, its samples after) to the calls faulted.

mod case;
mod probe;

use connect_core::Result;
use connect_core::engine::fleet::{Fleet, FleetPolicy, FleetReport, Role};

use crate::cases::{KINDS, release};
use crate::report::report;
use case::run_case;

pub(crate) const HOSTS: [&str; 2] = ["web1", "web2"];
/// The worker a scenario with `worker` adds to [`HOSTS`].
pub(crate) const WORKER: &str = "jobs1";

/// A fleet operation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FleetOp {
    Deploy(&'static str),
    Rollback,
}

impl FleetOp {
    pub(crate) async fn run(self, fleet: &Fleet) -> Result<FleetReport> {
        match self {
            FleetOp::Deploy(v) => fleet.deploy(release(v)).await,
            FleetOp::Rollback => fleet.rollback().await,
        }
    }
}

pub(crate) struct FleetScenario {
    name: &'static str,
    policy: FleetPolicy,
    setup: &'static [FleetOp],
    /// The app has a migration, run once for the fleet from the first host.
    migration: bool,
    /// The policy watches every host's new color after the switch.
    watch: bool,
    /// A worker host ([`WORKER`]) besides the web hosts.
    worker: bool,
    /// A host whose role the operation's config changes to this one: in the setup's config it has the
    /// other. It has its two servers in the backend either way (in maint while it is a worker).
    becomes: Option<(&'static str, Role)>,
    /// A release whose image the worker no longer has once the setup is done (as for one that joined the
    /// fleet later): a rollback to it goes on without the worker.
    worker_lacks: Option<&'static str>,
    op: FleetOp,
}

impl FleetScenario {
    /// The scenario's hosts and their roles in the operation's config.
    pub(crate) fn hosts(&self) -> Vec<(&'static str, Role)> {
        let mut hosts: Vec<(&'static str, Role)> = HOSTS.iter().map(|h| (*h, Role::Web)).collect();
        if self.worker {
            hosts.push((WORKER, Role::Worker));
        }
        for (host, role) in &mut hosts {
            if let Some((changed, after)) = self.becomes
                && changed == *host
            {
                *role = after;
            }
        }
        hosts
    }

    /// The role `host` has in the setup's config, when the operation's config changes it.
    pub(crate) fn role_before(&self, host: &str) -> Option<Role> {
        let (changed, after) = self.becomes?;
        (changed == host).then_some(match after {
            Role::Web => Role::Worker,
            Role::Worker => Role::Web,
        })
    }
}

async fn sweep(scenario: FleetScenario) {
    let (op_calls, mut violations) = run_case(&scenario, None).await;
    let mut cases = 1;
    for (s, calls) in op_calls.iter().enumerate() {
        for i in 1..=*calls {
            for kind in KINDS {
                violations.extend(run_case(&scenario, Some((s, i, kind))).await.1);
                cases += 1;
            }
        }
    }
    report(scenario.name, op_calls.iter().sum(), cases, &violations);
    let report_only = std::env::var("SWEEP_REPORT_ONLY").is_ok_and(|v| v == "1");
    assert!(
        report_only || violations.is_empty(),
        "sweep {}: {} violations (listed above; SWEEP_REPORT_ONLY=1 prints them without failing)",
        scenario.name,
        violations.len()
    );
}

/// A policy that switches with `n` hosts ready.
fn min_healthy(n: usize) -> FleetPolicy {
    FleetPolicy {
        min_healthy_hosts: Some(n),
    }
}

#[tokio::test(start_paused = true)]
async fn fleet_deploy_over_live() {
    sweep(FleetScenario {
        name: "fleet of 2: deploy v2 over v1",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1")],
        migration: false,
        watch: false,
        worker: false,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_deploy_min_one_healthy() {
    sweep(FleetScenario {
        name: "fleet of 2: deploy v2 over v1, min 1 healthy",
        policy: min_healthy(1),
        setup: &[FleetOp::Deploy("v1")],
        migration: false,
        watch: false,
        worker: false,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_rollback() {
    sweep(FleetScenario {
        name: "fleet of 2: instant rollback",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1"), FleetOp::Deploy("v2")],
        migration: false,
        watch: false,
        worker: false,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Rollback,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_first_deploy() {
    sweep(FleetScenario {
        name: "fleet of 2: first deploy",
        policy: FleetPolicy::default(),
        setup: &[],
        migration: false,
        watch: false,
        worker: false,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Deploy("v1"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_deploy_with_migration() {
    sweep(FleetScenario {
        name: "fleet of 2: deploy v2 over v1 with a migration",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1")],
        migration: true,
        watch: false,
        worker: false,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_deploy_watched() {
    sweep(FleetScenario {
        name: "fleet of 2: deploy v2 over v1, watched after the switch",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1")],
        migration: false,
        watch: true,
        worker: false,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_deploy_with_worker() {
    sweep(FleetScenario {
        name: "fleet of 2 and a worker: deploy v2 over v1",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1")],
        migration: false,
        watch: false,
        worker: true,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Deploy("v2"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_rollback_with_worker() {
    sweep(FleetScenario {
        name: "fleet of 2 and a worker: rollback",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1"), FleetOp::Deploy("v2")],
        migration: false,
        watch: false,
        worker: true,
        becomes: None,
        worker_lacks: None,
        op: FleetOp::Rollback,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_deploy_web_host_becomes_worker() {
    sweep(FleetScenario {
        name: "fleet of 2: web2 becomes a worker, deploy v3 over v2",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1"), FleetOp::Deploy("v2")],
        migration: false,
        watch: false,
        worker: false,
        becomes: Some(("web2", Role::Worker)),
        worker_lacks: None,
        op: FleetOp::Deploy("v3"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_deploy_worker_becomes_web_host() {
    sweep(FleetScenario {
        name: "fleet of 2 and a worker: the worker becomes a web host, deploy v3 over v2",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1"), FleetOp::Deploy("v2")],
        migration: false,
        watch: false,
        worker: true,
        becomes: Some((WORKER, Role::Web)),
        worker_lacks: None,
        op: FleetOp::Deploy("v3"),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn fleet_rollback_a_worker_cannot_follow() {
    sweep(FleetScenario {
        name: "fleet of 2 and a worker without v1: rollback",
        policy: FleetPolicy::default(),
        setup: &[FleetOp::Deploy("v1"), FleetOp::Deploy("v2")],
        migration: false,
        watch: false,
        worker: true,
        becomes: None,
        worker_lacks: Some("v1"),
        op: FleetOp::Rollback,
    })
    .await;
}
