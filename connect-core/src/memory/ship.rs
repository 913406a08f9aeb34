//! Shipping in memory: the machine running the deploy (its images and build contexts) beside the server's
//! runtime, with builds and sends that take simulated time and report progress as the real one does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lock;
use super::runtime::{AppBehavior, MemoryRuntime};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{ImageRef, Release};
use crate::runtime::ImageInfo;
use crate::ship::{BuildOn, ReleaseSource, ShipOutcome, ShipPhase, ShipProgress, ShipProgressFn, ShipReport};

/// How long a simulated build takes.
const BUILD_TAKES: Duration = Duration::from_secs(2);
/// The simulated link to the server: 100 MB/s.
const LINK_BYTES_PER_SEC: u64 = 100_000_000;
/// Bytes per simulated send, and per progress report.
const CHUNK: u64 = 4 << 20;
/// What a simulated build context weighs.
const CONTEXT_BYTES: u64 = 4_000_000;

/// The machine running the deploy, as the in-memory runtime sees it.
#[derive(Debug, Default)]
pub(super) struct BuildMachine {
    images: BTreeMap<String, (ImageInfo, AppBehavior)>,
    contexts: BTreeMap<PathBuf, AppBehavior>,
    builds: Vec<(PathBuf, BuildOn)>,
    next_id: u64,
    /// Sends fail with `Unavailable` once this many bytes went (the link broke mid-way).
    cut_after: Option<u64>,
}

impl BuildMachine {
    fn new_image(&mut self, layer_count: usize) -> ImageInfo {
        self.next_id += 1;
        let n = self.next_id;
        let mut layers = vec![format!("sha256:{:064x}", 0xba5e)];
        layers.extend((1..layer_count).map(|i| format!("sha256:{:064x}", 0x5000_0000 + n * 16 + i as u64)));
        ImageInfo {
            id: format!("sha256:{:064x}", 0x5000_0000 + n),
            tags: Vec::new(),
            layers,
            size_bytes: 60_000_000 * layer_count as u64,
        }
    }
}

impl MemoryRuntime {
    /// Puts an image on the machine running the deploy (not on the server), as a local `docker build` would:
    /// three layers, the first shared with every release (so only two are sent).
    pub fn add_local_image(&self, reference: &str, behavior: AppBehavior) -> ImageInfo {
        let mut state = lock(&self.state);
        let mut info = state.build_machine.new_image(3);
        info.tags.push(reference.to_string());
        state
            .build_machine
            .images
            .insert(reference.to_string(), (info.clone(), behavior));
        info
    }

    /// Puts a build context (a directory with a Dockerfile) on the machine running the deploy; its image's app
    /// behaves as `behavior`.
    pub fn add_build_context(&self, dir: impl Into<PathBuf>, behavior: AppBehavior) {
        lock(&self.state)
            .build_machine
            .contexts
            .insert(dir.into(), behavior);
    }

    /// The builds run so far: which context, built where.
    pub fn builds(&self) -> Vec<(PathBuf, BuildOn)> {
        lock(&self.state).build_machine.builds.clone()
    }

    /// Makes every later send fail with `Unavailable` after `bytes` (the link to the server broke mid-way).
    pub fn cut_ships_after(&self, bytes: u64) {
        lock(&self.state).build_machine.cut_after = Some(bytes);
    }

    /// Whether the server has `image`, tagged.
    pub fn has_image(&self, image: &ImageRef) -> bool {
        lock(&self.state).images.contains_key(&image.to_string())
    }

