//! The HAProxy backend in front of the two colors.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::wait::poll_until;

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

/// The servers of one HAProxy backend.
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
}

/// How often conditions on the router are polled: HAProxy has no event stream, and `show stat` costs ~1 ms.
const ROUTER_POLL: Duration = Duration::from_millis(20);

/// The blue-green operations, built on the primitives of any [`TrafficRouter`].
#[async_trait]
pub trait RouterExt: TrafficRouter {
    /// One server's status; [`ErrorKind::NotFound`] when the backend has no such server.
    async fn server(&self, server: &str) -> Result<ServerStatus> {
        self.servers()
            .await?
            .into_iter()
            .find(|s| s.name == server)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "router.server",
                    format!("{}/{server}", self.backend()),
                    "no such server",
                )
                .with_hint("check the server names in the topology against the HAProxy backend")
            })
    }

    /// Waits until the server takes traffic (ready, weight > 0, checks passing).
    async fn wait_live(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        let target = format!("{}/{server}", self.backend());
        poll_until("router.wait_live", &target, deadline, ROUTER_POLL, || async {
            let s = self.server(server).await?;
            Ok(if s.is_live() {
                Ok(s)
            } else {
                Err(format!("{:?} check {:?} weight {}", s.admin, s.check, s.weight))
            })
        })
        .await
    }

    /// Waits until the server has no session in flight.
    async fn wait_drained(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        let target = format!("{}/{server}", self.backend());
        poll_until("router.wait_drained", &target, deadline, ROUTER_POLL, || async {
            let s = self.server(server).await?;
            Ok(if s.current_sessions == 0 {
                Ok(s)
            } else {
                Err(format!("{} sessions in flight", s.current_sessions))
            })
        })
        .await
    }

    /// Moves traffic from `from` to `to` without a moment with no live server: `to` is made ready and seen
    /// live first, then `from` is drained. Instant rollback is the same call the other way.
    async fn switch(&self, from: Option<&str>, to: &str, deadline: Duration) -> Result<()> {
        self.set_state(to, AdminState::Ready).await?;
        self.wait_live(to, deadline).await?;
        if let Some(from) = from.filter(|f| *f != to) {
            self.set_state(from, AdminState::Drain).await?;
        }
        // Confirm from the router's own view, not from what we asked for.
        let servers = self.servers().await?;
        let live: Vec<&str> = servers
            .iter()
            .filter(|s| s.is_live())
            .map(|s| s.name.as_str())
            .collect();
        if live != [to] {
            return Err(Error::new(
                ErrorKind::Drift,
                "router.switch",
                format!("{}/{to}", self.backend()),
                format!("after the switch the live servers are {live:?}, expected only {to:?}"),
            ));
        }
        Ok(())
    }
}

impl<T: TrafficRouter + ?Sized> RouterExt for T {}
