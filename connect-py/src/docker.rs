//! The Docker Engine for Python: the runtime a `Deployer` drives, plus what an ops script does around a
//! deploy: build a release, ship it to the server (only the missing layers) with progress, read a
//! container's logs, prune old releases. Each method is one call of `connect_docker`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_core::ContainerRuntime;
use connect_docker::{
    BuildContext, Compression, HealthProbe, ProgressFn, Secrets, SlotOptions, TransferOptions,
    TransferProgress,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use serde_json::json;

use crate::bridge::{block, lock, logs_of};
use crate::convert::{seconds, type_name, typed, typed_list, whole};
use crate::errors::{invalid, py as core_py};
use crate::hosts::server_host;
use crate::release::{image_arg, release_arg};

/// How often a ship's progress callback hears of bytes on the wire: each call takes the GIL, and a fast
/// link sends thousands of chunks a second. The plan, each layer and the end are always reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A Docker Engine through its API.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct Docker {
    pub(crate) inner: connect_docker::Docker,
}

/// The container health check of a color: `None` keeps the default (`curl` in the container), `"host"`
/// turns Docker's check off so the engine asks the app from the host, a list is the argv run in the container.
fn health_probe(probe: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    let Some(probe) = probe else {
        return Ok(None);
    };
    if let Ok(s) = probe.extract::<String>() {
        if s == "host" {
            return Ok(Some(Vec::new()));
        }
        return Err(invalid(
            "docker.health_probe",
            &s,
            "a health probe is \"host\" or an argv list",
            "e.g. health_probe=[\"wget\", \"-qO-\", \"{url}\"], or \"host\" for an image without an HTTP client",
        ));
    }
    let argv: Vec<String> = probe.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "health_probe must be \"host\" or a list of str, not {}",
            type_name(probe)
        ))
    })?;
    if argv.is_empty() {
        return Err(invalid(
            "docker.health_probe",
            "[]",
            "an empty health probe command",
            "give the argv, e.g. [\"wget\", \"-qO-\", \"{url}\"], or \"host\"",
        ));
    }
    Ok(Some(argv))
}

/// Calls a Python progress callback from Rust: briefly under the GIL, byte counts at most every
/// [`PROGRESS_EVERY`], and never again after it raised (the error is raised once the transfer is over).
struct Progress {
    callback: Py<PyAny>,
    last_bytes: Mutex<Option<Instant>>,
    error: Mutex<Option<PyErr>>,
}

impl Progress {
    fn report(&self, progress: &TransferProgress) {
        if lock(&self.error).is_some() {
            return;
        }
        if let TransferProgress::Bytes { .. } = progress {
            let mut last = lock(&self.last_bytes);
            if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let result = Python::attach(|py| {
            let event = typed(py, "TransferProgress", progress)?;
            self.callback.call1(py, (event,)).map(drop)
        });
        if let Err(e) = result {
            *lock(&self.error) = Some(e);
        }
    }
}

fn compression(name: Option<&str>) -> PyResult<Option<Compression>> {
    match name {
        None => Ok(None),
        Some("zstd") => Ok(Some(Compression::Zstd)),
        Some("gzip") => Ok(Some(Compression::Gzip)),
        Some("none") => Ok(Some(Compression::None)),
        Some(other) => Err(invalid(
            "docker.ship",
            other,
            "unknown compression; expected \"zstd\", \"gzip\" or \"none\"",
            "leave it None to pick what the destination's engine unpacks",
        )),
    }
}

#[pymethods]
impl Docker {
    /// Connects and negotiates the API version (blocking, GIL released): with no argument the engine of
    /// `DOCKER_HOST` or the local socket; `socket` a local unix socket; `host` (an `SshHost` or `LocalHost`)
    /// the engine behind `socket` (default `/var/run/docker.sock`) on that server, each HTTP connection a
    /// stream the host opens (over SSH, a `direct-streamlocal` channel). `UnavailableError` when no daemon
    /// answers. The rest shapes the colors' containers: `network` to join (`"host"` shares the server's),
    /// `secrets_file` an env file whose values reach the containers only (never a log), and `health_probe`
    /// the container's health check: the argv Docker runs inside it (`{url}` is the health URL; the
    /// default is `curl`), or `"host"` for an image without an HTTP client: no check inside the container,
    /// the engine asks the app over HTTP from the host instead.
    #[new]
    #[pyo3(signature = (
        *, socket=None, host=None, network=None, secrets_file=None, health_probe=None, health_interval=2.0,
        health_retries=3
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        socket: Option<String>,
        host: Option<&Bound<'_, PyAny>>,
        network: Option<String>,
        secrets_file: Option<PathBuf>,
        health_probe: Option<&Bound<'_, PyAny>>,
        health_interval: f64,
        health_retries: i64,
    ) -> PyResult<Docker> {
        let host = server_host(host)?;
        let mut options = SlotOptions {
            network,
            health: HealthProbe {
                interval: seconds("health_interval", health_interval)?,
                retries: whole("health_retries", health_retries, "a count of 1 or more")?,
                ..HealthProbe::default()
            },
            ..SlotOptions::default()
        };
        if let Some(command) = self::health_probe(health_probe)? {
            options.health.command = command;
        }
        if let Some(path) = secrets_file {
            options.secrets = core_py(Secrets::from_env_file(&path))?;
        }
        let inner = block(py, async move {
            core_py(match (host, socket) {
                (Some(h), s) => {
                    let s = s.unwrap_or_else(|| connect_docker::DEFAULT_SOCKET.to_string());
                    connect_docker::Docker::connect_via(h, &s).await
                }
                (None, Some(s)) => connect_docker::Docker::connect_socket(&s).await,
                (None, None) => connect_docker::Docker::connect().await,
            })
        })?;
        Ok(Docker {
            inner: inner.with_slot_options(options),
        })
    }

