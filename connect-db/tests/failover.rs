//! Crashes against their own cluster: the leader killed (Patroni and postmaster) and the replica promoted;
//! then no leader at all, refused clearly, and a manual failover out of it.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::database::{DatabaseCluster, DatabaseClusterExt, Role};
use connect_core::wait::poll_until;
use connect_db::testing::{TestCluster, TestClusterConfig, leader_client, wait_promotion};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_promotes_the_replica_and_no_leader_is_refused_until_a_failover() {
    let Some(mut c) = TestCluster::start("failover", TestClusterConfig::default()).await else {
        return;
    };
    let db = c
        .client("postgres")
        .with_check_query("SELECT COUNT(*) FROM crash_marks");
    let first = db.leader().await.expect("leader");
    leader_client(&db)
        .await
        .expect("connect")
        .batch_execute(
            "CREATE TABLE crash_marks (id int); INSERT INTO crash_marks SELECT generate_series(1, 10)",
        )
        .await
        .expect("rows");
    db.wait_replicas_caught_up(Duration::from_secs(30))
        .await
        .expect("replicated");

    // 1. Crash the leader: Patroni and the postmaster, SIGKILL. The replica takes over after the ttl.
    c.node_mut(&first.name).expect("node").crash();
    let promoted = wait_promotion(&db, &first, Duration::from_secs(90))
        .await
        .expect("the replica is promoted");
    assert!(promoted.timeline > first.timeline, "{first:?} -> {promoted:?}");
    assert_eq!(db.check_query().await.expect("rows on the new leader"), 10);
    // Patroni writes the timeline history to etcd a few loops after the promotion.
    let history = poll_until(
        "test",
        "history",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let h = db.patroni().history().await?;
            Ok(if h.is_empty() {
                Err("no history yet".to_string())
            } else {
                Ok(h)
            })
        },
    )
    .await
    .expect("history");
    assert_eq!(history.last().map(|h| h.timeline), first.timeline, "{history:?}");

    // 2. The crashed node comes back as a replica of the new leader.
    c.restart_node(&first.name).expect("restart");
    c.wait_healthy(Duration::from_secs(90)).await.expect("rejoined");
    let members = db.members().await.expect("members");
    assert!(
        members
            .iter()
            .any(|m| m.name == first.name && m.role == Role::Replica),
        "{members:?}"
    );

    // 3. Paused, a crashed leader is not replaced: no leader, and every leader operation says so.
    db.patroni().set_paused(true).await.expect("pause");
    c.node_mut(&promoted.name).expect("node").crash();
    let e = poll_until(
        "test",
        "no leader",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            Ok(match db.leader().await {
                Ok(l) => Err(format!("{} still leads", l.name)),
                Err(e) => Ok(e),
            })
        },
    )
    .await
    .expect("the leader key expires");
    assert_eq!(e.kind(), ErrorKind::Unhealthy, "{e}");
    assert_eq!(
        db.switchover(None).await.unwrap_err().kind(),
        ErrorKind::Unhealthy
    );
    assert_eq!(db.check_query().await.unwrap_err().kind(), ErrorKind::Unhealthy);
    assert_eq!(
        db.restore_point("no-leader").await.unwrap_err().kind(),
        ErrorKind::Unhealthy
    );
    assert_eq!(
        db.patroni().failover("no-such-member").await.unwrap_err().kind(),
        ErrorKind::Refused
    );

    // 4. A manual failover to the surviving replica ends it.
    let back = db.patroni().failover(&first.name).await.expect("failover");
    assert_eq!(back.name, first.name);
    db.patroni().set_paused(false).await.expect("resume");
    assert_eq!(db.check_query().await.expect("rows"), 10);
    c.restart_node(&promoted.name).expect("restart");
    c.wait_healthy(Duration::from_secs(90)).await.expect("rejoined");
}
