"""The ship step from Python: its events as the engine writes them (their JSON keys are pinned on the Rust side
too, in connect-core's tests/ship.rs), parsed into the classes a caller renders, and a deploy that ships."""

from __future__ import annotations

from typing import List

import pytest

import connect_ops as ops

PROGRESS = (
    '{"event":"ship_progress","phase":"send","layers_done":1,"layers_total":2,'
    '"bytes_done":4194304,"bytes_total":120000000}'
)
SHIPPED = (
    '{"event":"shipped","image":"connect:v4","image_id":"sha256:ab","outcome":"sent","built_locally":true,'
    '"layers_total":3,"layers_sent":2,"bytes_sent":120000000}'
)


def test_ship_progress_and_shipped_parse_into_their_classes() -> None:
    from connect_ops._events import event_from_json

    progress = event_from_json(PROGRESS)
    assert isinstance(progress, ops.ShipProgress)
    assert (progress.phase, progress.layers_done, progress.layers_total) == ("send", 1, 2)
    assert progress.bytes_done * 100 // progress.bytes_total == 3
    shipped = event_from_json(SHIPPED)
    assert isinstance(shipped, ops.Shipped)
    assert (shipped.outcome, shipped.built_locally, shipped.layers_sent) == ("sent", True, 2)
    assert ops.EVENTS_BY_NAME["ship_progress"] is ops.ShipProgress
    assert ops.EVENTS_BY_NAME["shipped"] is ops.Shipped
    assert shipped.to_dict()["event"] == "shipped"
    assert set(progress.to_dict()) == {"event", "phase", "layers_done", "layers_total", "bytes_done", "bytes_total"}


def test_a_deploy_from_a_local_image_ships_it_with_progress_events(stack: ops.MemoryStack) -> None:
    deployer = ops.Deployer(stack, holder="pytest", health_deadline=5)
    stack.add_local_image("connect-dev:latest")
    events: List[ops.Event] = []
    record = deployer.deploy("connect:v4", image="connect-dev:latest", on_event=events.append)
    assert record.succeeded and record.live_after == "blue"
    finished = [e.step for e in events if isinstance(e, ops.StepFinished)]
    assert finished[:3] == ["reconcile", "preflight", "ship"]
    progress = [e for e in events if isinstance(e, ops.ShipProgress)]
    assert progress and all(b.bytes_done >= a.bytes_done for a, b in zip(progress, progress[1:]))
    assert (progress[-1].bytes_done, progress[-1].layers_done) == (progress[-1].bytes_total, progress[-1].layers_total)
    shipped = [e for e in events if isinstance(e, ops.Shipped)]
    assert [s.outcome for s in shipped] == ["sent"]

    again: List[ops.Event] = []
    deployer.deploy("connect:v4", image="connect-dev:latest", on_event=again.append)
    assert [e.outcome for e in again if isinstance(e, ops.Shipped)] == ["already_present"]
    assert not any(isinstance(e, ops.ShipProgress) for e in again)


def test_a_deploy_with_two_sources_or_a_missing_one_is_refused(deployer: ops.Deployer) -> None:
    with pytest.raises(ops.InvalidInputError, match="not both"):
        deployer.deploy("connect:v4", context="/src", image="connect-dev:latest")
    with pytest.raises(ops.NotFoundError, match="no such image"):
        deployer.deploy("connect:v4", image="nope:dev")
    with pytest.raises(ops.NotFoundError, match="Dockerfile"):
        deployer.deploy("connect:v4", context="/no/such/dir", build_on="server")
