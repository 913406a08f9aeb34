//! Every database-side call is bounded. A check query or a dump behind a migration's table
//! lock fails fast as a Timeout; a hung Patroni node does not stop the next from being asked; a huge reply
//! is refused, not buffered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::ErrorKind;
use connect_core::database::{DatabaseCluster, Role};
use connect_core::local::LocalHost;
use connect_db::backup::{BackupConfig, logical_backup};
use connect_db::testing::{leader_client, pg_bin};
use connect_db::{HealthCheck, Patroni, PatroniCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{LEADERSHIP, app_database, cluster, leader_target};

/// What the test allows before calling a call unbounded: far above the bounds set, far below "hangs".
const HANG: Duration = Duration::from_secs(30);

/// Holds `ACCESS EXCLUSIVE` on `users` in an open transaction, as a migration rewriting the table does.
async fn lock_users(db: &PatroniCluster) -> tokio_postgres::Client {
    let locker = leader_client(db).await.expect("connect");
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    locker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_query_behind_a_migration_lock_fails_fast_as_a_timeout() {
    let Some(c) = cluster("check_query_locked").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "locked", 5).await;
    let login = c
        .login()
        .database("locked")
        .lock_timeout(Duration::from_millis(800));
    let bounded = PatroniCluster::new(&c.rest_urls(), login.clone()).expect("client");
    let locker = lock_users(&db).await;

    let t = Instant::now();
    let e = tokio::time::timeout(HANG, bounded.check_query())
        .await
        .expect("the check query must not wait for the lock")
        .expect_err("locked");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.message().contains("55P03"),
        "recognised by SQLSTATE lock_not_available: {e}"
    );
    assert!(e.is_retryable());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // statement_timeout bounds a slow statement the same way (57014).
    let slow = PatroniCluster::new(
        &c.rest_urls(),
        login.statement_timeout(Duration::from_millis(500)),
    )
    .expect("client")
    .with_check_query("SELECT count(*) FROM pg_sleep(20)");
    let t = Instant::now();
    let e = tokio::time::timeout(HANG, slow.check_query())
        .await
        .expect("bounded")
        .expect_err("slow");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("57014"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    locker.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(bounded.check_query().await.expect("unlocked"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_gives_up_on_a_locked_table() {
    let Some(c) = cluster("pg_dump_locked").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "dumplocked", 5).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = pg_bin("pg_dump");
    let cfg = BackupConfig::new(dir.path().to_str().expect("utf-8"))
        .bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"));
    let source = leader_target(&db).await.lock_timeout(Duration::from_secs(1));
    let locker = lock_users(&db).await;
    let e = tokio::time::timeout(HANG, logical_backup(&LocalHost::new(), &source, "l1", &cfg))
        .await
        .expect("pg_dump must not wait for the lock (--lock-wait-timeout)")
        .expect_err("locked");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    drop(locker);
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").flatten().collect();
    assert!(left.is_empty(), "no partial dump left: {left:?}");

    // And the whole run has a deadline of its own: pg_dump stopped, Timeout.
    let locker = lock_users(&db).await;
    let mut cfg = cfg;
    cfg.deadline = Duration::from_secs(2);
    let unbounded_lock = source.lock_timeout(Duration::ZERO);
    let t = Instant::now();
    let e = logical_backup(&LocalHost::new(), &unbounded_lock, "l2", &cfg)
        .await
        .expect_err("deadline");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    drop(locker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_patroni_node_is_passed_over_within_the_callers_budget() {
    let Some(c) = cluster("patroni_hung_node").await else {
        return;
    };
    // Freezing a node's Patroni must not overlap a switchover.
    let _g = LEADERSHIP.write().await;
    let admin = c.client("postgres");
    let replica = admin
        .patroni()
        .cluster()
        .await
        .expect("cluster")
        .into_iter()
        .find(|m| m.member.role == Role::Replica)
        .expect("a replica");
    let frozen_node = c
        .nodes
        .iter()
        .find(|n| n.name == replica.member.name)
        .expect("node");
    let live_node = c
        .nodes
        .iter()
        .find(|n| n.name != replica.member.name)
        .expect("node");
    // The hung node is asked first.
    let urls = [frozen_node.rest_url(), live_node.rest_url()];
    let direct = Patroni::new(&urls).expect("client");
    let through = Patroni::new(&urls)
        .expect("client")
        .through(Arc::new(LocalHost::new()));
    let _frozen = frozen_node.freeze();
    let e = direct
        .health(&frozen_node.rest_url(), HealthCheck::Liveness)
        .await
        .expect_err("a frozen Patroni does not answer");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    for (how, p) in [("direct", &direct), ("through a host", &through)] {
        let t = Instant::now();
        let members = tokio::time::timeout(Duration::from_secs(10), p.members())
            .await
            .unwrap_or_else(|_| panic!("{how}: the hung node held the whole budget"))
            .expect("the second node answers");
        assert_eq!(members.len(), 2, "{how}");
        assert!(
            t.elapsed() < p.read_timeout + Duration::from_secs(3),
            "{how}: {:?}",
            t.elapsed()
        );
    }
}

/// A server that answers every request with `200 OK` and a body that never ends (chunked), or announces
/// 1 GiB (`Content-Length`).
async fn endless_server(announce_length: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req).await;
                let head = if announce_length {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                };
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                loop {
                    let framed = if announce_length {
                        chunk.clone()
                    } else {
                        [
                            format!("{:x}\r\n", chunk.len()).into_bytes(),
                            chunk.clone(),
                            b"\r\n".to_vec(),
                        ]
                        .concat()
                    };
                    if s.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_reply_body_is_refused_not_buffered() {
    for announce in [false, true] {
        let url = endless_server(announce).await;
        let direct = Patroni::new(&[&url]).expect("client");
        let through = Patroni::new(&[&url])
            .expect("client")
            .through(Arc::new(LocalHost::new()));
        for (how, p) in [("direct", direct), ("through a host", through)] {
            let e = tokio::time::timeout(HANG, p.cluster())
                .await
                .unwrap_or_else(|_| panic!("{how}: read without limit"))
                .expect_err("huge");
            assert!(
                e.message().contains("larger than 4 MiB"),
                "{how}, length announced {announce}: {e}"
            );
        }
    }
}
