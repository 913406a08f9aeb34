//! Containers and images: the Docker Engine's part of the runbook.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Color, EnvNames, ImageRef, Release};
use crate::ship::{ReleaseSource, ShipProgressFn, ShipReport};

/// The labels Connect Ops puts on the containers it creates, so it can find and adopt them.
pub mod labels {
    /// The app's name.
    pub const APP: &str = "ops.connect.app";
    /// `blue` or `green`.
    pub const COLOR: &str = "ops.connect.color";
    /// The release version.
    pub const RELEASE: &str = "ops.connect.release";
    /// `true` on a one-off container (a migration), so one left by a killed process can be found.
    pub const ONE_OFF: &str = "ops.connect.one-off";
}

/// An image the runtime has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The image id (`sha256:…`).
    pub id: String,
    /// The references that point at it.
    pub tags: Vec<String>,
    /// The layer digests, bottom first.
    pub layers: Vec<String>,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// Everything needed to run one color's container.
#[derive(Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container's name (`connect_app2`).
    pub name: String,
    /// The image to run.
    pub image: ImageRef,
    /// Labels (see [`labels`]).
    pub labels: BTreeMap<String, String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Container port → host port.
    pub ports: Vec<(u16, u16)>,
    /// The command, if not the image's default.
    pub command: Option<Vec<String>>,
    /// The health endpoint, probed by the runtime's health check.
    pub health_path: Option<String>,
    /// How long the container gets to stop before it is killed.
    pub stop_grace: Duration,
}

impl fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("labels", &self.labels)
            .field("env", &EnvNames(&self.env))
            .field("ports", &self.ports)
            .field("command", &self.command)
            .field("health_path", &self.health_path)
            .field("stop_grace", &self.stop_grace)
            .finish()
    }
}

impl ContainerSpec {
    /// The color and release labels of this spec, if it carries them.
    pub fn color(&self) -> Option<Color> {
        self.labels.get(labels::COLOR).and_then(|c| c.parse().ok())
    }
}

/// A container's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Stopped or exited.
    Exited,
}

/// A container's health as its health check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No health check configured.
    None,
    /// Within its start period, not yet judged.
    Starting,
    /// The last checks passed.
    Healthy,
    /// The checks failed too often.
    Unhealthy,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::None => "no health check",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

/// A container as the runtime sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// The image reference it was created from.
    pub image: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Running or not.
    pub state: ContainerState,
    /// Health check status.
    pub health: Health,
    /// The last health check outputs, newest last (why it is unhealthy).
    pub health_log: Vec<String>,
    /// When it was started, if it was.
    pub started_at: Option<SystemTime>,
    /// How often the runtime restarted it after it exited (Docker's `RestartCount`): a release that crashes
    /// under load and comes back shows it here, not in its health.
    #[serde(default)]
    pub restart_count: u32,
}

impl ContainerInfo {
    /// The release version label.
    pub fn release(&self) -> Option<&str> {
        self.labels.get(labels::RELEASE).map(String::as_str)
    }

    /// Running and healthy (or running without a health check).
    pub fn is_serving(&self) -> bool {
        self.state == ContainerState::Running && matches!(self.health, Health::Healthy | Health::None)
    }
}

/// A container's resource use as the runtime counts it (Docker's stats), read once per sample: CPU time is a
/// total, so a reader turns two readings into a CPU share over the time between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerStats {
    /// CPU time the container used since it started, in nanoseconds (all cores added up).
    pub cpu_ns: u64,
    /// Memory in use, in bytes, without the page cache the kernel can drop (as `docker stats` shows it).
    pub memory_bytes: u64,
    /// Its memory limit in bytes, when it has one.
    pub memory_limit_bytes: Option<u64>,
}

/// A program's result inside a container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Exit code.
    pub exit_code: i64,
    /// Standard output and standard error, interleaved as the program wrote them.
    pub output: String,
}

/// A one-off container: run a command from an image, wait, collect its output, remove it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneOff {
    /// The image to run (the NEW release, for migrations).
    pub image: ImageRef,
    /// The command.
    pub command: Vec<String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// How long it may run.
    pub deadline: Duration,
    /// Labels for its container, beside [`labels::ONE_OFF`]: the engine's name the app
    /// ([`labels::APP`]), so a one-off a killed process left behind is found and removed.
    pub labels: BTreeMap<String, String>,
}

impl fmt::Debug for OneOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneOff")
            .field("image", &self.image)
            .field("command", &self.command)
            .field("env", &EnvNames(&self.env))
            .field("deadline", &self.deadline)
            .field("labels", &self.labels)
            .finish()
    }
}

/// A container's log as lines, oldest first (see [`ContainerRuntime::logs`]). Dropping it stops reading.
pub type LogStream = futures::stream::BoxStream<'static, Result<String>>;

