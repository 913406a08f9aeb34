//! Connect Ops core: the deployment model, the backend traits, in-memory backends and the blue-green engine.
//!
//! The runbook's server, containers, HAProxy backend, Patroni cluster and Redis are the traits [`Host`],
//! [`ContainerRuntime`], [`TrafficRouter`], [`DatabaseCluster`] and [`Cache`]. The [`engine::Deployer`]
//! drives them through a health-gated blue-green deploy, instant and full rollback, keeping a journal on the
//! server. [`memory`] has an in-memory implementation of every trait; the other crates of the workspace
//! have the real ones (SSH, Docker, HAProxy, Patroni and Redis).
//!
//! ```
//! use connect_core::engine::{DeployConfig, Deployer};
//! use connect_core::memory::{AppBehavior, MemoryStack};
//! use connect_core::model::{Color, Release};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> connect_core::Result<()> {
//! let config = DeployConfig::runbook();
//! let stack = MemoryStack::new(&config.topology);
//! let (v1, v2) = (Release::new("connect", "v1")?, Release::new("connect", "v2")?);
//! stack.add_image(&v1.image, AppBehavior::default());
//! stack.add_image(&v2.image, AppBehavior::default());
//!
//! let deployer = Deployer::new(stack.backends(), config)?;
//! deployer.deploy(v1).await?; // blue serves v1
//! deployer.deploy(v2).await?; // green serves v2, blue is the warm standby
//! let back = deployer.rollback().await?; // one router call
//! assert_eq!(back.live_after, Some(Color::Blue));
//! # Ok(())
//! # }
//! ```

pub mod audit;
pub mod backup_set;
pub mod cache;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod database;
pub mod engine;
mod error;
pub mod host;
pub mod layers;
pub mod local;
pub mod memory;
pub mod metrics;
pub mod migrations;
pub mod model;
pub mod preflight;
pub mod router;
pub mod runtime;
pub mod ship;
#[cfg(feature = "ssh")]
pub mod ssh;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vocabulary;
pub mod wait;

pub use cache::Cache;
pub use database::DatabaseCluster;
pub use error::{Error, ErrorKind, Result};
pub use host::Host;
pub use local::LocalHost;
pub use router::TrafficRouter;
pub use runtime::ContainerRuntime;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
