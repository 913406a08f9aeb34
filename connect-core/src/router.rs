//! The HAProxy backend in front of the two colors.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::wait::poll_until;
use tokio::time::Instant;

/// A server's administrative state, as set by `set server be/srv state …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    /// Takes new requests.
    Ready,
    /// Finishes what it has, takes no new requests.
    Drain,
    /// Out of service.
    Maint,
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        })
    }
}

/// What the router's own health checks say of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Checks pass.
    Up,
    /// Checks fail.
    Down,
    /// Checks are disabled; the server counts as up.
    NoCheck,
    /// Not checked because the server is in maintenance.
    Unknown,
}

/// One server of the backend as the router sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// The server's name (`app1`).
    pub name: String,
    /// Ready, drain or maint.
    pub admin: AdminState,
    /// The health checks' verdict.
    pub check: CheckState,
    /// Load-balancing weight (0 takes no new traffic).
    pub weight: u32,
    /// Sessions in flight.
    pub current_sessions: u64,
    /// `ip:port` it forwards to.
    pub address: String,
}

impl ServerStatus {
    /// Takes new requests: ready, weight above 0, and checks passing or off.
    pub fn is_live(&self) -> bool {
        self.admin == AdminState::Ready
            && self.weight > 0
            && matches!(self.check, CheckState::Up | CheckState::NoCheck)
    }
}

/// One server's traffic as the router counts it (HAProxy's per-server `show stat` counters): totals since
/// the router started, so a watch compares two readings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFigures {
    /// The server's name (`app1`).
    pub name: String,
    /// HTTP responses it answered (every status class; HAProxy's `hrsp_1xx` … `hrsp_other`).
    pub responses: u64,
    /// Of those, 5xx answers (`hrsp_5xx`), including the ones HAProxy gave for it (a reset, a timeout).
    pub responses_5xx: u64,
    /// Average response time in milliseconds over its last 1024 requests (`rtime`), 0 before any.
    pub response_time_ms: u64,
    /// Sessions in flight (`scur`).
    pub current_sessions: u64,
    /// Sessions since the router started (`stot`).
    pub total_sessions: u64,
}

/// What a switch did, confirmed from the router's own view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchReport {
    /// The server that now takes the traffic: the only live one.
    pub live: String,
    /// The servers the switch put in drain (the old one, unless it was draining already).
    pub drained: Vec<String>,
    /// From the call to the confirmation.
    pub took: Duration,
    /// The backend's servers as the router showed them at the confirmation.
    pub servers: Vec<ServerStatus>,
}

/// How often the provided waits poll by default: HAProxy has no event stream, and `show stat` costs ~1 ms.
const ROUTER_POLL: Duration = Duration::from_millis(20);

/// The servers of one HAProxy backend.
///
/// A backend implements the four primitives; `server`, `wait_live`, `wait_drained` and `switch` are built
/// on them, and a backend with a better way (HAProxy's three-round-trip switch) overrides them. Wrappers
/// such as [`crate::layers::Guarded`] delegate them, so the override is what runs.
#[async_trait]
pub trait TrafficRouter: Send + Sync + fmt::Debug {
    /// The backend's name (`be_app`), for messages.
    fn backend(&self) -> &str;

    /// Every server of the backend.
    async fn servers(&self) -> Result<Vec<ServerStatus>>;

    /// Sets a server's administrative state.
    async fn set_state(&self, server: &str, state: AdminState) -> Result<()>;

    /// Sets a server's weight (0 to 256).
    async fn set_weight(&self, server: &str, weight: u32) -> Result<()>;

    /// Points a server at another address and port.
    async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()>;

    /// Sets several servers to one administrative state at once, as a color served by a server per node
    /// is switched: HAProxy overrides it to send every change in ONE runtime-API exchange (one state-file
    /// save), so no request sees the group half changed. An unknown name is [`ErrorKind::NotFound`] with
    /// nothing touched. This default checks the names, then makes one [`TrafficRouter::set_state`] call each.
    async fn set_states(&self, servers: &[String], state: AdminState) -> Result<()> {
        let known = self.servers().await?;
        check_names(self.backend(), &known, servers, &[])?;
        for server in servers {
            self.set_state(server, state).await?;
        }
        Ok(())
    }

