//! Live figures of the deployment (issue 16): one source for the operator's views, the Prometheus exporter
//! and the deploy's own watch after the switch.
//!
//! A [`Sampler`] reads the backends once per interval and publishes a [`Snapshot`] on a `tokio::sync::watch`
//! channel: any number of viewers subscribe, and the server sees the same calls whether one or ten are
//! watching. Per color it has HAProxy's per-server counters and the rates between two samples, the
//! container's state, restarts and resource use; then PostgreSQL's connections, transactions and replication
//! lag, Redis's hit rate, memory and clients, and the deploy state from the journal. A source that cannot be
//! read leaves its part empty and says why in [`Snapshot::unavailable`]; the rest is still published.
//!
//! Response times are HAProxy's averages over each server's last 1024 requests (`rtime`) and are named
//! `*_avg_*`: no source here gives percentiles.
//!
//! ```
//! use std::time::Duration;
//! use connect_core::engine::{DeployConfig, Deployer};
//! use connect_core::memory::{AppBehavior, MemoryStack};
//! use connect_core::metrics::Sampler;
//! use connect_core::model::Release;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> connect_core::Result<()> {
//! let config = DeployConfig::runbook();
//! let stack = MemoryStack::new(&config.topology);
//! let v1 = Release::new("connect", "v1")?;
//! stack.add_image(&v1.image, AppBehavior::default());
//! let deployer = Deployer::new(stack.backends(), config)?;
//! deployer.deploy(v1).await?;
//!
//! let sampler = Sampler::start(deployer, Duration::from_secs(1))?;
//! let mut view = sampler.subscribe();
//! view.changed().await.expect("the sampler runs");
//! let snapshot = view.borrow_and_update().clone();
//! assert_eq!(snapshot.deploy.as_ref().and_then(|d| d.live), Some(connect_core::model::Color::Blue));
//! # Ok(())
//! # }
//! ```

mod read;
mod sampler;
mod snapshot;

pub(crate) use read::percent;
pub use read::{TrafficDelta, read_traffic};
pub use sampler::{BACKUP_READ_EVERY, Sampler, outcome_word, sample};
pub use snapshot::{
    BackupView, CacheView, ColorView, ContainerView, DatabaseView, DeployView, LastOperation, Snapshot,
    StepTime, TrafficView, Unavailable,
};
