//! The in-memory backends, for scripts and tests that simulate a server: add images with a behaviour, inject
//! faults, crash containers, fill disks.

use connect_core::database::{ContinuousBackupState, DatabaseCluster};
use connect_core::memory::{self as mem, AppBehavior, Faults};
use pyo3::prelude::*;

use crate::bridge::block;
use crate::convert::{seconds, typed, whole};
use crate::errors::{invalid, parse_kind, py as core_py};
use crate::release::image_arg;

/// Installs a fault: `operation` fails with `kind`, always, `times` times, on `target`, or on `target`
/// after `after` passing calls.
pub(crate) fn inject(
    faults: &Faults,
    backend: &str,
    operation: &str,
    kind: &str,
    target: Option<&str>,
    times: Option<i64>,
    after: Option<i64>,
) -> PyResult<()> {
    let kind = parse_kind(kind)?;
    let times = times
        .map(|t| whole::<u32>("times", t, "a count of 1 or more"))
        .transpose()?;
    let after = after
        .map(|a| whole::<u32>("after", a, "a count of 0 or more"))
        .transpose()?;
    let prefix_ok = operation
        .split_once('.')
        .is_some_and(|(b, _)| backend.is_empty() || b == backend);
    if !prefix_ok || !Faults::OPERATIONS.contains(&operation) {
        let known: Vec<&str> = Faults::OPERATIONS
            .iter()
            .copied()
            .filter(|o| backend.is_empty() || o.starts_with(&format!("{backend}.")))
            .collect();
        return Err(invalid(
            "faults.inject",
            operation,
            format!(
                "not an operation of this backend; expected one of {}",
                known.join(", ")
            ),
            "name the operation <backend>.<method>, e.g. runtime.start",
        ));
    }
    if times == Some(0) {
        return Err(invalid(
            "faults.inject",
            operation,
            "times = 0 would never fail",
            "give times >= 1, or leave it out to fail every call",
        ));
    }
    match (target, times, after) {
        (None, None, None) => faults.fail(operation, kind),
        (Some(t), None, None) => faults.fail_on(operation, t, kind),
        (None, Some(n), None) => faults.fail_times(operation, kind, n),
        (Some(t), None, Some(skip)) => faults.fail_after(operation, t, skip, kind),
        _ => {
            return Err(invalid(
                "faults.inject",
                operation,
                "this combination is not supported: use target alone, times alone, or target with after",
                "e.g. fail(\"router.set_state\", \"refused\", target=\"app2\", after=1)",
            ));
        }
    }
    Ok(())
}

/// Generates an in-memory class's `#[pymethods]`: its own items, then `fail` and `clear_faults` (`$backend`
/// the prefix its operations must have, empty for any; `$example` one of them for the docstring; `$faults`,
/// with `$this` the object and `$op` the operation, the faults it goes to). One definition for the six
/// classes, since pyo3 allows one `#[pymethods]` block a class.
macro_rules! fault_methods {
    ($class:ty, $backend:literal, $example:literal; $($own:tt)*) => {
        fault_methods! { $class, $backend, $example, |this, _op| Ok(this.inner.faults()); $($own)* }
    };
    ($class:ty, $backend:literal, $example:literal, |$this:ident, $op:ident| $faults:expr; $($own:tt)*) => {
        #[pymethods]
        impl $class {
            $($own)*

            #[doc = concat!(
                "Makes `operation` (e.g. `\"", $example, "\"`) fail with the error `kind` (e.g. `\"timeout\"`): ",
                "every call, only on\n`target`, the next `times` calls, or on `target` after `after` passing calls."
            )]
            #[pyo3(signature = (operation, kind, *, target=None, times=None, after=None))]
            fn fail(
                &self,
                operation: &str,
                kind: &str,
                target: Option<&str>,
                times: Option<i64>,
                after: Option<i64>,
            ) -> PyResult<()> {
                let ($this, $op) = (self, operation);
                let faults: PyResult<&connect_core::memory::Faults> = $faults;
                $crate::memory::inject(faults?, $backend, operation, kind, target, times, after)
            }

            /// Removes every fault of `operation`.
            fn clear_faults(&self, operation: &str) -> PyResult<()> {
                let ($this, $op) = (self, operation);
                let faults: PyResult<&connect_core::memory::Faults> = $faults;
                faults?.clear(operation);
                Ok(())
            }
        }
    };
}

pub(crate) use fault_methods;