    /// Every server's traffic counters, for the watch after a switch. A router that cannot count says
    /// [`ErrorKind::Unsupported`], and a policy that watches is refused at the watch's first reading.
    async fn figures(&self) -> Result<Vec<ServerFigures>> {
        Err(unsupported(
            self.backend(),
            "router.figures",
            "per-server counters",
        ))
    }

    /// Turns the site's maintenance page on or off: while on, every request is answered with the configured
    /// 503 page and its `Retry-After`, whatever the servers' states.
    async fn set_maintenance(&self, on: bool) -> Result<()> {
        let _ = on;
        Err(unsupported(
            self.backend(),
            "router.set_maintenance",
            "a maintenance page",
        ))
    }

    /// Whether the maintenance page is on.
    async fn maintenance(&self) -> Result<bool> {
        Err(unsupported(
            self.backend(),
            "router.maintenance",
            "a maintenance page",
        ))
    }

    /// One server's status; [`ErrorKind::NotFound`] when the backend has no such server.
    async fn server(&self, server: &str) -> Result<ServerStatus> {
        let servers = self.servers().await?;
        find(self.backend(), servers, server)
    }

    /// Waits until the server takes traffic (ready, weight > 0, checks passing).
    ///
    /// A read that fails with a retryable error (a dropped connection, a slow answer) counts as "not yet"
    /// until the deadline: one lost `show stat` must not turn a deploy into a rollback.
    async fn wait_live(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        wait_for(self, "router.wait_live", server, deadline, |s| {
            if s.is_live() {
                Ok(())
            } else {
                Err(format!("{:?} check {:?} weight {}", s.admin, s.check, s.weight))
            }
        })
        .await
    }

    /// Waits until the server has no session in flight; retryable read errors count as "not yet", as in
    /// [`TrafficRouter::wait_live`].
    async fn wait_drained(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        wait_for(self, "router.wait_drained", server, deadline, |s| {
            if s.current_sessions == 0 {
                Ok(())
            } else {
                Err(format!("{} sessions in flight", s.current_sessions))
            }
        })
        .await
    }

    /// Moves the traffic from `from` to `to` without a moment with no live server. Instant rollback is the
    /// same call the other way.
    ///
    /// 1. Observe first: `from` or `to` unknown to the backend is [`ErrorKind::NotFound`], a live server other
    ///    than these two is [`ErrorKind::Drift`], and nothing is touched.
    /// 2. `to` is made ready and must be seen live within `deadline`; if it is not, its previous state is
    ///    restored, nothing else was touched, and the error says so.
    /// 3. `from` (when given and not `to`) is put in drain, whatever its health, so it cannot come back
    ///    into rotation by itself; `None` is a first deploy, where nothing had traffic.
    /// 4. Confirmed from the router's own view, not from what was asked: unless `to` is then the only live
    ///    server, [`ErrorKind::Drift`].
    async fn switch(&self, from: Option<&str>, to: &str, deadline: Duration) -> Result<SwitchReport> {
        let started = Instant::now();
        let target = format!("{}/{to}", self.backend());
        let from = from.filter(|f| *f != to);
        let before = self.servers().await?;
        let previous = check_before(self.backend(), &before, from, to)?;
        self.set_state(to, AdminState::Ready).await?;
        if let Err(e) = self.wait_live(to, deadline).await {
            let undone = if previous == AdminState::Ready {
                String::new()
            } else {
                match self.set_state(to, previous).await {
                    Ok(()) => format!("; {to} is back in {previous}"),
                    Err(u) => format!("; putting {to} back in {previous} failed too ({u}): it is ready"),
                }
            };
            return Err(not_live(&target, from, to, &e, &undone));
        }
        let mut drained = Vec::new();
        if let Some(from) = from {
            self.set_state(from, AdminState::Drain)
                .await
                .map_err(|e| both_serve(&target, from, to, &e))?;
            drained.push(from.to_string());
        }
        // Confirmation reads may fail transiently like any other; the switch itself is done by now.
        let servers = wait_for_servers(self, &target, confirm_budget(deadline, started.elapsed())).await?;
        confirm(&target, to, &servers)?;
        Ok(SwitchReport {
            live: to.to_string(),
            drained,
            took: started.elapsed(),
            servers,
        })
    }

