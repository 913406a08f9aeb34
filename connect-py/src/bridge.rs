//! Where Rust futures, threads and Python meet: the one tokio runtime, blocking calls that release the GIL,
//! awaitables, and the mutex helper every class uses. Imports no class module, so any module may use it.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use connect_core::ContainerRuntime;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::convert::seconds;
use crate::errors::py as core_py;

/// The tokio runtime of every call, blocking or async (`pyo3-async-runtimes`' own).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

fn join_error(e: tokio::task::JoinError) -> PyErr {
    PyRuntimeError::new_err(format!(
        "connect_ops: the operation's task ended abnormally ({e}); this is a bug, please report it"
    ))
}

/// A blocking call from inside the runtime (an event callback calling the deployer) would deadlock tokio.
fn refuse_nested() -> PyResult<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(PyRuntimeError::new_err(
            "connect_ops: a blocking Deployer call cannot be made from inside an event callback or the \
             runtime's threads; use the *_async variant, or call it after the operation returns",
        ));
    }
    Ok(())
}

/// Runs `fut` to its end with the GIL released. It is polled on the calling thread, so an `on_event` callback
/// runs on the thread that called the deployer, as a Python caller expects.
pub(crate) fn block<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = PyResult<T>> + Send,
{
    refuse_nested()?;
    py.detach(|| runtime().block_on(fut))
}

/// Runs `fut` on the runtime and gives Python an awaitable of its result.
pub(crate) fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
    F: Future<Output = PyResult<T>> + Send + 'static,
{
    let task = runtime().spawn(fut);
    pyo3_async_runtimes::tokio::future_into_py(py, async move { task.await.map_err(join_error)? })
}

/// The log lines of a container since `since_seconds` ago, from any runtime.
pub(crate) fn logs_of(
    py: Python<'_>,
    runtime: Arc<dyn ContainerRuntime>,
    name: String,
    since_seconds: f64,
) -> PyResult<Vec<String>> {
    let window = seconds("since_seconds", since_seconds)?;
    let since = SystemTime::now()
        .checked_sub(window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    block(py, async move { core_py(runtime.logs_since(&name, since).await) })
}

/// Locks a mutex, ignoring poisoning: a panic elsewhere must not make every later call panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
