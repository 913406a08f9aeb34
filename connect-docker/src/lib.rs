//! Containers and images through the Docker Engine API: the runbook's `docker-compose up`, `curl` health loop,
//! `docker logs | grep -i error`, `docker exec` and `docker save | gzip | scp | docker load`, typed and without
//! fixed sleeps.
//!
//! [`Docker`] reaches an engine on the local socket, through `DOCKER_HOST`, or through any
//! [`connect_core::Host`] (over SSH, each HTTP connection is a `direct-streamlocal` channel to the server's
//! `/var/run/docker.sock`); the API version is negotiated down to the engine's. It implements
//! [`connect_core::ContainerRuntime`].
//!
//! ```no_run
//! use std::time::Duration;
//! use connect_core::ContainerRuntime;
//! use connect_docker::Docker;
//!
//! # async fn demo() -> connect_core::Result<()> {
//! let docker = Docker::connect().await?;
//! let app2 = docker.wait_healthy("connect_app2", Duration::from_secs(60)).await?;
//! println!("{} serves release {:?}", app2.name, app2.release());
//! # Ok(())
//! # }
//! ```
//!
//! Shipping a release to the server's engine, reached through the server's [`connect_core::Host`] (over SSH),
//! sends only the layers it lacks:
//!
//! ```no_run
//! use std::sync::Arc;
//! use connect_docker::{Docker, TransferOptions};
//!
//! # async fn demo(ssh: Arc<dyn connect_core::Host>) -> connect_core::Result<()> {
//! let local = Docker::connect().await?;
//! let server = Docker::connect_via(ssh, connect_docker::DEFAULT_SOCKET).await?;
//! let release = connect_core::model::Release::new("connect", "20251014-090000")?;
//! let report = local
//!     .transfer_image(&server, &release.image, &TransferOptions::default())
//!     .await?;
//! println!("sent {} of {} layers, {} bytes", report.layers_sent, report.layers_total, report.wire_bytes);
//! # Ok(())
//! # }
//! ```

mod client;
mod containers;
mod dockerignore;
mod error;
mod image_files;
mod images;
mod inspect;
mod jobs;
mod logs;
mod runtime;
mod ship;
mod slot;
mod stats;
mod swarm;
mod tarball;
mod transfer;
mod transport;
mod watch;

pub use client::{DEFAULT_SOCKET, Docker};
pub use containers::{LogReport, ONE_OFF_LABEL};
pub use images::{BuildContext, BuildOutput, PruneReport};
pub use slot::{HOST_NETWORK, HealthProbe, Restart, Secrets, SlotOptions};
pub use swarm::Swarm;
pub use transfer::{
    Compression, ExportCounts, ProgressFn, TransferMethod, TransferOptions, TransferProgress, TransferReport,
};

#[cfg(feature = "testing")]
pub mod testing;
