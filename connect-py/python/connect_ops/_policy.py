"""The deploy's safety net as the engine's policy takes it: the watch after the switch, the canary, the
backups, the operator's hooks and the webhooks told of every operation. Durations are seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Sequence, Tuple

from ._data import Data

#: Where in an operation a hook runs: the first three are gates (a failure stops the deploy before traffic
#: moves), the last two are told after it (a failure is reported, the outcome stands).
HookPoint = Literal["before_deploy", "after_ship", "before_switch", "after_deploy", "after_rollback"]

#: Where a hook's command runs: this machine, or the server through the deploy's connection.
HookSite = Literal["local", "server"]


def _ms(seconds: float) -> int:
    # The engine's JSON holds whole milliseconds; it refuses what cannot hold (negative, zero deadlines).
    return round(seconds * 1000)


@dataclass(frozen=True)
class WatchPolicy(Data):
    """The new color watched for ``window`` seconds after the switch (and after an instant rollback): a
    breach of any threshold, against the old color's figures from before the switch, rolls back to the warm
    standby. ``window=0`` turns the watch off."""

    window: float
    interval: float = 5.0
    max_5xx_increase_percent: float = 1.0
    min_responses: int = 20
    max_response_time_factor: float = 3.0
    response_time_floor: float = 0.2
    max_restarts: int = 0
    max_error_lines_increase: int = 10

    def _engine(self) -> Dict[str, Any]:
        return {
            "window": _ms(self.window),
            "interval": _ms(self.interval),
            "max_5xx_increase_percent": self.max_5xx_increase_percent,
            "min_responses": self.min_responses,
            "max_response_time_factor": self.max_response_time_factor,
            "response_time_floor": _ms(self.response_time_floor),
            "max_restarts": self.max_restarts,
            "max_error_lines_increase": self.max_error_lines_increase,
        }


@dataclass(frozen=True)
class CanaryPolicy(Data):
    """Traffic moved to the new color in ``steps`` (percent, rising, each below 100), each held ``hold``
    seconds under the watch, which a canary needs."""

    steps: Tuple[int, ...] = (10, 50)
    hold: float = 60.0

    def _engine(self) -> Dict[str, Any]:
        return {"steps": list(self.steps), "hold": _ms(self.hold)}


@dataclass(frozen=True)
class BackupPolicy(Data):
    """When the deploy takes a verified backup of the app's database, and how many are kept."""

    before_migration: bool = True
    every_deploy: bool = False
    keep: int = 7
    deadline: float = 7200.0

    def _engine(self) -> Dict[str, Any]:
        return {
            "before_migration": self.before_migration,
            "every_deploy": self.every_deploy,
            "keep": self.keep,
            "deadline": _ms(self.deadline),
        }


@dataclass(frozen=True)
class Hook(Data):
    """A command (an argv, never a shell string) run at ``point`` of every operation, with the operation's
    facts in its environment (``CONNECT_HOOK``, ``CONNECT_RELEASE``, ``CONNECT_LIVE_AFTER``...)."""

    point: HookPoint
    command: Tuple[str, ...]
    site: HookSite = "local"
    timeout: float = 60.0

    def _engine(self) -> Dict[str, Any]:
        return {"point": self.point, "command": list(self.command), "site": self.site, "timeout": _ms(self.timeout)}


@dataclass(frozen=True)
class Webhook(Data):
    """An http(s) URL that receives every operation's record as JSON when it ends. Its failure or slowness
    changes nothing but a warning. The URL often holds a secret, so its repr shows the host only."""

    url: str
    timeout: float = 10.0

    def __repr__(self) -> str:
        scheme, _, rest = self.url.partition("://")
        host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
        return f"Webhook(url='{scheme}://{host}/…', timeout={self.timeout})"

    def _engine(self) -> Dict[str, Any]:
        return {"url": self.url, "timeout": _ms(self.timeout)}


def safety_net(
    *,
    watch: Optional[WatchPolicy],
    canary: Optional[CanaryPolicy],
    backup: Optional[BackupPolicy],
    hooks: Sequence[Hook],
    webhooks: Sequence[Webhook],
    keep_releases: Optional[int],
    allow_destructive_migrations: bool,
) -> Dict[str, Any]:
    """The engine's JSON of these options (``None`` leaves the engine's default)."""
    net: Dict[str, Any] = {
        "hooks": [h._engine() for h in hooks],
        "webhooks": [w._engine() for w in webhooks],
        "keep_releases": keep_releases,
        "allow_destructive_migrations": allow_destructive_migrations,
        "canary": None if canary is None else canary._engine(),
    }
    if watch is not None:
        net["watch"] = watch._engine()
    if backup is not None:
        net["backup"] = backup._engine()
    return net
