//! Containers and images in memory, with simulated start-up and health: the simulated containers and the
//! controls a test uses (`add_image`, `crash`). The [`ContainerRuntime`](crate::runtime::ContainerRuntime)
//! calls are in `container_runtime.rs`, the image list in `images.rs`, the logs in `logs.rs`.

mod container_runtime;
mod images;
mod logs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Faults, lock};
use crate::error::{Error, ErrorKind};
use crate::model::ImageRef;
use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStats, Health, ImageInfo, OneOff,
};

/// How the app in an image behaves once started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppBehavior {
    /// How long it is `starting` before its health check judges it.
    pub ready_after: Duration,
    /// Whether it turns healthy (true) or unhealthy (false) at `ready_after`.
    pub becomes_healthy: bool,
    /// Error lines it logs right after start (the runbook counts them after a deploy).
    pub error_lines: usize,
    /// Exit code of its migration command.
    pub migration_exit: i64,
    /// How long its migration command runs.
    pub migration_takes: Duration,
    /// From this long after start, it answers every request with a 500 (its health endpoint still says
    /// healthy): the release that breaks under real traffic, for the watch after the switch.
    pub errors_after: Option<Duration>,
    /// How long it takes to answer a request.
    pub response_time: Duration,
    /// It crashes and is restarted by the runtime this often (its restart count grows; it keeps serving).
    pub restarts_every: Option<Duration>,
}

