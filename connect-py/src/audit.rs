//! `connect_ops.audit`: the hardening audit of the server a `connect.toml` describes, the same run as
//! `connect-ops audit` (the composition is connect-examples'); the report crosses as JSON into the typed
//! `AuditReport`.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::bridge::block;
use crate::convert::typed;
use crate::errors::py as core_py;

/// Audits the server of `config` (a `connect.toml`); with `fix`, applies the safe fixes and audits again.
/// The GIL is released meanwhile.
#[pyfunction]
#[pyo3(signature = (config, *, fix = false))]
pub(crate) fn audit(py: Python<'_>, config: PathBuf, fix: bool) -> PyResult<Py<PyAny>> {
    let report = block(py, async move {
        let config = core_py(connect_examples::config::ConnectConfig::load(&config))?;
        core_py(connect_examples::ops::audit::run_audit(&config, fix).await)
    })?;
    typed(py, "AuditReport", &report)
}
