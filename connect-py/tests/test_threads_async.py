"""Blocking calls release the GIL; the async variants run on the same engine without blocking the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import List

import pytest

import connect_ops as ops
from conftest import V1, V2


def test_blocking_deploy_lets_other_threads_run() -> None:
    stack = ops.MemoryStack()
    # In-memory time is tokio's real clock here: the health gate really waits these two seconds.
    stack.add_image(V1, ready_after=2.0)
    deployer = ops.Deployer(stack, holder="pytest")
    counter = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1

    worker = threading.Thread(target=count)
    worker.start()
    try:
        started = time.monotonic()
        before = counter
        record = deployer.deploy(V1)
        during = counter - before
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        worker.join()
    assert record.succeeded and elapsed >= 1.9
    # With the GIL held for two seconds the counter could not move; released, it moves millions of times.
    assert during > 100_000, during


def test_async_deploy_does_not_block_the_event_loop() -> None:
    async def main() -> None:
        stack = ops.MemoryStack()
        stack.add_image(V1, ready_after=0.5)
        deployer = ops.Deployer(stack, holder="pytest")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        events: List[ops.Event] = []
        record = await deployer.deploy_async(V1, on_event=events.append)
        ticker.cancel()
        assert record.succeeded and isinstance(events[-1], ops.OperationFinished)
        assert ticks >= 10, ticks

    asyncio.run(main())


def test_every_async_variant(stack: ops.MemoryStack) -> None:
    async def main() -> None:
        d = ops.Deployer(stack, holder="pytest")
        assert (await d.preflight_async()).passed
        await d.deploy_async(V1)
        await d.deploy_async("connect:v2")
        assert (await d.status_async()).live == "green"
        assert (await d.verify_async()).passed
        assert (await d.verify_async("green", since_seconds=60)).passed
        assert (await d.rollback_async()).live_after == "blue"
        assert (await d.rollback_to_async("v2")).live_after == "green"
        assert len((await d.journal_async()).history) == 4
        assert (await d.retire_standby_async()).kind == "retire"
        assert (await d.adopt_async()).live == "green"
        assert await d.break_lock_async() is None
        with pytest.raises(ops.NotFoundError):
            await d.rollback_to_async("v7")
        with pytest.raises(ops.InvalidInputError):
            await d.deploy_async("connect:")

    asyncio.run(main())


def test_concurrent_async_deploys_conflict_on_the_lock(stack: ops.MemoryStack) -> None:
    async def main() -> None:
        a = ops.Deployer(stack, holder="a")
        b = ops.Deployer(stack, holder="b")
        results = await asyncio.gather(a.deploy_async(V1), b.deploy_async(V2), return_exceptions=True)
        assert sum(isinstance(r, ops.ConflictError) for r in results) == 1
        assert sum(isinstance(r, ops.OperationRecord) for r in results) == 1

    asyncio.run(main())


def test_operation_iterates_events_then_gives_the_result(deployer: ops.Deployer) -> None:
    op = deployer.start_deploy(V1)
    assert "Operation" in repr(op)
    events = list(op)
    assert op.done and isinstance(events[0], ops.OperationStarted) and isinstance(events[-1], ops.OperationFinished)
    assert op.result().live_after == "blue"
    assert op.result().id == events[0].id  # result() can be asked again
    assert list(op) == []
    back = deployer.start_rollback()
    with pytest.raises(ops.RefusedError):
        back.result()
    with pytest.raises(ops.RefusedError):
        back.result()


def test_operation_async_iteration(live_v2: ops.Deployer) -> None:
    async def main() -> None:
        op = live_v2.start_rollback_to("v1")
        names = [type(e).__name__ async for e in op]
        assert names[0] == "OperationStarted" and names[-1] == "OperationFinished"
        assert "HealthAttempt" in names
        record = await op.result_async()
        assert record.kind == "full_rollback" and record.live_after == "blue"
        failing = live_v2.start_rollback_to("v0")
        with pytest.raises(ops.NotFoundError):
            await failing.result_async()
        back = live_v2.start_rollback()
        assert (await back.result_async()).kind == "instant_rollback"

    asyncio.run(main())


def test_async_callbacks_run_on_the_loop_thread_and_their_errors_are_raised(stack: ops.MemoryStack) -> None:
    async def main() -> None:
        d = ops.Deployer(stack, holder="pytest")
        loop_thread = threading.get_ident()
        threads = set()

        def record_thread(event: ops.Event) -> None:
            threads.add(threading.get_ident())

        await d.deploy_async(V1, on_event=record_thread)
        assert threads == {loop_thread}

        def boom(event: ops.Event) -> None:
            raise ValueError("observer broke")

        with pytest.raises(ValueError, match="observer broke"):
            await d.deploy_async(V2, on_event=boom)
        status = await d.status_async()
        assert status.live == "green" and status.lock is None

    asyncio.run(main())


def test_cancelling_an_async_deploy_does_not_abandon_it() -> None:
    async def main() -> None:
        stack = ops.MemoryStack()
        stack.add_image(V1, ready_after=0.3)
        d = ops.Deployer(stack, holder="pytest")
        started = asyncio.Event()
        task = asyncio.ensure_future(d.deploy_async(V1, on_event=lambda e: started.set()))
        await asyncio.wait_for(started.wait(), 10)  # the deploy holds the lock; cancel it mid-way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The engine carries on to its end: wait for the journal to say so, with a deadline.
        deadline = time.monotonic() + 10
        while (await d.status_async()).live != "blue":
            assert time.monotonic() < deadline, "the cancelled deploy never finished"
            await asyncio.sleep(0.02)
        assert (await d.status_async()).lock is None

    asyncio.run(main())