impl Default for AppBehavior {
    fn default() -> Self {
        AppBehavior {
            ready_after: Duration::from_millis(1500),
            becomes_healthy: true,
            error_lines: 0,
            migration_exit: 0,
            migration_takes: Duration::ZERO,
            errors_after: None,
            response_time: Duration::from_millis(20),
            restarts_every: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Container {
    id: String,
    spec: ContainerSpec,
    behavior: AppBehavior,
    running: bool,
    started: Instant,
    started_wall: SystemTime,
    logs: Vec<(SystemTime, String)>,
}

impl Container {
    fn health(&self, now: Instant) -> Health {
        if !self.running {
            return Health::Unhealthy;
        }
        if now.duration_since(self.started) < self.behavior.ready_after {
            Health::Starting
        } else if self.behavior.becomes_healthy {
            Health::Healthy
        } else {
            Health::Unhealthy
        }
    }

    fn info(&self, now: Instant) -> ContainerInfo {
        let health = self.health(now);
        let health_log = match health {
            Health::Unhealthy => vec![format!(
                "GET {} failed: connection refused",
                self.spec.health_path.as_deref().unwrap_or("/")
            )],
            Health::Starting => vec!["starting".into()],
            _ => vec!["200 OK".into()],
        };
        ContainerInfo {
            name: self.spec.name.clone(),
            id: self.id.clone(),
            image: self.spec.image.to_string(),
            labels: self.spec.labels.clone(),
            state: if self.running {
                ContainerState::Running
            } else {
                ContainerState::Exited
            },
            health,
            health_log,
            started_at: Some(self.started_wall),
            restart_count: self.restarts(now),
        }
    }

    /// A simulated app's use: 2 % of a core while it runs, and 48 MiB of memory. Time is tokio's, so a
    /// paused-time test reads a CPU total that moves with the simulated clock.
    fn stats(&self, now: Instant) -> ContainerStats {
        let ran = if self.running {
            now.duration_since(self.started)
        } else {
            Duration::ZERO
        };
        ContainerStats {
            cpu_ns: u64::try_from(ran.as_nanos() / 50).unwrap_or(u64::MAX),
            memory_bytes: if self.running { 48 << 20 } else { 0 },
            memory_limit_bytes: None,
        }
    }

    fn restarts(&self, now: Instant) -> u32 {
        match self.behavior.restarts_every {
            Some(every) if self.running && !every.is_zero() => {
                let n = now.duration_since(self.started).as_nanos() / every.as_nanos();
                u32::try_from(n).unwrap_or(u32::MAX)
            }
            _ => 0,
        }
    }

    /// How it answers a request now: with an error or not, and how fast. `None` when it does not serve.
    fn answers(&self, now: Instant) -> Option<Answer> {
        if !self.info(now).is_serving() {
            return None;
        }
        let erroring = self
            .behavior
            .errors_after
            .is_some_and(|after| now.duration_since(self.started) >= after);
        Some(Answer {
            erroring,
            response_time: self.behavior.response_time,
        })
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// The server's images by reference.
    pub(super) images: BTreeMap<String, (ImageInfo, AppBehavior)>,
    /// Files in images, by image and absolute path.
    files: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    containers: BTreeMap<String, Container>,
    jobs: Vec<OneOff>,
    next_id: u64,
    /// The machine running the deploy: its images and build contexts (see `ship.rs`).
    pub(super) build_machine: super::ship::BuildMachine,
    /// Images added so far: image ids are numbered by it, so a removed image's id is never reused.
    images_added: u64,
    log_feed: Option<tokio::sync::broadcast::Sender<logs::LogNote>>,
}

/// Containers and images in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryRuntime {
    pub(super) state: Arc<Mutex<State>>,
    faults: Faults,
}

impl MemoryRuntime {
    /// A runtime with no image and no container.
    pub fn new() -> MemoryRuntime {
        MemoryRuntime::default()
    }

    /// The same runtime injecting `faults`, shared with other backends so calls are numbered across them.
    pub(crate) fn with_faults(mut self, faults: Faults) -> MemoryRuntime {
        self.faults = faults;
        self
    }

    /// The faults this runtime injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Puts files into an image added with [`MemoryRuntime::add_image`], by absolute path
    /// (`/app/prisma/migrations/20260201_add_sessions/migration.sql`).
    pub fn add_image_files(&self, image: &ImageRef, files: &[(&str, &str)]) {
        let mut state = lock(&self.state);
        let in_image = state.files.entry(image.to_string()).or_default();
        for (path, data) in files {
            in_image.insert(path.to_string(), data.as_bytes().to_vec());
        }
    }

    /// Makes an image available (as `docker load` would) whose app behaves as `behavior`.
    pub fn add_image(&self, image: &ImageRef, behavior: AppBehavior) {
        let mut state = lock(&self.state);
        state.images_added += 1;
        let n = state.images_added;
        let info = ImageInfo {
            id: format!("sha256:{n:064x}"),
            tags: vec![image.to_string()],
            // Releases share their base layers, as real builds do.
            layers: vec![
                format!("sha256:{:064x}", 0xba5e),
                format!("sha256:{:064x}", 0x1000 + n),
            ],
            size_bytes: 180_000_000,
        };
        state.images.insert(image.to_string(), (info, behavior));
    }

    /// Removes an image (as `docker rmi` would).
    pub fn remove_image(&self, image: &ImageRef) {
        lock(&self.state).images.remove(&image.to_string());
    }

    /// Whether the named container is running and healthy right now (what HAProxy's check would see).
    pub fn is_serving(&self, name: &str) -> bool {
        lock(&self.state)
            .containers
            .get(name)
            .is_some_and(|c| c.info(Instant::now()).is_serving())
    }

    /// Kills a container as a crash would: it stops running and fails its health check.
    pub fn crash(&self, name: &str) {
        let mut state = lock(&self.state);
        if let Some(c) = state.containers.get_mut(name) {
            c.running = false;
            state.log_ended(name);
        }
    }

    /// The one-off jobs run so far, oldest first.
    pub fn jobs(&self) -> Vec<OneOff> {
        lock(&self.state).jobs.clone()
    }

    /// Names of every container, running or not.
    pub fn container_names(&self) -> Vec<String> {
        lock(&self.state).containers.keys().cloned().collect()
    }

    fn not_found(operation: &str, name: &str) -> Error {
        Error::new(ErrorKind::NotFound, operation, name, "no such container")
    }
}

/// What the in-memory router's health check needs from the runtime: is this container serving?
pub(crate) type ServingProbe = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How a serving container answers a request, for the in-memory router's traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// With a 500.
    pub(crate) erroring: bool,
    /// How long it takes.
    pub(crate) response_time: Duration,
}

/// What the in-memory router's counters need from the runtime: how does this container answer now?
pub(crate) type TrafficProbe = Arc<dyn Fn(&str) -> Option<Answer> + Send + Sync>;

impl MemoryRuntime {
    pub(crate) fn probe(&self) -> ServingProbe {
        let rt = self.clone();
        Arc::new(move |name: &str| rt.is_serving(name))
    }

    pub(crate) fn traffic_probe(&self) -> TrafficProbe {
        let rt = self.clone();
        Arc::new(move |name: &str| {
            lock(&rt.state)
                .containers
                .get(name)
                .and_then(|c| c.answers(Instant::now()))
        })
    }
}