/// A server in memory: files in a map, disks whose usage a script sets.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct MemoryHost {
    pub(crate) inner: mem::MemoryHost,
}

fault_methods! {
    MemoryHost, "host", "host.disk_usage";
    /// An empty server.
    #[new]
    #[pyo3(signature = (name="memory-host"))]
    fn new(name: &str) -> MemoryHost {
        MemoryHost {
            inner: mem::MemoryHost::new(name),
        }
    }

    /// Sets how full the disk holding `path` (and everything below it) is, in percent.
    fn set_disk_usage(&self, path: &str, percent: i64) -> PyResult<()> {
        let percent: u8 = whole("percent", percent, "a percentage from 0 to 100")?;
        if percent > 100 {
            return Err(invalid(
                "host.set_disk_usage",
                path,
                format!("{percent}% is not a percentage"),
                "give 0 to 100",
            ));
        }
        self.inner.set_disk_usage(path, percent);
        Ok(())
    }

    /// The paths of every file on the server, sorted (the journal, the lock…).
    fn files(&self) -> Vec<String> {
        self.inner.files()
    }

    fn __repr__(&self) -> String {
        format!("MemoryHost(files={})", self.inner.files().len())
    }
}

/// Docker in memory: images whose app starts, turns healthy or not, logs errors, migrates.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct MemoryRuntime {
    pub(crate) inner: mem::MemoryRuntime,
}

fault_methods! {
    MemoryRuntime, "runtime", "runtime.start";
    /// A container's log lines written in the last `since_seconds`, oldest first (as `Docker.logs`).
    #[pyo3(signature = (name, since_seconds=300.0))]
    fn logs(&self, py: Python<'_>, name: String, since_seconds: f64) -> PyResult<Vec<String>> {
        crate::bridge::logs_of(py, std::sync::Arc::new(self.inner.clone()), name, since_seconds)
    }

    /// A runtime with no image and no container.
    #[new]
    fn new() -> MemoryRuntime {
        MemoryRuntime {
            inner: mem::MemoryRuntime::new(),
        }
    }

    /// Makes a release's image present, as a build and transfer would. Its app is `starting` for
    /// `ready_after` seconds (real time), then healthy (or unhealthy with `healthy=False`); it logs
    /// `error_lines` error lines at start, and its migration exits `migration_exit` after `migration_takes`
    /// seconds.
    #[pyo3(signature = (release, *, ready_after=1.5, healthy=true, error_lines=0, migration_exit=0, migration_takes=0.0))]
    pub(crate) fn add_image(
        &self,
        release: &Bound<'_, PyAny>,
        ready_after: f64,
        healthy: bool,
        error_lines: i64,
        migration_exit: i64,
        migration_takes: f64,
    ) -> PyResult<()> {
        let image = image_arg(release)?;
        let behavior = AppBehavior {
            ready_after: seconds("ready_after", ready_after)?,
            becomes_healthy: healthy,
            error_lines: whole("error_lines", error_lines, "a count of 0 or more")?,
            migration_exit,
            migration_takes: seconds("migration_takes", migration_takes)?,
            ..AppBehavior::default()
        };
        self.inner.add_image(&image, behavior);
        Ok(())
    }

    /// Removes an image, as `docker rmi` would.
    fn remove_image(&self, release: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.remove_image(&image_arg(release)?);
        Ok(())
    }

    /// Kills a container as a crash would: it stops and fails its health check.
    fn crash(&self, container: &str) {
        self.inner.crash(container);
    }

    /// Whether the named container runs and is healthy now.
    fn is_serving(&self, container: &str) -> bool {
        self.inner.is_serving(container)
    }

    /// The names of every container, running or not.
    fn container_names(&self) -> Vec<String> {
        self.inner.container_names()
    }

    fn __repr__(&self) -> String {
        format!("MemoryRuntime(containers={:?})", self.inner.container_names())
    }
}

/// A HAProxy backend in memory. Its servers start in maintenance.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct MemoryRouter {
    pub(crate) inner: mem::MemoryRouter,
}

