//! The watch after a fleet's switch, in paused time: every host's new color watched at once; a regression on
//! one host puts every host back on its old color in one router exchange, recorded in every journal.

use std::time::Duration;

use connect_core::engine::fleet::{Fleet, FleetPolicy};
use connect_core::engine::{DeployConfig, Event, Outcome, Step, StepStatus};
use connect_core::memory::{AppBehavior, MemoryFleet};
use connect_core::model::{Color, WatchPolicy};
use connect_core::router::TrafficRouter;

use super::{HOSTS, journal_live, live_servers, release};

const WINDOW: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_secs(5);

/// Three hosts, v1 live on blue everywhere under 300 requests a second, the watch on.
async fn watched_fleet() -> (MemoryFleet, Fleet) {
    let stack = MemoryFleet::new(&HOSTS);
    stack.add_image(&release("v1").image, AppBehavior::default());
    stack.add_image(&release("v2").image, AppBehavior::default());
    let mut config = DeployConfig::runbook();
    config.policy.watch = WatchPolicy::new(WINDOW, INTERVAL);
    let fleet = Fleet::new(stack.app_hosts(), stack.shared(), config, FleetPolicy::default()).unwrap();
    stack.router.set_load(300);
    fleet.deploy(release("v1")).await.unwrap();
    (stack, fleet)
}

#[tokio::test(start_paused = true)]
async fn every_host_is_watched_for_the_window_and_keeps_the_release() {
    let (stack, fleet) = watched_fleet().await;
    let mut samples = fleet.deployer("web3").unwrap().subscribe();
    let started = tokio::time::Instant::now();
    let report = fleet.deploy(release("v2")).await.unwrap();
    assert_eq!(report.in_rotation(), HOSTS);
    assert!(
        started.elapsed() < WINDOW * 2,
        "the hosts are watched at once, not one after another: {:?}",
        started.elapsed()
    );
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"]
    );
    for host in &report.hosts {
        let record = host.record.as_ref().unwrap();
        let watch = record.step(Step::Watch).expect("a watch step on every host");
        assert_eq!(watch.status, StepStatus::Ok, "{}: {watch:?}", host.host);
        assert!(watch.duration_ms >= WINDOW.as_millis() as u64, "{watch:?}");
    }
    let mut seen = 0;
    while let Ok(e) = samples.try_recv() {
        if let Event::WatchSample { color, responses, .. } = e {
            assert_eq!(color, Color::Green);
            seen += 1;
            // A third of 300 requests a second reaches each host.
            assert!(responses > 0, "web3's green takes its share of the traffic");
        }
    }
    assert_eq!(seen, 6, "one sample every 5 s for 30 s");
}

#[tokio::test(start_paused = true)]
async fn a_regression_on_one_host_puts_every_host_back_in_one_exchange() {
    let (stack, fleet) = watched_fleet().await;
    let bad = release("v3");
    stack.add_image(&bad.image, AppBehavior::default());
    // Only web2's v3 breaks, 10 s into its life (after its health gate, within the watch).
    stack.host("web2").unwrap().runtime.add_image(
        &bad.image,
        AppBehavior {
            errors_after: Some(Duration::from_secs(10)),
            ..AppBehavior::default()
        },
    );
    let started = tokio::time::Instant::now();
    let err = fleet.deploy(bad).await.unwrap_err();
    assert_eq!(err.kind(), connect_core::ErrorKind::Unhealthy, "{err}");
    let text = err.to_string();
    assert!(text.contains("regression on web2"), "{text}");
    assert!(text.contains("5xx"), "{text}");
    assert!(
        started.elapsed() < WINDOW,
        "the breach ends every watch at once: {:?}",
        started.elapsed()
    );
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"],
        "every host is back on its standby"
    );
    let stats = stack.router.servers().await.unwrap();
    assert!(
        stats
            .iter()
            .filter(|s| s.name.ends_with("_green"))
            .all(|s| !s.is_live()),
        "{stats:?}"
    );
    for host in HOSTS {
        assert_eq!(journal_live(&fleet, host).await, Some(Color::Blue), "{host}");
        let journal = fleet.deployer(host).unwrap().journal().await.unwrap();
        let last = journal.history.last().unwrap();
        assert_eq!(last.release.as_ref().unwrap().version, "v3");
        // The fleet put traffic back before each host's undo looked, so the undo finds the old color live.
        assert!(
            matches!(
                &last.outcome,
                Outcome::RolledBack {
                    step: Step::Watch,
                    ..
                } | Outcome::Failed {
                    step: Step::Watch,
                    ..
                }
            ),
            "{host}: {:?}",
            last.outcome
        );
        let watch = last.step(Step::Watch).unwrap();
        assert_eq!(watch.status, StepStatus::Failed, "{host}: {watch:?}");
        if host == "web2" {
            assert!(watch.detail.contains("responses were 5xx"), "{watch:?}");
        } else {
            assert!(watch.detail.contains("stopped: web2"), "{host}: {watch:?}");
        }
        assert!(journal.intent.is_none(), "{host}: settled");
        assert!(
            !journal.slots.contains_key(&Color::Green),
            "{host}: the release that was rolled back is not kept"
        );
        assert_eq!(
            stack.host(host).unwrap().runtime.container_names(),
            ["connect_app1"],
            "{host}"
        );
    }
    assert!(fleet.status().await.differences().is_empty());
}
