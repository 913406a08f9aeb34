//! Several app hosts in one deploy against real programs (issue 18.1): three app hosts, each a machine as
//! separate as one box allows (`stack::fleet`: its own Docker Engine in its own network namespace, its sshd
//! there on the host's address, its own state directory), one HAProxy in a namespace of its own reaching every
//! host's slots at the host's address, a server per host and color. One stack, the phases in order:
//! the releases shipped to every host's engine by the product's ship path (only missing layers) and a deploy
//! under keep-alive load with zero failed requests; one host never healthy (its idle port taken on that host:
//! nothing switched anywhere); one host's SSH cut mid-deploy with the default policy (every host required):
//! the deploy aborts everywhere, the journals saying why, and once the host is back the next deploy settles
//! what the cut left there; the same cut with `min_healthy_hosts = 2`, so the deploy continues without it,
//! the journals saying which; then `connect-ops` over the fleet from its `connect.toml` (deploy, status,
//! rollback, a missing release, an unreachable host), each a subprocess with `--json`; last, roles: a fourth
//! host joins as a worker (no HAProxy server, its own command), follows two deploys under load running one
//! color, and a rollback. With `CONNECT_REAL_TESTS=1` a missing program fails the test.

use std::time::Duration;

use connect_core::engine::fleet::{FleetPolicy, Role};
use connect_core::engine::{Event, Outcome, Step};
use connect_core::model::Color;
use connect_core::runtime::ContainerRuntime;
use connect_core::ship::{ShipOutcome, ShipProgressFn};
use connect_core::testing::live_servers as live_servers_of;
use connect_examples::config::ConnectConfig;
use connect_examples::stack::fleet::{FleetStack, PG_PASSWORD_VAR};
use connect_examples::testing::connect_ops_json;
use connect_haproxy::testing::Load;
use tokio::sync::broadcast::Receiver;

async fn live_servers(stack: &FleetStack) -> Vec<String> {
    live_servers_of(&stack.haproxy.haproxy()).await.unwrap()
}