fault_methods! {
    MemoryRouter, "router", "router.set_state";
    /// An empty HAProxy backend named `backend`.
    #[new]
    #[pyo3(signature = (backend="be_app"))]
    fn new(backend: &str) -> MemoryRouter {
        MemoryRouter {
            inner: mem::MemoryRouter::new(backend),
        }
    }

    /// Adds a server (in maintenance, weight 100) whose health check always passes.
    fn add_server(&self, name: &str, address: &str) {
        self.inner.add_server(name, address);
    }

    /// Simulates `count` requests in flight on `server`, each lasting `seconds`: drain waits for them.
    fn add_sessions(&self, server: &str, count: i64, seconds: f64) -> PyResult<()> {
        let count: usize = whole("count", count, "a count of 0 or more")?;
        let lasting = self::seconds("seconds", seconds)?;
        // The router stamps sessions with tokio's clock.
        let _guard = pyo3_async_runtimes::tokio::get_runtime().enter();
        self.inner.add_sessions(server, count, lasting);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "MemoryRouter({:?})",
            connect_core::TrafficRouter::backend(&self.inner)
        )
    }
}

/// A Patroni cluster in memory: the first member leads, the others replicate.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct MemoryCluster {
    pub(crate) inner: mem::MemoryCluster,
}

fault_methods! {
    MemoryCluster, "database", "database.members";
    /// A healthy cluster of these members (the runbook's `patroni1` and `patroni2` by default).
    #[new]
    #[pyo3(signature = (members=None))]
    fn new(members: Option<Vec<String>>) -> PyResult<MemoryCluster> {
        let names = members.unwrap_or_else(|| vec!["patroni1".into(), "patroni2".into()]);
        if names.is_empty() {
            return Err(invalid(
                "cluster.new",
                "members",
                "a cluster has at least one member",
                "give the member names, the leader first",
            ));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(MemoryCluster {
            inner: mem::MemoryCluster::new(&names),
        })
    }

    /// Stops the leader without a failover: the cluster has no leader (preflight then refuses).
    fn kill_leader(&self) {
        self.inner.kill_leader();
    }

    /// The names of the restore points made so far (one before each migration).
    fn restore_points(&self) -> Vec<String> {
        self.inner.restore_points().into_iter().map(|p| p.name).collect()
    }

    /// What the continuous backups report (`status().continuous_backup`, preflight's check): `stanza` `None`
    /// is a cluster without them. Ages are seconds.
    #[pyo3(signature = (
        stanza, *, last_archived_wal=None, last_archived_age_s=None, archive_failing=false,
        last_full_backup=None, last_full_age_s=None, last_backup=None, last_backup_age_s=None, backups=0,
        recoverable_from_unix=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn set_continuous_backup(
        &self,
        stanza: Option<String>,
        last_archived_wal: Option<String>,
        last_archived_age_s: Option<i64>,
        archive_failing: bool,
        last_full_backup: Option<String>,
        last_full_age_s: Option<i64>,
        last_backup: Option<String>,
        last_backup_age_s: Option<i64>,
        backups: i64,
        recoverable_from_unix: Option<i64>,
    ) -> PyResult<()> {
        let secs = |name: &str, v: Option<i64>| {
            v.map(|v| whole::<u64>(name, v, "a number of seconds of 0 or more"))
                .transpose()
        };
        let state = match stanza {
            None => None,
            Some(stanza) => Some(ContinuousBackupState {
                stanza,
                last_archived_wal,
                last_archived_age_s: secs("last_archived_age_s", last_archived_age_s)?,
                archive_failing,
                last_full_backup,
                last_full_age_s: secs("last_full_age_s", last_full_age_s)?,
                last_backup,
                last_backup_age_s: secs("last_backup_age_s", last_backup_age_s)?,
                backups: whole("backups", backups, "a count of 0 or more")?,
                recoverable_from_unix: secs("recoverable_from_unix", recoverable_from_unix)?,
            }),
        };
        self.inner.set_continuous_backup(state);
        Ok(())
    }

    /// The continuous backups' state (`ContinuousBackupState`), or `None` when the cluster has none.
    fn continuous_backup(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let c = self.inner.clone();
        let state = block(py, async move { core_py(c.continuous_backup().await) })?;
        state.map(|s| typed(py, "ContinuousBackupState", &s)).transpose()
    }

    fn __repr__(&self) -> String {
        "MemoryCluster()".to_string()
    }
}

/// Redis in memory.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone, Default)]
pub struct MemoryCache {
    pub(crate) inner: mem::MemoryCache,
}

fault_methods! {
    MemoryCache, "cache", "cache.ping";
    /// A primary with RDB snapshots.
    #[new]
    fn new() -> MemoryCache {
        MemoryCache::default()
    }

    fn __repr__(&self) -> String {
        "MemoryCache()".to_string()
    }
}
