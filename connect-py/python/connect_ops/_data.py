"""Shared helpers of the typed results: JSON from the engine in, plain dicts out."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

from ._connect_ops import Release

#: The engine's JSON objects as they arrive.
Raw = Mapping[str, Any]


def plain(value: object) -> Any:
    """A JSON-ready copy: dataclasses and releases become dicts, tuples become lists."""
    if isinstance(value, Release):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


class Data:
    """Base of every result and event: ``to_dict()`` gives plain, JSON-ready data."""

    def to_dict(self) -> Dict[str, Any]:
        """The fields as plain data (dicts, lists, str, int, bool, None), ready for ``json.dumps``."""
        result: Dict[str, Any] = plain(self)
        return result


def release_or_none(raw: Optional[Raw]) -> Optional[Release]:
    return None if raw is None else Release.from_dict(dict(raw))
