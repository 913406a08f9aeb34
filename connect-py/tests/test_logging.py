"""The engine's tracing reaches Python's ``logging``: step spans and events, with secrets absent."""

from __future__ import annotations

import logging
from typing import Iterator, List

import pytest

import connect_ops as ops
from conftest import V1


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # pyo3-log caches each logger's level on first use: tell it the configuration changed.
    ops.refresh_logging()
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        ops.refresh_logging()


def test_a_deploy_logs_its_steps_and_events_without_secrets(stack: ops.MemoryStack, collected: Collect) -> None:
    secret = "hunter2-s3cr3t"
    deployer = ops.Deployer(
        stack,
        holder="pytest",
        env={"DATABASE_URL": f"postgres://connect:{secret}@db/connect"},
        health_deadline=5,
    )
    deployer.deploy(V1)
    messages = [(r.name, r.levelno, r.getMessage()) for r in collected.records]
    assert messages, "no record reached logging"
    # Each step runs in a span `step{step=…, id=…}`; its creation is an INFO record from the engine's module.
    spans = [m for name, level, m in messages if name == "connect_core.engine.run" and level == logging.INFO]
    assert any(m.startswith("step;") and 'step="switch"' in m for m in spans), spans
    # Span entries and exits (a future is entered at every poll) are left out.
    assert not [name for name, _, _ in messages if name.startswith("tracing.span")]
    # The engine's events arrive from their module, at DEBUG.
    events = [m for name, level, m in messages if name == "connect_core.engine.events" and level == logging.DEBUG]
    assert any("TrafficSwitched" in m for m in events), events
    assert all(secret not in m for _, _, m in messages)


def test_levels_filter_on_the_python_side(stack: ops.MemoryStack, collected: Collect) -> None:
    logging.getLogger("connect_core").setLevel(logging.WARNING)
    ops.refresh_logging()
    try:
        ops.Deployer(stack, holder="pytest", health_deadline=5).deploy(V1)
        assert not [r for r in collected.records if r.name.startswith("connect_core") and r.levelno < logging.WARNING]
    finally:
        logging.getLogger("connect_core").setLevel(logging.NOTSET)
