//! The runbook's way, `docker save | gzip | docker load` of the whole image: the fallback when the
//! incremental load fails, and the benchmark's baseline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_compression::tokio::write::GzipEncoder;
use connect_core::model::ImageRef;
use connect_core::{Error, ErrorKind, Result};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::archive::io_err;
use super::{Compression, TransferMethod, TransferOptions, TransferReport, task_failed};
use crate::client::Docker;
use crate::error::map_err;

impl Docker {
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
}
