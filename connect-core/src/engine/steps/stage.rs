//! Stage image (runbook §2): the release's image is on the server, and is the image the journal knows.

use crate::engine::Deployer;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Release;

impl Deployer {
    /// Checks the release's image is on the server and records its id in `staged`. A release that already
    /// carries an id (a full rollback to a recorded release) must still resolve to that id: a tag moved to
    /// another image since is refused rather than silently deployed.
    pub(crate) async fn stage(&self, release: &Release, staged: &mut Option<Release>) -> Result<String> {
        let info = self
            .backends
            .runtime
            .image(&release.image)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "deploy.stage_image",
                    release.image.to_string(),
                    "the server has no such image",
                )
                .with_hint("ship it first: `connect-ops ship VERSION --context DIR`, or deploy with a release source")
            })?;
        if let Some(recorded) = &release.digest
            && *recorded != info.id
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                "deploy.stage_image",
                release.image.to_string(),
                format!(
                    "the journal recorded {} as image {recorded}, but the tag now points at {}",
                    release.version, info.id
                ),
            )
            .with_hint("tag the recorded image again (docker tag <id> <image>), or deploy the new image as a new release"));
        }
        let mut release = release.clone();
        release.digest = Some(info.id.clone());
        let detail = format!("{} is {} ({} layers)", release.image, info.id, info.layers.len());
        *staged = Some(release);
        Ok(detail)
    }
}
