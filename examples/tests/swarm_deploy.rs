//! The engine on Docker Swarm (issue 18.2): a `Deployer` whose runtime is `connect_docker::Swarm` on a real
//! two-node swarm (private daemons in namespaces of the test's own, `TestSwarm`), with a real HAProxy run in
//! the manager's network namespace in front of the services' host-mode ports. Deploy v1 (blue), deploy v2
//! (green), instant rollback, full rollback to v2, status without differences. The worker is paused, so the
//! tasks run on the manager, where HAProxy's servers point. With `CONNECT_REAL_TESTS=1` a missing program
//! fails the test.

use std::sync::Arc;
use std::time::Duration;

use connect_core::LocalHost;
use connect_core::engine::{Backends, DeployConfig, Deployer};
use connect_core::memory::{MemoryCache, MemoryCluster};
use connect_core::model::{AppSpec, Color, DeployPolicy, Slot, Topology};
use connect_docker::testing::test_slot_options;
use connect_docker::{Restart, SlotOptions, Swarm};
use connect_examples::testing::SwarmStage;
use connect_haproxy::testing::require_haproxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_deploys_and_rolls_back_on_a_real_swarm_behind_haproxy() {
    let test = "swarm_deploy";
    let Some(haproxy_bin) = require_haproxy(test) else {
        return;
    };
    let Some(stage) = SwarmStage::start(test, &haproxy_bin).await else {
        return;
    };
    let SwarmStage {
        haproxy,
        manager,
        scope,
        swarm,
    } = &stage;
    let options = SlotOptions {
        restart: Restart::Always,
        ..test_slot_options()
    };
    let runtime = Swarm::new(manager.clone().with_slot_options(options))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let slot = |color, n: u8, port| Slot {
        color,
        container: format!("{}_app{n}", scope.prefix),
        server: format!("app{n}"),
        host_port: port,
    };
    let mut app = AppSpec::connect();
    app.name = scope.prefix.clone();
    app.stop_grace = Duration::from_secs(2);
    let mut policy = DeployPolicy::default();
    policy.health_deadline = Duration::from_secs(60);
    policy.drain_deadline = Duration::from_secs(10);
    policy.router_deadline = Duration::from_secs(10);
    policy.disk_paths = vec![dir.path().display().to_string()];
    policy.lock_lease = Duration::from_secs(5);
    let config = DeployConfig {
        app,
        topology: Topology {
            blue: slot(Color::Blue, 1, 3000),
            green: slot(Color::Green, 2, 3001),
        },
        policy,
        state_dir: dir.path().join("state").display().to_string(),
        holder: format!("swarm test pid {}", std::process::id()),
        hooks: Vec::new(),
        webhooks: Vec::new(),
    };
    let backends = Backends {
        host: Arc::new(LocalHost::new()),
        runtime: Arc::new(runtime),
        router: Arc::new(haproxy.haproxy()),
        database: Arc::new(MemoryCluster::default()),
        cache: Arc::new(MemoryCache::default()),
    };
    let deployer = Deployer::new(backends, config).unwrap();

    let t = std::time::Instant::now();
    let first = deployer.deploy(scope.release("v1")).await.expect("v1 deploys");
    assert_eq!(first.live_after, Some(Color::Blue));
    let second = deployer.deploy(scope.release("v2")).await.expect("v2 deploys");
    assert_eq!(second.live_after, Some(Color::Green));
    let back = deployer.rollback().await.expect("instant rollback");
    assert_eq!(back.live_after, Some(Color::Blue));
    let full = deployer.rollback_to("v2").await.expect("full rollback to v2");
    assert_eq!(full.live_after, Some(Color::Green));
    let status = deployer.status().await.expect("status");
    assert!(status.differences.is_empty(), "{:?}", status.differences);
    assert_eq!(status.live, Some(Color::Green));
    // Requests through HAProxy's frontend reach the live service.
    let port = haproxy.http_addr().port();
    let answer = swarm.http_get("127.0.0.1", port, "/api/health").await;
    assert!(matches!(answer, Ok((200, _))), "{answer:?}");
    eprintln!(
        "deploy, deploy, rollback, full rollback on the swarm: {:.1} s",
        t.elapsed().as_secs_f64()
    );
}
