//! Against the real HAProxy: master-worker on 127.0.0.1, in front of two real HTTP apps (blue and green).
//! With `CONNECT_REAL_TESTS=1` a missing haproxy fails every test here.

mod own_config;
mod reload;
mod runtime_api;
mod servers;
mod switch;

use std::time::Duration;

use connect_core::TrafficRouter;
use connect_core::conformance::router_suite;
use connect_core::wait::poll_until;
use connect_haproxy::Haproxy;
use connect_haproxy::testing::{Load, TestStack};

const DEADLINE: Duration = Duration::from_secs(10);

/// The shared stack: blue (`app1`) live, green (`app2`) drained, both checked UP.
async fn stack(test: &str) -> Option<TestStack> {
    TestStack::start(test).await.expect("the test stack starts")
}

async fn live(hx: &Haproxy) -> Vec<String> {
    hx.servers()
        .await
        .expect("servers")
        .into_iter()
        .filter(|s| s.is_live())
        .map(|s| s.name)
        .collect()
}

/// One request through HAProxy on a fresh connection; returns the version that answered.
async fn get_version(stack: &TestStack) -> String {
    let load = Load::start(stack.proc.http_addr(), 1, Duration::from_secs(5));
    poll_until(
        "test.get",
        "haproxy",
        DEADLINE,
        Duration::from_millis(1),
        || async {
            Ok(if load.answered() > 0 {
                Ok(())
            } else {
                Err("no answer yet".to_string())
            })
        },
    )
    .await
    .expect("an answer");
    let report = load.stop().await;
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    let mut versions: Vec<_> = report.by_version.keys().cloned().collect();
    assert_eq!(versions.len(), 1, "one version answered: {versions:?}");
    versions.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_against_real_haproxy() {
    let Some(s) = stack("conformance_suite_passes_against_real_haproxy").await else {
        return;
    };
    router_suite(&s.hx, "app1", "app2").await;
}
