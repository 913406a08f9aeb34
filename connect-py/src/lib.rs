//! Connect Ops for Python: the `connect_ops._connect_ops` extension module behind `import connect_ops`.
//!
//! This crate has no deploy logic of its own. It wraps [`connect_core`]'s engine and backends for Python:
//! blocking calls release the GIL and run on the same tokio runtime as the `async` variants
//! (`pyo3-async-runtimes`), results and events cross as JSON that the Python package turns into typed
//! dataclasses, and every [`connect_core::Error`] becomes the `connect_ops.ConnectError` subclass of its kind.
//!
//! Build and use it from Python:
//!
//! ```text
//! cd connect-py && maturin develop
//! python -c "import connect_ops; print(connect_ops.MemoryStack())"
//! ```

mod audit;
mod backends;
mod bridge;
mod convert;
mod dbtools;
mod deployer;
mod docker;
mod errors;
mod fleet;
mod hosts;
mod lock;
mod logs;
mod memory;
mod metrics;
mod pitr;
mod release;
mod router;
mod services;
mod settings;
mod stack;

use connect_core::ErrorKind;
use pyo3::prelude::*;

/// Hands the extension the package's Python half: the module of the typed results and the factory of the
/// exceptions. `connect_ops/__init__.py` calls it once, so the extension imports none of the package's modules.
#[pyfunction]
#[pyo3(name = "_bind_python_layer")]
fn bind_python_layer(types: Bound<'_, PyModule>, from_core: Bound<'_, PyAny>) {
    let py = types.py();
    convert::bind_types(py, types);
    errors::bind_from_core(py, from_core);
}

/// The extension module; `connect_ops/__init__.py` re-exports what scripts use.
#[pymodule]
fn _connect_ops(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logs::install(m.py())?;
    m.add_class::<release::Release>()?;
    m.add_class::<memory::MemoryHost>()?;
    m.add_class::<memory::MemoryRuntime>()?;
    m.add_class::<memory::MemoryRouter>()?;
    m.add_class::<memory::MemoryCluster>()?;
    m.add_class::<memory::MemoryCache>()?;
    m.add_class::<stack::MemoryStack>()?;
    m.add_class::<hosts::LocalHost>()?;
    m.add_class::<hosts::SshHost>()?;
    m.add_class::<hosts::CommandOutput>()?;
    m.add_class::<hosts::DiskUsage>()?;
    m.add_class::<router::Haproxy>()?;
    m.add_class::<docker::Docker>()?;
    m.add_class::<services::PgTarget>()?;
    m.add_class::<services::PatroniCluster>()?;
    m.add_class::<services::Redis>()?;
    m.add_function(wrap_pyfunction!(services::logical_backup, m)?)?;
    m.add_function(wrap_pyfunction!(services::restore_logical, m)?)?;
    m.add_function(wrap_pyfunction!(services::list_backups, m)?)?;
    m.add_function(wrap_pyfunction!(dbtools::verify_backup, m)?)?;
    m.add_function(wrap_pyfunction!(dbtools::prune_backups, m)?)?;
    m.add_function(wrap_pyfunction!(dbtools::check_migrations, m)?)?;
    m.add_function(wrap_pyfunction!(dbtools::lint_sql, m)?)?;
    m.add_function(wrap_pyfunction!(logs::refresh_logging, m)?)?;
    m.add_function(wrap_pyfunction!(audit::audit, m)?)?;
    m.add_function(wrap_pyfunction!(pitr::recover_plan, m)?)?;
    m.add_function(wrap_pyfunction!(pitr::recover_server, m)?)?;
    m.add_class::<backends::Backends>()?;
    m.add_class::<settings::DeployConfig>()?;
    m.add_class::<deployer::Deployer>()?;
    m.add_class::<fleet::MemoryFleet>()?;
    m.add_class::<fleet::Fleet>()?;
    m.add_class::<deployer::Operation>()?;
    m.add_class::<lock::PyHeldLock>()?;
    m.add_function(wrap_pyfunction!(bind_python_layer, m)?)?;
    m.add("ERROR_KINDS", ErrorKind::ALL.map(ErrorKind::name).to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
