//! Several app hosts in one deploy (`connect_core::engine::fleet::Fleet`) for Python: `MemoryFleet` (app
//! hosts in memory behind one router) and `_Fleet`, the engine half of `connect_ops.Fleet`.
//!
//! As with `Deployer`, results cross as the core's JSON (`FleetReport`, `FleetStatus`) and `_fleet.py` types
//! them; events cross one by one with the name of the host they come from. Operations run to their end
//! whatever the callback does: a fleet deploy is never abandoned between its hosts.

use std::future::Future;
use std::sync::Arc;

use connect_core::engine::Event;
use connect_core::engine::fleet::{self as core_fleet, FleetPolicy, FleetReport, Role};
use connect_core::memory as mem;
use connect_core::model::Release;
use connect_core::ship::ReleaseSource;
use connect_core::{Error, ErrorKind};
use futures::future::select_all;
use pyo3::prelude::*;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::backends::wrong;
use crate::bridge::{awaitable, block};
use crate::convert::{to_json, whole};
use crate::deployer::{Deployer, source_arg};
use crate::errors::{invalid, py as core_py};
use crate::memory::{MemoryCache, MemoryCluster, MemoryHost, MemoryRouter, MemoryRuntime};
use crate::release::release_arg;
use crate::settings::DeployConfig;

/// App hosts in memory, each with its machine and Docker engine, behind one router with `<host>_blue` and
/// `<host>_green`, sharing one database and cache.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct MemoryFleet {
    pub(crate) inner: mem::MemoryFleet,
}

impl MemoryFleet {
    fn member(&self, name: &str) -> PyResult<&mem::MemoryAppHost> {
        core_py(self.inner.host(name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "memory_fleet.host",
                name,
                "no app host of this name",
            )
            .with_hint(format!("the hosts: {}", self.names().join(", ")))
        }))
    }

    fn names(&self) -> Vec<String> {
        self.inner.hosts.iter().map(|h| h.name.clone()).collect()
    }
}

#[pymethods]
impl MemoryFleet {
    /// Web hosts named `hosts` (`["web1", "web2"]`) and worker hosts named `workers` (no server in the
    /// router; they run the app as a worker): no image, no container, every server in maintenance.
    #[new]
    #[pyo3(signature = (hosts, *, workers = Vec::new()))]
    fn new(hosts: Vec<String>, workers: Vec<String>) -> PyResult<MemoryFleet> {
        if hosts.is_empty() {
            return Err(invalid(
                "memory_fleet.new",
                "hosts",
                "a fleet needs at least one app host",
                "name them, e.g. MemoryFleet([\"web1\", \"web2\"])",
            ));
        }
        let roles: Vec<(&str, Role)> = hosts
            .iter()
            .map(|h| (h.as_str(), Role::Web))
            .chain(workers.iter().map(|h| (h.as_str(), Role::Worker)))
            .collect();
        Ok(MemoryFleet {
            inner: mem::MemoryFleet::with_roles(&roles),
        })
    }

    /// The app hosts' names, in order.
    #[getter]
    fn hosts(&self) -> Vec<String> {
        self.names()
    }

    /// Host `name`'s machine; `NotFoundError` for a name the fleet lacks.
    fn host(&self, name: &str) -> PyResult<MemoryHost> {
        Ok(MemoryHost {
            inner: self.member(name)?.host.clone(),
        })
    }

    /// Host `name`'s Docker engine (give it an image that behaves otherwise than the other hosts').
    fn runtime(&self, name: &str) -> PyResult<MemoryRuntime> {
        Ok(MemoryRuntime {
            inner: self.member(name)?.runtime.clone(),
        })
    }

    /// The one HAProxy backend, with two servers per host.
    #[getter]
    fn router(&self) -> MemoryRouter {
        MemoryRouter {
            inner: self.inner.router.clone(),
        }
    }

    /// Patroni, shared.
    #[getter]
    fn database(&self) -> MemoryCluster {
        MemoryCluster {
            inner: self.inner.cluster.clone(),
        }
    }

    /// Redis, shared.
    #[getter]
    fn cache(&self) -> MemoryCache {
        MemoryCache {
            inner: self.inner.cache.clone(),
        }
    }

