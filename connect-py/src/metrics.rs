//! One metrics snapshot for `Deployer.metrics()`: the core's sampler read once (or twice, an interval
//! apart, so the rates have one), as JSON for `connect_ops._metrics` to type.

use std::future::Future;

use connect_core::engine::Deployer;
use connect_core::metrics::sample;
use pyo3::prelude::*;

use crate::convert::{seconds, to_json};

/// A snapshot through `deployer`'s backends: with a zero interval one sample (totals, no rates), else two
/// samples `interval_seconds` apart and the rates over the time between them.
pub(crate) fn snapshot(
    deployer: Deployer,
    interval_seconds: f64,
) -> PyResult<impl Future<Output = PyResult<String>> + Send + 'static> {
    let interval = seconds("interval_seconds", interval_seconds)?;
    Ok(async move {
        let first = sample(&deployer, None).await;
        if interval.is_zero() {
            return to_json(&first);
        }
        let started = tokio::time::Instant::now();
        // The measuring window the caller asked for: the rates are over it.
        tokio::time::sleep(interval).await;
        let second = sample(&deployer, Some((&first, started.elapsed()))).await;
        to_json(&second)
    })
}
