//! Releases and the arguments that name them.

use connect_core::model::{ImageRef, Release as CoreRelease};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::convert::type_name;
use crate::errors::{invalid, py};

/// A release of the app: its version and the image that carries it.
#[pyclass(frozen, eq, hash, module = "connect_ops")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Release {
    pub(crate) inner: CoreRelease,
}

#[pymethods]
impl Release {
    /// `Release("connect", "20251013-1400")`: the image `connect:20251013-1400`.
    #[new]
    fn new(repository: &str, version: &str) -> PyResult<Release> {
        Ok(Release {
            inner: py(CoreRelease::new(repository, version))?,
        })
    }

    /// A release from an image reference (`connect:v2`, `registry:5000/connect:v2@sha256:…`); the version is
    /// the image's tag unless given.
    #[staticmethod]
    #[pyo3(signature = (image, version=None))]
    fn from_image(image: &str, version: Option<&str>) -> PyResult<Release> {
        let image = py(ImageRef::parse(image))?;
        let inner = match version {
            Some(v) if v.trim().is_empty() => {
                return Err(invalid(
                    "release.from_image",
                    v,
                    "a version is not empty",
                    "give the release's version, e.g. 20251013-1400",
                ));
            }
            Some(v) => CoreRelease {
                version: v.to_string(),
                image,
                digest: None,
            },
            None => py(CoreRelease::from_image(image))?,
        };
        Ok(Release { inner })
    }

    /// A release from `to_dict()`'s shape (`version`, `image`, optional `digest`), as journals hold it.
    #[staticmethod]
    fn from_dict(data: &Bound<'_, PyDict>) -> PyResult<Release> {
        let text = |key: &str| -> PyResult<Option<String>> {
            match data.get_item(key)? {
                Some(v) if !v.is_none() => Ok(Some(v.extract::<String>().map_err(|_| {
                    PyTypeError::new_err(format!("Release.from_dict: {key:?} must be a str"))
                })?)),
                _ => Ok(None),
            }
        };
        let (Some(version), Some(image)) = (text("version")?, text("image")?) else {
            return Err(invalid(
                "release.from_dict",
                "",
                "a release needs \"version\" and \"image\"",
                "pass a dict like {\"version\": \"v2\", \"image\": \"connect:v2\"}",
            ));
        };
        let mut release = Release::from_image(&image, Some(&version))?;
        release.inner.digest = text("digest")?;
        Ok(release)
    }

    /// The version tag, e.g. `20251013-1400`.
    #[getter]
    fn version(&self) -> &str {
        &self.inner.version
    }

    /// The image reference, e.g. `connect:20251013-1400`.
    #[getter]
    fn image(&self) -> String {
        self.inner.image.to_string()
    }

    /// The image's repository, e.g. `connect`.
    #[getter]
    fn repository(&self) -> &str {
        self.inner.image.repository()
    }

    /// The image's content id once the server has seen it.
    #[getter]
    fn digest(&self) -> Option<&str> {
        self.inner.digest.as_deref()
    }

    /// `{"version": …, "image": …, "digest": …}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("version", &self.inner.version)?;
        d.set_item("image", self.inner.image.to_string())?;
        d.set_item("digest", self.inner.digest.as_deref())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let r = |s: &str| -> PyResult<String> { Ok(PyString::new(py, s).repr()?.to_cow()?.into_owned()) };
        let mut text = format!(
            "Release(version={}, image={}",
            r(&self.inner.version)?,
            r(&self.inner.image.to_string())?
        );
        if let Some(d) = &self.inner.digest {
            text.push_str(&format!(", digest={}", r(d)?));
        }
        text.push(')');
        Ok(text)
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// A release argument: a `Release`, or an image reference with a tag (`"connect:v2"`).
pub(crate) fn release_arg(obj: &Bound<'_, PyAny>) -> PyResult<CoreRelease> {
    if let Ok(r) = obj.cast::<Release>() {
        return Ok(r.get().inner.clone());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_cow()?;
        return Ok(Release::from_image(&s, None)?.inner);
    }
    Err(PyTypeError::new_err(format!(
        "expected a connect_ops.Release or an image reference str such as 'connect:20251013-1400', not {}",
        type_name(obj)
    )))
}

/// An image argument: a `Release` (its image) or an image reference str.
pub(crate) fn image_arg(obj: &Bound<'_, PyAny>) -> PyResult<ImageRef> {
    if let Ok(r) = obj.cast::<Release>() {
        return Ok(r.get().inner.image.clone());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return py(ImageRef::parse(&s.to_cow()?));
    }
    Err(PyTypeError::new_err(format!(
        "expected a connect_ops.Release or an image reference str such as 'connect:v2', not {}",
        type_name(obj)
    )))
}
