//! A HAProxy backend in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::runtime::ServingProbe;
use super::{Faults, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::router::{AdminState, CheckState, ServerStatus, TrafficRouter};

#[derive(Debug, Clone)]
struct Server {
    admin: AdminState,
    weight: u32,
    address: String,
    /// Sessions in flight, by the instant each finishes.
    sessions: Vec<Instant>,
    /// Which container the health check probes, when linked to a runtime.
    container: Option<String>,
    check: CheckState,
}

#[derive(Default)]
struct State {
    servers: BTreeMap<String, Server>,
    probe: Option<ServingProbe>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

/// A HAProxy backend in memory. Servers start in maintenance, as HAProxy's dynamic servers do.
///
/// A server linked to a container ([`MemoryRouter::add_server_for`]) is checked the way HAProxy checks it:
/// up while that container serves. Others are up unless [`MemoryRouter::set_check`] says otherwise.
#[derive(Debug, Clone)]
pub struct MemoryRouter {
    backend: String,
    state: Arc<Mutex<State>>,
    faults: Faults,
}

impl MemoryRouter {
    /// An empty backend.
    pub fn new(backend: &str) -> MemoryRouter {
        MemoryRouter {
            backend: backend.to_string(),
            state: Arc::default(),
            faults: Faults::default(),
        }
    }

    /// The same router injecting `faults`, shared with other backends so calls are numbered across them.
    pub(crate) fn with_faults(mut self, faults: Faults) -> MemoryRouter {
        self.faults = faults;
        self
    }

    /// The faults this router injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// What [`TrafficRouter::servers`] returns now, without counting a call or injecting a fault: for a test
    /// checking an invariant between two calls.
    pub fn snapshot(&self) -> Vec<ServerStatus> {
        let state = lock(&self.state);
        let now = Instant::now();
        state
            .servers
            .iter()
            .map(|(name, s)| {
                let check = match (&s.container, &state.probe) {
                    _ if s.admin == AdminState::Maint => CheckState::Unknown,
                    (Some(c), Some(probe)) => {
                        if probe(c) {
                            CheckState::Up
                        } else {
                            CheckState::Down
                        }
                    }
                    _ => s.check,
                };
                ServerStatus {
                    name: name.clone(),
                    admin: s.admin,
                    check,
                    weight: s.weight,
                    current_sessions: s.sessions.iter().filter(|end| **end > now).count() as u64,
                    address: s.address.clone(),
                }
            })
            .collect()
    }

    /// Adds a server (in maintenance, weight 100) whose check is set by hand.
    pub fn add_server(&self, name: &str, address: &str) {
        self.insert(name, address, None);
    }

    /// Adds a server whose health check probes `container` through the runtime behind `probe`.
    pub(crate) fn add_server_for(&self, name: &str, address: &str, container: &str, probe: ServingProbe) {
        self.insert(name, address, Some(container.to_string()));
        lock(&self.state).probe = Some(probe);
    }

    fn insert(&self, name: &str, address: &str, container: Option<String>) {
        lock(&self.state).servers.insert(
            name.to_string(),
            Server {
                admin: AdminState::Maint,
                weight: 100,
                address: address.to_string(),
                sessions: Vec::new(),
                container,
                check: CheckState::Up,
            },
        );
    }

    /// Sets what the health check says of a server not linked to a container.
    pub fn set_check(&self, server: &str, check: CheckState) {
        if let Some(s) = lock(&self.state).servers.get_mut(server) {
            s.check = check;
        }
    }

    /// Simulates `count` requests in flight on `server`, each finishing after `lasting`.
    pub fn add_sessions(&self, server: &str, count: usize, lasting: Duration) {
        if let Some(s) = lock(&self.state).servers.get_mut(server) {
            let until = Instant::now() + lasting;
            s.sessions.extend(std::iter::repeat_n(until, count));
        }
    }

    fn no_server(&self, operation: &str, server: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            operation,
            format!("{}/{server}", self.backend),
            "No such server.",
        )
    }
}

#[async_trait]
impl TrafficRouter for MemoryRouter {
    fn backend(&self) -> &str {
        &self.backend
    }

    async fn servers(&self) -> Result<Vec<ServerStatus>> {
        self.faults
            .around("router.servers", &self.backend, async { Ok(self.snapshot()) })
            .await
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        self.faults
            .around("router.set_state", server, async {
                let mut st = lock(&self.state);
                let s = st
                    .servers
                    .get_mut(server)
                    .ok_or_else(|| self.no_server("router.set_state", server))?;
                s.admin = state;
                if state == AdminState::Maint {
                    // Maintenance cuts what is left, as HAProxy's `shutdown sessions` would.
                    s.sessions.clear();
                }
                Ok(())
            })
            .await
    }

    async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
        self.faults
            .around("router.set_weight", server, async {
                if weight > 256 {
                    return Err(Error::invalid(
                        "router.set_weight",
                        server,
                        format!("weight {weight} is above 256"),
                    ));
                }
                let mut st = lock(&self.state);
                let s = st
                    .servers
                    .get_mut(server)
                    .ok_or_else(|| self.no_server("router.set_weight", server))?;
                s.weight = weight;
                Ok(())
            })
            .await
    }

    async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
        self.faults
            .around("router.set_address", server, async {
                if address.is_empty() || address.contains(char::is_whitespace) || port == 0 {
                    return Err(Error::invalid(
                        "router.set_address",
                        server,
                        format!("invalid address {address}:{port}"),
                    ));
                }
                let mut st = lock(&self.state);
                let s = st
                    .servers
                    .get_mut(server)
                    .ok_or_else(|| self.no_server("router.set_address", server))?;
                s.address = format!("{address}:{port}");
                Ok(())
            })
            .await
    }
}
