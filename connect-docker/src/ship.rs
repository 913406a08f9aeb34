//! [`connect_core::ContainerRuntime::ship`] for [`Docker`]: the server's engine gets a release from the
//! engine on the machine running the deploy (the build machine), built where the source says, by
//! [`Docker::transfer_image`] (only the missing layers, each verified against its digest, tagged only once
//! whole), or builds it itself from the context.

use std::path::Path;
use std::sync::{Arc, Mutex};

use connect_core::model::Release;
use connect_core::ship::{
    BuildOn, ReleaseSource, ShipOutcome, ShipPhase, ShipProgress, ShipProgressFn, ShipReport,
};
use connect_core::{Error, ErrorKind, Result};

use crate::client::Docker;
use crate::images::{BuildContext, BuildOutput};
use crate::transfer::{TransferMethod, TransferOptions, TransferProgress};

impl Docker {
    /// The same engine, shipping releases from `local`, the engine on the machine running the deploy
    /// (usually [`Docker::connect`]): images named by a [`ReleaseSource::LocalImage`] are there, and a
    /// [`BuildOn::Local`] context is built there.
    pub fn with_build_machine(mut self, local: Docker) -> Docker {
        self.build_machine = Some(Arc::new(local));
        self
    }

    /// The engine releases are shipped from, if any.
    pub fn build_machine(&self) -> Option<&Docker> {
        self.build_machine.as_deref()
    }

