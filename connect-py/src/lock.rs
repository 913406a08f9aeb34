//! The deploy lock held by a script between operations (`Deployer.lock()` in Python, a `with` or
//! `async with` block): one `connect_core::engine::HeldLock`, released once.

use std::sync::{Arc, Mutex};

use connect_core::engine::{self, HeldLock};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::bridge::{awaitable, block, lock};
use crate::convert::to_json;
use crate::errors::py as core_py;

type Slot = Arc<Mutex<Option<HeldLock>>>;

/// `Deployer.lock()`'s engine half; `connect_ops.DeployLock` wraps it as a context manager.
#[pyclass(frozen, module = "connect_ops", name = "_HeldLock")]
#[derive(Debug)]
pub struct PyHeldLock {
    held: Slot,
}

fn took_over_json(held: &HeldLock) -> PyResult<String> {
    to_json(&held.took_over())
}

async fn release(held: Slot) -> PyResult<()> {
    let taken = lock(&held).take();
    match taken {
        Some(h) => core_py(h.release().await),
        // Released already: `with` blocks release once, and a second release is a no-op.
        None => Ok(()),
    }
}

impl PyHeldLock {
    pub(crate) fn new(held: HeldLock) -> PyHeldLock {
        PyHeldLock {
            held: Arc::new(Mutex::new(Some(held))),
        }
    }
}

/// Takes the lock (blocking, GIL released).
pub(crate) fn hold(py: Python<'_>, d: &engine::Deployer) -> PyResult<PyHeldLock> {
    let d = d.clone();
    let held = block(py, async move { core_py(d.hold_lock().await) })?;
    Ok(PyHeldLock::new(held))
}

/// Takes the lock, for asyncio.
pub(crate) fn hold_async<'py>(py: Python<'py>, d: &engine::Deployer) -> PyResult<Bound<'py, PyAny>> {
    let d = d.clone();
    awaitable(py, async move {
        let held = core_py(d.hold_lock().await)?;
        Ok(PyHeldLock::new(held))
    })
}

#[pymethods]
impl PyHeldLock {
    /// Whether the lock was lost (its lease could not be renewed, or it was broken and taken by another).
    #[getter]
    fn lost(&self) -> bool {
        lock(&self.held).as_ref().is_some_and(HeldLock::is_lost)
    }

    /// Whether it is still held by this object (not released).
    #[getter]
    fn held(&self) -> bool {
        lock(&self.held).is_some()
    }

    /// JSON of the holder whose expired lock this one took over, or `null`.
    fn took_over(&self) -> PyResult<String> {
        match &*lock(&self.held) {
            Some(h) => took_over_json(h),
            None => Err(PyRuntimeError::new_err(
                "connect_ops: the deploy lock was released",
            )),
        }
    }

    /// Releases the lock (blocking, GIL released); raises when it was lost meanwhile.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        block(py, release(self.held.clone()))
    }

    /// `release` for asyncio.
    fn release_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, release(self.held.clone()))
    }
}
