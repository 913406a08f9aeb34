//! The deployment model in the runbook's words: colors, releases, the app, the slots and the deploy policy.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One of the two app slots behind HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// The runbook's app1.
    Blue,
    /// The runbook's app2.
    Green,
}

impl Color {
    /// Both colors, blue first.
    pub const ALL: [Color; 2] = [Color::Blue, Color::Green];

    /// The other color.
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }

    /// `"blue"` or `"green"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Color {
    type Err = Error;
    fn from_str(s: &str) -> Result<Color> {
        match s.trim().to_ascii_lowercase().as_str() {
            "blue" => Ok(Color::Blue),
            "green" => Ok(Color::Green),
            _ => {
                Err(Error::invalid("color.parse", s, "unknown color").with_hint("use \"blue\" or \"green\""))
            }
        }
    }
}

/// A validated Docker image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses and validates a reference such as `connect:20251013-1400` or `registry:5000/connect@sha256:…`.
    pub fn parse(s: &str) -> Result<ImageRef> {
        let bad = |why: &str| {
            Error::invalid("image.parse", s, why.to_string())
                .with_hint("write it as repository[:tag][@sha256:<64 hex>], e.g. connect:20251013-1400")
        };
        if s.is_empty() || s.len() > 512 {
            return Err(bad("an image reference has 1 to 512 characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let (algo, hex) = d
                    .split_once(':')
                    .ok_or_else(|| bad("a digest is algorithm:hex"))?;
                if algo != "sha256"
                    || hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(bad("a digest is sha256: followed by 64 lower-case hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A colon after the last slash separates the tag; one before it belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|why| bad(&why))?;
        }
        if repository.is_empty() {
            return Err(bad("the repository name is empty"));
        }
        let mut parts = repository.split('/').peekable();
        let mut first = true;
        while let Some(part) = parts.next() {
            let is_registry = first && parts.peek().is_some() && (part.contains('.') || part.contains(':'));
            first = false;
            if is_registry {
                if part.is_empty()
                    || !part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
                {
                    return Err(bad("the registry host has invalid characters"));
                }
                continue;
            }
            let ok = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return Err(bad(
                    "repository path components are lower-case letters, digits and . _ -, starting and ending \
                     with a letter or digit",
                ));
            }
        }
        Ok(ImageRef {
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The repository, e.g. `connect`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The content digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef> {
        validate_tag(tag).map_err(|why| Error::invalid("image.with_tag", tag, why))?;
        Ok(ImageRef {
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.as_bytes()[0] == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1 to 128 of letters, digits, _ . -, not starting with . or -"
        ))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<ImageRef> {
        ImageRef::parse(s)
    }
}

impl TryFrom<String> for ImageRef {
    type Error = Error;
    fn try_from(s: String) -> Result<ImageRef> {
        ImageRef::parse(&s)
    }
}

impl From<ImageRef> for String {
    fn from(i: ImageRef) -> String {
        i.to_string()
    }
}

/// A release of the app: its version and the image that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Release {
    /// The version tag, e.g. `20251013-1400` (the runbook's `date +%Y%m%d-%H%M%S`).
    pub version: String,
    /// The image to run.
    pub image: ImageRef,
    /// The image's content id once the runtime has seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl Release {
    /// A release whose image is `repository:version`, e.g. `Release::new("connect", "v2")`.
    pub fn new(repository: &str, version: &str) -> Result<Release> {
        let image = ImageRef::parse(&format!("{repository}:{version}"))?;
        Ok(Release {
            version: version.to_string(),
            image,
            digest: None,
        })
    }

    /// A release from an explicit image reference; the version is the image's tag.
    pub fn from_image(image: ImageRef) -> Result<Release> {
        let version = image.tag().map(str::to_string).ok_or_else(|| {
            Error::invalid(
                "release.from_image",
                image.to_string(),
                "the image has no tag to use as version",
            )
            .with_hint("tag the image with its version, e.g. connect:20251013-1400")
        })?;
        Ok(Release {
            version,
            image,
            digest: None,
        })
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.version, self.image)
    }
}

/// An environment shown by its names only: its values are secrets (a `DATABASE_URL` carries a password), and
/// whatever prints a spec (a log line, an error, a panic) must not leak them.
pub struct EnvNames<'a>(pub &'a BTreeMap<String, String>);

impl fmt::Debug for EnvNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// How the app runs, whatever the release.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    /// The app's name, used in container labels (`connect`).
    pub name: String,
    /// Environment variables given to every container of the app.
    pub env: BTreeMap<String, String>,
    /// The port the app listens on inside its container (3000).
    pub container_port: u16,
    /// The health endpoint's path (`/api/health`). Empty: the app serves no HTTP (a worker): the container's
    /// own health check, if its image has one, else "running", is all the health gate and verify ask.
    pub health_path: String,
    /// How long a container gets to stop after SIGTERM before it is killed.
    pub stop_grace: Duration,
    /// The migration command run in a one-off container of the new release (`npx prisma migrate deploy`).
    pub migration: Option<Vec<String>>,
    /// Where the release's migration files are inside its image (`/app/prisma/migrations`; sqlx's
    /// `migrations`, Flyway's `sql`): the ones the database has not applied yet are linted before the
    /// migration runs. `None`: nothing is linted.
    #[serde(default)]
    pub migrations_dir: Option<String>,
    /// Paths the post-deploy check requests from the new color directly (the runbook's `curl` of the site):
    /// an answer of 500 or more, or none, fails verification. Empty: only health, database, cache and logs.
    pub smoke_paths: Vec<String>,
    /// The container's command, when not the image's (a worker's `bin/jobs`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

impl fmt::Debug for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSpec")
            .field("name", &self.name)
            .field("env", &EnvNames(&self.env))
            .field("container_port", &self.container_port)
            .field("health_path", &self.health_path)
            .field("stop_grace", &self.stop_grace)
            .field("migration", &self.migration)
            .field("migrations_dir", &self.migrations_dir)
            .field("smoke_paths", &self.smoke_paths)
            .field("command", &self.command)
            .finish()
    }
}

impl AppSpec {
    /// Refuses settings that would only fail in the middle of a deploy: smoke paths that are not absolute URL
    /// paths.
    pub fn validate(&self) -> Result<()> {
        for path in &self.smoke_paths {
            if !path.starts_with('/')
                || path
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(Error::invalid(
                    "app.validate",
                    format!("smoke_paths {path:?}"),
                    "a smoke path is an absolute URL path without spaces",
                )
                .with_hint("e.g. \"/\" or \"/login\""));
            }
        }
        Ok(())
    }

    /// The runbook's app: `connect`, port 3000, `/api/health`, 10 s grace, no migration.
    pub fn connect() -> AppSpec {
        AppSpec {
            name: "connect".into(),
            env: BTreeMap::new(),
            container_port: 3000,
            health_path: "/api/health".into(),
            stop_grace: Duration::from_secs(10),
            migration: None,
            migrations_dir: None,
            smoke_paths: Vec::new(),
            command: None,
        }
    }

    /// The same app run as a worker with `command` (the image's own when `None`): no HTTP asked of it (no
    /// health path, no smoke paths), so its image's health check, if any, else running, is its health.
    pub fn as_worker(&self, command: Option<Vec<String>>) -> AppSpec {
        AppSpec {
            health_path: String::new(),
            smoke_paths: Vec::new(),
            command: command.or_else(|| self.command.clone()),
            ..self.clone()
        }
    }

    /// Whether the app answers HTTP health checks (a worker may not: its `health_path` is empty).
    pub fn serves_http(&self) -> bool {
        !self.health_path.is_empty()
    }
}

