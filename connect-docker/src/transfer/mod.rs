//! Shipping an image to another engine, sending only the layers it lacks.
//!
//! `docker load` looks each layer up by its chain id before it opens the layer's file, so an image archive
//! whose manifest lists every layer but that carries only the missing layers' tars loads fine on an engine that
//! has the others. The source's `docker save` stream is read twice: once to learn which tar is which layer
//! (the paths of a 20.10 archive are v1 ids, not digests), and once to send, filtered, compressed and hashed
//! on the fly. Nothing touches a disk on this side. The manifest is sent without tags, so a load cut off or
//! rejected leaves nothing tagged; the tag is set only after the loaded image's id and layers match the source.
//! Shipping one image to many engines at once (a fleet) reads it once for all: the layer map is kept per
//! image, and transfers running together share one stream, each filtered for its own destination.
//!
//! `incremental.rs` sends the missing layers, `whole.rs` the whole image (the fallback), `load.rs` is the
//! destination's side of both; `archive.rs` reads and filters the archive; `fanout.rs` shares the reads
//! between transfers.

use std::sync::Arc;
use std::time::Duration;

use connect_core::model::ImageRef;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

mod archive;
mod fanout;
mod incremental;
mod load;
mod whole;

use crate::client::Docker;
pub use fanout::ExportCounts;
pub(crate) use fanout::ExportShare;

/// How the archive is compressed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// zstd: what the destination gets when its engine can unpack it (Docker Engine 23 and newer).
    Zstd,
    /// gzip: for older engines (20.10 `docker load` unpacks gzip, bzip2 and xz, not zstd).
    Gzip,
    /// None.
    None,
}

/// Where progress goes: a progress bar, a log, the engine's event stream.
pub type ProgressFn = Arc<dyn Fn(&TransferProgress) + Send + Sync>;

/// How [`Docker::transfer_image`] sends. The default picks the compression from the destination's engine and
/// falls back to the whole image when the incremental load fails.
#[derive(Clone)]
pub struct TransferOptions {
    /// The compression; chosen from the destination engine's version when `None`.
    pub compression: Option<Compression>,
    /// Fall back to the whole image (`save | gzip | load`) when the incremental load fails.
    pub fallback_to_whole: bool,
    /// Called with progress as the transfer goes.
    pub progress: Option<ProgressFn>,
    /// Fault injection for tests: the connection breaks after this many bytes on the wire.
    pub cut_off_after: Option<u64>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            compression: None,
            fallback_to_whole: true,
            progress: None,
            cut_off_after: None,
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("compression", &self.compression)
            .field("fallback_to_whole", &self.fallback_to_whole)
            .field("cut_off_after", &self.cut_off_after)
            .finish()
    }
}

/// Progress of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TransferProgress {
    /// The plan: how many layers the image has and how many the destination lacks.
    Planned {
        /// Layers in the image.
        layers_total: usize,
        /// Layers to send.
        layers_to_send: usize,
        /// The uncompressed size of the layers to send (their tars in the image's archive).
        bytes_to_send: u64,
    },
    /// Uncompressed layer bytes sent so far, about every MiB: what [`TransferProgress::Planned`]'s
    /// `bytes_to_send` counts towards.
    LayerBytes {
        /// Layer bytes sent.
        sent: u64,
    },
    /// A layer's tar has been sent (verified against its digest).
    LayerSent {
        /// The layer's digest (`sha256:…`, its diff id).
        digest: String,
        /// Its uncompressed size.
        bytes: u64,
    },
    /// Bytes on the wire so far (compressed).
    Bytes {
        /// Compressed bytes sent.
        sent: u64,
    },
    /// The destination loaded and tagged the image.
    Loaded {
        /// The image id.
        image_id: String,
    },
}

/// How the image was shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransferMethod {
    /// The destination already had the image: only the tag was set.
    AlreadyThere,
    /// Only the missing layers.
    Incremental,
    /// The whole image (`save | gzip | load`).
    Whole,
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// The reference shipped.
    pub image: String,
    /// Its id on both engines.
    pub image_id: String,
    /// How.
    pub method: TransferMethod,
    /// The compression on the wire.
    pub compression: Compression,
    /// Layers in the image.
    pub layers_total: usize,
    /// Layers sent.
    pub layers_sent: usize,
    /// Archive bytes before compression.
    pub archive_bytes: u64,
    /// Bytes on the wire.
    pub wire_bytes: u64,
    /// Wall time.
    pub duration: Duration,
}

impl Docker {
    /// Ships `image` from this engine to `dest`, sending only the layers `dest` lacks (see the module docs),
    /// then tags it there. Falls back to the whole image when asked and the incremental load fails.
    pub async fn transfer_image(
        &self,
        dest: &Docker,
        image: &ImageRef,
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        match self.transfer_incremental(dest, image, options).await {
            Ok(r) => Ok(r),
            Err(e)
                if options.fallback_to_whole
                    && matches!(e.kind(), ErrorKind::Failed | ErrorKind::Corrupt) =>
            {
                tracing::warn!(image = %image, error = %e, "incremental transfer failed; sending the whole image");
                self.transfer_whole(dest, image, options).await
            }
            Err(e) => Err(e),
        }
    }

    /// The compression the engine's `docker load` unpacks best: zstd from Engine 23, gzip before.
    pub async fn best_compression(&self) -> Result<Compression> {
        let version = self.engine_version().await?;
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Ok(if major >= 23 {
            Compression::Zstd
        } else {
            Compression::Gzip
        })
    }
}

/// The task producing the archive panicked or was cancelled.
fn task_failed(reference: &str, e: tokio::task::JoinError) -> Error {
    Error::new(ErrorKind::Failed, "docker.transfer", reference, e.to_string()).with_source(e)
}
