//! Continuous backups, point-in-time recovery and whole-server recovery (issue 17) for Python: the bodies of
//! `PatroniCluster`'s pgBackRest methods (connect-db's `pitr`), and `recover_plan`/`recover_server`
//! (connect-examples' `recover`, the composition `connect-ops recover` runs). Results cross as the core's
//! JSON into `_recovery.py`'s dataclasses.
//!
//! Takes connect-db's `PatroniCluster`, not the Python class, so `services` (which holds the class) imports
//! this module and not the other way round.

use std::path::PathBuf;

use connect_db::PatroniCluster;
use connect_db::pitr::{BackupKind, RecoveryTarget};
use connect_examples::config::ConnectConfig;
use connect_examples::recover::{self, RecoverOptions};
use pyo3::prelude::*;

use crate::bridge::block;
use crate::convert::{typed, typed_list};
use crate::errors::{invalid, py as core_py};

/// `[database.pitr]`'s cluster from `connect.toml` at `path`, reached through the server (connects).
pub(crate) fn cluster_from_config(py: Python<'_>, path: PathBuf) -> PyResult<PatroniCluster> {
    block(py, async move {
        let config = core_py(ConnectConfig::load(&path))?;
        let host = core_py(config.host().await)?;
        core_py(config.database(host))
    })
}

/// The repository's backups and archived WAL range (`BackrestInfo`).
pub(crate) fn info(py: Python<'_>, c: PatroniCluster) -> PyResult<Py<PyAny>> {
    let info = block(py, async move { core_py(c.continuous_backup_info().await) })?;
    typed(py, "BackrestInfo", &info)
}

/// Takes a base backup of `kind` (`full`, `diff`, `incr`) (`BackrestBackup`).
pub(crate) fn base_backup(py: Python<'_>, c: PatroniCluster, kind: &str) -> PyResult<Py<PyAny>> {
    let kind = match kind {
        "full" => BackupKind::Full,
        "diff" => BackupKind::Diff,
        "incr" => BackupKind::Incr,
        other => {
            return Err(invalid(
                "pitr.backup",
                other,
                "unknown backup kind; expected \"full\", \"diff\" or \"incr\"",
                "full copies everything; diff what changed since the last full; incr since the last backup",
            ));
        }
    };
    let backup = block(py, async move { core_py(c.base_backup(kind).await) })?;
    typed(py, "BackrestBackup", &backup)
}

/// Sets up WAL archiving through Patroni and the stanza (`PitrSetup`).
pub(crate) fn configure(py: Python<'_>, c: PatroniCluster) -> PyResult<Py<PyAny>> {
    let report = block(py, async move { core_py(c.configure_continuous_backups().await) })?;
    typed(py, "PitrSetup", &report)
}

/// Every table's rows and checksum on the leader (`TableChecksum`s).
pub(crate) fn table_checksums(py: Python<'_>, c: PatroniCluster) -> PyResult<Vec<Py<PyAny>>> {
    let sums = block(py, async move { core_py(c.table_checksums().await) })?;
    typed_list(py, "TableChecksum", &sums)
}

/// The continuous backups' state (`ContinuousBackupState`), `None` when the cluster has none configured.
pub(crate) fn state(py: Python<'_>, c: PatroniCluster) -> PyResult<Option<Py<PyAny>>> {
    use connect_core::database::DatabaseCluster;
    let state = block(py, async move { core_py(c.continuous_backup().await) })?;
    state.map(|s| typed(py, "ContinuousBackupState", &s)).transpose()
}

/// The target from `recover`'s keywords: exactly one of `latest`, `time`, `restore_point`.
pub(crate) fn target(
    latest: bool,
    time: Option<String>,
    restore_point: Option<String>,
    lsn: Option<String>,
) -> PyResult<RecoveryTarget> {
    let wrong = |why: &str| {
        invalid(
            "pitr.recover",
            "target",
            why,
            "give one of latest=True, time=\"2026-12-06 08:15:00+00\", restore_point=\"connect-<deploy id>\"",
        )
    };
    match (latest, time, restore_point) {
        (_, _, None) if lsn.is_some() => Err(wrong("lsn only goes with restore_point")),
        (true, None, None) => Ok(RecoveryTarget::Latest),
        (false, Some(t), None) => Ok(RecoveryTarget::Time(t)),
        (false, None, Some(name)) => Ok(RecoveryTarget::RestorePoint { name, lsn }),
        (false, None, None) => Err(wrong("no target given")),
        _ => Err(wrong("more than one target given")),
    }
}

/// Point-in-time recovery of the whole cluster to `target` (`RecoveryReport`).
pub(crate) fn recover_cluster(
    py: Python<'_>,
    c: PatroniCluster,
    target: RecoveryTarget,
) -> PyResult<Py<PyAny>> {
    let report = block(py, async move { core_py(c.recover(&target).await) })?;
    typed(py, "RecoveryReport", &report)
}

fn options(from_dir: Option<PathBuf>, set: Option<String>, force: bool) -> RecoverOptions {
    RecoverOptions {
        from: from_dir,
        set,
        force,
    }
}

/// What `connect-ops recover` would do on the server `config` describes, and from which backups (the dry
/// run: reads the set's copy here, the server's journal and containers and `pgbackrest info`; changes
/// nothing). Connects, with the GIL released.
#[pyfunction]
#[pyo3(signature = (config, *, from_dir=None, set=None))]
pub(crate) fn recover_plan(
    py: Python<'_>,
    config: PathBuf,
    from_dir: Option<PathBuf>,
    set: Option<String>,
) -> PyResult<Py<PyAny>> {
    let plan = block(py, async move {
        let config = core_py(ConnectConfig::load(&config))?;
        let deployer = core_py(config.deployer().await)?;
        core_py(recover::plan(&config, &options(from_dir, set, false), &deployer).await)
    })?;
    typed(py, "RecoverPlan", &plan)
}

/// The whole server back (`connect-ops recover --yes`): configs, database, Redis, uploads, then the set's
/// live release deployed and verified, each step timed. `on_step` (a callable taking a `str`) hears each step
/// as it starts; an exception it raises is raised after the recovery, which is never stopped halfway.
#[pyfunction]
#[pyo3(signature = (config, *, from_dir=None, set=None, force=false, on_step=None))]
pub(crate) fn recover_server(
    py: Python<'_>,
    config: PathBuf,
    from_dir: Option<PathBuf>,
    set: Option<String>,
    force: bool,
    on_step: Option<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let failed: std::sync::Mutex<Option<PyErr>> = std::sync::Mutex::new(None);
    let hear = |step: &str| {
        let mut failed = crate::bridge::lock(&failed);
        if let (Some(cb), None) = (&on_step, failed.as_ref())
            && let Err(e) = Python::attach(|py| cb.call1(py, (step,)).map(drop))
        {
            *failed = Some(e);
        }
    };
    let report = block(py, async {
        let config = core_py(ConnectConfig::load(&config))?;
        core_py(recover::recover(&config, &options(from_dir, set, force), &hear).await)
    })?;
    if let Some(e) = crate::bridge::lock(&failed).take() {
        return Err(e);
    }
    typed(py, "RecoverReport", &report)
}