/// Where a color lives: its container and its server in the HAProxy backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The color.
    pub color: Color,
    /// The container's name (`connect_app1`).
    pub container: String,
    /// The server's name in the HAProxy backend (`app1`).
    pub server: String,
    /// The host port the container's port is published on (3000 for blue, 3001 for green).
    pub host_port: u16,
}

/// The two slots of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Blue's slot.
    pub blue: Slot,
    /// Green's slot.
    pub green: Slot,
}

impl Topology {
    /// The runbook's layout: blue = `connect_app1` / `app1` on 3000, green = `connect_app2` / `app2` on 3001.
    pub fn runbook() -> Topology {
        Topology {
            blue: Slot {
                color: Color::Blue,
                container: "connect_app1".into(),
                server: "app1".into(),
                host_port: 3000,
            },
            green: Slot {
                color: Color::Green,
                container: "connect_app2".into(),
                server: "app2".into(),
                host_port: 3001,
            },
        }
    }

    /// The slot of a color.
    pub fn slot(&self, color: Color) -> &Slot {
        match color {
            Color::Blue => &self.blue,
            Color::Green => &self.green,
        }
    }

    /// The color whose container has this name.
    pub fn color_of_container(&self, name: &str) -> Option<Color> {
        Color::ALL.into_iter().find(|c| self.slot(*c).container == name)
    }
}

