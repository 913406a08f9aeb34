"""Fixtures: an in-memory server with two releases whose apps start in 50 ms."""

from __future__ import annotations

import pytest

import connect_ops as ops

V1 = ops.Release("connect", "v1")
V2 = ops.Release("connect", "v2")


@pytest.fixture
def stack() -> ops.MemoryStack:
    s = ops.MemoryStack()
    s.add_image(V1, ready_after=0.05)
    s.add_image(V2, ready_after=0.05)
    return s


@pytest.fixture
def deployer(stack: ops.MemoryStack) -> ops.Deployer:
    return ops.Deployer(stack, holder="pytest", health_deadline=5)


@pytest.fixture
def live_v2(deployer: ops.Deployer) -> ops.Deployer:
    """v1 on blue (standby), v2 on green (live)."""
    deployer.deploy(V1)
    deployer.deploy(V2)
    return deployer
