"""The deploy lock as a context manager: ``with`` and ``async with`` take it and release it, however the
block ends; while held, operations are refused with the holder named."""

from __future__ import annotations

import asyncio
import time

import pytest

import connect_ops as ops
from conftest import V1, V2


def test_with_block_holds_the_lock_and_releases_it(live_v2: ops.Deployer, stack: ops.MemoryStack) -> None:
    other = ops.Deployer(stack, holder="someone-else")
    with live_v2.lock() as lock:
        assert lock.held and not lock.lost and lock.took_over is None
        status = other.status()
        assert status.lock is not None and status.lock.operation == "maintenance"
        assert status.lock.holder == "pytest"
        with pytest.raises(ops.ConflictError, match="pytest"):
            other.rollback()
        with pytest.raises(ops.ConflictError):
            live_v2.deploy(V1)  # not re-entrant: the script's own operations wait for the block's end
    assert not lock.held
    assert other.status().lock is None
    assert other.rollback().succeeded


def test_with_block_releases_on_an_exception(deployer: ops.Deployer) -> None:
    with pytest.raises(KeyError):
        with deployer.lock():
            raise KeyError("the script failed inside")
    assert deployer.status().lock is None
    assert deployer.deploy(V1).succeeded


def test_async_with_block(deployer: ops.Deployer) -> None:
    async def main() -> None:
        async with deployer.lock() as lock:
            assert lock.held
            with pytest.raises(ops.ConflictError):
                await deployer.deploy_async(V2)
        assert not lock.held
        assert (await deployer.status_async()).lock is None
        assert (await deployer.deploy_async(V2)).succeeded

    asyncio.run(main())


def test_a_broken_lock_is_reported_lost_on_release(stack: ops.MemoryStack) -> None:
    deployer = ops.Deployer(stack, holder="pytest", lock_lease=0.3)
    with pytest.raises(ops.ConflictError):
        with deployer.lock() as lock:
            deployer.break_lock()
            other = ops.Deployer(stack, holder="other", lock_lease=0.3)
            with other.lock():
                # The holder's renewal, every third of the lease, finds the other token.
                give_up = time.monotonic() + 10
                while not lock.lost:
                    assert time.monotonic() < give_up, "the renewal never noticed the lock was taken"
                    time.sleep(0.01)  # a polling interval: the condition decides
    assert deployer.status().lock is None
