"""The ship step's events as the engine writes them (their JSON keys are pinned on the Rust side too, in
connect-core's tests/ship.rs), parsed into the classes a caller renders."""

from __future__ import annotations

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
