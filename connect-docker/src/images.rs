//! Images: build a release from a context, tag, inspect and list with their layers, prune old releases.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use bollard::query_parameters::{BuildImageOptions, ListImagesOptions, RemoveImageOptions, TagImageOptions};
use connect_core::model::{ImageRef, Release};
use connect_core::runtime::{ImageInfo, labels};
use connect_core::{Error, ErrorKind, Result};
use futures::{StreamExt, TryStreamExt};

use crate::client::Docker;
use crate::dockerignore::DockerIgnore;
use crate::error::{is_not_found, map_err};
use crate::tarball::TarWriter;

/// Image inspects [`Docker::images`] keeps in flight.
const IMAGES_INSPECTED_AT_ONCE: usize = 8;

/// A build context: the files `docker build` sees, sent to the Engine as one tar.
#[derive(Debug, Default, Clone)]
pub struct BuildContext {
    tar: TarWriter,
}

impl BuildContext {
    /// An empty context.
    pub fn new() -> Self {
        BuildContext::default()
    }

    /// Adds a file at `path` (relative, `/`-separated) with these bytes and permission bits.
    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Result<Self> {
        self.tar
            .file(path, data, mode)
            .map_err(|e| Error::invalid("docker.build", path, e.to_string()).with_source(e))?;
        Ok(self)
    }

    /// Adds the `Dockerfile`.
    pub fn dockerfile(self, text: &str) -> Result<Self> {
        self.file("Dockerfile", text.as_bytes(), 0o644)
    }

    /// Adds a symbolic link at `path` pointing to `target`, kept as a link.
    pub fn symlink(mut self, path: &str, target: &str) -> Result<Self> {
        self.tar
            .symlink(path, target)
            .map_err(|e| Error::invalid("docker.build", path, e.to_string()).with_source(e))?;
        Ok(self)
    }

    /// Every file and symbolic link under a local directory, as `docker build <dir>` sends it: what its
    /// `.dockerignore` leaves out is not sent (the `Dockerfile` and `.dockerignore` always are, as Docker
    /// does), and links stay links.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let io_err = |kind: ErrorKind, path: &Path, e: std::io::Error| {
            Error::new(kind, "docker.build", path.display().to_string(), e.to_string()).with_source(e)
        };
        let ignore_file = dir.join(".dockerignore");
        let ignore = match std::fs::read_to_string(&ignore_file) {
            Ok(text) => DockerIgnore::parse(&text).map_err(|e| {
                Error::invalid("docker.build", ignore_file.display().to_string(), e.to_string())
                    .with_hint("fix the pattern in .dockerignore (Docker's syntax: *, ?, **, [..], !)")
                    .with_source(e)
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
            Err(e) => return Err(io_err(ErrorKind::Failed, &ignore_file, e)),
        };
        let mut ctx = BuildContext::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let read = std::fs::read_dir(&d).map_err(|e| io_err(ErrorKind::NotFound, &d, e))?;
            let mut entries: Vec<_> = read.filter_map(|e| e.ok()).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let path = entry.path();
                // `DirEntry::metadata` does not follow a link: a link is seen as one.
                let meta = entry
                    .metadata()
                    .map_err(|e| io_err(ErrorKind::Failed, &path, e))?;
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let always_sent = rel == "Dockerfile" || rel == ".dockerignore";
                if ignore.excludes(&rel) && !always_sent {
                    // An excluded directory is still read when a `!` pattern may bring back some of it.
                    if meta.is_dir() && ignore.has_exceptions() {
                        stack.push(path);
                    }
                    continue;
                }
                if meta.is_dir() {
                    stack.push(path);
                } else if meta.file_type().is_symlink() {
                    let target =
                        std::fs::read_link(&path).map_err(|e| io_err(ErrorKind::Failed, &path, e))?;
                    ctx = ctx.symlink(&rel, &target.to_string_lossy())?;
                } else if meta.is_file() {
                    use std::os::unix::fs::PermissionsExt;
                    let data = std::fs::read(&path).map_err(|e| io_err(ErrorKind::Failed, &path, e))?;
                    ctx = ctx.file(&rel, &data, meta.permissions().mode() & 0o7777)?;
                }
            }
        }
        Ok(ctx)
    }
}

