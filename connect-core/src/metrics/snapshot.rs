//! What one sample shows: per color rows, the database, the cache and the deploy state, shaped for a
//! terminal view (one row per color, per container) and for the exporter (counters kept as totals).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cache::CacheFigures;
use crate::database::{ContinuousBackupState, DatabaseFigures};
use crate::engine::{Intent, LockInfo, OperationRecord};
use crate::model::Color;
use crate::router::{AdminState, CheckState};
use crate::runtime::{ContainerState, Health};
use crate::vocabulary::{OperationKind, Step, StepStatus};

/// One sample of the deployment. Rates (`*_per_s`, shares) are over [`Snapshot::interval_ms`], since the
/// sample before; the first sample has none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its number, from 1: a viewer tells a new sample from one it has seen.
    pub sequence: u64,
    /// When it was taken (unix milliseconds).
    pub taken_unix_ms: u64,
    /// Time since the sample before (milliseconds), over which the rates are; 0 for the first.
    pub interval_ms: u64,
    /// Blue then green.
    pub colors: Vec<ColorView>,
    /// PostgreSQL, when it could be read.
    pub database: Option<DatabaseView>,
    /// Redis, when it could be read.
    pub cache: Option<CacheView>,
    /// The deploy state, when the journal could be read.
    pub deploy: Option<DeployView>,
    /// Continuous backups (WAL archiving and base backups), when the database has them. Read once per
    /// [`BACKUP_READ_EVERY`](super::BACKUP_READ_EVERY), not every sample (pgBackRest's `info` is a program
    /// run on the server); between reads the ages grow with the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupView>,
    /// When the backup state was last asked for (unix milliseconds; 0 before the first time), whatever
    /// the answer: the sampler asks again [`BACKUP_READ_EVERY`](super::BACKUP_READ_EVERY) after it.
    #[serde(default)]
    pub backup_read_unix_ms: u64,
    /// What could not be read this time, and why.
    pub unavailable: Vec<Unavailable>,
}

impl Snapshot {
    /// The row of one color.
    pub fn color(&self, color: Color) -> Option<&ColorView> {
        self.colors.iter().find(|c| c.color == color)
    }
}

/// The continuous-backup state as of a sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupView {
    /// What the database reported, its ages (`last_full_age_s`, `last_archived_age_s`…) brought up to this
    /// sample's time.
    pub state: ContinuousBackupState,
    /// When it was read (unix milliseconds).
    pub read_unix_ms: u64,
}

/// A source that could not be read in a sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// Which (`router.figures`, `runtime.stats connect_app1`, `database.figures`…).
    pub source: String,
    /// The error's summary.
    pub error: String,
}

/// One color: its HAProxy server and its container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorView {
    /// Blue or green.
    pub color: Color,
    /// Its server in the HAProxy backend (`app1`).
    pub server: String,
    /// Its container's name (`connect_app1`).
    pub container_name: String,
    /// The router's view, when it could be read.
    pub traffic: Option<TrafficView>,
    /// The container, when it exists and could be read.
    pub container: Option<ContainerView>,
}

/// A server's traffic: HAProxy's totals since it started, and the rates since the sample before.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrafficView {
    /// Ready, drain or maint (`None` when the state could not be read).
    pub admin: Option<AdminState>,
    /// The health checks' verdict.
    pub check: Option<CheckState>,
    /// Its weight.
    pub weight: Option<u32>,
    /// Responses of every class since the router started.
    pub responses_total: u64,
    /// Of those, 5xx.
    pub responses_5xx_total: u64,
    /// Sessions in flight.
    pub current_sessions: u64,
    /// Responses per second since the sample before.
    pub responses_per_s: f64,
    /// The 5xx share of those, in percent.
    pub rate_5xx_percent: f64,
    /// HAProxy's average response time over the server's last 1024 requests, in milliseconds (an
    /// average: HAProxy's counters give no percentiles).
    pub response_time_avg_ms: u64,
}

/// A color's container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerView {
    /// The release it runs (its label).
    pub release: Option<String>,
    /// Running or not.
    pub state: ContainerState,
    /// Its health check's verdict.
    pub health: Health,
    /// Docker's `RestartCount`.
    pub restarts: u32,
    /// CPU time used since it started, in seconds, when the runtime counts it.
    pub cpu_seconds_total: Option<f64>,
    /// CPU use since the sample before, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Memory in use, in bytes.
    pub memory_bytes: Option<u64>,
    /// Its memory limit, in bytes.
    pub memory_limit_bytes: Option<u64>,
}

/// PostgreSQL as the leader counts it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DatabaseView {
    /// The counters as read.
    pub figures: DatabaseFigures,
    /// Transactions (commits and rollbacks) per second since the sample before.
    pub transactions_per_s: f64,
    /// The largest replica lag in bytes; `None` without a replica.
    pub max_lag_bytes: Option<u64>,
}

/// Redis.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheView {
    /// The counters as read.
    pub figures: CacheFigures,
    /// Hits in percent of the reads since the sample before (`None` without reads in between).
    pub hit_rate_percent: Option<f64>,
}

/// The deploy state, from the journal.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeployView {
    /// The color taking traffic.
    pub live: Option<Color>,
    /// The warm standby.
    pub standby: Option<Color>,
    /// Both colors take traffic.
    pub balanced: bool,
    /// The release on each color.
    pub releases: BTreeMap<Color, String>,
    /// The maintenance page is on.
    pub maintenance: bool,
    /// The operation under way (its id), when one has recorded its intent.
    pub in_progress: Option<String>,
    /// What that operation is changing (from which color to which, the release, who runs it): the intent
    /// it recorded before touching what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
    /// Who holds the deploy lock (its owner token left out): an operation runs from the lock on, before it
    /// records an intent (preflight, ship, backup, migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockInfo>,
    /// The newest operation the journal records.
    pub last: Option<LastOperation>,
    /// When the newest verified backup was taken (unix milliseconds), if the journal records one.
    pub last_backup_unix_ms: Option<u64>,
    /// Every operation the journal keeps (its last hundred), oldest first: the exporter counts deploys,
    /// rollbacks and step durations from them, since deploys run in another process.
    pub history: Vec<OperationRecord>,
}

/// The newest operation, in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastOperation {
    /// Its id.
    pub id: String,
    /// What it was.
    pub kind: OperationKind,
    /// The release it deployed.
    pub release: Option<String>,
    /// `succeeded`, `failed`, `rolled_back` or `interrupted`.
    pub outcome: String,
    /// The step that failed, for an operation that did not succeed.
    pub failed_step: Option<Step>,
    /// When it began (unix milliseconds).
    pub started_unix_ms: u64,
    /// How long it took (milliseconds).
    pub duration_ms: u64,
    /// Its steps with their durations.
    pub steps: Vec<StepTime>,
}

/// One step's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTime {
    /// Which.
    pub step: Step,
    /// Ok, skipped or failed.
    pub status: StepStatus,
    /// How long (milliseconds).
    pub duration_ms: u64,
}
