"""Shared helpers of the typed results: JSON from the engine in, plain dicts out."""

from __future__ import annotations

import collections.abc
import dataclasses
import typing
from typing import Any, Callable, Dict, Mapping, Optional, Type, TypeVar, Union

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


D = TypeVar("D", bound="Data")


class Data:
    """Base of every result and event: ``to_dict()`` gives plain, JSON-ready data, ``from_dict()`` reads the
    engine's JSON."""

    @classmethod
    def from_dict(cls: Type[D], raw: Raw) -> D:
        """The result from the engine's JSON object: each field from the key of its name, converted by its
        annotation (nested results, releases, tuples, mappings; ``Optional`` ones may be absent). A class
        whose JSON is shaped otherwise adjusts ``raw`` and calls this."""
        hints = _field_hints(cls)
        values: Dict[str, Any] = {}
        for f in dataclasses.fields(typing.cast(Any, cls)):
            hint = hints[f.name]
            if f.name in raw:
                values[f.name] = _convert(hint, raw[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                # An absent optional key is None, as the engine's `skip_serializing_if` means it; any
                # other absent key is the KeyError a malformed answer deserves.
                values[f.name] = None if _optional(hint) else raw[f.name]
        build: Callable[..., D] = cls
        return build(**values)

    def to_dict(self) -> Dict[str, Any]:
        """The fields as plain data (dicts, lists, str, int, bool, None), ready for ``json.dumps``."""
        result: Dict[str, Any] = plain(self)
        return result


def release_or_none(raw: Optional[Raw]) -> Optional[Release]:
    return None if raw is None else Release.from_dict(dict(raw))


_HINTS: Dict[type, Dict[str, Any]] = {}


def _field_hints(cls: type) -> Dict[str, Any]:
    # The modules use `from __future__ import annotations`: the annotations are strings until resolved, once
    # per class.
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) is Union and type(None) in typing.get_args(hint)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        return tuple(_convert(args[0] if args else Any, v) for v in value)
    if origin in (collections.abc.Mapping, dict):
        # `dict()` also takes the list of pairs a Rust map with non-string keys arrives as.
        return {k: _convert(args[1] if args else Any, v) for k, v in dict(value).items()}
    if isinstance(hint, type) and issubclass(hint, Data):
        return hint.from_dict(value)
    if hint is Release:
        return Release.from_dict(dict(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        # JSON writes a whole float as an integer (`0`): a float field stays a float.
        return float(value)
    # str, int, bool and the Literal vocabularies arrive as they are.
    return value
