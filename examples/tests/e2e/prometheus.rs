//! Issue 16 on the real stack, one stack for both monitoring views during one deploy under load:
//! - `connect-ops exporter` as an operator runs it (a subprocess with its own SSH connection, from the
//!   stack's connect.toml), scraped by a real Prometheus (loopback, its own temp dir, 1 s scrapes); PromQL
//!   over what it stored shows the traffic moving from blue to green at the switch, and zero 5xx;
//! - `connect-ops watch` in a tmux pane (120x40): the screen shows the deploy's steps as they happen and
//!   green live after the switch; `q` leaves a clean terminal (main screen, cursor shown, no view left).

use std::net::SocketAddr;
use std::time::Duration;

use connect_core::engine::Outcome;
use connect_core::model::Color;
use connect_examples::prometheus::TestPrometheus;
use connect_examples::stack::StackOptions;
use connect_examples::testing::{Tmux, connect_ops, request};

use crate::common::{assert_journal_true, assert_one_healthy_color, load, serial, stop_load, v1_live};

/// Long enough for Prometheus to see two scrapes on either side of the switch.
const STORED: Duration = Duration::from_secs(30);
/// The stack's connect.toml takes PostgreSQL's password from this variable.
const PASSWORD_VAR: &str = "CONNECT_E2E_PG_PASSWORD";

/// A `connect-ops` subprocess, killed on drop.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_the_terminal_view_see_the_switch_from_blue_to_green() {
    let _one = serial().await;
    let Some((stack, deployer)) = v1_live(StackOptions::new("e2e_prometheus")).await else {
        return;
    };
    let Some(tmux) = Tmux::start("e2e_watch", 120, 40) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("connect.toml");
    std::fs::write(&config, stack.address().connect_toml()).expect("write the config");
    let config = config.display().to_string();

    let exporter_at = SocketAddr::from(([127, 0, 0, 1], connect_core::testing::free_port()));
    let _exporter = Running(
        std::process::Command::new(connect_ops())
            .args(["--config", &config, "exporter", "--listen"])
            .arg(exporter_at.to_string())
            .env(PASSWORD_VAR, connect_db::testing::PG_PASSWORD)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("connect-ops exporter starts"),
    );
    let scrape = connect_core::wait::poll_until(
        "exporter",
        "its first /metrics",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async move {
            Ok(match request(exporter_at, "GET", "/metrics", "").await {
                Ok(r) if r.status == 200 => Ok(String::from_utf8_lossy(&r.body).into_owned()),
                other => Err(format!("{:?}", other.map(|r| r.status))),
            })
        },
    )
    .await
    .expect("the exporter serves");
    assert!(scrape.ends_with("# EOF\n"), "{scrape}");
    let Some(prometheus) = TestPrometheus::start("e2e_prometheus", &[exporter_at]).expect("prometheus")
    else {
        return;
    };
    let watch = format!("{} --config {config} watch", connect_ops().display());
    let pane = tmux.run(&watch, &[(PASSWORD_VAR, connect_db::testing::PG_PASSWORD)]);
    let live = |color: &str| format!("live {color}");
    tmux.wait_for(&pane, "blue live on the view", STORED, |s| {
        s.contains(&live("blue"))
    })
    .await;

    let load = load(&stack, "before");
    let blue = r#"increase(connect_http_responses_total{color="blue"}[5s])"#;
    let before = prometheus.until(blue, STORED, |v| v > 0.0).await;
    assert!(
        before.unwrap_or(0.0) > 0.0,
        "blue answered before the switch: {before:?}"
    );

    load.phase("deploy v2");
    let record = deployer.deploy(stack.release("v2")).await.expect("the deploy");
    assert_eq!(record.outcome, Outcome::Succeeded);
    load.phase("after");
    let screen = tmux
        .wait_for(&pane, "green live and the deploy's end", STORED, |s| {
            s.contains(&live("green")) && s.contains("ended succeeded")
        })
        .await;
    eprintln!("the view after the deploy:\n{screen}");
    // What the view reads from the journal and the router, not the steps it infers from its samples: a
    // deploy of about a second falls between two samples of a 1 s view, which then misses "green started"
    // and "green healthy" (seen in CI; a known gap, in the issue's note).
    for seen in [
        "last: deploy v2 succeeded",
        "releases: blue v1, green v2",
        "health_gate",
        "switch",
        "green app2 ready",
    ] {
        assert!(screen.contains(seen), "{seen:?} on the view:\n{screen}");
    }
    assert!(screen.contains("req/s"), "{screen}");

    let green = r#"increase(connect_http_responses_total{color="green"}[5s])"#;
    let after = prometheus.until(green, STORED, |v| v > 0.0).await;
    assert!(
        after.unwrap_or(0.0) > 0.0,
        "green answers after the switch: {after:?}"
    );
    let drained = prometheus.until(blue, STORED, |v| v == 0.0).await;
    assert_eq!(drained, Some(0.0), "blue answers nothing once drained");
    let traffic = stop_load(load).await;

    // q: the view ends with exit 0 and gives the terminal back as it was.
    tmux.press(&pane, "q");
    let after_exit = tmux
        .wait_for(&pane, "the view's end", STORED, |s| s.contains("EXIT="))
        .await;
    assert!(after_exit.contains("EXIT=0"), "{after_exit}");
    assert!(
        !after_exit.contains("traffic (HAProxy") && !after_exit.contains('│'),
        "nothing of the view left on the main screen:\n{after_exit}"
    );
    assert_eq!(
        tmux.format(&pane, "#{alternate_on}"),
        "0",
        "the alternate screen left"
    );
    assert_eq!(tmux.format(&pane, "#{cursor_flag}"), "1", "the cursor shown");

    assert_eq!(
        prometheus.query(r#"connect_live{color="green"}"#).await,
        Some(1.0)
    );
    let was_live = r#"max_over_time(connect_live{color="blue"}[5m])"#;
    assert_eq!(
        prometheus.query(was_live).await,
        Some(1.0),
        "blue was live before"
    );
    assert_eq!(
        prometheus.query("sum(connect_http_responses_5xx_total)").await,
        Some(0.0),
        "zero 5xx"
    );
    let deploys = r#"connect_deploys_total{outcome="succeeded"}"#;
    assert!(
        prometheus.until(deploys, STORED, |v| v >= 2.0).await >= Some(2.0),
        "v1 and v2 counted"
    );
    let switch = r#"connect_step_duration_seconds_count{step="switch"}"#;
    assert!(
        prometheus.query(switch).await >= Some(2.0),
        "the switch's duration observed"
    );
    assert_eq!(traffic.total.failed, 0, "no request failed: {traffic}");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
    assert_journal_true(&deployer).await;
}
