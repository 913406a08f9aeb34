//! The demo app's releases as images: v1 (no migration), v2 (brings the `visits` migration) and v3 (same as
//! v2, another version), built from one static binary so they share its layer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use connect_core::model::Release;
use connect_core::{Error, ErrorKind, Result};
use connect_docker::testing::SecondDaemon;
use connect_docker::{BuildContext, Docker, TransferOptions, TransferReport};

use crate::demo_image;

/// The versions every stack builds.
pub(super) const VERSIONS: [&str; 3] = ["v1", "v2", "v3"];

/// The releases of one stack and where they were built.
pub struct Releases {
    repository: String,
    /// The build machine, when the stack has one: releases are built there and shipped to the server.
    builder: Option<(SecondDaemon, Docker)>,
    server: Docker,
    /// Versions built later by a test ([`Releases::build_extra`]), removed with the others.
    extra: std::sync::Mutex<Vec<String>>,
}

/// The static demo-app binary, built once per process (minutes from cold, seconds after).
fn static_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new("."));
            demo_image::build_static(workspace).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::new(ErrorKind::Failed, "build demo app", "connect-demo-app", e))
}

impl std::fmt::Debug for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Releases")
            .field("repository", &self.repository)
            .field("built_elsewhere", &self.builder.is_some())
            .finish_non_exhaustive()
    }
}

impl Releases {
    /// Builds every version as `<repository>:<version>`: on a second Docker Engine started for the purpose
    /// when `build_machine` (ship them with [`Releases::ship`]), else straight on `server`.
    pub async fn build(
        repository: &str,
        server: &Docker,
        build_machine: bool,
        test: &str,
    ) -> Result<Releases> {
        let binary = tokio::task::spawn_blocking(static_binary).await.map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "build demo app",
                "connect-demo-app",
                e.to_string(),
            )
        })??;
        let builder = if build_machine {
            let daemon = SecondDaemon::start(test)
                .await
                .ok_or_else(|| Error::new(ErrorKind::Unavailable, "build machine", "dockerd", "skipped"))?;
            let docker = daemon.docker().await?;
            Some((daemon, docker))
        } else {
            None
        };
        let releases = Releases {
            repository: repository.to_string(),
            builder,
            server: server.clone(),
            extra: std::sync::Mutex::default(),
        };
        let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let dir = tempfile::tempdir()
            .map_err(|e| Error::new(ErrorKind::Failed, "build releases", "temp dir", e.to_string()))?;
        let engine = releases.build_engine();
        for version in VERSIONS {
            let context = dir.path().join(version);
            let with_migrations = (version != "v1").then_some(migrations.as_path());
            demo_image::write_context(&context, &binary, version, with_migrations)?;
            engine
                .build_release(BuildContext::from_dir(&context)?, &releases.release(version))
                .await?;
        }
        Ok(releases)
    }

    /// Builds one more release of the demo app, `version`, whose image carries the migrations of
    /// `migrations` (one `<name>/migration.sql` per migration; `None`: none, as v1), where the stack builds
    /// the others; a test's own release, e.g. one with a destructive migration. It shares every layer but its
    /// version's with the release of the same migrations (a cheap new release to ship). Ship it with
    /// [`Releases::ship`].
    pub async fn build_extra(&self, version: &str, migrations: Option<&Path>) -> Result<Release> {
        let binary = tokio::task::spawn_blocking(static_binary).await.map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "build demo app",
                "connect-demo-app",
                e.to_string(),
            )
        })??;
        let dir = tempfile::tempdir()
            .map_err(|e| Error::new(ErrorKind::Failed, "build release", "temp dir", e.to_string()))?;
        demo_image::write_context(dir.path(), &binary, version, migrations)?;
        let release = self.release(version);
        self.extra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(version.to_string());
        self.build_engine()
            .build_release(BuildContext::from_dir(dir.path())?, &release)
            .await?;
        Ok(release)
    }

    fn build_engine(&self) -> &Docker {
        self.builder.as_ref().map_or(&self.server, |(_, d)| d)
    }

    /// The release `<repository>:<version>`.
    pub fn release(&self, version: &str) -> Release {
        Release::new(&self.repository, version).expect("the stack's repository and versions are valid")
    }

    /// Ships `version` from the build machine to the server, only the layers the server lacks. `None` when
    /// the releases were built on the server.
    pub async fn ship(&self, version: &str) -> Result<Option<TransferReport>> {
        let Some((_, builder)) = &self.builder else {
            return Ok(None);
        };
        let report = builder
            .transfer_image(
                &self.server,
                &self.release(version).image,
                &TransferOptions::default(),
            )
            .await?;
        Ok(Some(report))
    }
}

impl Drop for Releases {
    /// Removes the releases from the server, also when building them failed half-way (through the Docker
    /// CLI: drop may run outside a runtime).
    fn drop(&mut self) {
        let extra = self.extra.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let tags: Vec<String> = VERSIONS
            .iter()
            .map(|v| v.to_string())
            .chain(extra)
            .map(|v| format!("{}:{v}", self.repository))
            .collect();
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f"])
            .args(&tags)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
