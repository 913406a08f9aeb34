"""Continuous backups and recovery from Python (issue 17): the backups' state in ``status`` and preflight (in
memory), the point-in-time recovery's and the dry run's refusals before anything is contacted, and the dry
run against this machine's real ``pgbackrest`` with an empty repository.

The recoveries themselves need a Patroni cluster with pgBackRest, which connect-db's and connect-examples'
real tests start (``pitr_*``, ``recover``); the Python suite starts no PostgreSQL (see ARCHITECTURE.md)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, List

import pytest

import connect_ops as ops

V1 = ops.Release("connect", "v1")


@pytest.fixture
def stack() -> ops.MemoryStack:
    s = ops.MemoryStack()
    s.add_image(V1, ready_after=0.05)
    return s


def test_status_and_preflight_read_the_continuous_backups(stack: ops.MemoryStack) -> None:
    deployer = ops.Deployer(stack, holder="pytest", health_deadline=5)
    assert stack.database.continuous_backup() is None
    assert deployer.status().continuous_backup is None

    stack.database.set_continuous_backup(
        "connect",
        last_archived_wal="000000010000000000000007",
        last_archived_age_s=12,
        last_full_backup="20261206-081500F",
        last_full_age_s=3600,
        last_backup="20261206-091500F_20261206-101500I",
        last_backup_age_s=60,
        backups=2,
        recoverable_from_unix=1796540100,
    )
    state = deployer.status().continuous_backup
    assert state is not None and state == stack.database.continuous_backup()
    assert state.stanza == "connect" and state.last_full_age_s == 3600 and state.backups == 2
    assert state.last_archived_wal == "000000010000000000000007" and state.recoverable
    assert ops.ContinuousBackupState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    check = next(c for c in deployer.preflight().checks if c.name == "continuous backup")
    assert check.status == "pass" and "20261206-081500F" in check.detail

    # Archiving that fails is preflight's failure: nothing newer than the last segment can be recovered.
    stack.database.set_continuous_backup("connect", last_full_backup="20261206-081500F", archive_failing=True)
    failing = deployer.status().continuous_backup
    assert failing is not None and failing.archive_failing and not failing.recoverable
    report = deployer.preflight()
    assert not report.passed and "continuous backup" in [c.name for c in report.failures]
    with pytest.raises(ops.ConnectError):
        deployer.deploy(V1)

    stack.database.set_continuous_backup(None)
    assert deployer.status().continuous_backup is None
    with pytest.raises(ops.InvalidInputError, match="last_full_age_s"):
        stack.database.set_continuous_backup("connect", last_full_age_s=-1)


def test_a_cluster_without_pgbackrest_says_how_to_configure_it() -> None:
    # Nothing is contacted: the cluster knows it has no [database.pitr] before any call leaves it.
    cluster = ops.PatroniCluster(["http://127.0.0.1:9"], user="connect", dbname="connect")
    assert cluster.continuous_backup() is None
    calls: List[Callable[[], object]] = [
        cluster.continuous_backup_info,
        cluster.configure_continuous_backups,
        lambda: cluster.base_backup("incr"),
        lambda: cluster.recover(latest=True),
        lambda: cluster.recover(time="2026-12-06 08:15:00+00"),
        lambda: cluster.recover(restore_point="connect-1796540100000-v2", lsn="0/3000090"),
    ]
    for call in calls:
        with pytest.raises(ops.UnsupportedError) as info:
            call()
        assert info.value.hint and "[database.pitr]" in info.value.hint, info.value.hint
        assert info.value.operation.startswith("pitr."), info.value.operation


def test_recovery_targets_and_backup_kinds_are_checked_first() -> None:
    cluster = ops.PatroniCluster(["http://127.0.0.1:9"], user="connect", dbname="connect")
    with pytest.raises(ops.InvalidInputError, match="no target") as info:
        cluster.recover()
    assert info.value.hint and "latest=True" in info.value.hint
    with pytest.raises(ops.InvalidInputError, match="more than one"):
        cluster.recover(latest=True, time="2026-12-06 08:15:00+00")
    with pytest.raises(ops.InvalidInputError, match="lsn only"):
        cluster.recover(latest=True, lsn="0/3000090")
    with pytest.raises(ops.InvalidInputError, match="full"):
        cluster.base_backup("weekly")  # type: ignore[arg-type]


def config_file(tmp_path: Path, extra: str = "") -> Path:
    """A server on this machine: its Docker Engine (a deployer connects to it; the dry run only reads), no
    HAProxy or Patroni (the calls tested never reach them)."""
    config = tmp_path / "connect.toml"
    config.write_text(
        "[server]\n"
        'host = "local"\n'
        "[docker]\n"
        'socket = "/var/run/docker.sock"\n'
        "[haproxy]\n"
        f'admin_socket = "{tmp_path / "admin.sock"}"\n'
        "[app]\n"
        'image = "connect"\n' + extra
    )
    return config


def test_the_dry_run_refuses_what_it_lacks_before_touching_the_server(tmp_path: Path) -> None:
    with pytest.raises(ops.InvalidInputError, match=r"\[backup_all\]") as info:
        ops.recover_plan(config_file(tmp_path))
    assert info.value.hint and "copy_to" in info.value.hint

    copies = tmp_path / "copies"
    copies.mkdir()
    config = config_file(tmp_path, f'[backup_all]\ndir = "{tmp_path / "sets"}"\ncopy_to = "{copies}"\n')
    with pytest.raises(ops.NotFoundError, match="no backup set") as missing:
        ops.recover_plan(config)
    assert missing.value.hint and "backup-all" in missing.value.hint
    with pytest.raises(ops.NotFoundError, match="no set 20261206T081500Z"):
        ops.recover_plan(config, set="20261206T081500Z")
    # The recovery itself starts with the same plan, so it stops at the same place with nothing changed.
    steps: List[str] = []
    with pytest.raises(ops.NotFoundError, match="no backup set"):
        ops.recover_server(config, from_dir=copies, force=True, on_step=steps.append)
    assert steps and steps[0].startswith("check")


def test_continuous_backup_info_from_a_config_runs_the_real_pgbackrest(tmp_path: Path) -> None:
    if shutil.which("pgbackrest") is None:
        if os.environ.get("CONNECT_REAL_TESTS") == "1":
            pytest.fail("pgbackrest is not installed (CONNECT_REAL_TESTS=1): apt-get install pgbackrest")
        pytest.skip("SKIPPED LOUDLY: pgbackrest is not installed")
    # Nothing set up yet: pgBackRest itself runs and refuses, and the error says what to do.
    config = config_file(
        tmp_path,
        "[database.pitr]\n"
        f'repo = "{tmp_path / "repo"}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "run_as = []\n"
        "[[database.pitr.nodes]]\n"
        'member = "patroni1"\n'
        f'data_dir = "{tmp_path / "data"}"\n'
        "port = 5432\n"
        f'socket_dir = "{tmp_path}"\n',
    )
    cluster = ops.PatroniCluster.from_config(config)
    with pytest.raises(ops.ConnectError) as info:
        cluster.continuous_backup_info()
    assert info.value.operation == "pitr.info" and info.value.kind == "failed", info.value
    assert "pgbackrest.conf" in info.value.message
    assert info.value.hint and "configure" in info.value.hint
