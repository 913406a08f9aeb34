//! One server's state through the runtime API: read back from `show stat` and `show servers state`,
//! weights, address and port, health checks off and on, servers added and deleted at run time.

use connect_core::conformance::assert_kind;
use connect_core::router::{AdminState, CheckState};
use std::time::Duration;

use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::Weight;
use connect_haproxy::stat::StatusWord;
use connect_haproxy::testing::Load;

use super::{DEADLINE, get_version, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_read_back_from_show_stat_and_servers_state() {
    let Some(s) = stack("states_read_back_from_show_stat_and_servers_state").await else {
        return;
    };
    s.hx.set_admin("app1", AdminState::Maint).await.expect("maint");
    let row = s.hx.stat().await.expect("stat");
    let app1 = row.iter().find(|r| r.name == "app1").expect("app1");
    assert_eq!(app1.status.word, StatusWord::Maint);
    assert_eq!(app1.check(), CheckState::Unknown);
    let state =
        s.hx.api()
            .show_servers_state(Some("be_app"))
            .await
            .expect("state");
    let app1 = state.rows.iter().find(|r| r.server == "app1").expect("app1 row");
    assert_eq!(app1.admin(), AdminState::Maint);

    s.hx.set_admin("app1", AdminState::Drain).await.expect("drain");
    let state =
        s.hx.api()
            .show_servers_state(Some("be_app"))
            .await
            .expect("state");
    let app1 = state.rows.iter().find(|r| r.server == "app1").expect("app1 row");
    assert_eq!(app1.admin(), AdminState::Drain);
    s.hx.set_admin("app1", AdminState::Ready).await.expect("ready");
    let st = s.hx.wait_up("app1", DEADLINE).await.expect("up again");
    assert_eq!(st.status.word, StatusWord::Up);
    // Every change was saved to the server-state-file, in HAProxy's own format.
    let saved = std::fs::read_to_string(&s.proc.state_file).expect("state file");
    assert!(saved.starts_with("1\n# be_id"), "{saved}");
    assert!(saved.contains(" be_app ") && saved.contains(" app1 "), "{saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_absolute_and_percent() {
    let Some(s) = stack("weight_absolute_and_percent").await else {
        return;
    };
    s.hx.set_server_weight("app1", Weight::Absolute(37))
        .await
        .expect("37");
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 37);
    s.hx.set_server_weight("app1", Weight::Percent(50))
        .await
        .expect("50%");
    // Percent is of the configured weight (100).
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 50);
    s.hx.set_server_weight("app1", Weight::Absolute(0))
        .await
        .expect("0");
    let app1 = s.hx.server("app1").await.expect("app1");
    assert_eq!(
        (app1.weight, app1.check),
        (0, CheckState::Up),
        "weight 0 still reads UP"
    );
    assert!(!app1.is_live());
    // A weight put back while the server is in MAINT is the weight it comes back with, and reads so at
    // once (`show stat`'s effective weight would still say 0: the canary's undo read it as not put back).
    s.hx.set_state("app1", AdminState::Maint).await.expect("maint");
    s.hx.set_weight("app1", 100).await.expect("100");
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 100);
    s.hx.set_state("app1", AdminState::Ready).await.expect("ready");
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 100);
    assert_kind(
        s.hx.set_server_weight("app1", Weight::Percent(101)).await,
        ErrorKind::InvalidInput,
        "101%",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_and_port_change_moves_traffic() {
    let Some(s) = stack("address_and_port_change_moves_traffic").await else {
        return;
    };
    assert_eq!(get_version(&s).await, "blue");
    let green = s.green.addr;
    let said =
        s.hx.set_server_address("app1", green.ip(), green.port())
            .await
            .expect("addr");
    assert!(said.contains("changed"), "HAProxy's sentence: {said}");
    assert_eq!(
        s.hx.server("app1").await.expect("app1").address,
        green.to_string()
    );
    assert_eq!(
        get_version(&s).await,
        "green",
        "app1 now forwards to green's port"
    );
    let blue = s.blue.addr;
    s.hx.set_address("app1", &blue.ip().to_string(), blue.port())
        .await
        .expect("back");
    assert_eq!(get_version(&s).await, "blue");
    assert_kind(
        s.hx.set_address("app1", "not-an-ip", 80).await,
        ErrorKind::InvalidInput,
        "host name",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_off_and_on() {
    let Some(s) = stack("health_checks_off_and_on").await else {
        return;
    };
    s.hx.set_health_checks("app1", false).await.expect("disable");
    let app1 =
        s.hx.stat()
            .await
            .expect("stat")
            .into_iter()
            .find(|r| r.name == "app1")
            .expect("app1");
    assert_eq!(app1.status.word, StatusWord::NoCheck);
    assert_eq!(
        s.hx.server("app1").await.expect("app1").check,
        CheckState::NoCheck
    );
    s.hx.set_health_checks("app1", true).await.expect("enable");
    let state =
        s.hx.api()
            .show_servers_state(Some("be_app"))
            .await
            .expect("state");
    assert!(
        state
            .rows
            .iter()
            .find(|r| r.server == "app1")
            .expect("row")
            .checks_enabled()
    );
    s.hx.wait_up("app1", DEADLINE).await.expect("checked UP again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_server_added_used_and_deleted() {
    let Some(s) = stack("dynamic_server_added_used_and_deleted").await else {
        return;
    };
    let g = s.green.addr;
    s.hx.add_server("app3", g.ip(), g.port(), &["check", "inter", "100ms"])
        .await
        .expect("add");
    assert_eq!(
        s.hx.server("app3").await.expect("app3").admin,
        AdminState::Maint,
        "starts in maint"
    );
    assert_kind(
        s.hx.add_server("app3", g.ip(), g.port(), &[]).await,
        ErrorKind::Conflict,
        "same name twice",
    );
    s.hx.switch(Some("app1"), "app3", DEADLINE)
        .await
        .expect("switch to the dynamic server");
    assert_eq!(get_version(&s).await, "green");
    s.hx.switch(Some("app3"), "app1", DEADLINE)
        .await
        .expect("back to app1");
    let refused = s.hx.del_server("app3").await;
    assert!(
        refused.is_err(),
        "a draining server cannot be deleted: {refused:?}"
    );
    s.hx.set_admin("app3", AdminState::Maint).await.expect("maint");
    s.hx.del_server("app3").await.expect("del");
    assert_kind(s.hx.server("app3").await, ErrorKind::NotFound, "deleted");
    assert_kind(
        s.hx.add_server("bad name", g.ip(), g.port(), &[]).await,
        ErrorKind::InvalidInput,
        "name with a space",
    );
}

/// A live server gone between two checks (its host lost, its container killed) costs no request: HAProxy
/// retries the refused connection and sends the last retry to the other live server (`option redispatch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_server_gone_between_checks_costs_no_request() {
    let Some(s) = stack("a_live_server_gone_between_checks_costs_no_request").await else {
        return;
    };
    // A port nothing listens on: bound, read, closed.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    // Its checks off, HAProxy never marks app2 down: every request it is given meets the refusal.
    s.hx.set_health_checks("app2", false).await.expect("checks off");
    s.hx.set_server_address("app2", gone.ip(), gone.port())
        .await
        .expect("address");
    s.hx.set_admin("app2", AdminState::Ready).await.expect("live");
    let load = Load::start(s.proc.http_addr(), 4, Duration::from_secs(60));
    load.wait_answered(400, DEADLINE).await.expect("answered");
    let report = load.stop().await;
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    assert_eq!(
        report.by_version.keys().collect::<Vec<_>>(),
        ["blue"],
        "{report:?}"
    );
    // HAProxy did choose app2 and redispatched: its `wredis` counter says how often.
    let stat = s.hx.api().raw("show stat").await.expect("show stat");
    let mut lines = stat.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (sv, wredis) = (column("svname"), column("wredis"));
    let app2: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.get(sv) == Some(&"app2"))
        .expect("app2's row");
    let redispatched: u64 = app2[wredis].parse().expect("a count");
    assert!(redispatched > 0, "app2 was never chosen: {stat}");
}