/// What a build reports as it goes ([`Docker::build_release_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildOutput<'a> {
    /// The engine has the whole context, this many bytes (tar).
    ContextSent {
        /// The context's size.
        bytes: u64,
    },
    /// A line the builder printed.
    Line(&'a str),
}

/// What [`Docker::prune_releases`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneReport {
    /// References removed.
    pub removed: Vec<String>,
    /// References kept: the newest N, the protected ones, and those a container still uses.
    pub kept: Vec<String>,
}

impl Docker {
    /// Builds `release`'s image from `context`, tagged `release.image` and labelled with the release version.
    /// A failing Dockerfile is `Failed` with the builder's message.
    pub async fn build_release(&self, context: BuildContext, release: &Release) -> Result<ImageInfo> {
        self.build_release_with(context, release, &|_| {}).await
    }

    /// [`Docker::build_release`], calling `on_output` with the context's size once it is sent, then with
    /// each line the builder prints (a progress display's heartbeat during a long build step).
    pub async fn build_release_with(
        &self,
        context: BuildContext,
        release: &Release,
        on_output: &(dyn Fn(BuildOutput<'_>) + Send + Sync),
    ) -> Result<ImageInfo> {
        let target = release.image.to_string();
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(target.clone()),
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([(
                labels::RELEASE.to_string(),
                release.version.clone(),
            )])),
            ..Default::default()
        };
        let tar = context.tar.finish().map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "docker.build",
                &target,
                format!("writing the build context: {e}"),
            )
            .with_source(e)
        })?;
        let context_bytes = tar.len() as u64;
        let body = bollard::body_full(tar.into());
        let mut stream = self.api.build_image(options, None, Some(body));
        let mut sent = false;
        let mut last_lines: Vec<String> = Vec::new();
        while let Some(msg) = stream.next().await {
            let msg = msg.map_err(|e| map_err("docker.build", &target, e))?;
            // The engine answers only once it has the whole context.
            if !sent {
                sent = true;
                on_output(BuildOutput::ContextSent { bytes: context_bytes });
            }
            if let Some(err) = msg.error_detail.and_then(|d| d.message) {
                return Err(Error::new(
                    ErrorKind::Failed,
                    "docker.build",
                    &target,
                    format!("{err} (after: {})", last_lines.join(" | ")),
                ));
            }
            if let Some(line) = msg.stream.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
                tracing::debug!(image = %target, "{line}");
                on_output(BuildOutput::Line(&line));
                last_lines.push(line);
                if last_lines.len() > 3 {
                    last_lines.remove(0);
                }
            }
        }
        self.image_info(&target).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Failed,
                "docker.build",
                &target,
                "the build finished but the image is not there",
            )
        })
    }

    /// Gives `source` (a reference or id) another reference.
    pub async fn tag(&self, source: &str, target: &ImageRef) -> Result<()> {
        self.api
            .tag_image(
                source,
                Some(TagImageOptions {
                    repo: Some(target.repository().to_string()),
                    tag: Some(target.tag().unwrap_or("latest").to_string()),
                }),
            )
            .await
            .map_err(|e| map_err("docker.tag", source, e))
    }

    /// An image by reference or id, with its layers; `None` when the engine does not have it.
    pub async fn image_info(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.api.inspect_image(reference).await {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                tags: i.repo_tags.unwrap_or_default(),
                layers: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                size_bytes: u64::try_from(i.size.unwrap_or(0)).unwrap_or(0),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_err("docker.image", reference, e)),
        }
    }

    /// The images of a repository (every image when `None`), with their layers, newest first.
    pub async fn images(&self, repository: Option<&str>) -> Result<Vec<ImageInfo>> {
        let filters = repository.map(|r| HashMap::from([("reference".to_string(), vec![r.to_string()])]));
        let mut summaries = self
            .api
            .list_images(Some(ListImagesOptions {
                all: false,
                filters,
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err("docker.images", repository.unwrap_or(&self.location), e))?;
        summaries.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        // A few inspects at once, in order: over SSH each is a round trip, and a transfer lists every image
        // of its destination before it sends.
        let infos: Vec<Option<ImageInfo>> = futures::stream::iter(summaries.into_iter().map(|s| s.id))
            .map(|id| async move { self.image_info(&id).await })
            .buffered(IMAGES_INSPECTED_AT_ONCE)
            .try_collect()
            .await?;
        Ok(infos.into_iter().flatten().collect())
    }

    /// Removes the releases of `repository` except the newest `keep` and every reference in `protect` (the
    /// live and standby releases). An image a container still uses is kept, not forced.
    pub async fn prune_releases(
        &self,
        repository: &str,
        keep: usize,
        protect: &[&ImageRef],
    ) -> Result<PruneReport> {
        let protected: BTreeSet<String> = protect.iter().map(|r| r.to_string()).collect();
        let protected_ids: BTreeSet<String> = {
            let mut ids = BTreeSet::new();
            for r in protect {
                if let Some(i) = self.image_info(&r.to_string()).await? {
                    ids.insert(i.id);
                }
            }
            ids
        };
        let mut report = PruneReport::default();
        let prefix = format!("{repository}:");
        let mut seen = 0usize;
        for image in self.images(Some(repository)).await? {
            let refs: Vec<&String> = image.tags.iter().filter(|t| t.starts_with(&prefix)).collect();
            if refs.is_empty() {
                continue;
            }
            let keep_it = seen < keep || protected_ids.contains(&image.id);
            seen += 1;
            for r in refs {
                if keep_it || protected.contains(r) {
                    report.kept.push(r.clone());
                    continue;
                }
                match self
                    .api
                    .remove_image(
                        r,
                        Some(RemoveImageOptions {
                            force: false,
                            noprune: false,
                            platforms: None,
                        }),
                        None,
                    )
                    .await
                {
                    Ok(_) => report.removed.push(r.clone()),
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                        report.kept.push(r.clone())
                    }
                    Err(e) => return Err(map_err("docker.prune", r, e)),
                }
            }
        }
        Ok(report)
    }

    /// Removes an image reference (and the image when it was its last one); a missing one is `NotFound`.
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<()> {
        self.api
            .remove_image(
                reference,
                Some(RemoveImageOptions {
                    force,
                    noprune: false,
                    platforms: None,
                }),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| map_err("docker.remove_image", reference, e))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The context of a directory, as (path, link target or content) in archive order.
    async fn sent(dir: &Path) -> Vec<(String, String)> {
        let tar = BuildContext::from_dir(dir)
            .expect("context")
            .tar
            .finish()
            .expect("archive");
        crate::tarball::read_archive(std::io::Cursor::new(tar), |archive| {
            let mut out = Vec::new();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = crate::tarball::path_of(&entry)?;
                let what = match entry.link_name()? {
                    Some(link) => format!("-> {}", link.to_string_lossy()),
                    None => {
                        let mut text = String::new();
                        entry.read_to_string(&mut text)?;
                        text
                    }
                };
                out.push((path, what));
            }
            Ok(out)
        })
        .await
        .expect("read back")
    }

    #[tokio::test]
    async fn a_directory_context_honours_dockerignore_and_keeps_links() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("logs")).expect("mkdir");
        std::fs::create_dir_all(d.join("docs")).expect("mkdir");
        for (path, text) in [
            ("Dockerfile", "FROM scratch\n"),
            (
                ".dockerignore",
                "*.env\nlogs\n!logs/keep.log\nDockerfile\n.dockerignore\n",
            ),
            ("app.txt", "app"),
            ("prod.env", "SECRET=1"),
            ("docs/dev.env", "kept: *.env is the root's only"),
            ("logs/a.log", "dropped"),
            ("logs/keep.log", "kept"),
        ] {
            std::fs::write(d.join(path), text).expect("write");
        }
        std::os::unix::fs::symlink("app.txt", d.join("current")).expect("link");
        let got = sent(d).await;
        let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".dockerignore",
                "Dockerfile",
                "app.txt",
                "current",
                "logs/keep.log",
                "docs/dev.env"
            ]
        );
        assert_eq!(got[3].1, "-> app.txt", "a link stays a link");
        assert_eq!(got[4].1, "kept");
    }

    #[test]
    fn a_bad_dockerignore_names_the_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(".dockerignore"), "[oops\n").expect("write");
        let err = BuildContext::from_dir(dir.path()).expect_err("bad glob");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(".dockerignore"), "{err}");
    }
}
