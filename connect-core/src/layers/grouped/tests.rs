//! GroupedRouter over the memory router: reads, changes, refusals.

use std::time::Duration;

use super::*;
use crate::memory::MemoryRouter;
use crate::model::Topology;

const NODES: [&str; 2] = ["manager", "worker"];

/// Blue's task on the worker, green's on the manager: only those two servers pass their checks.
fn stack() -> (MemoryRouter, GroupedRouter) {
    let memory = MemoryRouter::new("be_app");
    for (node, ip) in NODES.iter().zip(["127.0.0.1", "127.0.0.2"]) {
        memory.add_server(&format!("{node}_blue"), &format!("{ip}:3000"));
        memory.add_server(&format!("{node}_green"), &format!("{ip}:3001"));
    }
    memory.set_check("manager_blue", CheckState::Down);
    memory.set_check("worker_green", CheckState::Down);
    let topology = Topology::runbook();
    let groups = vec![
        ServerGroup::per_node(&topology.blue, &NODES),
        ServerGroup::per_node(&topology.green, &NODES),
    ];
    let grouped = GroupedRouter::new(Arc::new(memory.clone()), groups).unwrap();
    (memory, grouped)
}

#[tokio::test(start_paused = true)]
async fn a_group_reads_as_its_live_member_and_changes_as_one() {
    let (memory, grouped) = stack();
    assert_eq!(
        grouped
            .servers()
            .await
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["app1", "app2"],
        "the engine sees one server per color"
    );
    grouped.set_state("app1", AdminState::Ready).await.unwrap();
    for node in NODES {
        let member = memory.server(&format!("{node}_blue")).await.unwrap();
        assert_eq!(member.admin, AdminState::Ready, "{member:?}");
    }
    let blue = grouped.wait_live("app1", Duration::from_secs(5)).await.unwrap();
    assert_eq!(blue.address, "127.0.0.2:3000", "the node running the task");

    // The task moves to the manager: the worker's check fails, the manager's passes.
    memory.set_check("worker_blue", CheckState::Down);
    assert!(!grouped.server("app1").await.unwrap().is_live());
    memory.set_check("manager_blue", CheckState::Up);
    let blue = grouped.server("app1").await.unwrap();
    assert!(blue.is_live());
    assert_eq!(blue.address, "127.0.0.1:3000");

    grouped.set_state("app2", AdminState::Drain).await.unwrap();
    let report = grouped
        .switch(Some("app1"), "app2", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.live, "app2");
    for node in NODES {
        let blue = memory.server(&format!("{node}_blue")).await.unwrap();
        assert_eq!(blue.admin, AdminState::Drain, "every node's blue drains");
    }

    let e = grouped
        .set_state("worker_blue", AdminState::Ready)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.hint().unwrap_or_default().contains("change app1"), "{e}");
    let e = grouped.set_address("app1", "127.0.0.9", 3005).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    grouped.set_address("app1", "127.0.0.1", 3005).await.unwrap();
    assert_eq!(
        memory.server("worker_blue").await.unwrap().address,
        "127.0.0.2:3005",
        "every node's server moves to the port, each keeping its node"
    );
}

#[tokio::test]
async fn a_member_missing_from_the_backend_is_named_with_the_fix() {
    let (memory, _) = stack();
    let mut groups = vec![ServerGroup::per_node(
        &Topology::runbook().blue,
        &["manager", "worker", "worker2"],
    )];
    let grouped = GroupedRouter::new(Arc::new(memory), groups.clone()).unwrap();
    let e = grouped.servers().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("worker2_blue"), "{e}");
    assert!(
        e.hint()
            .unwrap_or_default()
            .contains("a server per node and color"),
        "{e}"
    );

    groups.push(ServerGroup {
        name: "worker_blue".into(),
        members: vec!["x".into()],
    });
    let (memory, _) = stack();
    let e = GroupedRouter::new(Arc::new(memory), groups).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