    /// Makes a release's image present on every host; see `MemoryRuntime.add_image`.
    #[pyo3(signature = (release, *, ready_after=1.5, healthy=true, error_lines=0, migration_exit=0, migration_takes=0.0))]
    fn add_image(
        &self,
        release: &Bound<'_, PyAny>,
        ready_after: f64,
        healthy: bool,
        error_lines: i64,
        migration_exit: i64,
        migration_takes: f64,
    ) -> PyResult<()> {
        for h in &self.inner.hosts {
            MemoryRuntime {
                inner: h.runtime.clone(),
            }
            .add_image(
                release,
                ready_after,
                healthy,
                error_lines,
                migration_exit,
                migration_takes,
            )?;
        }
        Ok(())
    }

    /// Cuts the connection to host `name`: every call to its machine or engine fails as `unavailable`.
    fn cut(&self, name: &str) -> PyResult<()> {
        self.member(name)?;
        self.inner.cut(name);
        Ok(())
    }

    /// Undoes `cut`.
    fn reconnect(&self, name: &str) -> PyResult<()> {
        self.member(name)?;
        self.inner.reconnect(name);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("MemoryFleet(hosts={:?})", self.names())
    }
}

/// The operations of a fleet that report progress.
#[derive(Debug, Clone)]
enum Op {
    Deploy(Release, Option<ReleaseSource>),
    Rollback,
}

/// Runs `op` while handing every host's events (as JSON) to `sink` with the host's name, each event before
/// the result.
async fn run_with_events(
    fleet: Arc<core_fleet::Fleet>,
    op: Op,
    mut sink: impl FnMut(&str, String) + Send,
) -> connect_core::Result<FleetReport> {
    let mut receivers: Vec<(String, Receiver<Event>)> = fleet
        .hosts()
        .into_iter()
        .filter_map(|h| Some((h.to_string(), fleet.deployer(h)?.subscribe())))
        .collect();
    let work = async {
        match op {
            Op::Deploy(release, None) => fleet.deploy(release).await,
            Op::Deploy(release, Some(source)) => fleet.deploy_from(release, source).await,
            Op::Rollback => fleet.rollback().await,
        }
    };
    let mut work = std::pin::pin!(work);
    let mut forward = |host: &str, event: &Event| {
        if let Ok(json) = serde_json::to_string(event) {
            sink(host, json);
        }
    };
    loop {
        if receivers.is_empty() {
            return work.await;
        }
        let recvs = receivers
            .iter_mut()
            .enumerate()
            .map(|(i, (_, r))| Box::pin(async move { (i, r.recv().await) }));
        let next = tokio::select! {
            biased;
            ((i, event), _, _) = select_all(recvs) => Err((i, event)),
            result = work.as_mut() => Ok(result),
        };
        match next {
            Err((i, Ok(event))) => forward(&receivers[i].0, &event),
            // A slow callback missed some events; the operation goes on, the record has every step.
            Err((_, Err(RecvError::Lagged(_)))) => {}
            Err((i, Err(RecvError::Closed))) => {
                receivers.remove(i);
            }
            Ok(result) => {
                for (host, r) in &mut receivers {
                    while let Ok(event) = r.try_recv() {
                        forward(host, &event);
                    }
                }
                return result;
            }
        }
    }
}

/// Runs `op` calling `on_event(host, event_json)` for each event; the callback's first exception stops
/// further calls and is raised once the operation has finished.
async fn run_with_callback(
    fleet: Arc<core_fleet::Fleet>,
    op: Op,
    on_event: Option<Py<PyAny>>,
) -> PyResult<String> {
    let mut callback = on_event;
    let mut callback_error: Option<PyErr> = None;
    let result = run_with_events(fleet, op, |host, json| {
        if let Some(cb) = &callback
            && let Err(e) = Python::attach(|py| cb.call1(py, (host, json)).map(drop))
        {
            callback_error = Some(e);
            callback = None;
        }
    })
    .await;
    let report = core_py(result)?;
    if let Some(e) = callback_error {
        return Err(e);
    }
    to_json(&report)
}

/// `connect_ops.Fleet`'s engine half.
#[pyclass(frozen, module = "connect_ops", name = "_Fleet")]
#[derive(Debug)]
pub struct Fleet {
    inner: Arc<core_fleet::Fleet>,
}

fn policy(min_healthy_hosts: Option<i64>) -> PyResult<FleetPolicy> {
    Ok(FleetPolicy {
        min_healthy_hosts: min_healthy_hosts
            .map(|n| whole("min_healthy_hosts", n, "a count from 1 to the number of hosts"))
            .transpose()?,
    })
}

