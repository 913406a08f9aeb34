//! The engine's `Deployer` for Python: blocking calls that release the GIL, `async` variants on the same
//! tokio runtime, and progress as a callback or an iterator of events.
//!
//! Results and events cross to Python as JSON (the core's serde shapes); `connect_ops/_types.py` turns them
//! into dataclasses. Async operations and background `Operation`s run as their own tokio tasks, so neither a
//! cancelled asyncio task nor an abandoned iterator stops a deploy halfway: the engine always gets to undo,
//! record and unlock. A blocking call cannot be interrupted before the engine is done.

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use connect_core::engine::{self, Event, OperationRecord};
use connect_core::model::{Color, Release};
use connect_core::ship::ReleaseSource;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::sync::{broadcast, mpsc};

use crate::backends::{Backends, wrong};
use crate::bridge::{awaitable, block, lock, runtime};
use crate::convert::{seconds, to_json};
use crate::errors::{CoreError, invalid, py as core_py};
use crate::release::release_arg;
use crate::settings::DeployConfig;
use crate::stack::MemoryStack;

/// A `Deployer`'s first argument: `Backends`, or a `MemoryStack` standing for all five.
fn backends_arg(obj: &Bound<'_, PyAny>) -> PyResult<engine::Backends> {
    if let Ok(b) = obj.cast::<Backends>() {
        return Ok(b.get().inner.clone());
    }
    if let Ok(s) = obj.cast::<MemoryStack>() {
        return Ok(s.get().inner.backends());
    }
    Err(wrong(
        "backends",
        "connect_ops.Backends or connect_ops.MemoryStack",
        obj,
    ))
}

/// The operations that report progress.
#[derive(Debug, Clone)]
enum Op {
    /// A deploy, shipping its image from the source first when there is one.
    Deploy(Release, Option<ReleaseSource>),
    Rollback,
    RollbackTo(String),
    RetireStandby,
}

/// A release source as the Python layer sends it: the core's own JSON (`{"kind": "local_image", ...}`).
pub(crate) fn source_arg(source: Option<&str>) -> PyResult<Option<ReleaseSource>> {
    source
        .map(|json| {
            serde_json::from_str::<ReleaseSource>(json).map_err(|e| {
                invalid(
                    "deployer.deploy",
                    "source",
                    format!("not a release source: {e}"),
                    "give context= (a directory with a Dockerfile) or image= (a local image)",
                )
            })
        })
        .transpose()
}

async fn run_op(d: &engine::Deployer, op: Op) -> connect_core::Result<OperationRecord> {
    match op {
        Op::Deploy(release, None) => d.deploy(release).await,
        Op::Deploy(release, Some(source)) => d.deploy_from(release, source).await,
        Op::Rollback => d.rollback().await,
        Op::RollbackTo(version) => d.rollback_to(&version).await,
        Op::RetireStandby => d.retire_standby().await,
    }
}

/// Runs an operation and hands each of its events (as JSON) to `sink` as it happens.
async fn run_with_events(
    d: engine::Deployer,
    op: Op,
    mut sink: impl FnMut(String) + Send,
) -> connect_core::Result<OperationRecord> {
    let mut rx = d.subscribe();
    let work = run_op(&d, op);
    tokio::pin!(work);
    let mut forward = |event: Result<Event, broadcast::error::RecvError>| {
        if let Ok(event) = event
            && let Ok(json) = serde_json::to_string(&event)
        {
            sink(json);
        }
    };
    let result = loop {
        tokio::select! {
            biased;
            event = rx.recv() => forward(event),
            result = &mut work => break result,
        }
    };
    while let Ok(event) = rx.try_recv() {
        forward(Ok(event));
    }
    result
}

