//! The five backends a `Deployer` drives, from whichever Python objects provide them.
//!
//! Each backend class (in-memory or real) is one arm of the matching `*_arg` function below; `Backends` and
//! `Deployer` do not know which kind they drive.

use std::sync::Arc;

use connect_core::engine;
use connect_core::{Cache, ContainerRuntime, DatabaseCluster, TrafficRouter};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::convert::type_name;
use crate::docker::Docker;
use crate::hosts::any_host;
use crate::memory::{MemoryCache, MemoryCluster, MemoryRouter, MemoryRuntime};
use crate::router::Haproxy;
use crate::services::{PatroniCluster, Redis};

pub(crate) fn wrong(role: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("{role} must be a {expected}, not {}", type_name(obj)))
}

fn runtime_arg(obj: &Bound<'_, PyAny>) -> PyResult<Arc<dyn ContainerRuntime>> {
    if let Ok(r) = obj.cast::<MemoryRuntime>() {
        return Ok(Arc::new(r.get().inner.clone()));
    }
    if let Ok(d) = obj.cast::<Docker>() {
        return Ok(Arc::new(d.get().inner.clone()));
    }
    Err(wrong("runtime", "connect_ops.Docker or MemoryRuntime", obj))
}

fn router_arg(obj: &Bound<'_, PyAny>) -> PyResult<Arc<dyn TrafficRouter>> {
    if let Ok(r) = obj.cast::<MemoryRouter>() {
        return Ok(Arc::new(r.get().inner.clone()));
    }
    if let Ok(h) = obj.cast::<Haproxy>() {
        return Ok(Arc::new(h.get().inner.clone()));
    }
    Err(wrong("router", "connect_ops.Haproxy or MemoryRouter", obj))
}

fn database_arg(obj: &Bound<'_, PyAny>) -> PyResult<Arc<dyn DatabaseCluster>> {
    if let Ok(c) = obj.cast::<MemoryCluster>() {
        return Ok(Arc::new(c.get().inner.clone()));
    }
    if let Ok(c) = obj.cast::<PatroniCluster>() {
        return Ok(Arc::new(c.get().inner.clone()));
    }
    Err(wrong(
        "database",
        "connect_ops.PatroniCluster or MemoryCluster",
        obj,
    ))
}

fn cache_arg(obj: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Cache>> {
    if let Ok(c) = obj.cast::<MemoryCache>() {
        return Ok(Arc::new(c.get().inner.clone()));
    }
    if let Ok(r) = obj.cast::<Redis>() {
        return Ok(Arc::new(r.get().inner.clone()));
    }
    Err(wrong("cache", "connect_ops.Redis or MemoryCache", obj))
}

/// The server, the container runtime, the router, the database cluster and the cache of one deployment.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct Backends {
    pub(crate) inner: engine::Backends,
}

#[pymethods]
impl Backends {
    /// Composes backends one by one, e.g. a real server with an in-memory cache.
    #[new]
    #[pyo3(signature = (*, host, runtime, router, database, cache))]
    fn new(
        host: &Bound<'_, PyAny>,
        runtime: &Bound<'_, PyAny>,
        router: &Bound<'_, PyAny>,
        database: &Bound<'_, PyAny>,
        cache: &Bound<'_, PyAny>,
    ) -> PyResult<Backends> {
        Ok(Backends {
            inner: engine::Backends {
                host: any_host("host", host)?,
                runtime: runtime_arg(runtime)?,
                router: router_arg(router)?,
                database: database_arg(database)?,
                cache: cache_arg(cache)?,
            },
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Backends(host={:?}, router={:?})",
            self.inner.host.name(),
            self.inner.router.backend()
        )
    }
}
