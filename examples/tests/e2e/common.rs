//! What every end-to-end test shares: one stack at a time, the stack with v1 live under load, and the checks
//! every test ends with.

use std::time::Duration;

use connect_core::TrafficRouter;
use connect_core::engine::Deployer;
use connect_core::model::Color;
use connect_examples::load::{Load, LoadConfig, LoadReport};
use connect_examples::stack::{Stack, StackOptions, runbook};
use tokio::sync::{Mutex, MutexGuard};

/// One stack at a time in this binary (see the crate docs).
pub(crate) async fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::const_new(());
    SERIAL.lock().await
}

/// A stack with v1 live on blue and the seed rows in, and a deployer over it. `None` when skipped.
pub(crate) async fn v1_live(options: StackOptions) -> Option<(Stack, Deployer)> {
    let stack = Stack::start(options).await?;
    let deployer = stack.deployer().expect("a valid deploy config");
    runbook::bring_up_v1(&stack, &deployer)
        .await
        .unwrap_or_else(|e| panic!("bringing v1 up: {e}"));
    Some((stack, deployer))
}

/// 64 keep-alive connections on HAProxy's frontend, main route.
pub(crate) fn load(stack: &Stack, first_phase: &str) -> Load {
    let mut config = LoadConfig::new(stack.http_addr());
    config.first_phase = first_phase.to_string();
    config.request_timeout = Duration::from_secs(15);
    config.pace = runbook::LOAD_PACE;
    Load::start(config).expect("the load starts")
}

/// The color HAProxy sends traffic to, asserted to be exactly one, live, with a serving container.
pub(crate) async fn assert_one_healthy_color(stack: &Stack, deployer: &Deployer) -> Color {
    let observed = deployer.observe().await.expect("observe");
    let ready = observed.ready_colors();
    assert_eq!(ready.len(), 1, "exactly one color takes traffic: {observed:?}");
    let color = ready[0];
    let slot = deployer.config().topology.slot(color);
    let server = stack.router().server(&slot.server).await.expect("server");
    assert!(server.is_live(), "{color}'s server is live: {server:?}");
    let seen = &observed.slots[color as usize];
    let container = seen.container.as_ref().expect("the live color has a container");
    assert!(
        container.is_serving(),
        "{color}'s container serves: {container:?}"
    );
    color
}

/// The journal agrees with what HAProxy and Docker show (the live color, each color's release, no unknown
/// container). Each test checks the last operation's recorded outcome itself.
pub(crate) async fn assert_journal_true(deployer: &Deployer) {
    let status = deployer.status().await.expect("status");
    assert!(
        status.differences.is_empty(),
        "the journal tells the truth: {:?}",
        status.differences
    );
}

/// Only the two colors' containers may exist (no one-off job, nothing half-made), and the releases the tests
/// deploy are on the server whole (inspectable, with their layers).
pub(crate) async fn assert_nothing_half_made(stack: &Stack, deployer: &Deployer) {
    let containers = stack.containers().await.expect("containers");
    let topology = &deployer.config().topology;
    let allowed = [&topology.blue.container, &topology.green.container];
    assert!(
        containers.iter().all(|c| allowed.contains(&c)),
        "only the colors' containers remain: {containers:?}"
    );
    for version in ["v1", "v2"] {
        let release = stack.release(version);
        let info = connect_core::ContainerRuntime::image(&stack.docker, &release.image)
            .await
            .expect("inspect image")
            .unwrap_or_else(|| panic!("{version} is on the server"));
        assert!(!info.layers.is_empty(), "{version} is whole: {info:?}");
    }
}

/// Stops the load and returns its report, printed for the log.
pub(crate) async fn stop_load(load: Load) -> LoadReport {
    let report = load.stop().await;
    eprintln!("{report}");
    report
}

/// Prints the error lines both colors' containers logged since `since`: what a failed request was.
pub(crate) async fn print_app_errors(stack: &Stack, deployer: &Deployer, since: std::time::SystemTime) {
    use connect_core::ContainerRuntime;
    for slot in [
        &deployer.config().topology.blue,
        &deployer.config().topology.green,
    ] {
        if let Ok(lines) = stack.docker.logs_since(&slot.container, since).await {
            for line in lines.iter().filter(|l| l.to_ascii_lowercase().contains("error")) {
                eprintln!("{}: {line}", slot.container);
            }
        }
    }
}
