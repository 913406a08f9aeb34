//! Shipping a release to the server: where its image comes from (an image or a build context on the machine
//! running the deploy), where it is built, and the progress a caller renders.
//!
//! The engine's `ship` step hands a [`ReleaseSource`] to [`crate::ContainerRuntime::ship`]; the runtime builds
//! where it is told, sends only the layers the server lacks, verifies them, and tags the image on the server
//! only once it is whole, so a failed ship leaves nothing tagged and nothing running changed.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a release's image comes from when the server does not have it yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReleaseSource {
    /// An image on the machine running the deploy, by reference (`myapp:dev`) or id; it is tagged as the
    /// release's image there and shipped.
    LocalImage {
        /// The local reference or id.
        reference: String,
    },
    /// A directory holding a `Dockerfile`, on the machine running the deploy.
    BuildContext {
        /// The directory.
        dir: PathBuf,
        /// Which engine builds it.
        #[serde(default)]
        build_on: BuildOn,
    },
}

impl ReleaseSource {
    /// An image on this machine.
    pub fn local_image(reference: impl Into<String>) -> ReleaseSource {
        ReleaseSource::LocalImage {
            reference: reference.into(),
        }
    }

    /// A build context on this machine, built where `build_on` says.
    pub fn build_context(dir: impl Into<PathBuf>, build_on: BuildOn) -> ReleaseSource {
        ReleaseSource::BuildContext {
            dir: dir.into(),
            build_on,
        }
    }

    /// Refuses what cannot name a source: an empty reference or directory.
    pub fn validate(&self) -> Result<()> {
        let empty = match self {
            ReleaseSource::LocalImage { reference } => reference.trim().is_empty(),
            ReleaseSource::BuildContext { dir, .. } => dir.as_os_str().is_empty(),
        };
        if empty {
            return Err(Error::invalid(
                "deploy.ship",
                self.to_string(),
                "the release source names nothing",
            )
            .with_hint("give a local image reference or the build context's directory"));
        }
        Ok(())
    }
}

impl fmt::Display for ReleaseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseSource::LocalImage { reference } => write!(f, "local image {reference}"),
            ReleaseSource::BuildContext { dir, build_on } => {
                write!(f, "build context {} (built {build_on})", dir.display())
            }
        }
    }
}

/// Which engine builds a build context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildOn {
    /// The machine running the deploy builds, then only the layers the server lacks are sent: the server
    /// spends no CPU on builds, and a release differing in one layer sends one layer.
    #[default]
    Local,
    /// The server's engine builds from the context sent to it: nothing to ship afterwards, and nothing
    /// needed on this machine but the files.
    Server,
}

impl fmt::Display for BuildOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuildOn::Local => "locally",
            BuildOn::Server => "on the server",
        })
    }
}

/// What a ship is doing when it reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipPhase {
    /// Building the image (bytes: the build context; layers: none).
    Build,
    /// Sending the layers the server lacks (bytes: the uncompressed layers; layers: those sent).
    Send,
}

impl fmt::Display for ShipPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShipPhase::Build => "build",
            ShipPhase::Send => "send",
        })
    }
}

/// Progress of a ship. Within a phase the counts only grow; the last report of a successful send has
/// `layers_done == layers_total` and `bytes_done == bytes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipProgress {
    /// What is being done.
    pub phase: ShipPhase,
    /// Layers sent and verified so far.
    pub layers_done: usize,
    /// Layers to send (those the server lacks).
    pub layers_total: usize,
    /// Bytes done so far.
    pub bytes_done: u64,
    /// Bytes to do.
    pub bytes_total: u64,
}

impl ShipProgress {
    /// Everything of this phase is done.
    pub fn is_complete(&self) -> bool {
        self.layers_done >= self.layers_total && self.bytes_done >= self.bytes_total
    }
}

/// Where a runtime reports progress: called as often as the runtime likes (the engine rate-limits what it
/// passes on), from any thread; it must not block.
pub type ShipProgressFn = Arc<dyn Fn(ShipProgress) + Send + Sync>;

/// What a ship did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShipOutcome {
    /// The server had the image already: nothing was built or sent.
    AlreadyPresent,
    /// The layers the server lacked were sent and verified, and the image tagged there.
    Sent,
    /// The server's engine built the image from the context.
    BuiltOnServer,
}

/// The result of [`crate::ContainerRuntime::ship`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipReport {
    /// The release's image reference.
    pub image: String,
    /// Its id on the server.
    pub image_id: String,
    /// What was done.
    pub outcome: ShipOutcome,
    /// Whether the machine running the deploy built the image first.
    pub built_locally: bool,
    /// Layers in the image.
    pub layers_total: usize,
    /// Layers sent.
    pub layers_sent: usize,
    /// Bytes sent (uncompressed layer and archive bytes; what crossed the wire may be less).
    pub bytes_sent: u64,
}

impl ShipReport {
    /// A one-line summary, for the journal and the command's output.
    pub fn summary(&self) -> String {
        let built = if self.built_locally { "built locally, " } else { "" };
        match self.outcome {
            ShipOutcome::AlreadyPresent => {
                format!(
                    "{} is already on the server ({}): nothing shipped",
                    self.image, self.image_id
                )
            }
            ShipOutcome::BuiltOnServer => format!("{} built on the server ({})", self.image, self.image_id),
            ShipOutcome::Sent => format!(
                "{} {built}sent {} of {} layers ({} bytes), verified ({})",
                self.image, self.layers_sent, self.layers_total, self.bytes_sent, self.image_id
            ),
        }
    }
}
