//! `connect_core::Error` as Python exceptions.
//!
//! The hierarchy lives in `connect_ops/_errors.py` rather than in `create_exception!`, because Python classes
//! can also derive from the matching built-in (`InvalidInputError` is a `ValueError`, `TimeoutError` a
//! `TimeoutError`), so `except ValueError:` in an existing script keeps working. This module only builds the
//! right instance from the core error.

use connect_core::ErrorKind;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Every core error kind with its name in Python (`ConnectError.kind`, `MemoryStack.fail(..., kind)`).
pub const KINDS: [(&str, ErrorKind); 12] = [
    ("invalid_input", ErrorKind::InvalidInput),
    ("not_found", ErrorKind::NotFound),
    ("conflict", ErrorKind::Conflict),
    ("refused", ErrorKind::Refused),
    ("permission_denied", ErrorKind::PermissionDenied),
    ("unavailable", ErrorKind::Unavailable),
    ("timeout", ErrorKind::Timeout),
    ("unhealthy", ErrorKind::Unhealthy),
    ("corrupt", ErrorKind::Corrupt),
    ("drift", ErrorKind::Drift),
    ("failed", ErrorKind::Failed),
    ("unsupported", ErrorKind::Unsupported),
];

/// The Python name of a kind; `failed` for kinds added to the core after this crate was built.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("failed", |(name, _)| name)
}

/// A kind from its Python name.
pub fn parse_kind(name: &str) -> PyResult<ErrorKind> {
    KINDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
            CoreError(connect_core::Error::invalid(
                "error_kind.parse",
                name,
                format!("unknown error kind; expected one of {}", names.join(", ")),
            ))
            .into()
        })
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
            let made = py.import("connect_ops._errors").and_then(|m| {
                m.getattr("_from_core")?.call1((
                    kind_name(e.kind()),
                    e.to_string(),
                    e.operation(),
                    e.target(),
                    e.message(),
                    e.hint(),
                    e.is_retryable(),
                ))
            });
            match made {
                Ok(exception) => PyErr::from_value(exception),
                // Only when the extension is loaded without its package: keep the whole message.
                Err(_) => PyRuntimeError::new_err(e.to_string()),
            }
        })
    }
}

/// Shorthand: a core result into a Python result.
pub fn py<T>(r: connect_core::Result<T>) -> PyResult<T> {
    r.map_err(|e| CoreError(e).into())
}

/// An `InvalidInputError` (a `ValueError`) for an argument the core never sees.
pub fn invalid(operation: &str, target: &str, message: impl Into<String>, hint: &str) -> PyErr {
    CoreError(connect_core::Error::invalid(operation, target, message).with_hint(hint)).into()
}
