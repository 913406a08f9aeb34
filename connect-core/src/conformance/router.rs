use std::time::Duration;

use super::assert_kind;
use crate::error::ErrorKind;
use crate::router::{AdminState, TrafficRouter};

/// The promises of [`TrafficRouter`]: states, weights and addresses apply and read back; unknown servers
/// are `NotFound`; a switch leaves exactly the target live and never none; the other way is the same call.
///
/// `a` and `b` are two servers of the backend whose health checks pass.
pub async fn router_suite(router: &dyn TrafficRouter, a: &str, b: &str) {
    let deadline = Duration::from_secs(10);
    let names: Vec<String> = router
        .servers()
        .await
        .expect("servers")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        names.iter().any(|n| n == a) && names.iter().any(|n| n == b),
        "{a} and {b} are in {names:?}"
    );

    for state in [AdminState::Maint, AdminState::Drain, AdminState::Ready] {
        router.set_state(a, state).await.expect("set_state");
        assert_eq!(
            router.server(a).await.expect("server").admin,
            state,
            "state {state} reads back"
        );
    }
    router
        .wait_live(a, deadline)
        .await
        .expect("a ready server with passing checks is live");

    router.set_weight(a, 0).await.expect("weight 0");
    assert!(
        !router.server(a).await.expect("server").is_live(),
        "weight 0 takes no new traffic"
    );
    router.set_weight(a, 100).await.expect("weight 100");
    assert_eq!(router.server(a).await.expect("server").weight, 100);
    assert_kind(
        router.set_weight(a, 257).await,
        ErrorKind::InvalidInput,
        "weight above 256",
    );

    assert_kind(
        router.set_state("no-such-server", AdminState::Ready).await,
        ErrorKind::NotFound,
        "unknown server",
    );
    assert_kind(
        router.server("no-such-server").await,
        ErrorKind::NotFound,
        "unknown server status",
    );

    let before = router.server(b).await.expect("server").address;
    let (ip, port) = before.rsplit_once(':').expect("address is ip:port");
    router
        .set_address(b, ip, port.parse().expect("port"))
        .await
        .expect("set_address");
    assert_eq!(
        router.server(b).await.expect("server").address,
        before,
        "address reads back"
    );

    router.set_state(b, AdminState::Maint).await.expect("b maint");
    router.switch(Some(a), b, deadline).await.expect("switch a -> b");
    let live: Vec<String> = router
        .servers()
        .await
        .expect("servers")
        .into_iter()
        .filter(|s| s.is_live())
        .map(|s| s.name)
        .collect();
    assert_eq!(live, [b], "only {b} is live after the switch");
    assert_eq!(
        router.server(a).await.expect("server").admin,
        AdminState::Drain,
        "the old server drains"
    );
    router.wait_drained(a, deadline).await.expect("drained");

    router
        .switch(Some(b), a, deadline)
        .await
        .expect("switch back b -> a");
    let live: Vec<String> = router
        .servers()
        .await
        .expect("servers")
        .into_iter()
        .filter(|s| s.is_live())
        .map(|s| s.name)
        .collect();
    assert_eq!(live, [a], "only {a} is live after switching back");

    // Per-server figures: one row per server, counters that add up. A router without them says so.
    match router.figures().await {
        Ok(figures) => {
            let mut counted: Vec<String> = figures.iter().map(|f| f.name.clone()).collect();
            counted.sort();
            let mut servers = names.clone();
            servers.sort();
            assert_eq!(counted, servers, "figures for every server");
            for f in &figures {
                assert!(f.responses_5xx <= f.responses, "{f:?}");
            }
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "figures: {e}"),
    }

    // The maintenance page, when the router has one: on and off read back.
    match router.maintenance().await {
        Ok(_) => {
            for on in [true, false] {
                router.set_maintenance(on).await.expect("set_maintenance");
                assert_eq!(
                    router.maintenance().await.expect("maintenance"),
                    on,
                    "maintenance {on} reads back"
                );
            }
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "maintenance: {e}"),
    }
}
