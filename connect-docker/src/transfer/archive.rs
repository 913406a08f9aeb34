//! The image archive as it streams: chain ids, the manifest, and the filter that drops the layers the
//! destination has, untags the manifest and checks each layer sent against its diff id.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use connect_core::{Error, ErrorKind, Result};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::io::{ReaderStream, StreamReader};

use super::{ProgressFn, TransferOptions, TransferProgress};
use crate::tarball::{TarReader, header, padding};

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
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
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
}

pub(super) fn parse_manifest(image: &str, data: &[u8]) -> Result<ManifestEntry> {
    let mut entries: Vec<ManifestEntry> = serde_json::from_slice(data).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            "docker.transfer",
            image,
            format!("manifest.json does not parse: {e}"),
        )
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

/// Copies the archive from `source` to `sink` without the layers in `skip`, without tags, verifying each
/// layer sent against its diff id. Returns (layers sent, archive bytes written).
pub(super) async fn filter_archive(
    source: impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    mut sink: Box<dyn AsyncWrite + Send + Unpin>,
    image_id: &str,
    skip: &BTreeSet<String>,
    diff_ids: &[String],
    progress: Option<ProgressFn>,
) -> std::io::Result<(usize, u64)> {
    let mut tar = TarReader::new(StreamReader::new(source));
    let mut written = 0u64;
    let mut layers = 0usize;
    let mut layer_bytes = 0u64;
    let mut reported = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let known: BTreeSet<&String> = diff_ids.iter().collect();
    while let Some(entry) = tar.next_entry().await? {
        if skip.contains(&entry.name) || entry.name == "repositories" {
            continue;
        }
        if entry.name == "manifest.json" {
            let data = tar.read_all(16 << 20).await?;
            let mut m = parse_manifest(image_id, &data).map_err(io_err)?;
            m.repo_tags = None;
            let out = serde_json::to_vec(&[m]).map_err(io_err)?;
            let h = header("manifest.json", out.len() as u64, 0o644, b'0')?;
            sink.write_all(&h).await?;
            sink.write_all(&out).await?;
            let pad = vec![0u8; padding(out.len() as u64)];
            sink.write_all(&pad).await?;
            written += (h.len() + out.len() + pad.len()) as u64;
            continue;
        }
        sink.write_all(&entry.raw_header).await?;
        written += entry.raw_header.len() as u64;
        let is_layer = is_layer_path(&entry.name) && matches!(entry.typeflag, b'0' | 0);
        let mut hasher = is_layer.then(Sha256::new);
        loop {
            let n = tar.read_content(&mut buf).await?;
            if n == 0 {
                break;
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..n]);
            }
            sink.write_all(&buf[..n]).await?;
            written += n as u64;
            if is_layer {
                layer_bytes += n as u64;
                if let Some(f) = &progress
                    && layer_bytes - reported >= 1 << 20
                {
                    reported = layer_bytes;
                    f(&TransferProgress::LayerBytes { sent: layer_bytes });
                }
            }
        }
        let pad = vec![0u8; padding(entry.size)];
        sink.write_all(&pad).await?;
        written += pad.len() as u64;
        if let Some(h) = hasher {
            let digest = format!("sha256:{}", hex(&h.finalize()));
            // A layer that is not the image's (a compressed OCI blob, or the config) is for `docker load` to
            // check; one that claims to be a layer and hashes to nothing the image lists stops the transfer.
            if entry.name.ends_with("/layer.tar") && !known.contains(&digest) {
                return Err(std::io::Error::other(format!(
                    "layer {} hashes to {digest}, which the image does not list",
                    entry.name
                )));
            }
            layers += 1;
            if let Some(f) = &progress {
                f(&TransferProgress::LayerSent {
                    digest,
                    bytes: entry.size,
                });
            }
        }
    }
    let end = [0u8; 1024];
    sink.write_all(&end).await?;
    written += end.len() as u64;
    sink.shutdown().await?;
    Ok((layers, written))
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
