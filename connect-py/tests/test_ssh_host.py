"""SshHost against a real sshd: one connection for everything, and ``with`` closing it."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

import connect_ops as ops
from sshd import Sshd, start_sshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    yield from start_sshd(tmp_path)


def connect(server: Sshd) -> ops.SshHost:
    return ops.SshHost(
        "127.0.0.1",
        server.port,
        user=server.user,
        key_file=server.key_file,
        known_hosts=server.known_hosts,
        agent=False,
    )


def test_with_block_closes_the_connection(sshd: Sshd) -> None:
    with connect(sshd) as host:
        assert host.run(["echo", "hi"], check=True).stdout == b"hi\n"
        assert host.run(["true"]).success
        assert host.connections_opened() == 1
    assert sshd.accepted_connections() == 1
    # Closed on exit: the next operation has to open a second connection.
    assert host.run(["true"]).success
    assert host.connections_opened() == 2
    assert sshd.accepted_connections() == 2
    host.close()


def test_with_block_closes_on_an_exception_and_lets_it_through(sshd: Sshd) -> None:
    with pytest.raises(ops.FailedError):
        with connect(sshd) as host:
            host.run(["false"], check=True)
    assert host.connections_opened() == 1
    host.run(["true"])
    assert host.connections_opened() == 2
    host.close()