    /// Moves several servers at once, as a deploy over several hosts switches every host's color together:
    /// every server of `ready` is made ready and every server of `drain` is put in drain, then the router's
    /// own view must show each `ready` server live and no `drain` server ready. HAProxy overrides it to send
    /// every change in ONE runtime-API exchange; this default makes the changes one call each, the ready
    /// ones first, so no moment is without a live server.
    ///
    /// The `ready` servers should already pass the router's checks (put in drain beforehand and seen up,
    /// as the fleet's health gate does), so making them ready is what moves the traffic. An unknown name is
    /// [`ErrorKind::NotFound`] with nothing touched; a `ready` server not live by `deadline` is
    /// [`ErrorKind::Timeout`], the changes having been made (the caller settles from what the router shows).
    async fn set_states_together(
        &self,
        ready: &[String],
        drain: &[String],
        deadline: Duration,
    ) -> Result<Vec<ServerStatus>> {
        let started = Instant::now();
        let before = self.servers().await?;
        check_names(self.backend(), &before, ready, drain)?;
        for server in ready {
            self.set_state(server, AdminState::Ready).await?;
        }
        for server in drain {
            self.set_state(server, AdminState::Drain).await?;
        }
        let target = format!("{}/{}", self.backend(), ready.join(","));
        let budget = confirm_budget(deadline, started.elapsed());
        poll_until(
            "router.set_states_together",
            &target,
            budget,
            ROUTER_POLL,
            || async {
                Ok(match self.servers().await {
                    Ok(servers) => together_done(&servers, ready, drain).map(|()| servers),
                    Err(e) if e.is_retryable() => Err(format!("reading the router to confirm failed: {e}")),
                    Err(e) => return Err(e),
                })
            },
        )
        .await
    }
}

/// Refuses a change of several servers naming one the backend lacks, before anything is touched.
pub fn check_names(
    backend: &str,
    servers: &[ServerStatus],
    ready: &[String],
    drain: &[String],
) -> Result<()> {
    for name in ready.iter().chain(drain) {
        if !servers.iter().any(|s| &s.name == name) {
            return Err(no_such_server(backend, name));
        }
    }
    if let Some(both) = ready.iter().find(|r| drain.contains(r)) {
        return Err(Error::invalid(
            "router.set_states_together",
            format!("{backend}/{both}"),
            "a server cannot be made ready and drained at once",
        ));
    }
    Ok(())
}

/// Whether the router shows a change of several servers done: each `ready` server live, no `drain` server
/// ready; else what is not yet.
pub fn together_done(
    servers: &[ServerStatus],
    ready: &[String],
    drain: &[String],
) -> std::result::Result<(), String> {
    let mut waiting = Vec::new();
    for s in servers {
        if ready.contains(&s.name) && !s.is_live() {
            waiting.push(format!("{} is {} (check {:?})", s.name, s.admin, s.check));
        }
        if drain.contains(&s.name) && s.admin == AdminState::Ready {
            waiting.push(format!("{} is still ready", s.name));
        }
    }
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(waiting.join(", "))
    }
}

fn unsupported(backend: &str, operation: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        operation,
        backend,
        format!("this router has no {what}"),
    )
    .with_hint(
        "use a router that implements it (connect-haproxy's `Haproxy`), or turn the policy that needs it off",
    )
}

/// What is left of a switch's deadline for reading the confirmation, but at least a second: the changes
/// are made by then, and a deadline spent waiting for `to` must not fail the switch on one lost read.
pub(crate) fn confirm_budget(deadline: Duration, elapsed: Duration) -> Duration {
    deadline.saturating_sub(elapsed).max(Duration::from_secs(1))
}

/// The server named `server` among `servers`, or [`ErrorKind::NotFound`].
fn find(backend: &str, servers: Vec<ServerStatus>, server: &str) -> Result<ServerStatus> {
    servers
        .into_iter()
        .find(|s| s.name == server)
        .ok_or_else(|| no_such_server(backend, server))
}

fn no_such_server(backend: &str, server: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        "router.server",
        format!("{backend}/{server}"),
        "no such server",
    )
    .with_hint("check the server names in the topology against the HAProxy backend")
}

/// Polls one server until `done` says so; a retryable read error is "not yet".
async fn wait_for<R, F>(
    router: &R,
    operation: &str,
    server: &str,
    deadline: Duration,
    done: F,
) -> Result<ServerStatus>
where
    R: TrafficRouter + ?Sized,
    F: Fn(&ServerStatus) -> std::result::Result<(), String>,
{
    let target = format!("{}/{server}", router.backend());
    poll_until(operation, &target, deadline, ROUTER_POLL, || async {
        Ok(match router.server(server).await {
            Ok(s) => done(&s).map(|()| s),
            Err(e) if e.is_retryable() => Err(format!("reading the router failed: {e}")),
            Err(e) => return Err(e),
        })
    })
    .await
}

