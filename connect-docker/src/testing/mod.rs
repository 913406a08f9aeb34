//! The harness for tests against a real Docker Engine (feature `testing`): the static test app and its
//! `FROM scratch` images, a second Docker daemon with its own socket and data root, a [`Host`](connect_core::host::Host) that opens
//! local sockets, and per-test cleanup of containers and images.
//!
//! No registry is reachable on the machines the tests run on, so every image is built here: the test app is
//! compiled once per target directory with `rustc -C target-feature=+crt-static` and cached by its source's
//! hash.

mod daemon;
mod socket_host;
mod swarm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use connect_core::model::{ImageRef, Release};
use connect_core::runtime::labels;
use connect_core::{Error, ErrorKind, Result};

pub use daemon::SecondDaemon;
pub use socket_host::SocketHost;
pub use swarm::{Availability, MANAGER_ADDR, TestSwarm, WORKER_ADDR};

use crate::{BuildContext, Docker, HealthProbe, Restart, SlotOptions};

const TEST_APP_SOURCE: &str = include_str!("testapp.rs");

/// The test app's probe as the health check: `FROM scratch` has no curl.
pub fn test_health_probe() -> HealthProbe {
    HealthProbe {
        command: vec!["/app".into(), "probe".into(), "{url}".into()],
        interval: std::time::Duration::from_millis(300),
        timeout: std::time::Duration::from_secs(2),
        retries: 2,
        start_period: std::time::Duration::ZERO,
    }
}

/// Slot options for the test app: its probe, no restart.
pub fn test_slot_options() -> SlotOptions {
    SlotOptions {
        health: test_health_probe(),
        restart: Restart::No,
        ..SlotOptions::default()
    }
}

fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "target"))
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(std::env::temp_dir)
}

fn source_hash() -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(TEST_APP_SOURCE.as_bytes());
    data_encoding::HEXLOWER.encode(&d[..8])
}

