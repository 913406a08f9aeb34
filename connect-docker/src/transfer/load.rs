//! The destination's side, whichever way the image was sent: `docker load` of the stream (counting, and
//! for tests cutting off, the bytes on the wire), then the check that it holds exactly the source's image
//! before the tag is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::query_parameters::ImportImageOptions;
use connect_core::model::ImageRef;
use connect_core::{Error, ErrorKind, Result};
use futures::StreamExt;
use tokio::io::DuplexStream;
use tokio_util::io::ReaderStream;

use super::TransferOptions;
use super::archive::counted;
use crate::client::Docker;

impl Docker {
    /// Confirms `dest` holds exactly the source's image, then tags it.
    pub(super) async fn verify_and_tag(
        &self,
        image_id: &str,
        diff_ids: &[String],
        image: &ImageRef,
    ) -> Result<()> {
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

    /// `docker load` on this engine of the archive `reader` gives, counting the bytes on the wire (and
    /// cutting them off where `options` asks). Returns that count and the load's first error: the stream is
    /// dropped on it, which ends the sender's side too.
    pub(super) async fn load_from(
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