/// Reads every server, a retryable error being "not yet" within `deadline`.
async fn wait_for_servers<R: TrafficRouter + ?Sized>(
    router: &R,
    target: &str,
    deadline: Duration,
) -> Result<Vec<ServerStatus>> {
    poll_until("router.switch", target, deadline, ROUTER_POLL, || async {
        Ok(match router.servers().await {
            Ok(servers) => Ok(servers),
            Err(e) if e.is_retryable() => Err(format!("reading the router to confirm failed: {e}")),
            Err(e) => return Err(e),
        })
    })
    .await
}

/// Step 1 of a switch, on the servers as read before any change: `to` and `from` must exist, and no other
/// server may take traffic (it would still serve after the switch), so a switch bound to fail refuses
/// before it changes anything. Returns `to`'s admin state, to restore if it never becomes live.
pub fn check_before(
    backend: &str,
    servers: &[ServerStatus],
    from: Option<&str>,
    to: &str,
) -> Result<AdminState> {
    let state_of = |name: &str| {
        servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.admin)
            .ok_or_else(|| no_such_server(backend, name))
    };
    if let Some(from) = from {
        state_of(from)?;
    }
    let previous = state_of(to)?;
    let strangers: Vec<&str> = servers
        .iter()
        .filter(|s| s.is_live() && s.name != to && Some(s.name.as_str()) != from)
        .map(|s| s.name.as_str())
        .collect();
    if strangers.is_empty() {
        return Ok(previous);
    }
    Err(Error::new(
        ErrorKind::Drift,
        "router.switch",
        format!("{backend}/{to}"),
        format!(
            "{strangers:?} take traffic too but are neither the old server ({from:?}) nor the new one; \
             nothing was changed"
        ),
    )
    .with_hint("put the other servers in drain or maint, or adopt the observed state, then switch again"))
}

/// Step 4 of a switch: `to` must be the only live server in the router's own view.
pub fn confirm(target: &str, to: &str, servers: &[ServerStatus]) -> Result<()> {
    let live: Vec<&str> = servers
        .iter()
        .filter(|s| s.is_live())
        .map(|s| s.name.as_str())
        .collect();
    if live == [to] {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Drift,
        "router.switch",
        target,
        format!("after the switch the live servers are {live:?}, expected only {to:?}"),
    ))
}

/// The error of a switch whose target did not become live: traffic never moved.
pub fn not_live(target: &str, from: Option<&str>, to: &str, cause: &Error, undone: &str) -> Error {
    let stays = from.map_or("no server".to_string(), |f| f.to_string());
    Error::new(
        cause.kind(),
        "router.switch",
        target,
        format!(
            "{to} did not become live, traffic stays on {stays}{undone}: {}",
            cause.message()
        ),
    )
    .with_hint("check the server's health endpoint; the router's check status says why")
}

