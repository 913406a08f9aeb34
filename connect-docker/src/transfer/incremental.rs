//! The incremental way: learn which layers the destination lacks (by chain id), read the source's archive
//! once to map its paths to layers, then stream it again filtered, compressed and hashed into the
//! destination's `docker load`. Separate from `mod.rs` (the options and reports a caller sees) because this
//! is the only part that reads archives.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
use connect_core::model::ImageRef;
use connect_core::{Error, ErrorKind, Result};
use futures::TryStreamExt;
use sha2::Digest;
use tokio::io::AsyncWrite;
use tokio_util::io::StreamReader;

use super::archive::{
    HashingWriter, chain_ids, filter_archive, hex, io_err, is_layer_path, parse_manifest, read_err,
    read_small,
};
use super::fanout::{ArchiveStream, LayerMap};
use super::{Compression, TransferMethod, TransferOptions, TransferProgress, TransferReport, task_failed};
use crate::client::Docker;
use crate::error::map_err;
use crate::tarball::{is_file, path_of, read_archive};

impl Docker {
    pub(super) async fn transfer_incremental(
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
        // Registered before the destination's round trips, so transfers of this image started together
        // share its stream (see fanout.rs); dropped on any return before the send.
        let ticket = self.exports.register(&src.id);
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
            let map = self
                .exports
                .layer_map(&src.id, || self.layer_paths(&src.id))
                .await?;
            let (manifest, by_path, sizes) = (&map.manifest, &map.digests, &map.sizes);
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
        let source = ticket.archive(&self.api).await;
        let (sent_layers, archive_bytes, wire_bytes) = self
            .send_filtered(
                dest,
                source,
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

    /// Reads the image's archive once: the manifest, and each layer path's sha256 and size.
    async fn layer_paths(&self, image_id: &str) -> Result<LayerMap> {
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
        Ok(LayerMap {
            manifest,
            digests,
            sizes,
        })
    }

    /// Streams the archive `source` gives, filtered, into `dest`'s `docker load`; returns (layers sent,
    /// archive bytes, wire bytes).
    #[allow(clippy::too_many_arguments)]
    async fn send_filtered(
        &self,
        dest: &Docker,
        source: ArchiveStream,
        image_id: &str,
        reference: &str,
        skip: &BTreeSet<String>,
        diff_ids: &[String],
        compression: Compression,
        options: &TransferOptions,
    ) -> Result<(usize, u64, u64)> {
        let (writer, reader) = tokio::io::duplex(256 * 1024);
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
}
