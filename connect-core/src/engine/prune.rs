//! Pruning old release images: everything of the app's repository beyond the newest N, but never the image
//! of the live or the standby color. The rule lives here, in the engine, because only the journal knows
//! which releases those are: a caller asks, the engine decides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Deployer;
use super::journal::Journal;
use crate::error::{ErrorKind, Result};
use crate::model::{Color, ImageRef};
use crate::vocabulary::OperationKind;

/// An image reference prune left, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptImage {
    /// `repository:tag`.
    pub reference: String,
    /// `live (blue)`, `standby (green)`, `one of the newest 3`, `in use: …`.
    pub reason: String,
}

/// What [`Deployer::prune`] removed (or, in a dry run, would remove) and what it kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// The repository pruned.
    pub repository: String,
    /// Nothing was removed: `removed` is what would be.
    pub dry_run: bool,
    /// References removed, newest first.
    pub removed: Vec<String>,
    /// References kept, newest first, each with its reason.
    pub kept: Vec<KeptImage>,
}

impl PruneReport {
    /// One line for a step's detail: `removed 2 of connect (v1, v2); kept 3`.
    pub fn summary(&self) -> String {
        let tags: Vec<&str> = self
            .removed
            .iter()
            .map(|r| r.rsplit_once(':').map_or(r.as_str(), |(_, tag)| tag))
            .collect();
        let verb = if self.dry_run { "would remove" } else { "removed" };
        match tags.len() {
            0 => format!(
                "nothing to remove from {}; kept {}",
                self.repository,
                self.kept.len()
            ),
            n => format!(
                "{verb} {n} of {} ({}); kept {}",
                self.repository,
                tags.join(", "),
                self.kept.len()
            ),
        }
    }
}

impl Deployer {
    /// Removes the images of `repository` beyond the newest `keep`, never the live or standby release's
    /// image (by image id, whatever its tags) nor one a container still uses (the runtime refuses those:
    /// they are reported kept). Runs under the deploy lock, after settling an interrupted operation, so no
    /// deploy stages or starts an image while it goes. `dry_run` only reads, without the lock.
    pub async fn prune(&self, repository: &str, keep: usize, dry_run: bool) -> Result<PruneReport> {
        if dry_run {
            let journal = self.store.load().await?;
            return self.prune_images(&journal, repository, keep, true).await;
        }
        self.with_lock(OperationKind::Prune, |held| async move {
            let journal = self.begin(&held).await?;
            self.prune_images(&journal, repository, keep, false).await
        })
        .await
    }

    pub(crate) async fn prune_images(
        &self,
        journal: &Journal,
        repository: &str,
        keep: usize,
        dry_run: bool,
    ) -> Result<PruneReport> {
        let runtime = &self.backends.runtime;
        let protected = self.protected_images(journal).await?;
        let mut report = PruneReport {
            repository: repository.to_string(),
            dry_run,
            removed: Vec::new(),
            kept: Vec::new(),
        };
        let prefix = format!("{repository}:");
        for (rank, image) in runtime.list_images(repository).await?.into_iter().enumerate() {
            let protect = protected
                .get(&image.id)
                .cloned()
                .or_else(|| image.tags.iter().find_map(|t| protected.get(t.as_str()).cloned()));
            for tag in image.tags.iter().filter(|t| t.starts_with(&prefix)) {
                let reason = match (&protect, rank < keep) {
                    (Some(why), _) => Some(why.clone()),
                    (None, true) => Some(format!("one of the newest {keep}")),
                    (None, false) => None,
                };
                if let Some(reason) = reason {
                    report.kept.push(KeptImage {
                        reference: tag.clone(),
                        reason,
                    });
                    continue;
                }
                if dry_run {
                    report.removed.push(tag.clone());
                    continue;
                }
                let reference = ImageRef::parse(tag)?;
                match runtime.delete_image(&reference).await {
                    Ok(()) => report.removed.push(tag.clone()),
                    Err(e) if e.kind() == ErrorKind::Conflict => report.kept.push(KeptImage {
                        reference: tag.clone(),
                        reason: format!("in use: {}", e.message()),
                    }),
                    // Someone else removed it meanwhile: it is gone, as asked.
                    Err(e) if e.kind() == ErrorKind::NotFound => report.removed.push(tag.clone()),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }

    /// Image ids and references that must stay, each with its reason: the journal's live and standby
    /// releases, a release an interrupted operation was starting, and what the two slots' containers run.
    async fn protected_images(&self, journal: &Journal) -> Result<BTreeMap<String, String>> {
        let runtime = &self.backends.runtime;
        let mut protected = BTreeMap::new();
        let role = |color: Color| {
            if journal.live == Some(color) {
                format!("live ({color})")
            } else {
                format!("standby ({color})")
            }
        };
        let mut add = |reference: &ImageRef, id: Option<String>, why: String| {
            protected
                .entry(reference.to_string())
                .or_insert_with(|| why.clone());
            if let Some(id) = id {
                protected.entry(id).or_insert(why);
            }
        };
        for (color, slot) in &journal.slots {
            let id = match &slot.release.digest {
                Some(id) => Some(id.clone()),
                None => runtime.image(&slot.release.image).await?.map(|i| i.id),
            };
            add(&slot.release.image, id, role(*color));
        }
        if let Some(release) = journal.intent.as_ref().and_then(|i| i.release.as_ref()) {
            let id = runtime.image(&release.image).await?.map(|i| i.id);
            add(&release.image, id, "being deployed".into());
        }
        for color in Color::ALL {
            let slot = self.config.topology.slot(color);
            let Some(container) = runtime.inspect(&slot.container).await? else {
                continue;
            };
            if let Ok(reference) = ImageRef::parse(&container.image) {
                let id = runtime.image(&reference).await?.map(|i| i.id);
                add(&reference, id, format!("run by {}", slot.container));
            }
        }
        Ok(protected)
    }
}