/// The error of a switch whose old server could not be drained: both serve.
pub fn both_serve(target: &str, from: &str, to: &str, cause: &Error) -> Error {
    Error::new(
        cause.kind(),
        "router.switch",
        target,
        format!("{to} is live, but draining {from} failed, so both serve: {cause}"),
    )
    .with_hint("drain the old server by hand, or switch again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryRouter;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// `app1` live, `app2` in maintenance, both with passing checks.
    async fn router() -> MemoryRouter {
        let router = MemoryRouter::new("be_app");
        router.add_server("app1", "127.0.0.1:3000");
        router.add_server("app2", "127.0.0.1:3001");
        router.set_state("app1", AdminState::Ready).await.unwrap();
        router
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_read_while_waiting_is_not_yet() {
        let router = router().await;
        router
            .faults()
            .fail_times("router.servers", ErrorKind::Unavailable, 2);
        let live = router
            .wait_live("app1", DEADLINE)
            .await
            .expect("the third read sees it");
        assert!(live.is_live());
        router
            .faults()
            .fail_times("router.servers", ErrorKind::Timeout, 2);
        let idle = router
            .wait_drained("app1", DEADLINE)
            .await
            .expect("the third read sees it");
        assert_eq!(idle.current_sessions, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_that_keep_failing_end_at_the_deadline_with_the_reason() {
        let router = router().await;
        router.faults().fail("router.servers", ErrorKind::Unavailable);
        let t = Instant::now();
        let e = router.wait_live("app1", DEADLINE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("reading the router failed"), "{e}");
        assert!(t.elapsed() >= DEADLINE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_retryable_read_error_fails_the_wait_at_once() {
        let router = router().await;
        router
            .faults()
            .fail_times("router.servers", ErrorKind::PermissionDenied, 1);
        let t = Instant::now();
        let e = router.wait_drained("app1", DEADLINE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(t.elapsed() < ROUTER_POLL * 2, "{:?}", t.elapsed());
        assert_eq!(
            router.wait_live("app9", DEADLINE).await.unwrap_err().kind(),
            ErrorKind::NotFound,
            "no such server is not a reason to wait"
        );
    }

    /// A router whose `servers()` call number `lose` (from 1) fails once with a retryable error.
    #[derive(Debug)]
    struct LosesOneRead {
        memory: MemoryRouter,
        lose: u32,
        calls: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl TrafficRouter for LosesOneRead {
        fn backend(&self) -> &str {
            self.memory.backend()
        }
        async fn servers(&self) -> Result<Vec<ServerStatus>> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == self.lose {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "router.servers",
                    "be_app",
                    "lost",
                ));
            }
            self.memory.servers().await
        }
        async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
            self.memory.set_state(server, state).await
        }
        async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
            self.memory.set_weight(server, weight).await
        }
        async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
            self.memory.set_address(server, address, port).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn switch_reports_what_it_did_and_survives_a_lost_confirmation() {
        // Read 1 is before the change, read 2 sees app2 live, read 3 is the confirmation: lost.
        let router = LosesOneRead {
            memory: router().await,
            lose: 3,
            calls: Default::default(),
        };
        let report = router
            .switch(Some("app1"), "app2", DEADLINE)
            .await
            .expect("a lost confirmation read is read again");
        assert_eq!(router.calls.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert_eq!(report.live, "app2");
        assert_eq!(report.drained, ["app1"]);
        let admin: Vec<(String, AdminState)> =
            report.servers.into_iter().map(|s| (s.name, s.admin)).collect();
        assert_eq!(
            admin,
            [
                ("app1".to_string(), AdminState::Drain),
                ("app2".to_string(), AdminState::Ready)
            ]
        );

        let back = router.switch(Some("app2"), "app1", DEADLINE).await.unwrap();
        assert_eq!(
            (back.live.as_str(), back.drained.as_slice()),
            ("app1", &["app2".to_string()][..])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn switch_to_a_server_that_stays_down_restores_it_and_keeps_the_traffic() {
        let router = router().await;
        router.set_check("app2", CheckState::Down);
        let e = router
            .switch(Some("app1"), "app2", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(
            e.to_string()
                .contains("traffic stays on app1; app2 is back in maint"),
            "{e}"
        );
        assert_eq!(router.server("app2").await.unwrap().admin, AdminState::Maint);
        assert!(
            router.server("app1").await.unwrap().is_live(),
            "app1 was never touched"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_old_server_drains_even_when_its_checks_fail() {
        let router = router().await;
        router.set_check("app1", CheckState::Down);
        router.switch(Some("app1"), "app2", DEADLINE).await.unwrap();
        assert_eq!(
            router.server("app1").await.unwrap().admin,
            AdminState::Drain,
            "a failing old server must not come back into rotation when it recovers"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_servers_are_refused_before_any_change() {
        let router = router().await;
        for (from, to) in [(Some("app9"), "app2"), (Some("app1"), "app9")] {
            let e = router.switch(from, to, DEADLINE).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            assert!(e.to_string().contains("app9"), "{e}");
        }
        assert_eq!(
            router.server("app2").await.unwrap().admin,
            AdminState::Maint,
            "untouched"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn another_live_server_is_drift_and_nothing_changes() {
        let router = router().await;
        router.add_server("app3", "127.0.0.1:3002");
        router.set_state("app3", AdminState::Ready).await.unwrap();
        let e = router.switch(Some("app1"), "app2", DEADLINE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Drift);
        assert!(e.to_string().contains("[\"app3\"]"), "{e}");
        assert_eq!(router.server("app2").await.unwrap().admin, AdminState::Maint);
        assert_eq!(router.server("app1").await.unwrap().admin, AdminState::Ready);
    }
}
