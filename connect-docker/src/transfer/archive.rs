//! The image archive as it streams: chain ids, the manifest, and the filter that drops the layers the
//! destination has, untags the manifest and checks each layer sent against its diff id.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use connect_core::{Error, ErrorKind, Result};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{ProgressFn, TransferOptions, TransferProgress};
use crate::tarball::{file_header, is_file, path_of, rewrite_archive};

pub(super) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex(&Sha256::digest(format!("{parent} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

pub(super) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

pub(super) fn io_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> std::io::Error {
    std::io::Error::other(e)
}

#[derive(Debug, Deserialize, Serialize)]
pub(super) struct ManifestEntry {
    #[serde(rename = "Config")]
    pub(super) config: String,
    #[serde(rename = "RepoTags")]
    pub(super) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub(super) layers: Vec<String>,
    #[serde(flatten)]
    pub(super) rest: serde_json::Map<String, serde_json::Value>,
}

pub(super) fn read_err(image: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "docker.transfer",
        image,
        format!("reading the image archive: {e}"),
    )
    .with_source(e)
}

pub(super) fn parse_manifest(image: &str, data: &[u8]) -> Result<ManifestEntry> {
    let mut entries: Vec<ManifestEntry> = serde_json::from_slice(data).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            "docker.transfer",
            image,
            format!("manifest.json does not parse: {e}"),
        )
        .with_source(e)
    })?;
    if entries.len() != 1 {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "docker.transfer",
            image,
            format!("manifest.json lists {} images, expected 1", entries.len()),
        ));
    }
    Ok(entries.remove(0))
}

pub(super) fn is_layer_path(name: &str) -> bool {
    name.ends_with("/layer.tar") || name.starts_with("blobs/sha256/")
}

/// Counts the bytes the body carries, reports them, and breaks the stream when the test asks.
pub(super) fn counted(
    stream: ReaderStream<tokio::io::DuplexStream>,
    wire: Arc<AtomicU64>,
    options: &TransferOptions,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let progress = options.progress.clone();
    let cut = options.cut_off_after;
    let mut reported = 0u64;
    stream.map(move |chunk| {
        let chunk = chunk?;
        let total = wire.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        if cut.is_some_and(|c| total > c) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection cut off (injected)",
            ));
        }
        if let Some(f) = &progress
            && total - reported >= 1 << 20
        {
            reported = total;
            f(&TransferProgress::Bytes { sent: total });
        }
        Ok(chunk)
    })
}

/// A `Write` that only hashes what it is given.
#[derive(Default)]
pub(super) struct HashingWriter(pub(super) Sha256);

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The whole content of a small entry (the manifest), refusing one larger than `limit`.
pub(super) fn read_small<R: Read>(entry: &mut tar::Entry<'_, R>, limit: u64) -> std::io::Result<Vec<u8>> {
    if entry.size() > limit {
        return Err(std::io::Error::other(format!("entry larger than {limit} bytes")));
    }
    let mut out = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry.read_to_end(&mut out)?;
    Ok(out)
}

/// A layer's content on its way to the sink: hashed, and the layer bytes sent so far reported every MiB.
struct LayerReader<'a, R> {
    inner: R,
    hash: Sha256,
    sent: &'a mut u64,
    reported: &'a mut u64,
    progress: Option<&'a ProgressFn>,
}

impl<R: Read> Read for LayerReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        *self.sent += n as u64;
        if let Some(f) = self.progress
            && *self.sent - *self.reported >= 1 << 20
        {
            *self.reported = *self.sent;
            f(&TransferProgress::LayerBytes { sent: *self.sent });
        }
        Ok(n)
    }
}

/// Copies the archive from `source` to `sink` without the layers in `skip`, without tags, verifying each
/// layer sent against its diff id. Returns (layers sent, archive bytes written).
pub(super) async fn filter_archive(
    source: impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    sink: Box<dyn AsyncWrite + Send + Unpin>,
    image_id: &str,
    skip: &BTreeSet<String>,
    diff_ids: &[String],
    progress: Option<ProgressFn>,
) -> std::io::Result<(usize, u64)> {
    let image_id = image_id.to_string();
    let skip = skip.clone();
    let known: BTreeSet<String> = diff_ids.iter().cloned().collect();
    rewrite_archive(StreamReader::new(source), sink, move |archive, out| {
        let mut layers = 0usize;
        let mut layer_bytes = 0u64;
        let mut reported = 0u64;
        for entry in archive.entries()? {
            let mut entry = entry?;
            let name = path_of(&entry)?;
            if skip.contains(&name) || name == "repositories" {
                continue;
            }
            if name == "manifest.json" {
                let data = read_small(&mut entry, 16 << 20)?;
                let mut m = parse_manifest(&image_id, &data).map_err(io_err)?;
                m.repo_tags = None;
                let json = serde_json::to_vec(&[m]).map_err(io_err)?;
                out.append_data(&mut file_header(json.len() as u64, 0o644), &name, json.as_slice())?;
                continue;
            }
            // The header as read (mode, times, type), its size the entry's own, even when a PAX record gave it.
            let mut header = entry.header().clone();
            header.set_size(entry.size());
            if let Some(link) = entry.link_name()? {
                let link = link.into_owned();
                out.append_link(&mut header, &name, &link)?;
                continue;
            }
            if !(is_layer_path(&name) && is_file(&entry)) {
                out.append_data(&mut header, &name, &mut entry)?;
                continue;
            }
            let mut layer = LayerReader {
                inner: &mut entry,
                hash: Sha256::new(),
                sent: &mut layer_bytes,
                reported: &mut reported,
                progress: progress.as_ref(),
            };
            out.append_data(&mut header, &name, &mut layer)?;
            let digest = format!("sha256:{}", hex(&layer.hash.finalize()));
            // A layer that is not the image's (a compressed OCI blob, or the config) is for `docker load` to
            // check; one that claims to be a layer and hashes to nothing the image lists stops the transfer.
            if name.ends_with("/layer.tar") && !known.contains(&digest) {
                return Err(std::io::Error::other(format!(
                    "layer {name} hashes to {digest}, which the image does not list"
                )));
            }
            layers += 1;
            if let Some(f) = &progress {
                f(&TransferProgress::LayerSent {
                    digest,
                    bytes: entry.size(),
                });
            }
        }
        Ok(layers)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(
            c[1],
            format!("sha256:{}", hex(&Sha256::digest(format!("{a} {b}").as_bytes())))
        );
    }
}