/// Runs an operation calling `on_event` (a Python callable taking the event's JSON) for each event. The
/// first exception the callback raises stops further calls and is raised once the operation has finished;
/// the operation itself always runs to its end.
async fn run_with_callback(d: engine::Deployer, op: Op, on_event: Option<Py<PyAny>>) -> PyResult<String> {
    let mut callback = on_event;
    let mut callback_error: Option<PyErr> = None;
    let result = run_with_events(d, op, |json| {
        if let Some(cb) = &callback
            && let Err(e) = Python::attach(|py| cb.call1(py, (json,)).map(drop))
        {
            callback_error = Some(e);
            callback = None;
        }
    })
    .await;
    let record = core_py(result)?;
    if let Some(e) = callback_error {
        return Err(e);
    }
    to_json(&record)
}

/// `Deployer`'s engine half; `connect_ops.Deployer` wraps it with typed results.
#[pyclass(frozen, module = "connect_ops", name = "_Deployer")]
#[derive(Debug)]
pub struct Deployer {
    inner: engine::Deployer,
}

impl Deployer {
    /// Wraps a deployer made elsewhere (one host's of a fleet).
    pub(crate) fn wrap(inner: engine::Deployer) -> Deployer {
        Deployer { inner }
    }

    fn op_from(&self, op: Op, on_event: Option<Py<PyAny>>) -> impl Future<Output = PyResult<String>> + use<> {
        run_with_callback(self.inner.clone(), op, on_event)
    }

    fn verify_fut(
        &self,
        color: Option<&str>,
        since_seconds: f64,
    ) -> PyResult<impl Future<Output = PyResult<String>> + use<>> {
        let color = color.map(Color::from_str).transpose().map_err(CoreError)?;
        let window = seconds("since_seconds", since_seconds)?;
        let since = SystemTime::now()
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let d = self.inner.clone();
        Ok(async move {
            let color = match color {
                Some(c) => c,
                None => core_py(d.journal().await)?.live.ok_or_else(|| {
                    invalid(
                        "deployer.verify",
                        "live color",
                        "nothing is live yet, so there is no color to verify",
                        "deploy first, or name the color: verify(\"blue\")",
                    )
                })?,
            };
            to_json(&core_py(d.verify_color(color, since).await)?)
        })
    }
}

/// A core call whose result crosses as JSON.
macro_rules! json_call {
    ($d:expr, |$x:ident| $body:expr) => {{
        let $x = $d.inner.clone();
        async move { to_json(&core_py($body.await)?) }
    }};
}

#[pymethods]
impl Deployer {
    /// A deployer for the server `connect.toml` at `path` describes: the same file and composition as the
    /// `connect-ops` command. Connects (with the GIL released).
    #[staticmethod]
    fn from_config(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Deployer> {
        let inner = block(py, async move {
            let config = core_py(connect_examples::config::ConnectConfig::load(&path))?;
            core_py(config.deployer().await)
        })?;
        Ok(Deployer { inner })
    }

    /// A deployer over `backends` (`Backends`, or a `MemoryStack` for all five) with `config`.
    #[new]
    fn new(backends: &Bound<'_, PyAny>, config: &DeployConfig) -> PyResult<Deployer> {
        let inner = core_py(engine::Deployer::new(
            backends_arg(backends)?,
            config.inner.clone(),
        ))?;
        Ok(Deployer { inner })
    }

    /// The deploy policy as the engine holds it, as JSON (durations in milliseconds).
    fn policy(&self) -> PyResult<String> {
        to_json(&self.inner.config().policy)
    }

    /// Who is deploying, as the lock and the journal record it.
    #[getter]
    fn holder(&self) -> &str {
        &self.inner.config().holder
    }

    /// The app's options as JSON, the environment's values replaced by `<redacted>` (they may be secrets).
    fn app(&self) -> PyResult<String> {
        let config = self.inner.config();
        let app = &config.app;
        let redacted: std::collections::BTreeMap<&str, &str> =
            app.env.keys().map(|k| (k.as_str(), "<redacted>")).collect();
        to_json(&serde_json::json!({
            "name": app.name,
            "env": redacted,
            "container_port": app.container_port,
            "ports": {
                "blue": config.topology.blue.host_port,
                "green": config.topology.green.host_port,
            },
            "health_path": app.health_path,
            "stop_grace_seconds": app.stop_grace.as_secs_f64(),
            "migration": app.migration,
            "smoke_paths": app.smoke_paths,
        }))
    }

    #[pyo3(signature = (release, on_event=None, source=None))]
    fn deploy(
        &self,
        py: Python<'_>,
        release: &Bound<'_, PyAny>,
        on_event: Option<Py<PyAny>>,
        source: Option<&str>,
    ) -> PyResult<String> {
        let op = Op::Deploy(release_arg(release)?, source_arg(source)?);
        block(py, self.op_from(op, on_event))
    }

    #[pyo3(signature = (release, on_event=None, source=None))]
    fn deploy_async<'py>(
        &self,
        py: Python<'py>,
        release: &Bound<'_, PyAny>,
        on_event: Option<Py<PyAny>>,
        source: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = Op::Deploy(release_arg(release)?, source_arg(source)?);
        awaitable(py, self.op_from(op, on_event))
    }

