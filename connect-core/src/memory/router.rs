//! A HAProxy backend in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::runtime::{ServingProbe, TrafficProbe};
use super::{Faults, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::router::{AdminState, CheckState, ServerFigures, ServerStatus, TrafficRouter};

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
    /// Simulated traffic so far; fractional so a small share of a small interval is not lost.
    responses: f64,
    responses_5xx: f64,
    response_time_ms: u64,
}

#[derive(Default)]
struct State {
    servers: BTreeMap<String, Server>,
    probe: Option<ServingProbe>,
    traffic: Option<TrafficProbe>,
    /// Simulated requests per second through the backend (0: none).
    load_per_sec: u64,
    /// Until when traffic has been counted.
    counted_until: Option<Instant>,
    maintenance: bool,
    /// Requests the maintenance page answered.
    maintenance_answers: f64,
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
/// A server that [`MemoryStack`](super::MemoryStack) links to a container is checked the way HAProxy checks
/// it: up while that container serves. Others are up unless [`MemoryRouter::set_check`] says otherwise.
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
        lock(&self.state).statuses(Instant::now())
    }

    /// Simulates `per_second` client requests through the backend from now on, shared among the live
    /// servers by weight and answered as their containers answer: the counters [`TrafficRouter::figures`]
    /// reports. 0 stops them.
    pub fn set_load(&self, per_second: u64) {
        let mut state = lock(&self.state);
        state.count(Instant::now());
        state.load_per_sec = per_second;
    }

    /// Requests the maintenance page has answered so far.
    pub fn maintenance_answers(&self) -> u64 {
        let mut state = lock(&self.state);
        state.count(Instant::now());
        state.maintenance_answers as u64
    }
}

impl State {
    fn statuses(&self, now: Instant) -> Vec<ServerStatus> {
        let state = self;
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

    /// Counts the simulated requests from the last count to `now`, routed as the servers are now: every
    /// change of state or weight counts first, so each interval is routed as it was.
    fn count(&mut self, now: Instant) {
        let since = self.counted_until.replace(now).unwrap_or(now);
        let requests = self.load_per_sec as f64 * now.saturating_duration_since(since).as_secs_f64();
        if requests == 0.0 {
            return;
        }
        if self.maintenance {
            self.maintenance_answers += requests;
            return;
        }
        let live: Vec<(String, u32)> = self
            .statuses(now)
            .into_iter()
            .filter(ServerStatus::is_live)
            .map(|s| (s.name, s.weight))
            .collect();
        let total: u32 = live.iter().map(|(_, w)| w).sum();
        for (name, weight) in live {
            let answer = match (
                &self.traffic,
                self.servers.get(&name).and_then(|s| s.container.clone()),
            ) {
                (Some(probe), Some(container)) => probe(&container),
                _ => None,
            };
            let Some(server) = self.servers.get_mut(&name) else {
                continue;
            };
            let share = requests * f64::from(weight) / f64::from(total.max(1));
            server.responses += share;
            match answer {
                Some(a) => {
                    if a.erroring {
                        server.responses_5xx += share;
                    }
                    server.response_time_ms = a.response_time.as_millis() as u64;
                }
                // A server without a container to ask answers in 1 ms; one whose container stopped serving,
                // with HAProxy's 503.
                None if server.container.is_none() => server.response_time_ms = 1,
                None => server.responses_5xx += share,
            }
        }
    }
}

impl MemoryRouter {
    /// Adds a server (in maintenance, weight 100) whose check is set by hand.
    pub fn add_server(&self, name: &str, address: &str) {
        self.insert(name, address, None);
    }

    /// Adds a server whose health check probes `container` through the runtime behind `probe`.
    pub(crate) fn add_server_for(
        &self,
        name: &str,
        address: &str,
        container: &str,
        probe: ServingProbe,
        traffic: TrafficProbe,
    ) {
        self.insert(name, address, Some(container.to_string()));
        let mut state = lock(&self.state);
        state.probe = Some(probe);
        state.traffic = Some(traffic);
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
                responses: 0.0,
                responses_5xx: 0.0,
                response_time_ms: 0,
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

    async fn figures(&self) -> Result<Vec<ServerFigures>> {
        self.faults
            .around("router.figures", &self.backend, async {
                let mut st = lock(&self.state);
                let now = Instant::now();
                st.count(now);
                let sessions = st.statuses(now);
                Ok(st
                    .servers
                    .iter()
                    .map(|(name, s)| {
                        let status = sessions.iter().find(|x| &x.name == name);
                        ServerFigures {
                            name: name.clone(),
                            responses: s.responses as u64,
                            responses_5xx: s.responses_5xx as u64,
                            response_time_ms: s.response_time_ms,
                            current_sessions: status.map_or(0, |x| x.current_sessions),
                            total_sessions: s.responses as u64,
                        }
                    })
                    .collect())
            })
            .await
    }

    async fn set_maintenance(&self, on: bool) -> Result<()> {
        self.faults
            .around("router.set_maintenance", &self.backend, async {
                let mut st = lock(&self.state);
                st.count(Instant::now());
                st.maintenance = on;
                Ok(())
            })
            .await
    }

    async fn maintenance(&self) -> Result<bool> {
        self.faults
            .around("router.maintenance", &self.backend, async {
                Ok(lock(&self.state).maintenance)
            })
            .await
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        self.faults
            .around("router.set_state", server, async {
                let mut st = lock(&self.state);
                st.count(Instant::now());
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
                st.count(Instant::now());
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