/// What happens to the old color once the new one is live and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
#[non_exhaustive]
pub enum OldColorPolicy {
    /// Keep it running, drained, so instant rollback is one router call (the default).
    WarmStandby,
    /// Keep it as a standby for this long after the deploy; the journal records when the window ends
    /// ([`crate::engine::Status::standby_until_unix_ms`]), and `Deployer::retire_standby` removes it then.
    RetireAfter {
        /// How long the standby is kept.
        #[serde(with = "duration_ms")]
        window: Duration,
    },
    /// The runbook's step 6: put the new release on the old color too and serve from both.
    Balanced,
}

/// The thresholds and deadlines of a deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeployPolicy {
    /// How long the new color gets to become healthy.
    #[serde(with = "duration_ms")]
    pub health_deadline: Duration,
    /// How long the migration's one-off container may run before it is stopped: a migration of a big table
    /// takes minutes, and is never cut at the health gate's deadline.
    #[serde(with = "duration_ms", default = "default_migration_deadline")]
    pub migration_deadline: Duration,
    /// How long the old color's in-flight requests get to finish after the switch.
    #[serde(with = "duration_ms")]
    pub drain_deadline: Duration,
    /// How long a router server gets to be seen UP by HAProxy's own checks.
    #[serde(with = "duration_ms")]
    pub router_deadline: Duration,
    /// Disk usage (percent) above which preflight warns (the runbook's 80).
    pub disk_warn_percent: u8,
    /// Disk usage (percent) above which preflight refuses.
    pub disk_fail_percent: u8,
    /// The paths whose disk usage preflight checks (`/opt/connect`).
    pub disk_paths: Vec<String>,
    /// Preflight fails when fewer inodes than this percentage are free on a checked disk.
    #[serde(default = "default_min_free_inodes_percent")]
    pub min_free_inodes_percent: u8,
    /// Preflight warns when the server's clock is further off than this from ours (journals and lock leases
    /// compare times).
    #[serde(with = "duration_ms", default = "default_max_clock_skew")]
    pub max_clock_skew: Duration,
    /// Error lines in the new color's log since the deploy began above which verify fails (the runbook's 10).
    pub max_error_lines: usize,
    /// What happens to the old color.
    pub old_color: OldColorPolicy,
    /// How long the deploy lock stays valid without renewal. A running operation renews it every third of
    /// it; the lock of a process that died expires this long after its last renewal, and the next operation
    /// takes it over and settles what the dead one left.
    #[serde(with = "duration_ms", default = "default_lock_lease")]
    pub lock_lease: Duration,
    /// When the deploy takes a verified backup of the app's database, and how many it keeps.
    #[serde(default)]
    pub backup: BackupPolicy,
    /// Let a migration drop, rename, retype or newly require (NOT NULL) what the old color still uses. Off,
    /// such a migration is refused before anything changes while an old color runs: ship it as
    /// expand/contract (add now, remove once the old color is retired).
    #[serde(default)]
    pub allow_destructive_migrations: bool,
    /// The watch after the switch (and after an instant rollback): off unless its window is set.
    #[serde(default)]
    pub watch: WatchPolicy,
    /// Moves traffic to the new color in steps of weight, each held under the watch; `None` switches at once.
    #[serde(default)]
    pub canary: Option<CanaryPolicy>,
    /// After a deploy or full rollback succeeded, the release images of its repository beyond the newest
    /// this many are removed (the `prune` step), never the live or the standby one. `None` keeps every image,
    /// as the runbook does; a failed prune is reported and never changes the outcome.
    #[serde(default)]
    pub keep_releases: Option<usize>,
    /// The backup sets preflight judges (`connect-ops backup-all`): it fails when the newest is older than
    /// the policy allows, or there is none. `None`: not checked.
    #[serde(default)]
    pub backup_sets: Option<BackupSetPolicy>,
}