    #[pyo3(signature = (on_event=None))]
    fn rollback(&self, py: Python<'_>, on_event: Option<Py<PyAny>>) -> PyResult<String> {
        block(py, self.op_from(Op::Rollback, on_event))
    }

    #[pyo3(signature = (on_event=None))]
    fn rollback_async<'py>(
        &self,
        py: Python<'py>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.op_from(Op::Rollback, on_event))
    }

    #[pyo3(signature = (version, on_event=None))]
    fn rollback_to(&self, py: Python<'_>, version: String, on_event: Option<Py<PyAny>>) -> PyResult<String> {
        block(py, self.op_from(Op::RollbackTo(version), on_event))
    }

    #[pyo3(signature = (version, on_event=None))]
    fn rollback_to_async<'py>(
        &self,
        py: Python<'py>,
        version: String,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.op_from(Op::RollbackTo(version), on_event))
    }

    #[pyo3(signature = (on_event=None))]
    fn retire_standby(&self, py: Python<'_>, on_event: Option<Py<PyAny>>) -> PyResult<String> {
        block(py, self.op_from(Op::RetireStandby, on_event))
    }

    #[pyo3(signature = (on_event=None))]
    fn retire_standby_async<'py>(
        &self,
        py: Python<'py>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.op_from(Op::RetireStandby, on_event))
    }

    fn start_deploy(&self, release: &Bound<'_, PyAny>) -> PyResult<Operation> {
        Ok(Operation::start(
            &self.inner,
            Op::Deploy(release_arg(release)?, None),
        ))
    }

    fn start_rollback(&self) -> Operation {
        Operation::start(&self.inner, Op::Rollback)
    }

    fn start_rollback_to(&self, version: String) -> Operation {
        Operation::start(&self.inner, Op::RollbackTo(version))
    }

    fn status(&self, py: Python<'_>) -> PyResult<String> {
        block(py, json_call!(self, |d| d.status()))
    }

    fn status_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, json_call!(self, |d| d.status()))
    }

    fn preflight(&self, py: Python<'_>) -> PyResult<String> {
        block(py, json_call!(self, |d| d.preflight()))
    }

    fn preflight_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, json_call!(self, |d| d.preflight()))
    }

    #[pyo3(signature = (color=None, since_seconds=300.0))]
    fn verify(&self, py: Python<'_>, color: Option<&str>, since_seconds: f64) -> PyResult<String> {
        block(py, self.verify_fut(color, since_seconds)?)
    }

    #[pyo3(signature = (color=None, since_seconds=300.0))]
    fn verify_async<'py>(
        &self,
        py: Python<'py>,
        color: Option<&str>,
        since_seconds: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.verify_fut(color, since_seconds)?)
    }

    fn adopt(&self, py: Python<'_>) -> PyResult<String> {
        block(py, json_call!(self, |d| d.adopt()))
    }

    fn adopt_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, json_call!(self, |d| d.adopt()))
    }

    fn break_lock(&self, py: Python<'_>) -> PyResult<String> {
        block(py, json_call!(self, |d| d.break_lock()))
    }

    fn break_lock_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, json_call!(self, |d| d.break_lock()))
    }

    #[pyo3(signature = (interval_seconds=1.0))]
    fn metrics(&self, py: Python<'_>, interval_seconds: f64) -> PyResult<String> {
        block(
            py,
            crate::metrics::snapshot(self.inner.clone(), interval_seconds)?,
        )
    }

    #[pyo3(signature = (interval_seconds=1.0))]
    fn metrics_async<'py>(&self, py: Python<'py>, interval_seconds: f64) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            crate::metrics::snapshot(self.inner.clone(), interval_seconds)?,
        )
    }

    fn journal(&self, py: Python<'_>) -> PyResult<String> {
        block(py, json_call!(self, |d| d.journal()))
    }

    fn journal_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, json_call!(self, |d| d.journal()))
    }

    fn hold_lock(&self, py: Python<'_>) -> PyResult<crate::lock::PyHeldLock> {
        crate::lock::hold(py, &self.inner)
    }

    fn hold_lock_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::lock::hold_async(py, &self.inner)
    }
}

