//! The watch and maintenance mode on the real stack. A release that passes the health gate and verification,
//! then starts answering 500 thirty seconds into the watch, is rolled back automatically by the watch, and the
//! requests it failed meanwhile are counted, in that phase only. And a database restore behind the maintenance
//! page.

use std::net::SocketAddr;
use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::engine::{Event, Outcome, Step};
use connect_core::model::{Color, WatchPolicy};
use connect_examples::stack::StackOptions;
use connect_examples::testing::request;

use crate::common::{
    assert_journal_true, assert_nothing_half_made, assert_one_healthy_color, load, serial, stop_load, v1_live,
};

/// When the release turns bad, measured from the watch's start.
const BREAKS_AFTER: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_answering_500_thirty_seconds_into_the_watch_is_rolled_back() {
    let _one = serial().await;
    let Some((stack, _)) = v1_live(StackOptions::new("e2e_watch_500")).await else {
        return;
    };
    let mut config = stack.deploy_config();
    config.policy.watch = WatchPolicy::new(Duration::from_secs(60), Duration::from_secs(2));
    let green: SocketAddr = ([127, 0, 0, 1], config.topology.green.host_port).into();
    let deployer = connect_core::engine::Deployer::new(stack.backends(), config).expect("a valid config");
    let mut events = deployer.subscribe();
    let load = load(&stack, "deploy v2");
    // Driven by the watch's own samples: at the first one 30 s in, green is told to fail its main route.
    let breaker = async {
        let mut samples = 0;
        loop {
            match events.recv().await {
                Ok(Event::WatchSample { elapsed, breach, .. }) => {
                    samples += 1;
                    assert!(
                        breach.is_none() || elapsed >= BREAKS_AFTER,
                        "a breach before the release broke"
                    );
                    if elapsed >= BREAKS_AFTER {
                        load.phase("erroring");
                        let set = request(green, "POST", "/admin/mode", "erroring")
                            .await
                            .expect("mode");
                        assert_eq!(set.status, 200);
                        return samples;
                    }
                }
                Ok(Event::OperationFinished { .. }) | Err(_) => {
                    panic!("the deploy ended before the watch reached 30 s")
                }
                Ok(_) => {}
            }
        }
    };
    let (deployed, samples_before) = tokio::join!(deployer.deploy(stack.release("v2")), breaker);
    load.phase("after");
    let mut breach = None;
    while let Ok(e) = events.try_recv() {
        if let Event::WatchSample {
            breach: Some(why), ..
        } = e
        {
            breach = Some(why);
        }
    }
    let traffic = stop_load(load).await;

    let err = deployed.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unhealthy, "{err}");
    let why = breach.expect("a sample reported the breach");
    assert!(
        why.contains("responses were 5xx") || why.contains("error lines"),
        "{why}"
    );
    for phase in ["deploy v2", "after"] {
        let p = traffic.phase(phase).expect("phase");
        assert_eq!(p.failed, 0, "no failed request in {phase}: {p:?}");
    }
    let erroring = traffic.phase("erroring").expect("the erroring phase");
    assert!(
        erroring.failed > 0,
        "the release's 500s were seen by clients: {erroring:?}"
    );
    for reason in erroring.failures.keys() {
        assert_eq!(reason, "status 500", "only the release's own 500s: {erroring:?}");
    }
    eprintln!(
        "watch: {samples_before} clean samples, then broke; {} requests failed with 500 before the automatic \
         rollback ({why})",
        erroring.failed
    );
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Blue);
    let record = deployer
        .journal()
        .await
        .expect("journal")
        .history
        .last()
        .cloned()
        .expect("a record");
    assert!(
        matches!(
            record.outcome,
            Outcome::RolledBack {
                step: Step::Watch,
                ..
            }
        ),
        "{record:?}"
    );
    assert_journal_true(&deployer).await;
    assert_nothing_half_made(&stack, &deployer).await;
}

/// One `GET /` on its own connection: the status and the `Retry-After` header.
async fn status_and_retry_after(addr: SocketAddr) -> (u16, Option<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut conn = BufReader::new(stream);
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: connect.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut line = String::new();
    conn.read_line(&mut line).await.expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut retry_after = None;
    loop {
        let mut header = String::new();
        conn.read_line(&mut header).await.expect("header");
        let header = header.trim_end();
        if header.is_empty() {
            return (status, retry_after);
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("retry-after")
        {
            retry_after = Some(value.trim().to_string());
        }
    }
}

/// Maintenance mode on the real stack: a database restore run behind the maintenance page, under load. Every request
/// meanwhile is answered 503 with `Retry-After` (counted), and none before or after fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_around_a_database_restore_answers_503_and_nothing_else_fails() {
    use connect_core::TrafficRouter;
    use connect_core::wait::poll_until;
    use connect_db::backup::logical_backup;
    use connect_db::restore::{RestoreOptions, restore_logical};

    let _one = serial().await;
    let Some((stack, deployer)) = v1_live(StackOptions::new("e2e_maintenance")).await else {
        return;
    };
    let host = stack.ssh.as_ref();
    let config = stack.backup_config();
    let source = stack
        .database()
        .leader_postgres()
        .await
        .expect("leader")
        .target()
        .clone();
    let backup = logical_backup(host, &source, "before-maintenance", &config)
        .await
        .expect("backup");
    let load = load(&stack, "before");
    let answered = |n: u64| {
        let load = &load;
        async move {
            let until = load.completed() + n;
            poll_until(
                "test",
                "load",
                Duration::from_secs(30),
                Duration::from_millis(10),
                || async {
                    Ok(if load.completed() >= until {
                        Ok(())
                    } else {
                        Err("not yet".to_string())
                    })
                },
            )
            .await
            .expect("the load is answered");
        }
    };
    answered(200).await;
    load.phase("maintenance");
    let addr = stack.http_addr();
    let (restored, seen) = deployer
        .with_maintenance("database restore", || async {
            let seen = status_and_retry_after(addr).await;
            let restored = restore_logical(
                host,
                &source,
                &backup.path,
                &config,
                &RestoreOptions {
                    expected_sha256: Some(backup.sha256.clone()),
                    ..RestoreOptions::default()
                },
            )
            .await?;
            // The load meets the page too before it goes off.
            answered(200).await;
            Ok((restored, seen))
        })
        .await
        .expect("the restore behind the page");
    load.phase("after");
    answered(200).await;
    let traffic = stop_load(load).await;

    assert_eq!(
        seen,
        (503, Some("120".to_string())),
        "the page with its Retry-After"
    );
    for phase in ["before", "after"] {
        let p = traffic.phase(phase).expect("phase");
        assert_eq!(p.failed, 0, "no failed request {phase} the maintenance: {p:?}");
    }
    let during = traffic.phase("maintenance").expect("maintenance phase");
    assert!(during.failed > 0, "the load met the page: {during:?}");
    for reason in during.failures.keys() {
        assert_eq!(reason, "status 503", "only the page's answers: {during:?}");
    }
    eprintln!(
        "maintenance: {} requests answered 503 + Retry-After by the page during a {:.2} s restore; 0 failed \
         before or after",
        during.failed,
        restored.took.as_secs_f64()
    );
    let journal = deployer.journal().await.expect("journal");
    assert!(journal.maintenance.is_none());
    assert!(
        !stack.router().maintenance().await.expect("read"),
        "the page is off"
    );
    assert_journal_true(&deployer).await;
}
