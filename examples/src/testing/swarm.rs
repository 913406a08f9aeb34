//! The stage of the Swarm tests (issue 18.2): a real two-node swarm of the test's own (`TestSwarm`), the test
//! app's v1 and v2 built on its manager, and a real HAProxy in the manager's network namespace in front of the
//! services' host-mode ports.

use std::path::Path;

use connect_core::router::{AdminState, TrafficRouter};
use connect_docker::Docker;
use connect_docker::testing::{Availability, TestScope, TestSwarm};
use connect_haproxy::testing::HaproxyProcess;

/// A swarm with v1 and v2 on its manager and its worker paused, so the tasks run on the manager, where
/// HAProxy's servers `app1` (port 3000) and `app2` (3001) point. Both servers start in maintenance: the
/// first deploy starts from nothing live. Dropped in field order: HAProxy first, the swarm last.
#[derive(Debug)]
pub struct SwarmStage {
    /// HAProxy, run in the manager's namespace.
    pub haproxy: HaproxyProcess,
    /// The manager's engine.
    pub manager: Docker,
    /// The test's names and releases (`scope.release("v1")`).
    pub scope: TestScope,
    /// The swarm.
    pub swarm: TestSwarm,
}

impl SwarmStage {
    /// Starts it; `None` when a program the swarm needs is missing (with `CONNECT_REAL_TESTS=1`, a failure).
    /// Panics on a failure to build or start: this is a test's setup.
    pub async fn start(test: &str, haproxy_bin: &Path) -> Option<SwarmStage> {
        let swarm = TestSwarm::start(test).await?;
        let scope = TestScope::new(test);
        let manager = swarm.manager().await.expect("the manager's engine answers");
        let v1 = scope.build_app(&manager, "v1").await.expect("v1 builds");
        scope
            .build_on(&manager, "v2", &v1, &[("RELEASE", "v2")])
            .await
            .expect("v2 builds");
        swarm
            .set_worker_availability(Availability::Pause)
            .await
            .expect("the worker pauses");
        let haproxy = HaproxyProcess::start_via(
            &swarm.in_manager_namespace(),
            haproxy_bin,
            ([127, 0, 0, 1], 3000).into(),
            ([127, 0, 0, 1], 3001).into(),
        )
        .await
        .expect("HAProxy starts in the manager's namespace");
        // A fresh HAProxy serves both servers as configured.
        for server in ["app1", "app2"] {
            haproxy
                .haproxy()
                .set_state(server, AdminState::Maint)
                .await
                .expect("the server goes into maintenance");
        }
        Some(SwarmStage {
            haproxy,
            manager,
            scope,
            swarm,
        })
    }
}