    /// Where the engine is (`unix:///var/run/docker.sock`, `deploy@prod-host:22:/var/run/docker.sock`).
    #[getter]
    fn location(&self) -> String {
        self.inner.location().to_string()
    }

    /// The API version in use after negotiation, e.g. `1.41`.
    #[getter]
    fn api_version(&self) -> String {
        self.inner.api_version()
    }

    /// The names of the secrets the colors' containers get (never their values).
    #[getter]
    fn secret_names(&self) -> Vec<String> {
        self.inner
            .slot_options()
            .secrets
            .names()
            .map(str::to_string)
            .collect()
    }

    /// The engine's version, e.g. `20.10.24`.
    fn engine_version(&self, py: Python<'_>) -> PyResult<String> {
        let d = self.inner.clone();
        block(py, async move { core_py(d.engine_version().await) })
    }

    /// A container (`ContainerInfo`), or `None` when there is none of that name.
    fn inspect(&self, py: Python<'_>, name: String) -> PyResult<Option<Py<PyAny>>> {
        let d = self.inner.clone();
        let info = block(py, async move { core_py(d.inspect(&name).await) })?;
        info.map(|i| typed(py, "ContainerInfo", &i)).transpose()
    }

    /// The containers carrying every one of these labels (all containers when empty).
    #[pyo3(signature = (labels=None))]
    fn containers(
        &self,
        py: Python<'_>,
        labels: Option<BTreeMap<String, String>>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let d = self.inner.clone();
        let labels = labels.unwrap_or_default();
        let list = block(py, async move { core_py(d.list(&labels).await) })?;
        typed_list(py, "ContainerInfo", &list)
    }

    /// A container's log lines (stdout and stderr) written in the last `since_seconds`, oldest first.
    #[pyo3(signature = (name, since_seconds=300.0))]
    fn logs(&self, py: Python<'_>, name: String, since_seconds: f64) -> PyResult<Vec<String>> {
        logs_of(py, Arc::new(self.inner.clone()), name, since_seconds)
    }

    /// Builds `release` from the local directory `context_dir` (its `Dockerfile` and every file under it,
    /// sent through the API), tagged with the release's image and labelled with its version (`ImageInfo`).
    /// A failing build raises `FailedError` with the builder's last lines; its output goes to logging
    /// (`connect_docker.images`, DEBUG).
    fn build_release(
        &self,
        py: Python<'_>,
        context_dir: PathBuf,
        release: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let release = release_arg(release)?;
        let context = core_py(BuildContext::from_dir(&context_dir))?;
        let d = self.inner.clone();
        let info = block(
            py,
            async move { core_py(d.build_release(context, &release).await) },
        )?;
        typed(py, "ImageInfo", &info)
    }