/// Which log lines [`ContainerRuntime::logs`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogQuery {
    /// Only the last N lines written so far (`None`: all of them).
    pub tail: Option<usize>,
    /// Keep the stream open and give each new line as it is written, until the container stops.
    pub follow: bool,
}

/// Containers and images.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + fmt::Debug {
    /// The image behind a reference; `None` when the runtime does not have it.
    async fn image(&self, image: &ImageRef) -> Result<Option<ImageInfo>>;

    /// Creates and starts a container. A name already in use is [`crate::ErrorKind::Conflict`].
    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo>;

    /// The container's current state; `None` when there is no such container.
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>>;

    /// Waits until the container is healthy, with a deadline. Fails with [`crate::ErrorKind::Unhealthy`] when
    /// it turns unhealthy or exits, with [`crate::ErrorKind::Timeout`] when the deadline passes; both carry
    /// the last health check outputs.
    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<ContainerInfo>;

    /// Stops the container: SIGTERM, then SIGKILL after `grace`. Stopping a stopped container is fine.
    async fn stop(&self, name: &str, grace: Duration) -> Result<()>;

    /// Removes a stopped container. A missing one is [`crate::ErrorKind::NotFound`].
    async fn remove(&self, name: &str) -> Result<()>;

    /// Log lines written since `since`, oldest first.
    async fn logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>>;

    /// Runs a program inside a running container.
    async fn exec(&self, name: &str, command: &[String]) -> Result<ExecOutput>;

    /// Runs a one-off container to completion and removes it.
    async fn run_once(&self, job: &OneOff) -> Result<ExecOutput>;

    /// Containers whose labels include all of `labels`.
    async fn list(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>>;

    /// The container's log (stdout and stderr interleaved): the last `query.tail` lines, then, with
    /// `query.follow`, each new line until the container stops or the stream is dropped. A missing container
    /// is [`crate::ErrorKind::NotFound`] when the stream is opened.
    async fn logs(&self, name: &str, query: LogQuery) -> Result<LogStream>;

    /// The images of `repository` (every tag of it), newest first.
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>>;

    /// Removes an image reference (the image goes with its last reference). Never forced: an image a
    /// container uses is [`crate::ErrorKind::Conflict`]; a missing reference is [`crate::ErrorKind::NotFound`].
    async fn delete_image(&self, image: &ImageRef) -> Result<()>;

    /// The regular files under the absolute directory `dir` of `image`, paths relative to `dir`, sorted;
    /// empty when the image has no such directory. More than `max_bytes` in all is
    /// [`crate::ErrorKind::Refused`]. Nothing of the image runs. The engine reads the release's migrations
    /// with it, to lint them before they run. Unsupported unless a runtime says otherwise.
    async fn read_image_dir(&self, image: &ImageRef, dir: &str, max_bytes: u64) -> Result<Vec<ImageFile>> {
        let _ = (dir, max_bytes);
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "runtime.read_image_dir",
            image.to_string(),
            "this container runtime cannot read files out of an image",
        ))
    }

    /// The running container's resource use (one reading, no waiting for a second one); `None` when there is
    /// no such container. Unsupported unless a runtime says otherwise: the metrics leave the figures out.
    async fn stats(&self, name: &str) -> Result<Option<ContainerStats>> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "runtime.stats",
            name,
            format!("{self:?} cannot count a container's resource use"),
        )
        .with_hint("use a runtime that implements stats (connect-docker's `Docker`)"))
    }

    /// Makes `release.image` present from `source`: a no-op ([`crate::ship::ShipOutcome::AlreadyPresent`])
    /// when the runtime has it (an image on the server under the release's tag that is not the local image
    /// is [`ErrorKind::Conflict`]); else builds where the source says, sends only the layers the runtime
    /// lacks, verifies them against their digests and tags the image only once it is whole, so a failure
    /// leaves nothing tagged. Reports progress through `progress`.
    ///
    /// The default refuses: a runtime that cannot reach a build machine has the image shipped by other means.
    async fn ship(
        &self,
        release: &Release,
        source: &ReleaseSource,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        let _ = (source, progress);
        Err(Error::new(
            ErrorKind::Unsupported,
            "runtime.ship",
            release.image.to_string(),
            format!("{self:?} cannot ship images"),
        )
        .with_hint("transfer the image to the server yourself, then deploy without a release source"))
    }
}

/// A file read out of an image by [`ContainerRuntime::read_image_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Its path below the directory read, `/`-separated (`20260201_add_sessions/migration.sql`).
    pub path: String,
    /// Its content.
    pub data: Vec<u8>,
}

/// The labels a color's container carries.
pub fn slot_labels(app: &str, color: Color, release: &Release) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::APP.to_string(), app.to_string()),
        (labels::COLOR.to_string(), color.to_string()),
        (labels::RELEASE.to_string(), release.version.clone()),
    ])
}