/// Where the server keeps its backup sets (Redis, uploads, journal, configs) and how old the newest may be
/// before preflight fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupSetPolicy {
    /// The sets' directory on the server.
    pub dir: String,
    /// The newest set's greatest allowed age (a daily timer: a day and some slack).
    #[serde(with = "duration_ms")]
    pub max_age: Duration,
}

impl BackupSetPolicy {
    /// The sets in `dir`, the newest no older than `max_age`.
    pub fn new(dir: impl Into<String>, max_age: Duration) -> BackupSetPolicy {
        BackupSetPolicy {
            dir: dir.into(),
            max_age,
        }
    }
}

/// When a deploy backs up the app's database (runbook §3: "backup verified" before a migration), and how
/// many backups are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BackupPolicy {
    /// Back up before a migration. A database backend that cannot back up then stops the deploy before the
    /// migration, rather than migrating without a way back.
    pub before_migration: bool,
    /// Back up on every deploy, a migration or not.
    pub every_deploy: bool,
    /// How many backups of the database are kept; older ones are removed after a good one.
    pub keep: usize,
    /// How long one backup (dump, checksum, read-back) may take before it is stopped and the deploy with it.
    #[serde(with = "duration_ms")]
    pub deadline: Duration,
}

impl Default for BackupPolicy {
    fn default() -> Self {
        BackupPolicy {
            before_migration: true,
            every_deploy: false,
            keep: 7,
            deadline: Duration::from_secs(2 * 3600),
        }
    }
}

/// How the new color is watched after it takes traffic, and when that rolls it back: its figures are compared
/// with the old color's from before the switch. A window of zero turns the watch off (the default: the
/// runbook has no watch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WatchPolicy {
    /// How long the new color is watched after the switch; zero is no watch.
    #[serde(with = "duration_ms")]
    pub window: Duration,
    /// Time between two samples of its figures.
    #[serde(with = "duration_ms")]
    pub interval: Duration,
    /// A breach when its share of 5xx answers exceeds the old color's by more than this many percentage
    /// points.
    pub max_5xx_increase_percent: f64,
    /// The 5xx share is judged only once it answered at least this many requests (a single 500 out of three
    /// is no signal).
    pub min_responses: u64,
    /// A breach when its average response time exceeds the old color's times this factor…
    pub max_response_time_factor: f64,
    /// …and is above this floor (a 2 ms app that answers in 7 ms is fine).
    #[serde(with = "duration_ms")]
    pub response_time_floor: Duration,
    /// A breach when its container restarts more often than this during the watch.
    pub max_restarts: u32,
    /// A breach when it logs more error lines during the watch than the old color did in as long a time
    /// before the switch, plus this.
    pub max_error_lines_increase: usize,
}

impl Default for WatchPolicy {
    fn default() -> Self {
        WatchPolicy {
            window: Duration::ZERO,
            interval: Duration::from_secs(5),
            max_5xx_increase_percent: 1.0,
            min_responses: 20,
            max_response_time_factor: 3.0,
            response_time_floor: Duration::from_millis(200),
            max_restarts: 0,
            max_error_lines_increase: 10,
        }
    }
}

