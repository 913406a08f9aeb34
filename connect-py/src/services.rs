//! The real database cluster (Patroni + PostgreSQL), cache (Redis) and the logical backups of connect-db
//! (Docker is in `docker.rs`).

use std::sync::Arc;

use connect_core::Cache;
use connect_core::database::{DatabaseCluster, DatabaseClusterExt};
use connect_db::PgTarget as CorePgTarget;
use connect_db::backup::{self, BackupConfig};
use connect_db::restore::{self, RestoreOptions};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use serde_json::json;

use crate::bridge::block;
use crate::convert::{seconds, type_name, typed, typed_list, whole};
use crate::errors::py as core_py;
use crate::hosts::any_host;
use crate::pitr;

/// Where and as whom to connect to PostgreSQL. The password is never printed.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub(crate) inner: CorePgTarget,
}

#[pymethods]
impl PgTarget {
    /// `user` on `dbname` at `host:port` (a host name, an address or a unix socket directory).
    #[new]
    #[pyo3(signature = (user, dbname, *, host="127.0.0.1", port=5432, password=None, connect_timeout=5.0))]
    fn new(
        user: &str,
        dbname: &str,
        host: &str,
        port: i64,
        password: Option<&str>,
        connect_timeout: f64,
    ) -> PyResult<PgTarget> {
        let mut inner =
            CorePgTarget::new(user, dbname).at(host, whole("port", port, "a port from 1 to 65535")?);
        if let Some(p) = password {
            inner = inner.password(p);
        }
        inner.connect_timeout = seconds("connect_timeout", connect_timeout)?;
        Ok(PgTarget { inner })
    }

    /// The host (or socket directory).
    #[getter]
    fn host(&self) -> &str {
        &self.inner.host
    }

    /// The port.
    #[getter]
    fn port(&self) -> u16 {
        self.inner.port
    }

    /// The role.
    #[getter]
    fn user(&self) -> &str {
        &self.inner.user
    }

    /// The database.
    #[getter]
    fn dbname(&self) -> &str {
        &self.inner.dbname
    }

    fn __repr__(&self) -> String {
        format!("PgTarget({:?})", self.inner.to_string())
    }
}

/// The Patroni cluster: members and switchover through Patroni's REST API, restore points and the check
/// query on the leader's PostgreSQL (found through Patroni at each call).
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct PatroniCluster {
    pub(crate) inner: connect_db::PatroniCluster,
}

#[pymethods]
impl PatroniCluster {
    /// A cluster reached through each node's REST address (`http://patroni1.internal:8008`); `user`, `dbname` and
    /// `password` are the app's login on every member (host and port come from Patroni). `check_query` (one
    /// integer column) replaces the runbook's `SELECT COUNT(*) FROM users`. Nothing is contacted until a call.
    #[new]
    #[pyo3(signature = (patroni_urls, *, user, dbname, password=None, connect_timeout=5.0, check_query=None))]
    fn new(
        patroni_urls: Vec<String>,
        user: &str,
        dbname: &str,
        password: Option<&str>,
        connect_timeout: f64,
        check_query: Option<&str>,
    ) -> PyResult<PatroniCluster> {
        let mut login = CorePgTarget::new(user, dbname);
        if let Some(p) = password {
            login = login.password(p);
        }
        login.connect_timeout = seconds("connect_timeout", connect_timeout)?;
        let mut inner = core_py(connect_db::PatroniCluster::new(&patroni_urls, login))?;
        if let Some(sql) = check_query {
            inner = inner.with_check_query(sql);
        }
        Ok(PatroniCluster { inner })
    }

    /// Every member (`Member`: name, role, state, lag, timeline).
    fn members(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let c = self.inner.clone();
        let members = block(py, async move { core_py(c.members().await) })?;
        typed_list(py, "Member", &members)
    }

    /// The leader; `UnhealthyError` when there is none.
    fn leader(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let leader = block(py, async move { core_py(DatabaseClusterExt::leader(&c).await) })?;
        typed(py, "Member", &leader)
    }

