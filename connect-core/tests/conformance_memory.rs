//! The in-memory backends pass the same conformance suites as the real ones.

use std::sync::Arc;
use std::time::Duration;

use connect_core::conformance::{self, RuntimeFixture};
use connect_core::host::Endpoint;
use connect_core::layers::{GroupedRouter, ServerGroup};
use connect_core::memory::{
    AppBehavior, MemoryCache, MemoryCluster, MemoryHost, MemoryRouter, MemoryRuntime,
};
use connect_core::model::{ImageRef, Topology};
use connect_core::router::CheckState;
use connect_core::runtime::OneOff;

#[tokio::test]
async fn memory_host_conforms() {
    let host = MemoryHost::new("conformance");
    let echo = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: 7,
    };
    host.serve_echo(echo.clone());
    conformance::host_suite(&host, "/tmp/conformance", Some(echo)).await;
}

#[tokio::test(start_paused = true)]
async fn memory_runtime_conforms() {
    let rt = MemoryRuntime::new();
    let healthy = ImageRef::parse("connect-test:ok").unwrap();
    let unhealthy = ImageRef::parse("connect-test:sick").unwrap();
    rt.add_image(&healthy, AppBehavior::default());
    rt.add_image(
        &unhealthy,
        AppBehavior {
            becomes_healthy: false,
            migration_exit: 1,
            ..AppBehavior::default()
        },
    );
    let job = |image: &ImageRef| OneOff {
        image: image.clone(),
        command: vec!["migrate".into()],
        env: Default::default(),
        deadline: Duration::from_secs(10),
        labels: Default::default(),
    };
    let fixture = RuntimeFixture {
        healthy_image: healthy.clone(),
        unhealthy_image: unhealthy.clone(),
        prefix: "conformance".into(),
        host_port: 18080,
        exec_echo: vec!["echo".into(), "conformance".into()],
        job_ok: job(&healthy),
        job_fail: job(&unhealthy),
    };
    conformance::runtime_suite(&rt, &fixture).await;
}

#[tokio::test(start_paused = true)]
async fn memory_router_conforms() {
    let router = MemoryRouter::new("be_app");
    router.add_server("app1", "127.0.0.1:3000");
    router.add_server("app2", "127.0.0.1:3001");
    router.set_check("app1", CheckState::Up);
    conformance::router_suite(&router, "app1", "app2").await;
}

/// A server per node and color, grouped: each color conforms as the one server the engine knows, whichever
/// node's server passes its check (blue's task on the worker, green's on the manager).
#[tokio::test]
async fn grouped_memory_router_conforms() {
    let router = MemoryRouter::new("be_app");
    for (node, ip) in [("manager", "127.0.0.1"), ("worker", "127.0.0.2")] {
        router.add_server(&format!("{node}_blue"), &format!("{ip}:3000"));
        router.add_server(&format!("{node}_green"), &format!("{ip}:3001"));
    }
    router.set_check("manager_blue", CheckState::Down);
    router.set_check("worker_green", CheckState::Down);
    let topology = Topology::runbook();
    let nodes = ["manager", "worker"];
    let groups = vec![
        ServerGroup::per_node(&topology.blue, &nodes),
        ServerGroup::per_node(&topology.green, &nodes),
    ];
    let grouped = GroupedRouter::new(Arc::new(router), groups).unwrap();
    conformance::router_suite(&grouped, "app1", "app2").await;
}

#[tokio::test]
async fn memory_cluster_conforms() {
    conformance::database_suite(&MemoryCluster::default()).await;
}

#[tokio::test]
async fn memory_cache_conforms() {
    conformance::cache_suite(&MemoryCache::default()).await;
}