/// Runs `connect-ops --json --config <file> args…`: its exit code and its JSON lines.
fn ops(config: &std::path::Path, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let run = connect_ops_json(
        config,
        args,
        &[(PG_PASSWORD_VAR, connect_db::testing::PG_PASSWORD)],
    );
    (run.code, run.lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_deploy_together_abort_together_and_leave_a_dead_host_out() {
    let test = "three_hosts_deploy_together_abort_together_and_leave_a_dead_host_out";
    let begun = std::time::Instant::now();
    // A fourth host joins at the end, as a worker.
    let Some(stack) = FleetStack::start_with_services(test, 4)
        .await
        .expect("the fleet stack starts")
    else {
        return;
    };
    eprintln!(
        "stack (4 engines, sshds, HAProxy, Patroni, Redis, releases): {:.1} s",
        begun.elapsed().as_secs_f64()
    );
    let fleet = stack.fleet(3, FleetPolicy::default()).await.unwrap();

    // 1. v1 everywhere (shipped to every host's empty engine), then v2 under load: only v2's own layers
    // shipped, every host switched in one exchange, no request failed.
    let mut ships = fleet.deployer("web1").unwrap().subscribe();
    let t = std::time::Instant::now();
    fleet
        .deploy_from(stack.release("v1"), stack.source("v1"))
        .await
        .expect("v1 deploys");
    eprintln!("first deploy on 3 hosts: {:.1} s", t.elapsed().as_secs_f64());
    let v1_sent = sent_layers(&mut ships);
    assert!(v1_sent > 0, "v1 was sent to web1's empty engine");
    for h in stack.hosts.iter().take(3) {
        let docker = h.docker().await.unwrap();
        let image = stack.release("v1").image.to_string();
        assert!(
            docker.image_info(&image).await.unwrap().is_some(),
            "{}: v1 is on its own engine",
            h.name
        );
    }
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );
    let load = Load::start(stack.http_addr(), 32, Duration::from_secs(120));
    let t = std::time::Instant::now();
    let report = fleet
        .deploy_from(stack.release("v2"), stack.source("v2"))
        .await
        .expect("v2 deploys");
    eprintln!("deploy under load on 3 hosts: {:.1} s", t.elapsed().as_secs_f64());
    let v2_sent = sent_layers(&mut ships);
    assert!(
        (1..v1_sent).contains(&v2_sent),
        "v2 shipped only the layers web1 lacked: {v2_sent} of v1's {v1_sent}"
    );
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    assert!(seen.ok > 0);
    assert_eq!(report.in_rotation(), ["web1", "web2", "web3"]);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"]
    );
    assert!(
        fleet.status().await.differences().is_empty(),
        "{:?}",
        fleet.status().await.differences()
    );
    for h in stack.hosts.iter().take(3) {
        assert_eq!(h.sshd.accepted_connections(), 1, "{}: one SSH connection", h.name);
    }

    // 2. One host never healthy: web2's idle port is taken on web2, so its v3 never gets healthy; nothing
    // switches, every host stays on v2.
    fleet
        .deployer("web2")
        .unwrap()
        .retire_standby()
        .await
        .expect("web2's standby retired");
    let squatter = stack.hosts[1]
        .take_port(stack.hosts[1].topology.blue.host_port)
        .unwrap();
    let err = fleet
        .deploy_from(stack.release("v3"), stack.source("v3"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("web2"), "{err}");
    drop(squatter);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"],
        "nothing switched"
    );
    for h in ["web1", "web2", "web3"] {
        let journal = fleet.deployer(h).unwrap().journal().await.unwrap();
        assert_eq!(journal.slots[&journal.live.unwrap()].release.version, "v2", "{h}");
        assert!(journal.intent.is_none(), "{h}: settled");
    }
    assert!(
        fleet.status().await.differences().is_empty(),
        "{:?}",
        fleet.status().await.differences()
    );

    // 3. web3's SSH is cut just after its idle color started (sshd stopped, connection cut), with the
    // default policy (every host required): the deploy aborts everywhere. Under load, nothing switches: every
    // host's old color stays live, web1's and web2's new colors are removed, and their journals' last records
    // say the deploy was aborted because of web3. web3's health gate waits for its host until its deadline,
    // shortened here to keep the phase short (web1 and web2 are healthy within a second or two).
    let mut config = stack.deploy_config();
    config.policy.health_deadline = Duration::from_secs(10);
    let impatient = stack.fleet_with(3, FleetPolicy::default(), config).await.unwrap();
    let events = impatient.deployer("web3").unwrap().subscribe();
    let t = std::time::Instant::now();
    let load = Load::start(stack.http_addr(), 16, Duration::from_secs(120));
    let deploy = impatient.deploy_from(stack.release("v3"), stack.source("v3"));
    let (err, ()) = tokio::join!(deploy, cut_after_start_idle(&stack, events, "web3"));
    let err = err.expect_err("the deploy aborts without web3");
    let seen = load.stop().await;
    eprintln!(
        "aborted deploy (web3 cut): {:.1} s: {err}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    assert!(
        err.to_string()
            .contains("web3 live green (left for later: its journal could not be written"),
        "the error says web3 is left for later: {err}"
    );
    // Its gate could not reach web3: unavailable, not the timeout of a slow app.
    assert_eq!(err.kind(), connect_core::ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("could not be reached"), "{err}");
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green", "web3_green"],
        "nothing switched"
    );
    for h in &stack.hosts[..2] {
        let journal = fleet.deployer(&h.name).unwrap().journal().await.unwrap();
        assert_eq!(
            journal.slots[&journal.live.unwrap()].release.version,
            "v2",
            "{}",
            h.name
        );
        assert!(journal.intent.is_none(), "{}: settled", h.name);
        let last = journal.history.last().unwrap();
        match &last.outcome {
            Outcome::Failed { step, error, .. } => {
                assert_eq!(*step, Step::Switch, "{}: stopped before the switch", h.name);
                assert!(
                    error.contains("aborted") && error.contains("web3"),
                    "{}'s record says why: {error}",
                    h.name
                );
            }
            other => panic!("{}: {other:?}", h.name),
        }
        let docker = h.docker().await.unwrap();
        assert!(
            docker
                .inspect(&h.topology.blue.container)
                .await
                .unwrap()
                .is_none(),
            "{}: v3 removed",
            h.name
        );
    }

    // web3 comes back (same address and host keys): the next deploy settles what the cut left there (the
    // intent, the half-started blue) and records it, then succeeds on every host; every journal matches.
    stack.bring_back("web3").await.unwrap();
    let t = std::time::Instant::now();
    let report = fleet
        .deploy_from(stack.release("v3"), stack.source("v3"))
        .await
        .expect("v3 deploys once web3 is back");
    eprintln!("deploy after web3 came back: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(report.in_rotation(), ["web1", "web2", "web3"]);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_blue", "web2_blue", "web3_blue"]
    );
    let web3 = fleet.deployer("web3").unwrap().journal().await.unwrap();
    let settled = &web3.history[web3.history.len() - 2];
    assert!(
        matches!(settled.outcome, Outcome::Interrupted { .. })
            && settled.release.as_ref().unwrap().version == "v3",
        "web3's journal records the cut deploy as settled: {settled:?}"
    );
    assert!(
        fleet.status().await.differences().is_empty(),
        "{:?}",
        fleet.status().await.differences()
    );

    // 4. web3's SSH is cut as its idle color starts again; the policy, min_healthy_hosts = 2, says
    // continue: the others switch, the journals name web3 as left out.
    let fleet = stack
        .fleet(
            3,
            FleetPolicy {
                min_healthy_hosts: Some(2),
            },
        )
        .await
        .unwrap();
    let mut events = fleet.deployer("web3").unwrap().subscribe();
    let load = Load::start(stack.http_addr(), 16, Duration::from_secs(120));
    let deploy = fleet.deploy_from(stack.release("v2"), stack.source("v2"));
    let cut = async {
        while let Ok(event) = events.recv().await {
            if matches!(
                event,
                Event::StepStarted {
                    step: Step::StartIdle
                }
            ) {
                stack.take_down("web3");
                return;
            }
        }
    };
    let (report, ()) = tokio::join!(deploy, cut);
    let report = report.expect("the deploy continues without web3");
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    assert_eq!(report.in_rotation(), ["web1", "web2"]);
    assert_eq!(report.left_out(), ["web3"]);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green"],
        "web3 takes no traffic"
    );
    for h in ["web1", "web2"] {
        let journal = fleet.deployer(h).unwrap().journal().await.unwrap();
        let switch = journal.history.last().unwrap().step(Step::Switch).cloned();
        assert!(
            switch.unwrap().detail.contains("left out of rotation: web3"),
            "{h}'s journal names web3"
        );
        assert_eq!(journal.slots[&journal.live.unwrap()].release.version, "v2");
    }

    eprintln!("stack and phases 1-4: {:.1} s", begun.elapsed().as_secs_f64());

    // 5. connect-ops over web1 and web2 from connect.toml: deploy under load, status, rollback.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("connect.toml");
    std::fs::write(&config, stack.connect_toml(2).unwrap()).unwrap();
    let load = Load::start(stack.http_addr(), 16, Duration::from_secs(120));
    let (code, lines) = ops(&config, &["deploy", "v3"]);
    let seen = load.stop().await;
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    let report = lines.last().expect("the report");
    for (i, h) in ["web1", "web2"].iter().enumerate() {
        assert_eq!(report["hosts"][i]["host"], *h, "{report}");
        assert_eq!(report["hosts"][i]["live"], "blue", "{report}");
        assert_eq!(report["hosts"][i]["record"]["outcome"]["result"], "succeeded");
        assert!(
            lines
                .iter()
                .any(|l| l["host"] == *h && l["event"] == "step_finished"),
            "{h}'s events came first, each with its host"
        );
    }
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    let (code, status) = ops(&config, &["status"]);
    assert_eq!(code, Some(0), "{status:?}");
    for i in 0..2 {
        assert_eq!(status[0]["hosts"][i]["status"]["live"], "blue", "{status:?}");
        assert_eq!(
            status[0]["hosts"][i]["status"]["differences"],
            serde_json::json!([])
        );
    }
    let (code, lines) = ops(&config, &["rollback"]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);

    // A release no host has: exit 1, as for one host, and traffic stays where it was.
    let (code, lines) = ops(&config, &["deploy", "v404"]);
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.last().expect("the error")["error"]["kind"], "not_found");
    assert_eq!(live_servers(&stack).await, ["web1_green", "web2_green"]);

    // web3 is down: a config listing it cannot reach it, exit 5 (unavailable), as for one server.
    std::fs::write(&config, stack.connect_toml(3).unwrap()).unwrap();
    let (code, lines) = ops(&config, &["status"]);
    assert_eq!(code, Some(5), "{lines:?}");

    // 6. Roles, from connect.toml: web1 and web2 serve, web4 is a worker (no server in HAProxy, the demo
    // app's `serve` as [roles.worker]'s command). Two deploys under load, then a rollback.
    let worker = &stack.hosts[3];
    for v in ["w1", "w2"] {
        stack.releases.build_extra(v, None).await.expect("release built");
    }
    let roles = [("web1", Role::Web), ("web2", Role::Web), ("web4", Role::Worker)];
    let toml = stack.connect_toml_for(&roles).unwrap();
    std::fs::write(&config, &toml).unwrap();
    // The releases reach each host as `connect-ops ship` would send them: only the layers it lacks, over
    // the hosts the config lists (the worker's engine is empty: it gets every layer).
    // (The password's variable is connect-ops' to read; this process has the value itself.)
    let with_password = toml.replace(
        &format!("${{{PG_PASSWORD_VAR}}}"),
        connect_db::testing::PG_PASSWORD,
    );
    let parsed = ConnectConfig::parse("connect.toml", &with_password).expect("the config reads");
    for v in ["w1", "w2"] {
        let source = stack.source(v);
        for host in parsed.app_hosts_shipping(Some(&source)).await.unwrap() {
            let progress: ShipProgressFn = std::sync::Arc::new(|_| {});
            host.runtime
                .ship(&stack.release(v), &source, progress)
                .await
                .unwrap_or_else(|e| panic!("{v} ships to {}: {e}", host.name));
        }
    }
    let load = Load::start(stack.http_addr(), 16, Duration::from_secs(120));
    for v in ["w1", "w2"] {
        let (code, lines) = ops(&config, &["deploy", v]);
        assert_eq!(code, Some(0), "{lines:?}");
    }
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    assert_eq!(
        live_servers(&stack).await,
        ["web1_green", "web2_green"],
        "web4's servers never take traffic"
    );
    // The worker runs one color: w2 on green; w1's container was stopped and removed once every host
    // recorded the deploy, in a retire record of its own.
    let engine = worker.docker().await.unwrap();
    let worker_color = |color: Color| worker.topology.slot(color).container.clone();
    assert!(
        engine
            .inspect(&worker_color(Color::Blue))
            .await
            .unwrap()
            .is_none()
    );
    let green = engine
        .inspect(&worker_color(Color::Green))
        .await
        .unwrap()
        .expect("w2 runs");
    assert!(green.is_serving() && green.release() == Some("w2"), "{green:?}");
    let (code, status) = ops(&config, &["status"]);
    assert_eq!(code, Some(0), "{status:?}");
    let web4 = &status[0]["hosts"][2];
    assert_eq!(web4["host"], "web4", "{status:?}");
    assert_eq!(web4["status"]["live"], "green", "{status:?}");
    assert_eq!(web4["status"]["differences"], serde_json::json!([]), "{status:?}");
    let kinds: Vec<&str> = web4["status"]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|r| r["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["retire", "deploy"], "newest first: {status:?}");
    // The rollback switches the web hosts back in one exchange; the worker starts w1 again.
    let (code, lines) = ops(&config, &["rollback"]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(live_servers(&stack).await, ["web1_blue", "web2_blue"]);
    let blue = engine
        .inspect(&worker_color(Color::Blue))
        .await
        .unwrap()
        .expect("w1 runs");
    assert!(blue.is_serving() && blue.release() == Some("w1"), "{blue:?}");
    assert!(
        engine
            .inspect(&worker_color(Color::Green))
            .await
            .unwrap()
            .is_none()
    );
    let (code, status) = ops(&config, &["status"]);
    assert_eq!(code, Some(0), "{status:?}");
    for i in 0..3 {
        assert_eq!(
            status[0]["hosts"][i]["status"]["differences"],
            serde_json::json!([]),
            "{status:?}"
        );
    }
    eprintln!("stack and phases 1-6: {:.1} s", begun.elapsed().as_secs_f64());
}

/// Cuts `host`'s SSH (`FleetStack::take_down`) as soon as its idle color has started (`events`: its
/// deployer's): its journal then holds the deploy's intent and its new color runs, half-started, when the
/// connection goes.
async fn cut_after_start_idle(stack: &FleetStack, mut events: Receiver<Event>, host: &str) {
    while let Ok(event) = events.recv().await {
        if matches!(
            event,
            Event::StepFinished {
                step: Step::StartIdle,
                ..
            }
        ) {
            stack.take_down(host);
            return;
        }
    }
}

/// The layers a host's ship steps reported sent since the last call, from its event stream (1024 events
/// deep: a deploy's fit; a lag skips what was lost and goes on).
fn sent_layers(events: &mut Receiver<Event>) -> usize {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut sent = 0;
    loop {
        match events.try_recv() {
            Ok(Event::Shipped(report)) => {
                assert_eq!(report.outcome, ShipOutcome::Sent, "{report:?}");
                sent += report.layers_sent;
            }
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(_) => return sent,
        }
    }
}
