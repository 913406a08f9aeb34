//! Shipping an image to another engine, sending only the layers it lacks.
//!
//! `docker load` looks each layer up by its chain id before it opens the layer's file, so an image archive
//! whose manifest lists every layer but that carries only the missing layers' tars loads fine on an engine that
//! has the others. The source's `docker save` stream is read twice: once to learn which tar is which layer
//! (the paths of a 20.10 archive are v1 ids, not digests), and once to send, filtered, compressed and hashed
//! on the fly. Nothing touches a disk on this side. The manifest is sent without tags, so a load cut off or
//! rejected leaves nothing tagged; the tag is set only after the loaded image's id and layers match the source.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
use bollard::query_parameters::ImportImageOptions;
use connect_core::model::ImageRef;
use connect_core::{Error, ErrorKind, Result};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::{AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_util::io::{ReaderStream, StreamReader};

mod archive;

use archive::{
    HashingWriter, ManifestEntry, chain_ids, counted, filter_archive, hex, io_err, is_layer_path,
    parse_manifest, read_err, read_small,
};

use crate::client::Docker;
use crate::error::map_err;
use crate::tarball::{is_file, path_of, read_archive};

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

/// The chain ids of an image's layers (`docker load`'s key for "already have it").
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

    async fn transfer_incremental(
        &self,
        dest: &Docker,
        image: &ImageRef,
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        let started = Instant::now();
        let reference = image.to_string();
        let op = "docker.transfer";
        let src = self.image_info(&reference).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                op,
                &reference,
                format!("image {reference} is not on {}", self.location),
            )
            .with_hint("build the release first")
        })?;
        let compression = match options.compression {
            Some(c) => c,
            None => dest.best_compression().await?,
        };
        let emit = |p: TransferProgress| {
            if let Some(f) = &options.progress {
                f(&p);
            }
        };
        let done = |method, layers_sent, archive_bytes, wire_bytes| TransferReport {
            image: reference.clone(),
            image_id: src.id.clone(),
            method,
            compression,
            layers_total: src.layers.len(),
            layers_sent,
            archive_bytes,
            wire_bytes,
            duration: started.elapsed(),
        };
        if dest.image_info(&src.id).await?.is_some() {
            dest.tag(&src.id, image).await?;
            emit(TransferProgress::Loaded {
                image_id: src.id.clone(),
            });
            return Ok(done(TransferMethod::AlreadyThere, 0, 0, 0));
        }

        // Which layers dest has, by chain id: a diff id alone is not enough, a layer is stored per parent chain.
        let mut dest_chains = BTreeSet::new();
        for i in dest.images(None).await? {
            dest_chains.extend(chain_ids(&i.layers));
        }
        let src_chains = chain_ids(&src.layers);
        let present: Vec<bool> = src_chains.iter().map(|c| dest_chains.contains(c)).collect();
        let to_send = present.iter().filter(|p| !**p).count();

        // Pass 1 (only when something can be skipped, or progress wants the bytes to send): which archive
        // path holds which layer, and how big each is.
        let mut bytes_to_send = 0;
        let skip_paths: BTreeSet<String> = if to_send < src.layers.len() || options.progress.is_some() {
            let (manifest, by_path, sizes) = self.layer_paths(&src.id).await?;
            bytes_to_send = manifest
                .layers
                .iter()
                .enumerate()
                .filter(|(i, _)| !present.get(*i).copied().unwrap_or(false))
                .map(|(_, path)| sizes.get(path).copied().unwrap_or(0))
                .sum();
            let mut skip = BTreeSet::new();
            for (i, path) in manifest.layers.iter().enumerate() {
                let expected = src.layers.get(i).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupt,
                        op,
                        &reference,
                        "the archive lists more layers than the image has",
                    )
                })?;
                match by_path.get(path) {
                    Some(d) if d == expected => {}
                    Some(d) if path.starts_with("blobs/") => {
                        // OCI layouts may store a layer compressed; its digest then is not the diff id, and
                        // the load would have to have it anyway.
                        tracing::debug!(layer = %path, digest = %d, "layer stored compressed");
                    }
                    other => {
                        return Err(Error::new(
                            ErrorKind::Corrupt,
                            op,
                            &reference,
                            format!("layer {i} ({path}) hashes to {other:?}, the image says {expected}"),
                        ));
                    }
                }
                if present[i] {
                    skip.insert(path.clone());
                }
            }
            skip
        } else {
            BTreeSet::new()
        };
        emit(TransferProgress::Planned {
            layers_total: src.layers.len(),
            layers_to_send: to_send,
            bytes_to_send,
        });

        // Pass 2: filter, hash, compress, send.
        let (sent_layers, archive_bytes, wire_bytes) = self
            .send_filtered(
                dest,
                &src.id,
                &reference,
                &skip_paths,
                &src.layers,
                compression,
                options,
            )
            .await?;

        dest.verify_and_tag(&src.id, &src.layers, image).await?;
        emit(TransferProgress::Loaded {
            image_id: src.id.clone(),
        });
        Ok(done(
            TransferMethod::Incremental,
            sent_layers,
            archive_bytes,
            wire_bytes,
        ))
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

    /// Reads the image's archive once: the manifest, and each layer path's sha256 and size.
    async fn layer_paths(
        &self,
        image_id: &str,
    ) -> Result<(ManifestEntry, HashMap<String, String>, HashMap<String, u64>)> {
        let op = "docker.transfer";
        let stream = self.api.export_image(image_id).map_err(io_err);
        let id = image_id.to_string();
        let (manifest, digests, sizes) = read_archive(StreamReader::new(Box::pin(stream)), move |archive| {
            let mut digests = HashMap::new();
            let mut sizes = HashMap::new();
            let mut manifest = None;
            for entry in archive.entries()? {
                let mut entry = entry?;
                let name = path_of(&entry)?;
                if name == "manifest.json" {
                    manifest = Some(read_small(&mut entry, 16 << 20)?);
                } else if is_layer_path(&name) && is_file(&entry) {
                    let mut h = HashingWriter::default();
                    std::io::copy(&mut entry, &mut h)?;
                    digests.insert(name.clone(), format!("sha256:{}", hex(&h.0.finalize())));
                    sizes.insert(name, entry.size());
                }
            }
            Ok((manifest, digests, sizes))
        })
        .await
        .map_err(|e| read_err(&id, e))?;
        let manifest = manifest.map(|data| parse_manifest(image_id, &data)).transpose()?;
        let manifest = manifest.ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                op,
                image_id,
                "the image archive has no manifest.json",
            )
        })?;
        Ok((manifest, digests, sizes))
    }

    /// Streams the filtered archive into `dest`'s `docker load`; returns (layers sent, archive bytes, wire bytes).
    #[allow(clippy::too_many_arguments)]
    async fn send_filtered(
        &self,
        dest: &Docker,
        image_id: &str,
        reference: &str,
        skip: &BTreeSet<String>,
        diff_ids: &[String],
        compression: Compression,
        options: &TransferOptions,
    ) -> Result<(usize, u64, u64)> {
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        let source = self.api.export_image(image_id).map_err(io_err);
        let progress = options.progress.clone();
        let diff_ids = diff_ids.to_vec();
        let skip = skip.clone();
        let id = image_id.to_string();
        let filter = tokio::spawn(async move {
            let sink: Box<dyn AsyncWrite + Send + Unpin> = match compression {
                Compression::Zstd => Box::new(ZstdEncoder::new(writer)),
                Compression::Gzip => Box::new(GzipEncoder::new(writer)),
                Compression::None => Box::new(writer),
            };
            filter_archive(source, sink, &id, &skip, &diff_ids, progress).await
        });
        let (wire_bytes, load_err) = dest.load_from(reader, options).await;
        let filtered = filter.await.map_err(|e| task_failed(reference, e))?;
        if let Some(e) = load_err {
            let err = map_err("docker.transfer", reference, e);
            let why = match &filtered {
                Err(f) => format!("{} (sending: {f})", err.message()),
                Ok(_) => err.message().to_string(),
            };
            return Err(Error::new(
                if err.kind() == ErrorKind::Unavailable {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Failed
                },
                "docker.transfer",
                reference,
                format!(
                    "{} rejected the image after {wire_bytes} bytes; nothing was tagged: {why}",
                    dest.location
                ),
            )
            .with_source(err));
        }
        let (layers, archive) = filtered.map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "docker.transfer",
                reference,
                format!("sending the archive failed: {e}"),
            )
            .with_source(e)
        })?;
        Ok((layers, archive, wire_bytes))
    }

    /// Confirms `dest` holds exactly the source's image, then tags it.
    async fn verify_and_tag(&self, image_id: &str, diff_ids: &[String], image: &ImageRef) -> Result<()> {
        let reference = image.to_string();
        let loaded = self.image_info(image_id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Failed,
                "docker.transfer",
                &reference,
                format!("{} loaded no image {image_id}", self.location),
            )
        })?;
        if loaded.layers != diff_ids {
            // Said only once it is true: a removal that fails leaves the image for the operator to remove.
            let (what, hint) = match self.remove_image(image_id, true).await {
                Ok(()) => ("removed it".to_string(), "ship again".to_string()),
                Err(e) => (
                    format!("removing it failed too ({})", e.summary()),
                    format!(
                        "remove it on {} (docker rmi {image_id}), then ship again",
                        self.location
                    ),
                ),
            };
            return Err(Error::new(
                ErrorKind::Corrupt,
                "docker.transfer",
                &reference,
                format!("the loaded image's layers differ from the source's; {what}"),
            )
            .with_hint(hint));
        }
        self.tag(image_id, image).await
    }

    /// The runbook's way: the whole image, `docker save | gzip | docker load`, streamed. Kept as the fallback
    /// and as the benchmark's baseline.
    pub async fn transfer_whole(
        &self,
        dest: &Docker,
        image: &ImageRef,
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        let started = Instant::now();
        let reference = image.to_string();
        let src = self.image_info(&reference).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "docker.transfer",
                &reference,
                format!("image {reference} is not on {}", self.location),
            )
        })?;
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        let source = self.api.export_image(&reference).map_err(io_err);
        let archive = Arc::new(AtomicU64::new(0));
        let archive_count = Arc::clone(&archive);
        let pump = tokio::spawn(async move {
            let mut gz = GzipEncoder::new(writer);
            let mut source = std::pin::pin!(source);
            while let Some(chunk) = source.next().await {
                let chunk = chunk?;
                archive_count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                gz.write_all(&chunk).await?;
            }
            gz.shutdown().await
        });
        let (wire_bytes, load_err) = dest.load_from(reader, options).await;
        let pumped = pump.await.map_err(|e| task_failed(&reference, e))?;
        if let Some(e) = load_err {
            return Err(map_err("docker.transfer", &reference, e));
        }
        pumped.map_err(|e| {
            Error::new(ErrorKind::Failed, "docker.transfer", &reference, e.to_string()).with_source(e)
        })?;
        dest.verify_and_tag(&src.id, &src.layers, image).await?;
        Ok(TransferReport {
            image: reference,
            image_id: src.id,
            method: TransferMethod::Whole,
            compression: Compression::Gzip,
            layers_total: src.layers.len(),
            layers_sent: src.layers.len(),
            archive_bytes: archive.load(Ordering::Relaxed),
            wire_bytes,
            duration: started.elapsed(),
        })
    }

    /// `docker load` on this engine of the archive `reader` gives, counting the bytes on the wire (and
    /// cutting them off where `options` asks). Returns that count and the load's first error: the stream is
    /// dropped on it, which ends the sender's side too.
    async fn load_from(
        &self,
        reader: DuplexStream,
        options: &TransferOptions,
    ) -> (u64, Option<bollard::errors::Error>) {
        let wire = Arc::new(AtomicU64::new(0));
        let body = counted(
            ReaderStream::with_capacity(reader, 256 * 1024),
            Arc::clone(&wire),
            options,
        );
        let mut load = self.api.import_image_stream(
            ImportImageOptions {
                quiet: true,
                platform: None,
            },
            body,
            None,
        );
        let mut load_err = None;
        while let Some(msg) = load.next().await {
            if let Err(e) = msg {
                load_err = Some(e);
                break;
            }
        }
        drop(load);
        (wire.load(Ordering::Relaxed), load_err)
    }
}

/// The task producing the archive panicked or was cancelled.
fn task_failed(reference: &str, e: tokio::task::JoinError) -> Error {
    Error::new(ErrorKind::Failed, "docker.transfer", reference, e.to_string()).with_source(e)
}
