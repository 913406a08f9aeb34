//! Values across the boundary: numbers and durations in (refusing what the core would misread), typed
//! results out (the core's JSON made into `connect_ops._types` dataclasses), type names for messages.

use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use serde::Serialize;

use crate::errors::invalid;

/// Seconds as a duration, refusing negative, NaN and infinite values.
pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        invalid(
            "duration.parse",
            name,
            format!("{name} = {value} is not a number of seconds >= 0"),
            &format!("give {name} as seconds, e.g. 1.5"),
        )
    })
}

/// A whole number from Python in the range of `T`; an `InvalidInputError` naming the argument otherwise.
pub(crate) fn whole<T: TryFrom<i64>>(name: &str, value: i64, expected: &str) -> PyResult<T> {
    T::try_from(value).map_err(|_| {
        invalid(
            "argument.parse",
            name,
            format!("{name} = {value} is out of range: expected {expected}"),
            &format!("give {name} as {expected}"),
        )
    })
}

/// The Python type name of an object, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string())
}

/// A result as the core's JSON, for the Python layer to type.
pub(crate) fn to_json<T: Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value)
        .map_err(|e| PyRuntimeError::new_err(format!("connect_ops: could not encode a result: {e}")))
}

/// `connect_ops._types`, handed over by the package (`_bind_python_layer`): `_types` imports this extension,
/// so the extension must not import it back.
static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Keeps the module whose dataclasses type the results; the first one handed over stays.
pub(crate) fn bind_types(py: Python<'_>, types: Bound<'_, PyModule>) {
    let _ = TYPES.set(py, types.unbind());
}

/// A typed result: `connect_ops._types.<class>.from_dict` of the value's JSON.
pub(crate) fn typed<T: Serialize>(py: Python<'_>, class: &str, value: &T) -> PyResult<Py<PyAny>> {
    let raw = py.import("json")?.getattr("loads")?.call1((to_json(value)?,))?;
    let types = TYPES.get(py).ok_or_else(|| {
        PyRuntimeError::new_err(
            "connect_ops: the typed results are not loaded; import connect_ops, not its extension alone",
        )
    })?;
    Ok(types
        .bind(py)
        .getattr(class)?
        .call_method1("from_dict", (raw,))?
        .unbind())
}

/// A list of typed results.
pub(crate) fn typed_list<T: Serialize>(
    py: Python<'_>,
    class: &str,
    values: &[T],
) -> PyResult<Vec<Py<PyAny>>> {
    values.iter().map(|v| typed(py, class, v)).collect()
}
