"""What the engine reports while it works: one class per kind of event.

Match on the class::

    def show(event: connect_ops.Event) -> None:
        if isinstance(event, connect_ops.StepFinished):
            print(f"ok {event.step} {event.duration_ms} ms {event.detail}")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Mapping, Optional, Type

from ._connect_ops import Release
from ._data import Data, Raw, release_or_none
from ._kinds import Color, OperationKind, StepName


@dataclass(frozen=True)
class Event(Data):
    """Base of every event. ``to_dict()`` includes the event's name under ``"event"``."""

    name: ClassVar[str] = "event"

    def to_dict(self) -> Dict[str, Any]:
        return {"event": self.name, **super().to_dict()}


@dataclass(frozen=True)
class OperationStarted(Event):
    """A deploy or rollback began; ``target`` is the color taking traffic afterwards."""

    name: ClassVar[str] = "operation_started"
    id: str
    kind: OperationKind
    release: Optional[Release]
    target: Color


@dataclass(frozen=True)
class StepStarted(Event):
    """A step began."""

    name: ClassVar[str] = "step_started"
    step: StepName


@dataclass(frozen=True)
class StepFinished(Event):
    """A step finished."""

    name: ClassVar[str] = "step_finished"
    step: StepName
    duration_ms: int
    detail: str


@dataclass(frozen=True)
class StepSkipped(Event):
    """A step was not needed."""

    name: ClassVar[str] = "step_skipped"
    step: StepName
    reason: str


@dataclass(frozen=True)
class StepFailed(Event):
    """A step failed; the operation undoes what it did and raises."""

    name: ClassVar[str] = "step_failed"
    step: StepName
    duration_ms: int
    error: str


@dataclass(frozen=True)
class HealthAttempt(Event):
    """One look at the new color's health during the health gate (about one a second)."""

    name: ClassVar[str] = "health_attempt"
    color: Color
    attempt: int
    health: str


@dataclass(frozen=True)
class TrafficSwitched(Event):
    """The router confirmed traffic on ``to``: when a deploy or rollback takes effect for customers."""

    name: ClassVar[str] = "traffic_switched"
    from_: Optional[Color]
    to: Color
    confirmed_after_ms: int


@dataclass(frozen=True)
class ShipProgress(Event):
    """How far the ship step is (rate-limited by the engine): ``phase`` is ``"build"`` or ``"send"``; within a
    phase the counts only grow, and a send's last event has everything done."""

    name: ClassVar[str] = "ship_progress"
    phase: str
    layers_done: int
    layers_total: int
    bytes_done: int
    bytes_total: int


@dataclass(frozen=True)
class Shipped(Event):
    """The ship step ended: ``outcome`` is ``"already_present"`` (nothing done), ``"sent"`` or
    ``"built_on_server"``."""

    name: ClassVar[str] = "shipped"
    image: str
    image_id: str
    outcome: str
    built_locally: bool
    layers_total: int
    layers_sent: int
    bytes_sent: int


@dataclass(frozen=True)
class StepWarning(Event):
    """Something worth a look that does not stop the operation."""

    name: ClassVar[str] = "warning"
    step: StepName
    message: str


@dataclass(frozen=True)
class OperationFinished(Event):
    """The operation ended."""

    name: ClassVar[str] = "operation_finished"
    id: str
    succeeded: bool
    duration_ms: int


@dataclass(frozen=True)
class OtherEvent(Event):
    """An event this version of the Python package does not know (a newer engine)."""

    name: ClassVar[str] = "other"
    event: str
    data: Mapping[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.data)


def event_from_dict(raw: Raw) -> Event:
    """The event of the engine's JSON object."""
    kind = raw.get("event")
    if kind == "operation_started":
        return OperationStarted(raw["id"], raw["kind"], release_or_none(raw.get("release")), raw["target"])
    if kind == "step_started":
        return StepStarted(raw["step"])
    if kind == "step_finished":
        return StepFinished(raw["step"], raw["duration"], raw["detail"])
    if kind == "step_skipped":
        return StepSkipped(raw["step"], raw["reason"])
    if kind == "step_failed":
        return StepFailed(raw["step"], raw["duration"], raw["error"])
    if kind == "health_attempt":
        return HealthAttempt(raw["color"], raw["attempt"], raw["health"])
    if kind == "traffic_switched":
        return TrafficSwitched(raw.get("from"), raw["to"], raw["confirmed_after"])
    if kind == "ship_progress":
        return ShipProgress(
            raw["phase"], raw["layers_done"], raw["layers_total"], raw["bytes_done"], raw["bytes_total"]
        )
    if kind == "shipped":
        return Shipped(
            raw["image"],
            raw["image_id"],
            raw["outcome"],
            raw["built_locally"],
            raw["layers_total"],
            raw["layers_sent"],
            raw["bytes_sent"],
        )
    if kind == "warning":
        return StepWarning(raw["step"], raw["message"])
    if kind == "operation_finished":
        return OperationFinished(raw["id"], raw["succeeded"], raw["duration"])
    return OtherEvent(str(kind), dict(raw))


def event_from_json(text: str) -> Event:
    return event_from_dict(json.loads(text))


#: Every event class by its name in the engine's JSON.
EVENTS_BY_NAME: Dict[str, Type[Event]] = {
    cls.name: cls
    for cls in (
        OperationStarted,
        StepStarted,
        StepFinished,
        StepSkipped,
        StepFailed,
        HealthAttempt,
        TrafficSwitched,
        ShipProgress,
        Shipped,
        StepWarning,
        OperationFinished,
    )
}