impl WatchPolicy {
    /// A watch of `window`, sampled every `interval`, with the default thresholds.
    pub fn new(window: Duration, interval: Duration) -> WatchPolicy {
        WatchPolicy {
            window,
            interval,
            ..WatchPolicy::default()
        }
    }

    /// Whether the watch runs.
    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    fn validate(&self, name: &str) -> Result<()> {
        let bad = |what: &str, why: &str, fix: &str| {
            Err(
                Error::invalid("policy.validate", format!("{name}.{what}"), why.to_string())
                    .with_hint(fix.to_string()),
            )
        };
        if self.enabled() && self.interval.is_zero() {
            return bad(
                "interval",
                "a watch with no time between samples",
                "give the interval a positive duration",
            );
        }
        if self.enabled() && self.interval > self.window {
            return bad(
                "interval",
                "the interval is longer than the window: not one sample",
                "make the interval at most the window",
            );
        }
        if !(self.max_5xx_increase_percent.is_finite()
            && (0.0..=100.0).contains(&self.max_5xx_increase_percent))
        {
            return bad(
                "max_5xx_increase_percent",
                "not a percentage from 0 to 100",
                "use e.g. 1.0",
            );
        }
        if !(self.max_response_time_factor.is_finite() && self.max_response_time_factor >= 1.0) {
            return bad(
                "max_response_time_factor",
                "a factor below 1 breaches on the old color's own speed",
                "use e.g. 3.0",
            );
        }
        Ok(())
    }
}

/// Traffic moved to the new color in steps of HAProxy weight (10 % → 50 % → 100 %), each step held for a
/// window under the watch; a breach at any step rolls back before the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CanaryPolicy {
    /// The new color's share of the traffic at each step, in percent, rising, each below 100 (the last step,
    /// 100 %, is the switch itself).
    pub steps: Vec<u8>,
    /// How long each step is held and watched.
    #[serde(with = "duration_ms")]
    pub hold: Duration,
}

impl CanaryPolicy {
    /// Traffic moved in `steps` (percent), each held `hold`.
    pub fn new(steps: Vec<u8>, hold: Duration) -> CanaryPolicy {
        CanaryPolicy { steps, hold }
    }
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy {
            steps: vec![10, 50],
            hold: Duration::from_secs(60),
        }
    }
}

fn default_migration_deadline() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_min_free_inodes_percent() -> u8 {
    5
}

fn default_max_clock_skew() -> Duration {
    Duration::from_secs(2)
}

fn default_lock_lease() -> Duration {
    Duration::from_secs(30)
}

impl Default for DeployPolicy {
    fn default() -> Self {
        DeployPolicy {
            health_deadline: Duration::from_secs(60),
            migration_deadline: default_migration_deadline(),
            drain_deadline: Duration::from_secs(30),
            router_deadline: Duration::from_secs(10),
            disk_warn_percent: 80,
            disk_fail_percent: 95,
            disk_paths: vec!["/opt/connect".into()],
            min_free_inodes_percent: default_min_free_inodes_percent(),
            max_clock_skew: default_max_clock_skew(),
            max_error_lines: 10,
            old_color: OldColorPolicy::WarmStandby,
            lock_lease: default_lock_lease(),
            backup: BackupPolicy::default(),
            allow_destructive_migrations: false,
            watch: WatchPolicy::default(),
            canary: None,
            keep_releases: None,
            backup_sets: None,
        }
    }
}

