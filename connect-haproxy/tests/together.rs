//! Against the real HAProxy: several app hosts' servers in one backend switched together in one runtime-API
//! exchange (`TrafficRouter::set_states_together`, what a fleet deploy's switch is), under keep-alive load.
//! With `CONNECT_REAL_TESTS=1` a missing haproxy fails the test.

use std::time::Duration;

use connect_core::router::AdminState;
use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::ServerSpec;
use connect_haproxy::testing::{HaproxyProcess, Load, TestApp, require_haproxy};

const HEALTH: &str = "/api/health";
const DEADLINE: Duration = Duration::from_secs(10);
const HOSTS: [&str; 3] = ["web1", "web2", "web3"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_switch_together_in_one_exchange_without_a_failed_request() {
    let Some(program) =
        require_haproxy("three_hosts_switch_together_in_one_exchange_without_a_failed_request")
    else {
        return;
    };
    let mut apps = Vec::new();
    let mut servers = Vec::new();
    for host in HOSTS {
        for (color, version) in [("blue", "v1"), ("green", "v2")] {
            let app = TestApp::start(version, HEALTH).await.expect("app");
            let mut spec = ServerSpec::new(&format!("{host}_{color}"), app.addr);
            spec.disabled = color == "green";
            servers.push(spec);
            apps.push(app);
        }
    }
    let proc = HaproxyProcess::start_with_servers(&program, servers)
        .await
        .expect("haproxy starts");
    let hx = proc.haproxy();
    let names = |color: &str| -> Vec<String> { HOSTS.iter().map(|h| format!("{h}_{color}")).collect() };
    let (blues, greens) = (names("blue"), names("green"));
    for blue in &blues {
        hx.wait_up(blue, DEADLINE).await.expect("blue UP");
    }
    // What the fleet's health gate does: each new color checked by HAProxy while it takes no traffic.
    for green in &greens {
        hx.set_admin(green, AdminState::Drain)
            .await
            .expect("green in drain");
        hx.wait_up(green, DEADLINE).await.expect("green UP");
    }

    // A name the backend lacks: refused before anything changes.
    let err = hx
        .set_states_together(&["web4_green".to_string()], &blues, DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(hx.server("web1_blue").await.unwrap().is_live(), "nothing changed");

    let load = Load::start(proc.http_addr(), 16, Duration::from_secs(60));
    load.wait_answered(200, DEADLINE).await.expect("load runs");
    let servers = hx
        .set_states_together(&greens, &blues, DEADLINE)
        .await
        .expect("switch");
    let mut live: Vec<&str> = servers
        .iter()
        .filter(|s| s.is_live())
        .map(|s| s.name.as_str())
        .collect();
    live.sort();
    assert_eq!(
        live,
        ["web1_green", "web2_green", "web3_green"],
        "confirmed from the same reply"
    );
    for blue in &blues {
        assert_eq!(hx.server(blue).await.unwrap().admin, AdminState::Drain);
    }
    load.wait_answered(200, DEADLINE).await.expect("load runs on");
    let report = load.stop().await;
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    assert!(
        report.by_version.get("v1").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert!(
        report.by_version.get("v2").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    // The switch was saved for a reload: the state file names every server in its new state.
    let state = std::fs::read_to_string(&proc.state_file).expect("state file");
    for name in blues.iter().chain(&greens) {
        assert!(state.contains(name.as_str()), "{name} in {state}");
    }
}
