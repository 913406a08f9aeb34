//! Against the real HAProxy: a server per node and color (what a Swarm service publishing in host mode
//! needs), grouped by `connect_core::layers::GroupedRouter` so each color is one server to the engine. The
//! router suite passes over the groups, and a color follows its task from one node to the other. With
//! `CONNECT_REAL_TESTS=1` a missing haproxy fails the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use connect_core::conformance::router_suite;
use connect_core::layers::{GroupedRouter, ServerGroup};
use connect_core::model::Topology;
use connect_core::router::AdminState;
use connect_core::testing::free_port;
use connect_core::wait::poll_until;
use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::ServerSpec;
use connect_haproxy::testing::{HaproxyProcess, TestApp, require_haproxy};

const HEALTH: &str = "/api/health";
const DEADLINE: Duration = Duration::from_secs(10);

/// The "manager" node's servers reach test apps on 127.0.0.1; the "worker" node's are on ::1 at ports where
/// nothing listens: the node that does not run the task. All start ready.
async fn start(test: &str) -> Option<(HaproxyProcess, GroupedRouter, Vec<TestApp>)> {
    let program = require_haproxy(test)?;
    let mut apps = Vec::new();
    let mut servers = Vec::new();
    for color in ["blue", "green"] {
        let app = TestApp::start(color, HEALTH).await.expect("app");
        servers.push(ServerSpec::new(&format!("manager_{color}"), app.addr));
        let nowhere = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, free_port()));
        servers.push(ServerSpec::new(&format!("worker_{color}"), nowhere));
        apps.push(app);
    }
    let proc = HaproxyProcess::start_with_servers(&program, servers)
        .await
        .expect("haproxy starts");
    let hx = proc.haproxy();
    for server in ["manager_blue", "manager_green"] {
        hx.wait_up(server, DEADLINE).await.expect("UP");
    }
    let topology = Topology::runbook();
    let nodes = ["manager", "worker"];
    let groups = vec![
        ServerGroup::per_node(&topology.blue, &nodes),
        ServerGroup::per_node(&topology.green, &nodes),
    ];
    let grouped = GroupedRouter::new(Arc::new(hx), groups).expect("groups");
    Some((proc, grouped, apps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_per_node_grouped_per_color_conforms_against_real_haproxy() {
    let Some((_proc, grouped, _apps)) =
        start("a_server_per_node_grouped_per_color_conforms_against_real_haproxy").await
    else {
        return;
    };
    router_suite(&grouped, "app1", "app2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_color_follows_its_task_to_another_node() {
    let Some((proc, grouped, apps)) = start("a_color_follows_its_task_to_another_node").await else {
        return;
    };
    let hx = proc.haproxy();
    grouped
        .set_state("app2", AdminState::Drain)
        .await
        .expect("green drains");
    let blue = grouped.wait_live("app1", DEADLINE).await.expect("blue live");
    assert_eq!(blue.address, apps[0].addr.to_string(), "the manager's server");
    for member in ["manager_green", "worker_green"] {
        let s = hx.server(member).await.expect("member");
        assert_eq!(s.admin, AdminState::Drain, "{s:?}: set with its group");
    }

    // Blue's task is rescheduled on the worker: its server there is pointed at the app (as the task's port
    // opening there would make it pass), the manager's goes dead. The group stays live through the move.
    let worker_port = apps[0].addr.port();
    hx.set_address("worker_blue", "127.0.0.1", worker_port)
        .await
        .expect("worker's server reaches the app");
    hx.set_address("manager_blue", "::1", free_port())
        .await
        .expect("manager's server reaches nothing");
    let moved = poll_until(
        "test",
        "app1 on the worker",
        DEADLINE * 2,
        Duration::from_millis(50),
        || async {
            let s = grouped.server("app1").await?;
            let worker = hx.server("worker_blue").await?;
            let manager = hx.server("manager_blue").await?;
            Ok(if worker.is_live() && !manager.is_live() && s.is_live() {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            })
        },
    )
    .await
    .expect("the worker's server comes up, the manager's goes down");
    assert_eq!(moved.address, apps[0].addr.to_string());

    let report = grouped
        .switch(Some("app1"), "app2", DEADLINE)
        .await
        .expect("switch to green");
    assert_eq!(report.live, "app2");
    let e = grouped
        .set_state("manager_blue", AdminState::Ready)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::NotFound,
        "a member changes with its group: {e}"
    );
}

/// HAProxy pauses checks in maintenance and keeps the last verdict: `set_states` marks a server leaving
/// maintenance down, so the node a task left never reads UP, and the node it runs on comes up by its checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_leaving_maintenance_is_up_only_by_a_fresh_check() {
    let Some((proc, _grouped, mut apps)) =
        start("a_server_leaving_maintenance_is_up_only_by_a_fresh_check").await
    else {
        return;
    };
    let hx = proc.haproxy();
    let both = ["manager_blue".to_string(), "manager_green".to_string()];
    hx.set_states(&both, AdminState::Maint).await.expect("maint");
    // Blue's app goes away while its server is in maintenance; green's stays.
    drop(apps.remove(0));
    hx.set_states(&both, AdminState::Ready).await.expect("ready");
    let blue = hx.server("manager_blue").await.expect("blue");
    assert!(
        !blue.is_live(),
        "no stale UP for an app gone in maintenance: {blue:?}"
    );
    let green = hx
        .wait_live("manager_green", DEADLINE)
        .await
        .expect("green comes up by its checks");
    assert_eq!(green.admin, AdminState::Ready);
    let blue = hx.server("manager_blue").await.expect("blue");
    assert!(!blue.is_live(), "{blue:?}");
    let e = hx
        .set_states(&["manager_blue".into(), "nobody".into()], AdminState::Drain)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        hx.server("manager_blue").await.expect("blue").admin,
        AdminState::Ready,
        "an unknown name: nothing changed"
    );
}