/// The statically linked test app, compiled on first use and cached in the target directory.
pub fn test_app_binary() -> Result<PathBuf> {
    // Tests of one binary run on parallel threads; one compiles, the others wait for it.
    static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = COMPILING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = target_dir().join("connect-docker-testapp").join(source_hash());
    let bin = dir.join("app");
    if bin.is_file() {
        return Ok(bin);
    }
    let fail = |m: String| {
        Error::new(
            ErrorKind::Failed,
            "testing.build_app",
            bin.display().to_string(),
            m,
        )
    };
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let src = dir.join("main.rs");
    std::fs::write(&src, TEST_APP_SOURCE).map_err(|e| fail(e.to_string()))?;
    // Each process compiles to its own name and renames, so parallel test binaries never see half a file.
    let tmp = dir.join(format!("app.{}", std::process::id()));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-o",
        ])
        .arg(&tmp)
        .arg(&src)
        .output()
        .map_err(|e| fail(format!("cannot run rustc: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "rustc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    std::fs::rename(&tmp, &bin).map_err(|e| fail(e.to_string()))?;
    Ok(bin)
}

/// The build context of the test app's image: `/app` as entrypoint, `extra` files copied in one more layer
/// each, and `env` baked in.
///
/// A base image (`from` is `None`) starts with a layer unique to the call, so no two tests share a build-cache
/// entry: one test's cleanup removing a cached intermediate image would break another's build.
pub fn test_app_context(
    from: Option<&str>,
    extra: &[(&str, Vec<u8>)],
    env: &[(&str, &str)],
) -> Result<BuildContext> {
    let mut dockerfile = String::new();
    let mut ctx = BuildContext::new();
    match from {
        Some(base) => dockerfile.push_str(&format!("FROM {base}\n")),
        None => {
            let bin = test_app_binary()?;
            let data = std::fs::read(&bin).map_err(|e| {
                Error::new(
                    ErrorKind::Failed,
                    "testing.context",
                    bin.display().to_string(),
                    e.to_string(),
                )
            })?;
            ctx = ctx.file("app", &data, 0o755)?;
            let id = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
            ctx = ctx.file("scope", id.as_bytes(), 0o644)?;
            dockerfile.push_str("FROM scratch\nCOPY scope /scope\nCOPY app /app\nENTRYPOINT [\"/app\"]\n");
        }
    }
    for (name, data) in extra {
        ctx = ctx.file(name, data, 0o644)?;
        dockerfile.push_str(&format!("COPY {name} /{name}\n"));
    }
    for (k, v) in env {
        dockerfile.push_str(&format!("ENV {k}={v}\n"));
    }
    ctx.dockerfile(&dockerfile)
}

/// Bytes that do not compress, `seed` making each call's content different.
pub fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One test's names and its cleanup: containers labelled with its app name and images of its repository.
#[derive(Debug, Clone)]
pub struct TestScope {
    /// Unique to the test and the run: the app label, the container name prefix and the image repository.
    pub prefix: String,
}

static SCOPES: AtomicU32 = AtomicU32::new(0);

impl TestScope {
    /// A scope named after the test.
    pub fn new(test: &str) -> TestScope {
        let n = SCOPES.fetch_add(1, Ordering::Relaxed);
        let test: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        TestScope {
            prefix: format!("ct-{}-{n}-{test}", std::process::id()),
        }
    }

    /// The release `<prefix>:<version>`.
    pub fn release(&self, version: &str) -> Release {
        Release::new(&self.prefix, version).expect("a valid test release")
    }

    /// The label that finds this test's containers.
    pub fn app_label(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(labels::APP.to_string(), self.prefix.clone())])
    }

    /// Removes this test's containers and images from `docker`, whatever state they are in.
    pub async fn clean(&self, docker: &Docker) {
        if let Ok(cs) = docker.list_containers(&self.app_label()).await {
            for c in cs {
                let _ = docker
                    .api()
                    .remove_container(
                        &c.id,
                        Some(bollard::query_parameters::RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        }),
                    )
                    .await;
            }
        }
        let _ = docker
            .api()
            .remove_container(
                &format!("{}_app1", self.prefix),
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        if let Ok(images) = docker.images(Some(&self.prefix)).await {
            for i in images {
                for t in i
                    .tags
                    .iter()
                    .filter(|t| t.starts_with(&format!("{}:", self.prefix)))
                {
                    let _ = docker.remove_image(t, true).await;
                }
            }
        }
    }

    /// Builds the test app image as `<prefix>:<version>`.
    pub async fn build(&self, docker: &Docker, version: &str, context: BuildContext) -> Result<ImageRef> {
        let release = self.release(version);
        docker.build_release(context, &release).await?;
        Ok(release.image)
    }

    /// Builds the test app, healthy, as `<prefix>:<version>`.
    pub async fn build_app(&self, docker: &Docker, version: &str) -> Result<ImageRef> {
        self.build(docker, version, test_app_context(None, &[], &[])?)
            .await
    }

    /// Builds `base` with `env` baked in (one layer on top) as `<prefix>:<version>`: `TESTAPP_HEALTH=fail`
    /// makes an app that never turns healthy, `RELEASE=…` a release that differs only in that.
    pub async fn build_on(
        &self,
        docker: &Docker,
        version: &str,
        base: &ImageRef,
        env: &[(&str, &str)],
    ) -> Result<ImageRef> {
        self.build(
            docker,
            version,
            test_app_context(Some(&base.to_string()), &[], env)?,
        )
        .await
    }
}

/// The local engine, or `None` (with a loud SKIP) when there is none and real tests are not required.
pub async fn local_docker(test: &str) -> Option<Docker> {
    connect_core::testing::require_program(test, "dockerd", &["/usr/sbin/dockerd", "/usr/bin/dockerd"])?;
    match Docker::connect().await {
        Ok(d) => Some(d.with_slot_options(test_slot_options())),
        Err(e) if connect_core::testing::real_tests_required() => {
            panic!("{test}: the Docker daemon is required (CONNECT_REAL_TESTS=1): {e}")
        }
        Err(e) => {
            eprintln!("SKIP (real test) {test}: no Docker daemon: {e}");
            None
        }
    }
}