enum Item {
    Event(String),
    Done(Box<connect_core::Result<OperationRecord>>),
}

type Outcome = Arc<Mutex<Option<PyResult<String>>>>;

/// An operation running in the background: its events one by one, then its result.
#[pyclass(frozen, module = "connect_ops", name = "_Operation")]
pub struct Operation {
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Item>>>,
    outcome: Outcome,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation").finish_non_exhaustive()
    }
}

impl Operation {
    fn start(d: &engine::Deployer, op: Op) -> Operation {
        let (tx, rx) = mpsc::unbounded_channel();
        let d = d.clone();
        // run_with_events subscribes before it first polls the operation, so no event is missed.
        runtime().spawn(async move {
            let events = tx.clone();
            let result = run_with_events(d, op, move |json| {
                // A dropped Operation only stops the reporting, never the deploy.
                let _ = events.send(Item::Event(json));
            })
            .await;
            let _ = tx.send(Item::Done(Box::new(result)));
        });
        Operation {
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            outcome: Arc::default(),
        }
    }
}

/// Takes the next item; records the outcome when the operation is done. `None` once it is.
async fn next_item(
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Item>>>,
    outcome: Outcome,
) -> PyResult<Option<String>> {
    let mut rx = rx.lock().await;
    let done = match rx.recv().await {
        Some(Item::Event(json)) => return Ok(Some(json)),
        Some(Item::Done(result)) => core_py(*result).and_then(|r| to_json(&r)),
        None => {
            if lock(&outcome).is_some() {
                return Ok(None);
            }
            Err(PyRuntimeError::new_err(
                "connect_ops: the operation's task ended without a result; this is a bug, please report it",
            ))
        }
    };
    *lock(&outcome) = Some(done);
    Ok(None)
}

#[pymethods]
impl Operation {
    /// The next event's JSON, waiting for it with the GIL released; `None` when the operation is over.
    fn next_event(&self, py: Python<'_>) -> PyResult<Option<String>> {
        block(py, next_item(self.rx.clone(), self.outcome.clone()))
    }

    /// `next_event` for asyncio.
    fn next_event_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, next_item(self.rx.clone(), self.outcome.clone()))
    }

    /// Whether the operation has finished and its result is known.
    #[getter]
    fn done(&self) -> bool {
        lock(&self.outcome).is_some()
    }

    /// The operation record's JSON, or the operation's error; waits (GIL released) until it has finished.
    fn result(&self, py: Python<'_>) -> PyResult<String> {
        while !self.done() {
            self.next_event(py)?;
        }
        match &*lock(&self.outcome) {
            Some(Ok(json)) => Ok(json.clone()),
            Some(Err(e)) => Err(e.clone_ref(py)),
            None => Err(PyRuntimeError::new_err("connect_ops: no result")),
        }
    }
}
