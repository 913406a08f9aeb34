//! Files read out of an image without running it: a container is created (never started), the directory
//! is copied out as a tar stream (`GET /containers/{id}/archive`), and the container is removed.

use std::io::Read;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::DownloadFromContainerOptions;
use connect_core::model::ImageRef;
use connect_core::runtime::ImageFile;
use connect_core::{Error, ErrorKind, Result};
use futures::TryStreamExt;
use tokio_util::io::StreamReader;

use crate::client::Docker;
use crate::error::{is_not_found, map_err};
use crate::tarball::{is_file, path_of, read_archive};

const OP: &str = "docker.read_image_dir";

impl Docker {
    /// The regular files under `dir` in `image`, paths relative to `dir`, sorted; empty when the image has
    /// no such directory; more than `max_bytes` in all is [`ErrorKind::Refused`]. The container made to
    /// read them carries the one-off label, so one left by a killed process is found and removed.
    pub async fn read_image_dir(
        &self,
        image: &ImageRef,
        dir: &str,
        max_bytes: u64,
    ) -> Result<Vec<ImageFile>> {
        let target = format!("{image}:{dir}");
        if !dir.starts_with('/') || dir.split('/').any(|c| c == "..") {
            return Err(Error::invalid(
                OP,
                &target,
                "the directory must be an absolute path without `..`",
            ));
        }
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // Never started: a command is required to create it, not run.
            cmd: Some(vec!["/connect-never-runs".into()]),
            network_disabled: Some(true),
            ..Default::default()
        };
        let target = target.as_str();
        self.with_one_off(
            "connect-read",
            body,
            |e| map_err(OP, target, e),
            |name| async move { self.copy_dir_out(&name, target, dir, max_bytes).await },
        )
        .await
    }

    async fn copy_dir_out(
        &self,
        container: &str,
        target: &str,
        dir: &str,
        max_bytes: u64,
    ) -> Result<Vec<ImageFile>> {
        let stream = self
            .api
            .download_from_container(
                container,
                Some(DownloadFromContainerOptions {
                    path: dir.to_string(),
                }),
            )
            .map_err(std::io::Error::other);
        // Entries are named `<last component of dir>/<path>`.
        let base = dir.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        let prefix = format!("{base}/");
        let read = read_archive(StreamReader::new(Box::pin(stream)), move |archive| {
            let mut files = Vec::new();
            let mut total = 0u64;
            for entry in archive.entries()? {
                let mut entry = entry?;
                if !is_file(&entry) {
                    continue;
                }
                total += entry.size();
                if total > max_bytes {
                    return Ok(Err(total));
                }
                let name = path_of(&entry)?;
                let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
                entry.read_to_end(&mut data)?;
                if let Some(path) = name.strip_prefix(&prefix) {
                    files.push(ImageFile {
                        path: path.to_string(),
                        data,
                    });
                }
            }
            Ok(Ok(files))
        })
        .await;
        let mut files = match read {
            Ok(Ok(files)) => files,
            Ok(Err(_)) => {
                return Err(Error::new(
                    ErrorKind::Refused,
                    OP,
                    target,
                    format!("{dir} holds more than the {max_bytes} bytes asked for"),
                ));
            }
            // The archive endpoint answers 404 for a path the image does not have.
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => {
                return Err(
                    Error::new(ErrorKind::Failed, OP, target, format!("reading the archive: {e}"))
                        .with_source(e),
                );
            }
        };
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// Whether the archive endpoint said the directory is not in the image: its 404, carried inside the I/O error.
fn is_missing(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<bollard::errors::Error>())
        .is_some_and(is_not_found)
}
