//! Issue 14.4 on the real stack: a release that passes the health gate and verification, then starts
//! answering 500 thirty seconds into the watch, is rolled back automatically by the watch, and the requests
//! it failed meanwhile are counted, in that phase only.

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
    config.policy.watch = WatchPolicy {
        window: Duration::from_secs(60),
        interval: Duration::from_secs(2),
        ..WatchPolicy::default()
    };
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
