//! The engine on Docker Swarm (issue 18.2): a `Deployer` whose runtime is `connect_docker::Swarm` on a real
//! two-node swarm (private daemons in namespaces of the test's own, `TestSwarm`), with a real HAProxy run in
//! the manager's network namespace, a server per node and color, grouped per color
//! (`connect_core::layers::GroupedRouter`). Both nodes take tasks, so each color runs wherever Swarm places
//! it. Deploy v1, then under keep-alive load: deploy v2, instant rollback, full rollback to v2 (placed on the
//! worker), status without differences, 0 failed requests. Then the worker's engine is stopped under load:
//! the live color's task is rescheduled on the manager and HAProxy's check there finds it; the requests that
//! failed meanwhile and how long it took are printed. With `CONNECT_REAL_TESTS=1` a missing program fails
//! the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::engine::{Backends, DeployConfig, Deployer};
use connect_core::memory::{MemoryCache, MemoryCluster};
use connect_core::model::{AppSpec, Color, DeployPolicy};
use connect_core::wait::poll_until;
use connect_core::{LocalHost, TrafficRouter};
use connect_docker::testing::{Availability, test_slot_options};
use connect_docker::{Restart, SlotOptions, Swarm};
use connect_examples::testing::SwarmStage;
use connect_haproxy::testing::{Load, require_haproxy};

/// How long the load gets for a hundred answers.
const ANSWERS: Duration = Duration::from_secs(30);

/// Which node's server takes the traffic: where Swarm put the live color's task.
async fn serving(stage: &SwarmStage) -> Vec<String> {
    let servers = stage.haproxy.haproxy().servers().await.expect("show stat");
    servers
        .into_iter()
        .filter(|s| s.is_live())
        .map(|s| s.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_deploys_and_rolls_back_on_a_real_swarm_behind_haproxy() {
    let test = "swarm_deploy";
    let Some(haproxy_bin) = require_haproxy(test) else {
        return;
    };
    let Some(mut stage) = SwarmStage::start(test, &haproxy_bin).await else {
        return;
    };
    let options = SlotOptions {
        restart: Restart::Always,
        ..test_slot_options()
    };
    let worker = stage.swarm.worker().await.expect("the worker's engine");
    let runtime = Swarm::new(stage.manager.clone().with_slot_options(options.clone()))
        .await
        .unwrap()
        .with_node(worker.with_slot_options(options))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let mut app = AppSpec::connect();
    app.name = stage.scope.prefix.clone();
    app.stop_grace = Duration::from_secs(2);
    let mut policy = DeployPolicy::default();
    policy.health_deadline = Duration::from_secs(60);
    policy.drain_deadline = Duration::from_secs(10);
    policy.router_deadline = Duration::from_secs(20);
    policy.disk_paths = vec![dir.path().display().to_string()];
    policy.lock_lease = Duration::from_secs(5);
    let config = DeployConfig {
        app,
        topology: stage.topology(),
        policy,
        state_dir: dir.path().join("state").display().to_string(),
        holder: format!("swarm test pid {}", std::process::id()),
        hooks: Vec::new(),
        webhooks: Vec::new(),
    };
    let backends = Backends {
        host: Arc::new(LocalHost::new()),
        runtime: Arc::new(runtime),
        router: Arc::new(stage.router()),
        database: Arc::new(MemoryCluster::default()),
        cache: Arc::new(MemoryCache::default()),
    };
    let deployer = Deployer::new(backends, config).unwrap();
    let release = |v: &str| stage.scope.release(v);

    let t = Instant::now();
    let first = deployer.deploy(release("v1")).await.expect("v1 deploys");
    assert_eq!(first.live_after, Some(Color::Blue));
    let mut placed = vec![("v1", serving(&stage).await)];

    let load = Load::start(stage.http_addr(), 8, Duration::from_secs(600));
    load.wait_answered(100, ANSWERS)
        .await
        .expect("the load is answered");
    let second = deployer.deploy(release("v2")).await.expect("v2 deploys");
    assert_eq!(second.live_after, Some(Color::Green));
    placed.push(("v2", serving(&stage).await));
    load.wait_answered(100, ANSWERS)
        .await
        .expect("the load is answered");
    let back = deployer.rollback().await.expect("instant rollback");
    assert_eq!(back.live_after, Some(Color::Blue));
    placed.push(("rollback", serving(&stage).await));
    load.wait_answered(100, ANSWERS)
        .await
        .expect("the load is answered");
    // The full rollback recreates green: with the manager paused, Swarm places it on the worker.
    stage
        .swarm
        .set_manager_availability(Availability::Pause)
        .await
        .expect("the manager pauses");
    let full = deployer.rollback_to("v2").await.expect("full rollback to v2");
    assert_eq!(full.live_after, Some(Color::Green));
    placed.push(("full rollback", serving(&stage).await));
    stage
        .swarm
        .set_manager_availability(Availability::Active)
        .await
        .expect("the manager takes tasks again");
    load.wait_answered(100, ANSWERS)
        .await
        .expect("the load is answered");
    let status = deployer.status().await.expect("status");
    assert!(status.differences.is_empty(), "{:?}", status.differences);
    assert_eq!(status.live, Some(Color::Green));
    let report = load.stop().await;
    assert_eq!(report.failed, 0, "{report:?}");
    for version in ["v1", "v2"] {
        assert!(
            report.by_version.get(version).copied().unwrap_or(0) > 0,
            "{report:?}"
        );
    }
    assert_eq!(
        placed.last().map(|(_, live)| live.clone()),
        Some(vec!["worker_green".to_string()]),
        "{placed:?}"
    );
    eprintln!(
        "deploy, deploy, rollback, full rollback on the swarm: {:.1} s, {} requests, 0 failed; served by {placed:?}",
        t.elapsed().as_secs_f64(),
        report.ok
    );

    // The worker's engine stops under load: Swarm sees the node down, starts green's task on the manager,
    // and HAProxy's check of manager_green finds it.
    let load = Load::start(stage.http_addr(), 8, Duration::from_secs(600));
    load.wait_answered(100, ANSWERS)
        .await
        .expect("the load is answered");
    let stopped = Instant::now();
    tokio::task::block_in_place(|| stage.swarm.stop_worker());
    let mut last_failed = (load.failed(), Instant::now());
    let recovered = poll_until(
        "test",
        "green answers again from the manager",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            let now = (load.failed(), Instant::now());
            if now.0 != last_failed.0 {
                last_failed = now;
            }
            let quiet = last_failed.1.elapsed();
            let seen = last_failed.1;
            let stage = &stage;
            async move {
                let live = serving(stage).await;
                Ok(if live == ["manager_green"] && quiet >= Duration::from_secs(3) {
                    Ok(seen)
                } else {
                    Err(format!("live {live:?}, quiet for {quiet:?}"))
                })
            }
        },
    )
    .await
    .expect("the task is rescheduled on the manager and found by HAProxy");
    load.wait_answered(100, ANSWERS)
        .await
        .expect("the load is answered");
    let report = load.stop().await;
    eprintln!(
        "worker's engine stopped under load: {} requests failed, the last {:.1} s after the stop; \
         answered again from manager_green ({} answered in all; statuses {:?}; first errors {:?})",
        report.failed,
        recovered.saturating_duration_since(stopped).as_secs_f64(),
        report.ok,
        report.statuses,
        report.errors.iter().take(3).collect::<Vec<_>>()
    );
}
