//! The runbook's whole server in memory (`MemoryStack`): the five in-memory backends sharing one set of
//! faults, and the `Backends` of a `Deployer` that drives them.

use connect_core::engine::DeployConfig;
use connect_core::memory::{self as mem, AppBehavior, Faults};
use pyo3::prelude::*;

use crate::backends::Backends;
use crate::errors::invalid;
use crate::memory::{MemoryCache, MemoryCluster, MemoryHost, MemoryRouter, MemoryRuntime, fault_methods};

/// The runbook's whole server in memory: HAProxy's checks probe the blue and green containers.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct MemoryStack {
    pub(crate) inner: mem::MemoryStack,
}

fault_methods! {
    MemoryStack, "", "router.set_state", |this, op| this.faults_of(op);
    /// A fresh stack with the runbook's slots (`connect_app1`/`app1`, `connect_app2`/`app2`): no image, no
    /// container, both HAProxy servers in maintenance.
    #[new]
    fn new() -> MemoryStack {
        MemoryStack {
            inner: mem::MemoryStack::new(&DeployConfig::runbook().topology),
        }
    }

    /// The server.
    #[getter]
    fn host(&self) -> MemoryHost {
        MemoryHost {
            inner: self.inner.host.clone(),
        }
    }

    /// Docker.
    #[getter]
    fn runtime(&self) -> MemoryRuntime {
        MemoryRuntime {
            inner: self.inner.runtime.clone(),
        }
    }

    /// HAProxy's `be_app` backend.
    #[getter]
    fn router(&self) -> MemoryRouter {
        MemoryRouter {
            inner: self.inner.router.clone(),
        }
    }

    /// Puts an image on the machine running the deploy (not on the server), for a deploy with
    /// `image=reference` to ship.
    fn add_local_image(&self, reference: &str) {
        self.inner
            .runtime
            .add_local_image(reference, AppBehavior::default());
    }

    /// Puts a build context on the machine running the deploy, for a deploy with `context=dir` to build.
    fn add_build_context(&self, dir: &str) {
        self.inner.runtime.add_build_context(dir, AppBehavior::default());
    }

    /// Patroni.
    #[getter]
    fn database(&self) -> MemoryCluster {
        MemoryCluster {
            inner: self.inner.cluster.clone(),
        }
    }

    /// Redis.
    #[getter]
    fn cache(&self) -> MemoryCache {
        MemoryCache {
            inner: self.inner.cache.clone(),
        }
    }

    /// Makes a release's image present; see `MemoryRuntime.add_image`.
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
        self.runtime().add_image(
            release,
            ready_after,
            healthy,
            error_lines,
            migration_exit,
            migration_takes,
        )
    }

    /// The backends for a `Deployer`.
    fn backends(&self) -> Backends {
        Backends {
            inner: self.inner.backends(),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "MemoryStack(containers={:?}, files={})",
            self.inner.runtime.container_names(),
            self.inner.host.files().len()
        )
    }
}

impl MemoryStack {
    fn faults_of(&self, operation: &str) -> PyResult<&Faults> {
        let s = &self.inner;
        match operation.split_once('.').map(|(b, _)| b) {
            Some("host") => Ok(s.host.faults()),
            Some("runtime") => Ok(s.runtime.faults()),
            Some("router") => Ok(s.router.faults()),
            Some("database") => Ok(s.cluster.faults()),
            Some("cache") => Ok(s.cache.faults()),
            _ => Err(invalid(
                "faults.inject",
                operation,
                "the operation names no backend",
                "name it <backend>.<method> with backend host, runtime, router, database or cache",
            )),
        }
    }
}