    /// Makes `release.image` present on this engine from `source` (see
    /// [`connect_core::ContainerRuntime::ship`]): nothing when it is there already, else built where the
    /// source says and sent from the build machine, only the layers this engine lacks.
    pub async fn ship_release(
        &self,
        release: &Release,
        source: &ReleaseSource,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        source.validate()?;
        let target = release.image.to_string();
        if let Some(there) = self.image_info(&target).await? {
            if let ReleaseSource::LocalImage { reference } = source {
                let local = self.local_image(reference).await?;
                if local.id != there.id {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "docker.ship",
                        &target,
                        format!(
                            "{} has {target} as image {}, but {reference} is {}",
                            self.location, there.id, local.id
                        ),
                    )
                    .with_hint("a version names one image: ship the new image under a new version"));
                }
            }
            return Ok(ShipReport {
                image: target,
                image_id: there.id,
                outcome: ShipOutcome::AlreadyPresent,
                built_locally: false,
                layers_total: there.layers.len(),
                layers_sent: 0,
                bytes_sent: 0,
            });
        }
        match source {
            ReleaseSource::LocalImage { reference } => {
                let info = self.local_image(reference).await?;
                let local = self.require_build_machine(&target)?;
                if !info.tags.contains(&target) {
                    local.tag(&info.id, &release.image).await?;
                }
                self.receive(local, release, false, progress).await
            }
            ReleaseSource::BuildContext { dir, build_on } => {
                let context = read_context(dir, &target).await?;
                let builder = match build_on {
                    BuildOn::Server => self,
                    BuildOn::Local => self.require_build_machine(&target)?,
                };
                let built = builder.build_reporting(context, release, &progress).await?;
                if *build_on == BuildOn::Server {
                    return Ok(ShipReport {
                        image: target,
                        image_id: built.id,
                        outcome: ShipOutcome::BuiltOnServer,
                        built_locally: false,
                        layers_total: built.layers.len(),
                        layers_sent: 0,
                        bytes_sent: 0,
                    });
                }
                self.receive(builder, release, true, progress).await
            }
            other => Err(Error::new(
                ErrorKind::Unsupported,
                "docker.ship",
                &target,
                format!("this version cannot ship from {other}"),
            )),
        }
    }

    fn require_build_machine(&self, target: &str) -> Result<&Docker> {
        self.build_machine.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "docker.ship",
                target,
                format!("{} has no build machine to ship from", self.location),
            )
            .with_hint("connect the local engine (Docker::with_build_machine), or build on the server")
        })
    }

    async fn local_image(&self, reference: &str) -> Result<connect_core::runtime::ImageInfo> {
        let local = self.require_build_machine(reference)?;
        local.image_info(reference).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "docker.ship",
                reference,
                format!("{} has no image {reference}", local.location),
            )
            .with_hint("build the image first (docker build -t REF DIR) or name a build context instead")
        })
    }

    /// Builds with progress: the context's size once sent, then a heartbeat per line the builder prints.
    async fn build_reporting(
        &self,
        context: BuildContext,
        release: &Release,
        progress: &ShipProgressFn,
    ) -> Result<connect_core::runtime::ImageInfo> {
        let sent = Mutex::new(0u64);
        let report = |output: BuildOutput<'_>| {
            let mut bytes = sent.lock().unwrap_or_else(|e| e.into_inner());
            if let BuildOutput::ContextSent { bytes: b } = output {
                *bytes = b;
            }
            progress(ShipProgress {
                phase: ShipPhase::Build,
                layers_done: 0,
                layers_total: 0,
                bytes_done: *bytes,
                bytes_total: *bytes,
            });
        };
        self.build_release_with(context, release, &report).await
    }

    /// Sends `release.image` from `from` to this engine, its progress mapped to [`ShipProgress`].
    async fn receive(
        &self,
        from: &Docker,
        release: &Release,
        built_locally: bool,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        let state = Arc::new(Mutex::new(ShipProgress {
            phase: ShipPhase::Send,
            layers_done: 0,
            layers_total: 0,
            bytes_done: 0,
            bytes_total: 0,
        }));
        let seen = Arc::clone(&state);
        let report_progress = progress.clone();
        let options = TransferOptions {
            progress: Some(Arc::new(move |t: &TransferProgress| {
                let mut p = seen.lock().unwrap_or_else(|e| e.into_inner());
                match t {
                    TransferProgress::Planned {
                        layers_to_send,
                        bytes_to_send,
                        ..
                    } => {
                        p.layers_total = *layers_to_send;
                        p.bytes_total = *bytes_to_send;
                    }
                    TransferProgress::LayerBytes { sent } => p.bytes_done = p.bytes_done.max(*sent),
                    TransferProgress::LayerSent { .. } => p.layers_done += 1,
                    // Loaded and verified: whatever was counted, everything is done.
                    TransferProgress::Loaded { .. } => {
                        p.layers_done = p.layers_done.max(p.layers_total);
                        p.layers_total = p.layers_done;
                        p.bytes_total = p.bytes_total.max(p.bytes_done);
                        p.bytes_done = p.bytes_total;
                    }
                    // Bytes on the wire are compressed: not the unit of the totals.
                    TransferProgress::Bytes { .. } => return,
                }
                report_progress(*p);
            })),
            ..TransferOptions::default()
        };
        let sent = from.transfer_image(self, &release.image, &options).await?;
        if sent.method == TransferMethod::Whole {
            // The fallback reports no layers as it goes: its end is the whole archive.
            progress(ShipProgress {
                phase: ShipPhase::Send,
                layers_done: sent.layers_sent,
                layers_total: sent.layers_sent,
                bytes_done: sent.archive_bytes,
                bytes_total: sent.archive_bytes,
            });
        }
        Ok(ShipReport {
            image: sent.image,
            image_id: sent.image_id,
            outcome: if sent.method == TransferMethod::AlreadyThere {
                ShipOutcome::AlreadyPresent
            } else {
                ShipOutcome::Sent
            },
            built_locally,
            layers_total: sent.layers_total,
            layers_sent: sent.layers_sent,
            bytes_sent: sent.archive_bytes,
        })
    }
}

/// The build context's files, read off the event loop; a directory without a `Dockerfile` is refused
/// before anything is sent.
async fn read_context(dir: &Path, target: &str) -> Result<BuildContext> {
    let dir = dir.to_path_buf();
    let target = target.to_string();
    tokio::task::spawn_blocking(move || {
        if !dir.join("Dockerfile").is_file() {
            return Err(Error::new(
                ErrorKind::NotFound,
                "docker.ship",
                &target,
                format!("{} holds no Dockerfile", dir.display()),
            )
            .with_hint("point the release source at the directory holding the Dockerfile"));
        }
        BuildContext::from_dir(&dir)
    })
    .await
    .map_err(|e| {
        Error::new(ErrorKind::Failed, "docker.ship", "build context", e.to_string()).with_source(e)
    })?
}