    /// Hands leadership to `candidate` (any healthy replica when `None`) and waits until it leads.
    #[pyo3(signature = (candidate=None))]
    fn switchover(&self, py: Python<'_>, candidate: Option<String>) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let leader = block(
            py,
            async move { core_py(c.switchover(candidate.as_deref()).await) },
        )?;
        typed(py, "Member", &leader)
    }

    /// The check query's number, on the leader.
    fn check_query(&self, py: Python<'_>) -> PyResult<i64> {
        let c = self.inner.clone();
        block(py, async move { core_py(DatabaseCluster::check_query(&c).await) })
    }

    /// `pg_create_restore_point(name)` on the leader (`RestorePoint`: name, LSN, timeline).
    fn restore_point(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let point = block(py, async move { core_py(c.restore_point(&name).await) })?;
        typed(py, "RestorePoint", &point)
    }

    /// The leader's PostgreSQL as a `PgTarget` with this cluster's login (for backups).
    fn leader_target(&self, py: Python<'_>) -> PyResult<PgTarget> {
        let c = self.inner.clone();
        let pg = block(py, async move { core_py(c.leader_postgres().await) })?;
        Ok(PgTarget {
            inner: pg.target().clone(),
        })
    }

    /// The cluster `connect.toml` at `path` describes, reached through its server, with the logical backups
    /// and `[database.pitr]`'s continuous backups configured (as `connect-ops pitr` uses it). Connects.
    #[staticmethod]
    fn from_config(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PatroniCluster> {
        Ok(PatroniCluster {
            inner: pitr::cluster_from_config(py, path)?,
        })
    }

    /// The continuous backups' state (`ContinuousBackupState`: last full backup, last archived WAL, their
    /// ages, whether archiving fails), or `None` when the cluster has none configured.
    fn continuous_backup(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        pitr::state(py, self.inner.clone())
    }

    /// `pgbackrest info`: the backups kept and the WAL archived (`BackrestInfo`). `UnsupportedError` when the
    /// cluster has no continuous backups configured.
    fn continuous_backup_info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        pitr::info(py, self.inner.clone())
    }

    /// Sets up WAL archiving through Patroni and pgBackRest's stanza (`PitrSetup`).
    fn configure_continuous_backups(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        pitr::configure(py, self.inner.clone())
    }

    /// Takes a base backup, `"full"`, `"diff"` or `"incr"` (`BackrestBackup`).
    #[pyo3(signature = (kind="full"))]
    fn base_backup(&self, py: Python<'_>, kind: &str) -> PyResult<Py<PyAny>> {
        pitr::base_backup(py, self.inner.clone(), kind)
    }

    /// Point-in-time recovery of the whole cluster to one target: `latest=True`, a `time` with its zone, or a
    /// `restore_point` (a deploy's `connect-<id>`, with its `lsn` when known). Replaces every database;
    /// hold the deploy lock and stop the app first (`RecoveryReport`).
    #[pyo3(signature = (*, latest=false, time=None, restore_point=None, lsn=None))]
    fn recover(
        &self,
        py: Python<'_>,
        latest: bool,
        time: Option<String>,
        restore_point: Option<String>,
        lsn: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let target = pitr::target(latest, time, restore_point, lsn)?;
        pitr::recover_cluster(py, self.inner.clone(), target)
    }

    /// Every table's rows and checksum on the leader (`TableChecksum`s), to compare after a recovery.
    fn table_checksums(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        pitr::table_checksums(py, self.inner.clone())
    }

    fn __repr__(&self) -> String {
        format!("PatroniCluster({:?})", self.inner.patroni().nodes())
    }
}

/// A Redis server. Each call opens its own connection.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct Redis {
    pub(crate) inner: connect_db::Redis,
}

#[pymethods]
impl Redis {
    /// The server at `host:port`, with a password if it asks for one. `deadline` bounds a BGSAVE. Nothing is
    /// contacted until a call.
    #[new]
    #[pyo3(signature = (host="127.0.0.1", port=6379, *, password=None, deadline=60.0))]
    fn new(host: &str, port: i64, password: Option<&str>, deadline: f64) -> PyResult<Redis> {
        let mut inner = core_py(connect_db::Redis::new(
            host,
            whole("port", port, "a port from 1 to 65535")?,
            password,
        ))?;
        inner.deadline = seconds("deadline", deadline)?;
        Ok(Redis { inner })
    }

    /// `redis://host:port`.
    #[getter]
    fn target(&self) -> String {
        self.inner.target().to_string()
    }

    /// `PING`; `UnavailableError` (or `RefusedError`) when it cannot be reached.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        let r = self.inner.clone();
        block(py, async move { core_py(r.ping().await) })
    }

    /// Role, last save, persistence and key count (`CacheInfo`).
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let r = self.inner.clone();
        let info = block(py, async move { core_py(r.info().await) })?;
        typed(py, "CacheInfo", &info)
    }

    /// `BGSAVE` and wait until it is done and succeeded (`CacheInfo` after it).
    fn save(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let r = self.inner.clone();
        let info = block(py, async move { core_py(r.save().await) })?;
        typed(py, "CacheInfo", &info)
    }

    /// Saves, copies `dump.rdb` into `dest_dir` on `host` and checks the copy with `redis-check-rdb`
    /// (`RedisBackup`).
    fn backup(&self, py: Python<'_>, host: &Bound<'_, PyAny>, dest_dir: String) -> PyResult<Py<PyAny>> {
        let host = any_host("host", host)?;
        let r = self.inner.clone();
        let b = block(
            py,
            async move { core_py(r.backup(host.as_ref(), &dest_dir).await) },
        )?;
        typed(py, "RedisBackup", &b)
    }

    fn __repr__(&self) -> String {
        format!("Redis({:?})", self.inner.target())
    }
}

