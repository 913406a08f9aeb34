"""The real backends from Python: LocalHost on this machine, and the classes whose servers are absent here
raising the right ConnectError (SSH, Docker, Patroni and Redis each have real tests in their Rust crate)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import connect_ops as ops


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_local_host_runs_a_program() -> None:
    host = ops.LocalHost()
    assert host.name == "local"
    out = host.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (out.status, out.stdout, out.stderr, out.success) == (3, b"out\n", b"err\n", False)
    assert host.run(["cat"], stdin=b"fed").stdout_text() == "fed"
    with pytest.raises(ops.FailedError):
        host.run(["false"], check=True)
    with pytest.raises(ops.NotFoundError):
        host.run(["/no/such/program"])
    with pytest.raises(TypeError, match="argv"):
        host.run("echo hi")
    assert "status=3" in repr(out)


def test_local_host_files(tmp_path: Path) -> None:
    host = ops.LocalHost("this-machine")
    path = str(tmp_path / "journal.json")
    assert host.read_file(path) is None
    assert host.write_file(path, b'{"live": "blue"}') == 16
    assert host.read_file(path) == b'{"live": "blue"}'
    assert (tmp_path / "journal.json").read_bytes() == b'{"live": "blue"}'
    with pytest.raises(ops.ConflictError):
        host.write_file(path, b"lock", create_new=True)
    host.rename(path, str(tmp_path / "moved.json"))
    assert host.read_file(path) is None
    host.remove_file(str(tmp_path / "moved.json"))
    with pytest.raises(ops.NotFoundError):
        host.remove_file(str(tmp_path / "moved.json"))
    usage = host.disk_usage(str(tmp_path))
    assert 0 <= usage.used_percent <= 100 and usage.total_bytes >= usage.available_bytes


def test_local_host_in_backends_keeps_the_journal(tmp_path: Path) -> None:
    stack = ops.MemoryStack()
    stack.add_image("connect:v1", ready_after=0.05)
    backends = ops.Backends(
        host=ops.LocalHost(),
        runtime=stack.runtime,
        router=stack.router,
        database=stack.database,
        cache=stack.cache,
    )
    deployer = ops.Deployer(
        backends, holder="pytest", state_dir=str(tmp_path), health_deadline=5, disk_paths=[str(tmp_path)]
    )
    record = deployer.deploy("connect:v1")
    assert record.succeeded
    assert deployer.journal().live == record.live_after
    assert any(p.name.startswith("journal") for p in tmp_path.iterdir())


def test_ssh_host_unreachable_raises(tmp_path: Path) -> None:
    # The agent is only asked at authentication: the refused connection comes first.
    agent = str(tmp_path / "agent.sock")
    with pytest.raises(ops.ConnectError) as e:
        ops.SshHost("127.0.0.1", closed_port(), user="nobody", agent=agent, connect_timeout=3)
    assert e.value.kind in ("unavailable", "refused")
    with pytest.raises(ops.InvalidInputError, match="no key file and no ssh-agent"):
        ops.SshHost("127.0.0.1", closed_port(), user="nobody", agent=False)
    with pytest.raises(TypeError, match="agent"):
        ops.SshHost("127.0.0.1", user="nobody", agent=3)  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError):
        ops.SshHost("127.0.0.1", -1, user="nobody")


def test_docker_without_a_daemon_raises(tmp_path: Path) -> None:
    with pytest.raises(ops.ConnectError) as e:
        ops.Docker(socket=str(tmp_path / "docker.sock"))
    assert e.value.kind == "unavailable"
    with pytest.raises(TypeError, match="host"):
        ops.Docker(host=ops.MemoryHost())  # type: ignore[arg-type]


def test_patroni_cluster_arguments_and_unreachable() -> None:
    with pytest.raises(ops.InvalidInputError, match="http"):
        ops.PatroniCluster(["patroni1.internal:8008"], user="connect", dbname="connect")
    with pytest.raises(ops.InvalidInputError):
        ops.PatroniCluster([], user="connect", dbname="connect")
    cluster = ops.PatroniCluster([f"http://127.0.0.1:{closed_port()}"], user="connect", dbname="connect")
    with pytest.raises(ops.ConnectError) as e:
        cluster.members()
    assert e.value.kind in ("unavailable", "refused")


def test_redis_unreachable_raises() -> None:
    redis = ops.Redis("127.0.0.1", closed_port())
    assert redis.target.startswith("redis://127.0.0.1:")
    with pytest.raises(ops.ConnectError) as e:
        redis.ping()
    assert e.value.kind in ("unavailable", "refused")


def test_pg_target_and_backup_arguments(tmp_path: Path) -> None:
    target = ops.PgTarget("connect", "connect", port=5433, password="secret")
    assert (target.host, target.port, target.user, target.dbname) == ("127.0.0.1", 5433, "connect", "connect")
    assert "secret" not in repr(target)
    with pytest.raises(ops.InvalidInputError):
        ops.logical_backup(ops.LocalHost(), target, "bad label!", dir=str(tmp_path))
    with pytest.raises(TypeError, match="PgTarget"):
        ops.logical_backup(ops.LocalHost(), "postgres://x", "v1", dir=str(tmp_path))  # type: ignore[arg-type]
    assert ops.list_backups(ops.LocalHost(), str(tmp_path), "connect") == []


def test_backends_names_what_it_accepts() -> None:
    with pytest.raises(TypeError, match="Haproxy or MemoryRouter"):
        ops.Backends(
            host=ops.LocalHost(),
            runtime=ops.MemoryRuntime(),
            router=ops.LocalHost(),  # type: ignore[arg-type]
            database=ops.MemoryCluster(),
            cache=ops.MemoryCache(),
        )


def test_blocking_constructor_releases_the_gil() -> None:
    """An SSH server that accepts TCP but never speaks: the constructor blocks until its connect_timeout,
    raising TimeoutError, while another Python thread keeps running."""
    import threading

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        done = threading.Event()
        ticks = 0

        def count() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1

        worker = threading.Thread(target=count)
        worker.start()
        try:
            with pytest.raises(ops.OperationTimeoutError, match="handshake"):
                ops.SshHost("127.0.0.1", port, user="nobody", agent="/nonexistent/agent.sock", connect_timeout=0.5)
        finally:
            done.set()
            worker.join()
    assert ticks > 1000