impl DeployPolicy {
    /// Refuses zero deadlines and thresholds that cannot hold.
    pub fn validate(&self) -> Result<()> {
        for (name, d) in [
            ("health_deadline", self.health_deadline),
            ("migration_deadline", self.migration_deadline),
            ("drain_deadline", self.drain_deadline),
            ("router_deadline", self.router_deadline),
            ("lock_lease", self.lock_lease),
            ("backup.deadline", self.backup.deadline),
            (
                "backup_sets.max_age",
                self.backup_sets.as_ref().map_or(Duration::MAX, |b| b.max_age),
            ),
        ] {
            if d.is_zero() {
                return Err(
                    Error::invalid("policy.validate", name, "a deadline of zero can never be met")
                        .with_hint(format!("give {name} a positive duration")),
                );
            }
        }
        if self.disk_warn_percent > self.disk_fail_percent || self.disk_fail_percent > 100 {
            return Err(Error::invalid(
                "policy.validate",
                "disk thresholds",
                format!(
                    "warn {}% and fail {}% must satisfy warn <= fail <= 100",
                    self.disk_warn_percent, self.disk_fail_percent
                ),
            ));
        }
        if let OldColorPolicy::RetireAfter { window } = self.old_color
            && window.is_zero()
        {
            return Err(Error::invalid(
                "policy.validate",
                "old_color",
                "a retire window of zero leaves no standby",
            )
            .with_hint("use a positive window, or WarmStandby"));
        }
        let backs_up = self.backup.before_migration || self.backup.every_deploy;
        if backs_up && self.backup.keep == 0 {
            return Err(Error::invalid(
                "policy.validate",
                "backup.keep",
                "keeping zero backups would remove the one just taken",
            )
            .with_hint("keep at least 1 backup, or turn backups off"));
        }
        self.watch.validate("watch")?;
        if let Some(canary) = &self.canary {
            let rising = canary.steps.windows(2).all(|w| w[0] < w[1]);
            if canary.steps.is_empty() || !rising || canary.steps.iter().any(|p| *p == 0 || *p >= 100) {
                return Err(Error::invalid(
                    "policy.validate",
                    "canary.steps",
                    format!("{:?} must be rising percentages between 1 and 99", canary.steps),
                )
                .with_hint("e.g. [10, 50]: the switch itself is the last step, 100 %"));
            }
            if canary.hold.is_zero() {
                return Err(Error::invalid(
                    "policy.validate",
                    "canary.hold",
                    "a step held for no time is watched by nothing",
                )
                .with_hint("give canary.hold a positive duration"));
            }
            if !self.watch.enabled() || self.watch.interval > canary.hold {
                return Err(Error::invalid(
                    "policy.validate",
                    "canary",
                    "a canary needs the watch: a window, and an interval no longer than the hold",
                )
                .with_hint("set watch.window (and watch.interval <= canary.hold)"));
            }
        }
        Ok(())
    }
}

/// Durations as whole milliseconds in JSON, so journals stay readable by people and other tools.
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_parse_and_print_back() {
        for s in [
            "connect",
            "connect:latest",
            "connect:20251013-140000",
            "registry.local:5000/team/connect:v2",
            &format!("connect@sha256:{}", "a".repeat(64)),
        ] {
            assert_eq!(ImageRef::parse(s).unwrap().to_string(), s);
        }
        let i = ImageRef::parse("registry.local:5000/connect:v2").unwrap();
        assert_eq!(i.repository(), "registry.local:5000/connect");
        assert_eq!(i.tag(), Some("v2"));
    }

    #[test]
    fn invalid_image_refs_are_refused_with_a_hint() {
        for s in [
            "",
            "Connect:v1",
            "connect:",
            "connect:-x",
            "connect@md5:abc",
            "/connect",
            "con nect",
            "a//b",
        ] {
            let e = ImageRef::parse(s).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{s}");
            assert!(e.hint().unwrap().contains("repository[:tag]"), "{s}");
        }
    }

    #[test]
    fn colors_parse_and_flip() {
        assert_eq!("Blue".parse::<Color>().unwrap(), Color::Blue);
        assert_eq!(Color::Blue.other(), Color::Green);
        assert!("purple".parse::<Color>().is_err());
    }

    #[test]
    fn zero_deadline_is_refused() {
        let p = DeployPolicy {
            health_deadline: Duration::ZERO,
            ..DeployPolicy::default()
        };
        let e = p.validate().unwrap_err();
        assert!(e.to_string().contains("health_deadline"), "{e}");
        assert!(DeployPolicy::default().validate().is_ok());
    }

    proptest::proptest! {
        #[test]
        fn image_parse_never_panics(s in ".{0,80}") {
            let _ = ImageRef::parse(&s);
        }
    }
}
