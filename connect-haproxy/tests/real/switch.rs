//! The blue-green switch: refused when the new color fails its checks or a third server serves, both ways
//! under traffic with the old color drained, and with no request lost through 20 switches and 3 reloads.

use std::net::IpAddr;
use std::time::Duration;

use connect_core::conformance::assert_kind;
use connect_core::router::{AdminState, CheckState};
use connect_core::wait::poll_until;
use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::testing::Load;

use super::{DEADLINE, get_version, live, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_up_times_out_on_a_failing_health_endpoint_and_switch_refuses() {
    let Some(s) = stack("wait_up_times_out_on_a_failing_health_endpoint_and_switch_refuses").await else {
        return;
    };
    s.green.set_healthy(false);
    poll_until(
        "test",
        "app2 DOWN",
        DEADLINE,
        Duration::from_millis(20),
        || async {
            let r = s.hx.server("app2").await?;
            Ok(if r.check == CheckState::Down {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            })
        },
    )
    .await
    .expect("app2 seen DOWN");
    assert_kind(
        s.hx.wait_up("app2", Duration::from_millis(300)).await,
        ErrorKind::Timeout,
        "wait_up of a DOWN server",
    );
    let e =
        s.hx.switch(Some("app1"), "app2", Duration::from_millis(300))
            .await
            .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("traffic stays"), "{e}");
    assert_eq!(live(&s.hx).await, ["app1"], "traffic never left blue");
    assert_eq!(
        s.hx.server("app2").await.expect("app2").admin,
        AdminState::Drain,
        "restored"
    );
    assert_eq!(get_version(&s).await, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_both_ways_under_traffic_and_drain() {
    let Some(s) = stack("switch_both_ways_under_traffic_and_drain").await else {
        return;
    };
    let load = Load::start(s.proc.http_addr(), 8, Duration::from_secs(60));
    let report =
        s.hx.switch(Some("app1"), "app2", DEADLINE)
            .await
            .expect("to green");
    assert_eq!(
        (report.drained.as_slice(), report.live.as_str()),
        (&["app1".to_string()][..], "app2")
    );
    s.hx.wait_drained("app1", DEADLINE).await.expect("blue drained");
    let blue_after = s.blue.served();
    let green_before = s.green.served();
    poll_until(
        "test",
        "green serves",
        DEADLINE,
        Duration::from_millis(5),
        || async {
            Ok(if s.green.served() > green_before + 50 {
                Ok(())
            } else {
                Err("waiting".to_string())
            })
        },
    )
    .await
    .expect("green takes traffic");
    assert_eq!(s.blue.served(), blue_after, "a drained blue takes no new request");
    let back =
        s.hx.switch(Some("app2"), "app1", DEADLINE)
            .await
            .expect("rollback to blue");
    assert_eq!(back.drained, ["app2"]);
    assert_eq!(live(&s.hx).await, ["app1"]);
    let r = load.stop().await;
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert!(
        r.by_version.contains_key("green") && r.by_version.contains_key("blue"),
        "{r:?}"
    );
}

/// The one switch refuses before changing anything when a third party serves: here `switch(None, ..)` while
/// both colors are live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_refuses_when_another_server_serves() {
    let Some(s) = stack("switch_refuses_when_another_server_serves").await else {
        return;
    };
    s.hx.set_admin("app2", AdminState::Ready).await.expect("ready");
    s.hx.wait_live("app2", DEADLINE).await.expect("app2 live");
    let e =
        s.hx.switch(None, "app1", DEADLINE)
            .await
            .expect_err("app2 serves too");
    assert_eq!(e.kind(), ErrorKind::Drift, "{e}");
    assert_eq!(live(&s.hx).await, ["app1", "app2"], "nothing was changed");
    let report =
        s.hx.switch(Some("app2"), "app1", DEADLINE)
            .await
            .expect("named, app2 drains");
    assert_eq!(report.drained, ["app2"]);
    assert_eq!(
        report
            .servers
            .iter()
            .filter(|s| s.is_live())
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["app1"],
        "the report carries the confirming `show stat`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_drained_and_wait_live_report_the_server() {
    let Some(s) = stack("wait_drained_and_wait_live_report_the_server").await else {
        return;
    };
    let r = s.hx.wait_drained("app2", DEADLINE).await.expect("app2 idle");
    assert_eq!(r.current_sessions, 0);
    assert_kind(
        s.hx.wait_live("app2", Duration::from_millis(100)).await,
        ErrorKind::Timeout,
        "a draining server never becomes live by itself",
    );
    let ip: IpAddr = "127.0.0.1".parse().expect("ip");
    assert_eq!(
        s.hx.server("app2").await.expect("app2").address,
        format!("{ip}:{}", s.green.addr.port())
    );
}

/// While 32 keep-alive clients send requests through HAProxy: 20 switches and 3 reloads; every request is
/// answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_downtime_under_load_through_20_switches_and_3_reloads() {
    let Some(s) = stack("zero_downtime_under_load_through_20_switches_and_3_reloads").await else {
        return;
    };
    let load = Load::start(s.proc.http_addr(), 32, Duration::from_secs(120));
    let mut reloads = 0;
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 {
            ("app1", "app2")
        } else {
            ("app2", "app1")
        };
        let before = load.answered();
        s.hx.switch(Some(from), to, DEADLINE).await.expect("switch");
        if i % 7 == 3 {
            s.hx.reload(DEADLINE).await.expect("reload");
            reloads += 1;
        }
        // Let traffic flow on the new color before the next switch: wait for answers, not for time.
        poll_until(
            "test",
            "traffic flows",
            DEADLINE,
            Duration::from_millis(2),
            || async {
                Ok(if load.answered() >= before + 64 {
                    Ok(())
                } else {
                    Err("waiting".to_string())
                })
            },
        )
        .await
        .expect("requests keep being answered");
    }
    let r = load.stop().await;
    eprintln!(
        "zero-downtime: {} requests answered 200, {} failed, {} re-sent after an idle keep-alive close, by \
         version {:?}, {reloads} reloads, 20 switches",
        r.ok, r.failed, r.resent_on_closed_idle, r.by_version
    );
    assert_eq!(reloads, 3);
    assert_eq!(r.failed, 0, "every request answered 200: {:?}", r.errors);
    // `option idle-close-on-response`: an old worker never closes an idle connection under a client.
    assert_eq!(r.resent_on_closed_idle, 0, "no request needed a resend");
    assert!(r.ok > 20 * 64, "{r:?}");
    assert_eq!(live(&s.hx).await, ["app1"], "20 switches end where they began");
}
