//! The in-memory runtime's image list and removal, with Docker's rules: newest first, never forced.

use super::{MemoryRuntime, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::model::ImageRef;
use crate::runtime::ImageInfo;

impl MemoryRuntime {
    pub(super) fn images_of(&self, repository: &str) -> Vec<ImageInfo> {
        let state = lock(&self.state);
        let mut images: Vec<ImageInfo> = state
            .images
            .iter()
            .filter(|(reference, _)| ImageRef::parse(reference).is_ok_and(|r| r.repository() == repository))
            .map(|(_, (info, _))| info.clone())
            .collect();
        // Ids are numbered in the order images arrived: the highest is the newest.
        images.sort_by(|a, b| b.id.cmp(&a.id));
        images
    }

    pub(super) fn delete_reference(&self, image: &ImageRef) -> Result<()> {
        let reference = image.to_string();
        let mut state = lock(&self.state);
        if !state.images.contains_key(&reference) {
            return Err(Error::new(
                ErrorKind::NotFound,
                "runtime.delete_image",
                &reference,
                "no such image",
            ));
        }
        if let Some(user) = state.containers.values().find(|c| c.spec.image == *image) {
            return Err(Error::new(
                ErrorKind::Conflict,
                "runtime.delete_image",
                &reference,
                format!("container {} uses it", user.spec.name),
            )
            .with_hint("remove the container first"));
        }
        state.images.remove(&reference);
        Ok(())
    }
}