    /// The body of [`crate::ContainerRuntime::ship`].
    pub(super) async fn ship_image(
        &self,
        release: &Release,
        source: &ReleaseSource,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        source.validate()?;
        let target = release.image.to_string();
        let report = |info: &ImageInfo, outcome, built_locally, layers_sent, bytes_sent| ShipReport {
            image: target.clone(),
            image_id: info.id.clone(),
            outcome,
            built_locally,
            layers_total: info.layers.len(),
            layers_sent,
            bytes_sent,
        };
        {
            let state = lock(&self.state);
            if let Some((there, _)) = state.images.get(&target) {
                if let ReleaseSource::LocalImage { reference } = source {
                    let (local, _) = local_image(&state.build_machine, reference)?;
                    if local.id != there.id {
                        return Err(conflict(&target, &there.id, &local.id));
                    }
                }
                return Ok(report(there, ShipOutcome::AlreadyPresent, false, 0, 0));
            }
        }

        let (info, behavior, built_locally) = match source {
            ReleaseSource::LocalImage { reference } => {
                let state = lock(&self.state);
                let (info, behavior) = local_image(&state.build_machine, reference)?;
                (info.clone(), behavior.clone(), false)
            }
            ReleaseSource::BuildContext { dir, build_on } => {
                let behavior = self.build(dir, *build_on, &target, &progress).await?;
                if *build_on == BuildOn::Server {
                    let mut state = lock(&self.state);
                    let mut info = state.build_machine.new_image(3);
                    info.tags.push(target.clone());
                    state.images.insert(target.clone(), (info.clone(), behavior));
                    return Ok(report(&info, ShipOutcome::BuiltOnServer, false, 0, 0));
                }
                let mut state = lock(&self.state);
                let mut info = state.build_machine.new_image(3);
                info.tags.push(target.clone());
                state
                    .build_machine
                    .images
                    .insert(target.clone(), (info.clone(), behavior.clone()));
                (info, behavior, true)
            }
        };

        // The server may hold the same image under another tag: then only the tag is new.
        let (missing, cut_after) = {
            let mut state = lock(&self.state);
            if state.images.values().any(|(i, _)| i.id == info.id) {
                let mut tagged = info.clone();
                tagged.tags = vec![target.clone()];
                state.images.insert(target.clone(), (tagged, behavior));
                return Ok(report(&info, ShipOutcome::AlreadyPresent, built_locally, 0, 0));
            }
            let present: BTreeSet<&String> = state.images.values().flat_map(|(i, _)| &i.layers).collect();
            let missing: Vec<String> = info
                .layers
                .iter()
                .filter(|l| !present.contains(l))
                .cloned()
                .collect();
            (missing, state.build_machine.cut_after)
        };
        let layer_bytes = info.size_bytes / info.layers.len().max(1) as u64;
        let mut p = ShipProgress {
            phase: ShipPhase::Send,
            layers_done: 0,
            layers_total: missing.len(),
            bytes_done: 0,
            bytes_total: layer_bytes * missing.len() as u64,
        };
        progress(p);
        for _ in &missing {
            let mut left = layer_bytes;
            while left > 0 {
                let n = left.min(CHUNK);
                // Simulated time on the wire (free under paused time), not synchronisation.
                tokio::time::sleep(Duration::from_micros(n * 1_000_000 / LINK_BYTES_PER_SEC)).await;
                if cut_after.is_some_and(|c| p.bytes_done + n > c) {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "runtime.ship",
                        &target,
                        format!(
                            "the connection broke after {} bytes; nothing was tagged",
                            p.bytes_done
                        ),
                    ));
                }
                left -= n;
                p.bytes_done += n;
                progress(p);
            }
            p.layers_done += 1;
            progress(p);
        }
        // Whole and verified: only now does the server see it, tagged.
        let mut tagged = info.clone();
        tagged.tags = vec![target.clone()];
        lock(&self.state)
            .images
            .insert(target.clone(), (tagged, behavior));
        Ok(report(
            &info,
            ShipOutcome::Sent,
            built_locally,
            missing.len(),
            p.bytes_done,
        ))
    }

    async fn build(
        &self,
        dir: &Path,
        build_on: BuildOn,
        target: &str,
        progress: &ShipProgressFn,
    ) -> Result<AppBehavior> {
        let behavior = {
            let mut state = lock(&self.state);
            let behavior = state.build_machine.contexts.get(dir).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "runtime.ship",
                    target,
                    format!("{} holds no Dockerfile", dir.display()),
                )
                .with_hint("point the release source at the directory holding the Dockerfile")
            })?;
            state.build_machine.builds.push((dir.to_path_buf(), build_on));
            behavior
        };
        let mut p = ShipProgress {
            phase: ShipPhase::Build,
            layers_done: 0,
            layers_total: 0,
            bytes_done: 0,
            bytes_total: CONTEXT_BYTES,
        };
        progress(p);
        // Simulated build time, not synchronisation.
        tokio::time::sleep(BUILD_TAKES).await;
        p.bytes_done = CONTEXT_BYTES;
        progress(p);
        Ok(behavior)
    }
}

fn local_image<'a>(machine: &'a BuildMachine, reference: &str) -> Result<&'a (ImageInfo, AppBehavior)> {
    machine
        .images
        .get(reference)
        .or_else(|| machine.images.values().find(|(i, _)| i.id == reference))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "runtime.ship",
                reference,
                "the machine running the deploy has no such image",
            )
            .with_hint("build the image first (docker build -t REF DIR) or name a build context instead")
        })
}

fn conflict(target: &str, there: &str, local: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        "runtime.ship",
        target,
        format!("the server has {target} as image {there}, but the local image is {local}"),
    )
    .with_hint("a version names one image: ship the new image under a new version")
}
