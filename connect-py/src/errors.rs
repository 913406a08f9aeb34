//! `connect_core::Error` as Python exceptions.
//!
//! The hierarchy lives in `connect_ops/_errors.py` rather than in `create_exception!`, because Python classes
//! can also derive from the matching built-in (`InvalidInputError` is a `ValueError`, `TimeoutError` a
//! `TimeoutError`), so `except ValueError:` in an existing script keeps working. This module only builds the
//! right instance from the core error.

use connect_core::ErrorKind;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// A kind from its Python name (`ErrorKind::name`: `invalid_input`, `timeout`…).
pub(crate) fn parse_kind(name: &str) -> PyResult<ErrorKind> {
    ErrorKind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = ErrorKind::ALL.map(ErrorKind::name).to_vec();
        CoreError(connect_core::Error::invalid(
            "error_kind.parse",
            name,
            format!("unknown error kind; expected one of {}", names.join(", ")),
        ))
        .into()
    })
}

/// `connect_ops._errors._from_core`, handed over by the package (`_bind_python_layer`) rather than imported,
/// so that no module of the package and this extension import each other.
static FROM_CORE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Keeps the factory of the exceptions; the first one handed over stays.
pub(crate) fn bind_from_core(py: Python<'_>, from_core: Bound<'_, PyAny>) {
    let _ = FROM_CORE.set(py, from_core.unbind());
}

/// A core error on its way to Python (the orphan rule forbids `From<connect_core::Error> for PyErr`).
#[derive(Debug)]
pub struct CoreError(pub connect_core::Error);

impl From<connect_core::Error> for CoreError {
    fn from(e: connect_core::Error) -> Self {
        CoreError(e)
    }
}

impl From<CoreError> for PyErr {
    fn from(CoreError(e): CoreError) -> PyErr {
        Python::attach(|py| {
            let made = FROM_CORE.get(py).map(|from_core| {
                from_core.call1(
                    py,
                    (
                        e.kind().name(),
                        e.to_string(),
                        e.operation(),
                        e.target(),
                        e.message(),
                        e.hint(),
                        e.is_retryable(),
                    ),
                )
            });
            match made {
                Some(Ok(exception)) => PyErr::from_value(exception.into_bound(py)),
                // Only when the extension is loaded without its package: keep the whole message.
                _ => PyRuntimeError::new_err(e.to_string()),
            }
        })
    }
}

/// Shorthand: a core result into a Python result.
pub(crate) fn py<T>(r: connect_core::Result<T>) -> PyResult<T> {
    r.map_err(|e| CoreError(e).into())
}

/// An `InvalidInputError` (a `ValueError`) for an argument the core never sees.
pub(crate) fn invalid(operation: &str, target: &str, message: impl Into<String>, hint: &str) -> PyErr {
    CoreError(connect_core::Error::invalid(operation, target, message).with_hint(hint)).into()
}