pub(crate) fn pg_target(obj: &Bound<'_, PyAny>) -> PyResult<CorePgTarget> {
    obj.cast::<PgTarget>()
        .map(|t| t.get().inner.clone())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "the database must be a connect_ops.PgTarget, not {}",
                type_name(obj)
            ))
        })
}

pub(crate) fn backup_config(dir: &str, bin_dir: Option<&str>, keep: usize) -> BackupConfig {
    let mut config = BackupConfig::new(dir);
    if let Some(b) = bin_dir {
        config = config.bin_dir(b);
    }
    config.keep = keep;
    config
}

/// `pg_dump -Fc` of `source` run on `host` into `<dir>/<db>-<UTC stamp>-<label>.dump`, with its SHA-256
/// beside it, verified with `pg_restore --list` (`LogicalBackup`). `bin_dir` picks the PostgreSQL programs
/// (`/usr/lib/postgresql/15/bin`); by default they come from `PATH`.
#[pyfunction]
#[pyo3(signature = (host, source, label, *, dir, bin_dir=None))]
pub(crate) fn logical_backup(
    py: Python<'_>,
    host: &Bound<'_, PyAny>,
    source: &Bound<'_, PyAny>,
    label: String,
    dir: &str,
    bin_dir: Option<&str>,
) -> PyResult<Py<PyAny>> {
    let host: Arc<dyn connect_core::Host> = any_host("host", host)?;
    let source = pg_target(source)?;
    let config = backup_config(dir, bin_dir, 7);
    let b = block(py, async move {
        core_py(backup::logical_backup(host.as_ref(), &source, &label, &config).await)
    })?;
    let raw = json!({
        "path": b.path, "sha256": b.sha256, "bytes": b.bytes, "database": b.database,
        "toc_entries": b.toc_entries, "took_seconds": b.took.as_secs_f64(),
    });
    typed(py, "LogicalBackup", &raw)
}

/// Restores `dump` (a `pg_dump -Fc` file on `host`) as `target.dbname`: checks its checksum and database,
/// restores into a fresh database with `pg_restore --exit-on-error -j jobs`, then swaps it in by rename, the
/// previous one kept (`RestoreReport`). Any failure before the swap leaves the live database untouched.
#[pyfunction]
#[pyo3(signature = (
    host, target, dump, *, dir, bin_dir=None, jobs=2, expected_sha256=None, allow_other_database=false,
    maintenance_db="postgres"
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore_logical(
    py: Python<'_>,
    host: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
    dump: String,
    dir: &str,
    bin_dir: Option<&str>,
    jobs: i64,
    expected_sha256: Option<String>,
    allow_other_database: bool,
    maintenance_db: &str,
) -> PyResult<Py<PyAny>> {
    let host = any_host("host", host)?;
    let target = pg_target(target)?;
    let config = backup_config(dir, bin_dir, 7);
    let options = RestoreOptions {
        jobs: whole("jobs", jobs, "a count of 1 or more")?,
        expected_sha256,
        allow_other_database,
        maintenance_db: maintenance_db.to_string(),
    };
    let r = block(py, async move {
        core_py(restore::restore_logical(host.as_ref(), &target, &dump, &config, &options).await)
    })?;
    let raw = json!({
        "database": r.database, "previous_kept_as": r.previous_kept_as, "dump": r.dump,
        "took_seconds": r.took.as_secs_f64(), "pg_restore_seconds": r.pg_restore_took.as_secs_f64(),
    });
    typed(py, "RestoreReport", &raw)
}

/// The logical backups of `database` in `dir` on `host`, oldest first.
#[pyfunction]
pub(crate) fn list_backups(
    py: Python<'_>,
    host: &Bound<'_, PyAny>,
    dir: &str,
    database: String,
) -> PyResult<Vec<String>> {
    let host = any_host("host", host)?;
    let config = BackupConfig::new(dir);
    block(py, async move {
        core_py(backup::list_backups(host.as_ref(), &config, &database).await)
    })
}