    /// The image of a reference or id (`ImageInfo` with its layers), or `None` when the engine lacks it.
    fn image(&self, py: Python<'_>, reference: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let reference = match reference.extract::<String>() {
            Ok(s) => s,
            Err(_) => image_arg(reference)?.to_string(),
        };
        let d = self.inner.clone();
        let info = block(py, async move { core_py(d.image_info(&reference).await) })?;
        info.map(|i| typed(py, "ImageInfo", &i)).transpose()
    }

    /// Ships `release`'s image from this engine to `dest` (the server's engine), sending only the layers
    /// `dest` lacks, then tags it there (`ShipReport`). `on_progress` is called with each `TransferProgress`
    /// (the plan, each layer sent, bytes on the wire at most every 0.1 s, the load); an exception it raises
    /// stops the reports and is raised after the transfer. `compression` is `"zstd"`, `"gzip"` or `"none"`
    /// (default: what `dest` unpacks); `fallback_to_whole` sends the whole image if the incremental load fails.
    #[pyo3(signature = (dest, release, *, on_progress=None, compression=None, fallback_to_whole=true))]
    fn ship(
        &self,
        py: Python<'_>,
        dest: &Bound<'_, PyAny>,
        release: &Bound<'_, PyAny>,
        on_progress: Option<Py<PyAny>>,
        compression: Option<&str>,
        fallback_to_whole: bool,
    ) -> PyResult<Py<PyAny>> {
        let dest = dest
            .cast::<Docker>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "dest must be a connect_ops.Docker, not {}",
                    type_name(dest)
                ))
            })?
            .get()
            .inner
            .clone();
        let image = image_arg(release)?;
        let progress = on_progress.map(|callback| {
            Arc::new(Progress {
                callback,
                last_bytes: Mutex::new(None),
                error: Mutex::new(None),
            })
        });
        let options = TransferOptions {
            compression: self::compression(compression)?,
            fallback_to_whole,
            progress: progress.clone().map(|p| {
                let f: ProgressFn = Arc::new(move |event: &TransferProgress| p.report(event));
                f
            }),
            cut_off_after: None,
        };
        let source = self.inner.clone();
        let report = block(py, async move {
            core_py(source.transfer_image(&dest, &image, &options).await)
        })?;
        if let Some(e) = progress.and_then(|p| lock(&p.error).take()) {
            return Err(e);
        }
        let raw = json!({
            "image": report.image, "image_id": report.image_id, "method": report.method,
            "compression": report.compression, "layers_total": report.layers_total,
            "layers_sent": report.layers_sent, "archive_bytes": report.archive_bytes,
            "wire_bytes": report.wire_bytes, "took_seconds": report.duration.as_secs_f64(),
        });
        typed(py, "ShipReport", &raw)
    }

    /// Removes the releases of `repository` but the newest `keep` and the images of `protect` (the live and
    /// standby releases); an image a container still uses is kept (`PruneReport`).
    #[pyo3(signature = (repository, *, keep=3, protect=None))]
    fn prune_releases(
        &self,
        py: Python<'_>,
        repository: String,
        keep: i64,
        protect: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<Py<PyAny>> {
        let keep: usize = whole("keep", keep, "a count of 0 or more")?;
        let protect = protect
            .unwrap_or_default()
            .iter()
            .map(image_arg)
            .collect::<PyResult<Vec<_>>>()?;
        let d = self.inner.clone();
        let report = block(py, async move {
            let refs: Vec<_> = protect.iter().collect();
            core_py(d.prune_releases(&repository, keep, &refs).await)
        })?;
        typed(
            py,
            "PruneReport",
            &json!({"removed": report.removed, "kept": report.kept}),
        )
    }

    /// Removes an image reference (the image too when it was its last one); `NotFoundError` when absent.
    #[pyo3(signature = (reference, *, force=false))]
    fn remove_image(&self, py: Python<'_>, reference: String, force: bool) -> PyResult<()> {
        let d = self.inner.clone();
        block(
            py,
            async move { core_py(d.remove_image(&reference, force).await) },
        )
    }

    fn __repr__(&self) -> String {
        format!("Docker({:?})", self.inner.location())
    }
}
