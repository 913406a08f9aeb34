"""The chores around a deploy that need no server of their own: container logs on the in-memory runtime,
the app's options, backups on this machine's disk (checked with the real pg_restore), migration SQL."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

import connect_ops as ops
from conftest import V1


def test_logs_of_a_color_since_a_window(stack: ops.MemoryStack) -> None:
    stack.add_image("connect:noisy", ready_after=0.05, error_lines=3)
    deployer = ops.Deployer(stack, holder="pytest", max_error_lines=5)
    deployer.deploy("connect:noisy")
    lines = stack.runtime.logs("connect_app1")
    assert len([line for line in lines if "error" in line.lower()]) == 3
    with pytest.raises(ops.NotFoundError):
        stack.runtime.logs("connect_app2")
    with pytest.raises(ops.InvalidInputError, match="since_seconds"):
        stack.runtime.logs("connect_app1", since_seconds=-1)


def test_app_options_show_env_names_never_values(stack: ops.MemoryStack) -> None:
    deployer = ops.Deployer(
        stack,
        holder="pytest",
        env={"DATABASE_URL": "postgres://connect:hunter2@db/connect", "NODE_ENV": "production"},
        ports=(3000, 3001),
        health_path="/healthz",
        migration=["npx", "prisma", "migrate", "deploy"],
    )
    app = deployer.app
    assert app.env == {"DATABASE_URL": "<redacted>", "NODE_ENV": "<redacted>"}
    assert app.ports == {"blue": 3000, "green": 3001}
    assert (app.health_path, app.container_port) == ("/healthz", 3000)
    assert app.migration == ("npx", "prisma", "migrate", "deploy")
    assert "hunter2" not in repr(app) and "hunter2" not in str(app.to_dict())
    with pytest.raises(ops.InvalidInputError, match="distinct ports"):
        ops.Deployer(stack, ports=(3000, 3000))
    with pytest.raises(ops.InvalidInputError, match="ports"):
        ops.Deployer(stack, ports=(3000, 70000))


def require_pg_restore() -> None:
    if shutil.which("pg_restore"):
        return
    message = "pg_restore is not installed (apt-get install postgresql-client): the backup checks cannot run"
    if os.environ.get("CONNECT_REAL_TESTS") == "1":
        pytest.fail(f"CONNECT_REAL_TESTS=1 but {message}")
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(message)


def test_verify_backup_refuses_a_damaged_dump(tmp_path: Path) -> None:
    require_pg_restore()
    backups = tmp_path / "backups"
    dump = tmp_path / "connect-20251014T090000.000Z-v1.dump"
    dump.write_bytes(b"PGDMP but not really a dump")
    with pytest.raises(ops.CorruptError) as info:
        ops.verify_backup(ops.LocalHost(), str(dump), dir=str(backups))
    assert info.value.operation == "backup.verify" and "take a new backup" in (info.value.hint or "")


def test_prune_backups_keeps_the_newest_and_nothing_else(tmp_path: Path) -> None:
    host = ops.LocalHost()
    names = [f"connect-2025101{d}T090000.000Z-v{d}.dump" for d in range(1, 5)]
    for name in names:
        (tmp_path / name).write_bytes(b"dump")
        (tmp_path / f"{name}.sha256").write_text("0" * 64)
    (tmp_path / "notes.txt").write_text("keep me")
    assert ops.list_backups(host, str(tmp_path), "connect") == [str(tmp_path / n) for n in names]
    removed = ops.prune_backups(host, str(tmp_path), "connect", keep=2)
    assert sorted(removed) == [str(tmp_path / n) for n in names[:2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*names[2:], *(f"{n}.sha256" for n in names[2:]), "notes.txt"]
    )
    with pytest.raises(ops.InvalidInputError, match="keep"):
        ops.prune_backups(host, str(tmp_path), "connect", keep=-1)


def test_lint_sql_names_the_destructive_statements() -> None:
    sql = """-- DROP TABLE in a comment does not count
ALTER TABLE users ADD COLUMN nickname text;
ALTER TABLE users DROP COLUMN legacy;
ALTER TABLE sessions RENAME TO logins;
INSERT INTO notes VALUES ('DROP TABLE users');
"""
    changes = ops.lint_sql(sql)
    assert [(c.kind, c.line) for c in changes] == [("drop", 3), ("rename", 4)]
    assert "DROP COLUMN legacy" in changes[0].statement
    assert ops.lint_sql("CREATE TABLE t (id int);") == []


def test_check_migrations_on_an_unreachable_database() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = ops.PgTarget("connect", "connect", port=port, password="hunter2", connect_timeout=3)
    with pytest.raises(ops.ConnectError) as info:
        ops.check_migrations(target)
    assert info.value.kind == "unavailable"
    assert "hunter2" not in str(info.value)


def test_records_speak_the_literal_words(deployer: ops.Deployer) -> None:
    record = deployer.deploy(V1)
    assert {s.step for s in record.steps} <= set(ops.STEP_NAMES)
    assert record.outcome.result == "succeeded" and record.kind == "deploy"
