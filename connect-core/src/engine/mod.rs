//! The deploy engine: the runbook as a state machine over the backend traits.
//!
//! ```text
//! lock ─► reconcile ─► preflight ─► [ship] ─► stage image ─► restore point ─► migrate ─► (intent) start idle color
//!   ─► health gate ─► switch ─► drain old ─► verify ─► record
//!        any failure: settle from what the router and runtime show — one healthy live color, the one that
//!        served before when it still serves; the unverified release removed; the journal says why
//!        a killed operation: its lock's lease expires, and the next operation settles its intent first
//! ```
//!
//! `deploy.rs` holds the operations and the blue-green orchestrator; `operation.rs` what every operation shares
//! (lock, intent, record, undo); `steps/` has one file per step; `lock.rs` the lease lock; `intent.rs`
//! the write-ahead intent and the settling every failure goes through; `hold.rs` the lock held by a caller
//! between operations.

mod checks;
mod clock;
mod deploy;
mod events;
pub mod fleet;
mod hold;
mod holder;
mod hooks;
mod intent;
mod journal;
mod lock;
mod maintenance;
mod notify;
mod operation;
mod prune;
mod reconcile;
mod run;
mod status;
mod steps;

use std::sync::Arc;

use tokio::sync::broadcast;

pub use crate::vocabulary::{Check, CheckReport, CheckStatus, OperationKind, Outcome, Step, StepStatus};
pub use checks::is_error_line;
pub use events::{Event, SHIP_PROGRESS_EVERY};
pub use hold::HeldLock;
pub use holder::default_holder;
#[cfg(feature = "ssh")]
pub(crate) use holder::effective_user;
pub use hooks::{Hook, HookPoint, HookSite};
pub use intent::Intent;
pub use journal::{JOURNAL_FORMAT, Journal, MaintenanceRecord, OperationRecord, SlotRecord, StepRecord};
pub use lock::LockInfo;
pub use notify::Webhook;
pub use prune::{KeptImage, PruneReport};
pub use reconcile::{Observed, ObservedSlot};
pub use status::Status;

use crate::cache::Cache;
use crate::database::DatabaseCluster;
use crate::error::Result;
use crate::host::Host;
use crate::model::{AppSpec, DeployPolicy, Topology};
use crate::router::TrafficRouter;
use crate::runtime::ContainerRuntime;
use events::Events;
use journal::JournalStore;

/// The five backends the engine drives.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The server (journal, lock, disks).
    pub host: Arc<dyn Host>,
    /// Docker.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The HAProxy backend of the app.
    pub router: Arc<dyn TrafficRouter>,
    /// The Patroni cluster.
    pub database: Arc<dyn DatabaseCluster>,
    /// Redis.
    pub cache: Arc<dyn Cache>,
}

/// What to deploy where, and how carefully.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// The app.
    pub app: AppSpec,
    /// The two slots.
    pub topology: Topology,
    /// Deadlines and thresholds.
    pub policy: DeployPolicy,
    /// The directory on the server holding the journal and the lock (`/opt/connect/state`).
    pub state_dir: String,
    /// Who is deploying, as recorded in the lock and the journal.
    pub holder: String,
    /// The operator's commands at named points of each operation.
    pub hooks: Vec<Hook>,
    /// Where the record of every operation is POSTed once it is in the journal.
    pub webhooks: Vec<Webhook>,
}

impl DeployConfig {
    /// The runbook's app and topology with the default policy.
    pub fn runbook() -> DeployConfig {
        DeployConfig {
            app: AppSpec::connect(),
            topology: Topology::runbook(),
            policy: DeployPolicy::default(),
            state_dir: "/opt/connect/state".into(),
            holder: default_holder(),
            hooks: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

/// Deploys releases blue-green, rolls them back, and tells where things stand.
///
/// ```
/// use connect_core::engine::{DeployConfig, Deployer};
/// use connect_core::memory::{AppBehavior, MemoryStack};
/// use connect_core::model::Release;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> connect_core::Result<()> {
/// let config = DeployConfig::runbook();
/// let stack = MemoryStack::new(&config.topology);
/// let v1 = Release::new("connect", "v1")?;
/// stack.add_image(&v1.image, AppBehavior::default());
///
/// let deployer = Deployer::new(stack.backends(), config)?;
/// let report = deployer.deploy(v1).await?;
/// assert_eq!(report.live_after, Some(connect_core::model::Color::Blue));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Deployer {
    backends: Backends,
    config: DeployConfig,
    store: JournalStore,
    events: Events,
}

impl Deployer {
    /// A deployer over these backends (each call bounded and retried by [`crate::layers::Guarded`] with the
    /// default policy: pass them unguarded); refuses an invalid policy or app.
    pub fn new(backends: Backends, config: DeployConfig) -> Result<Deployer> {
        config.policy.validate()?;
        config.app.validate()?;
        for hook in &config.hooks {
            hook.validate()?;
        }
        for webhook in &config.webhooks {
            webhook.validate()?;
        }
        let backends = backends.guarded(crate::layers::CallPolicy::default());
        let store = JournalStore::new(backends.host.clone(), &config.state_dir);
        Ok(Deployer {
            backends,
            config,
            store,
            events: Events::new(),
        })
    }

    /// Follows the events of every later operation.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The configuration.
    pub fn config(&self) -> &DeployConfig {
        &self.config
    }

    /// The backends.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The journal as stored on the server.
    pub async fn journal(&self) -> Result<Journal> {
        self.store.load().await
    }

    /// Who holds the deploy lock now, if anyone: what `status` shows, read alone (one file read).
    pub async fn lock(&self) -> Result<Option<LockInfo>> {
        self.store.holder().await
    }

    /// Removes the deploy lock whoever holds it, and says who did. For a lock whose process is gone.
    pub async fn break_lock(&self) -> Result<Option<LockInfo>> {
        self.store.break_lock().await
    }
}
