"""``Deployer.metrics()``: one snapshot of the live figures, typed, on the in-memory backends."""

from __future__ import annotations

import asyncio
import json

import pytest

import connect_ops as ops


def test_a_snapshot_shows_each_color_the_database_the_cache_and_the_deploy(live_v2: ops.Deployer) -> None:
    snapshot = live_v2.metrics(interval_seconds=0.05)
    assert isinstance(snapshot, ops.MetricsSnapshot)
    assert snapshot.sequence == 2 and snapshot.interval_ms >= 50, "two samples, the rates over the interval"
    assert [c.color for c in snapshot.colors] == ["blue", "green"]
    green = snapshot.color("green")
    assert green is not None and green.container is not None and green.traffic is not None
    assert green.container.release == "v2"
    assert green.container.state == "running"
    assert green.container.memory_bytes == 48 * 1024 * 1024
    assert green.traffic.admin == "ready"
    assert snapshot.deploy is not None
    assert (snapshot.deploy.live, snapshot.deploy.standby) == ("green", "blue")
    assert snapshot.deploy.releases == {"blue": "v1", "green": "v2"}
    last = snapshot.deploy.last
    assert last is not None and (last.kind, last.release, last.outcome) == ("deploy", "v2", "succeeded")
    assert "switch" in [s.step for s in last.steps]
    assert snapshot.deploy.lock is None and snapshot.deploy.in_progress is None
    assert snapshot.database is not None and snapshot.cache is not None
    assert snapshot.unavailable == {}
    assert "live=green" in repr(snapshot)
    json.dumps(snapshot.to_dict())


def test_one_sample_has_totals_but_no_rates(live_v2: ops.Deployer) -> None:
    snapshot = live_v2.metrics(interval_seconds=0)
    assert (snapshot.sequence, snapshot.interval_ms) == (1, 0)
    blue = snapshot.color("blue")
    assert blue is not None and blue.container is not None and blue.container.cpu_percent is None


def test_the_lock_shows_who_runs_an_operation(live_v2: ops.Deployer) -> None:
    with live_v2.lock():
        deploy = live_v2.metrics(interval_seconds=0).deploy
        assert deploy is not None and deploy.lock is not None
        assert deploy.lock.holder == "pytest"


def test_metrics_async(live_v2: ops.Deployer) -> None:
    snapshot = asyncio.run(live_v2.metrics_async(interval_seconds=0))
    assert snapshot.deploy is not None and snapshot.deploy.live == "green"


def test_a_negative_interval_is_bad_input(live_v2: ops.Deployer) -> None:
    with pytest.raises(ops.InvalidInputError, match="interval_seconds"):
        live_v2.metrics(interval_seconds=-1)