impl Fleet {
    fn op(&self, op: Op, on_event: Option<Py<PyAny>>) -> impl Future<Output = PyResult<String>> + use<> {
        run_with_callback(self.inner.clone(), op, on_event)
    }

    fn status_json(&self) -> impl Future<Output = PyResult<String>> + use<> {
        let fleet = self.inner.clone();
        async move { to_json(&fleet.status().await) }
    }
}

#[pymethods]
impl Fleet {
    /// A fleet over `hosts` (a `MemoryFleet`) with every host's `config`; `min_healthy_hosts` as
    /// `FleetPolicy`'s (`None`: every host must be ready).
    #[new]
    #[pyo3(signature = (hosts, config, *, min_healthy_hosts=None))]
    fn new(
        hosts: &Bound<'_, PyAny>,
        config: &DeployConfig,
        min_healthy_hosts: Option<i64>,
    ) -> PyResult<Fleet> {
        let stack = hosts
            .cast::<MemoryFleet>()
            .map_err(|_| wrong("hosts", "connect_ops.MemoryFleet", hosts))?;
        let stack = &stack.get().inner;
        let fleet = core_py(core_fleet::Fleet::new(
            stack.app_hosts(),
            stack.shared(),
            config.inner.clone(),
            policy(min_healthy_hosts)?,
        ))?;
        Ok(Fleet {
            inner: Arc::new(fleet),
        })
    }

    /// The fleet `connect.toml` at `path` describes with `[[app_hosts]]` (the same composition as
    /// `connect-ops deploy`): `[server]` for HAProxy, Patroni and Redis, one SSH connection per app host.
    /// Connects, with the GIL released.
    #[staticmethod]
    fn from_config(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Fleet> {
        let fleet = block(py, async move {
            let config = core_py(connect_examples::config::ConnectConfig::load(&path))?;
            core_py(config.fleet_shipping(config.release_source().as_ref()).await)
        })?;
        Ok(Fleet {
            inner: Arc::new(fleet),
        })
    }

    /// The hosts' names, in order (the first runs the migration).
    #[getter]
    fn hosts(&self) -> Vec<String> {
        self.inner.hosts().into_iter().map(str::to_string).collect()
    }

    /// `FleetPolicy::min_healthy_hosts`.
    #[getter]
    fn min_healthy_hosts(&self) -> Option<usize> {
        self.inner.policy().min_healthy_hosts
    }

    /// One host's own deployer (its journal, status, adopt, or an operation on it alone).
    fn deployer(&self, host: &str) -> PyResult<Deployer> {
        let d = self.inner.deployer(host).ok_or_else(|| {
            crate::errors::CoreError(
                Error::new(
                    ErrorKind::NotFound,
                    "fleet.deployer",
                    host,
                    "no app host of this name",
                )
                .with_hint(format!("the hosts: {}", self.inner.hosts().join(", "))),
            )
        })?;
        Ok(Deployer::wrap(d.clone()))
    }

    #[pyo3(signature = (release, on_event=None, source=None))]
    fn deploy(
        &self,
        py: Python<'_>,
        release: &Bound<'_, PyAny>,
        on_event: Option<Py<PyAny>>,
        source: Option<&str>,
    ) -> PyResult<String> {
        let op = Op::Deploy(release_arg(release)?, source_arg(source)?);
        block(py, self.op(op, on_event))
    }

    #[pyo3(signature = (release, on_event=None, source=None))]
    fn deploy_async<'py>(
        &self,
        py: Python<'py>,
        release: &Bound<'_, PyAny>,
        on_event: Option<Py<PyAny>>,
        source: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = Op::Deploy(release_arg(release)?, source_arg(source)?);
        awaitable(py, self.op(op, on_event))
    }

    #[pyo3(signature = (on_event=None))]
    fn rollback(&self, py: Python<'_>, on_event: Option<Py<PyAny>>) -> PyResult<String> {
        block(py, self.op(Op::Rollback, on_event))
    }

    #[pyo3(signature = (on_event=None))]
    fn rollback_async<'py>(
        &self,
        py: Python<'py>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.op(Op::Rollback, on_event))
    }

    fn status(&self, py: Python<'_>) -> PyResult<String> {
        block(py, self.status_json())
    }

    fn status_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.status_json())
    }
}
