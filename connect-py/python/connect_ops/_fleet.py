"""Several app servers in one deploy (issue 18.1): every host made ready, then ONE router exchange switches
them all; a host that fails before it aborts the deploy everywhere, or is left out of rotation when at least
``min_healthy_hosts`` are ready. The engine is ``connect_core::engine::fleet::Fleet``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Tuple, Union

from ._connect_ops import MemoryFleet, Release, _Fleet
from ._data import Data
from ._deployer import DeployOptions, Deployer, deploy_config, on_loop_thread, source_json, wrap
from ._events import Event, event_from_json
from ._kinds import Color
from ._types import OperationRecord, Status

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Called with the host's name and each of its events while a fleet operation runs.
FleetEventCallback = Callable[[str, Event], Any]


@dataclass(frozen=True)
class HostOutcome(Data):
    """How one host ended a fleet deploy or rollback."""

    host: str
    in_rotation: bool
    """Whether one of its servers takes traffic now."""
    live: Optional[Color]
    """Its live color per its journal (``None`` when it was left out of rotation)."""
    record: Optional[OperationRecord]
    """Its operation record as its journal holds it (``None`` when the journal could not be written)."""
    error: Optional[str]
    """Why it failed, if it did: a host left out says why here."""


@dataclass(frozen=True, repr=False)
class FleetReport(Data):
    """What a fleet deploy or rollback did on every host, in the fleet's order."""

    hosts: Tuple[HostOutcome, ...]

    @property
    def in_rotation(self) -> Tuple[str, ...]:
        """The hosts whose servers take traffic."""
        return tuple(h.host for h in self.hosts if h.in_rotation)

    @property
    def left_out(self) -> Tuple[str, ...]:
        """The hosts left out of rotation because they failed before the switch."""
        return tuple(h.host for h in self.hosts if not h.in_rotation)

    def host(self, name: str) -> HostOutcome:
        """One host's outcome; ``KeyError`` for a name the fleet lacks."""
        for h in self.hosts:
            if h.host == name:
                return h
        raise KeyError(name)

    def __repr__(self) -> str:
        hosts = ", ".join(f"{h.host}={h.live if h.in_rotation else 'left out'}" for h in self.hosts)
        return f"<FleetReport {hosts}>"


@dataclass(frozen=True)
class HostStatus(Data):
    """One host's status, or why it could not be read."""

    host: str
    status: Optional[Status]
    error: Optional[str]


@dataclass(frozen=True, repr=False)
class FleetStatus(Data):
    """Every host's status (its journal against its servers and containers), in the fleet's order."""

    hosts: Tuple[HostStatus, ...]

    @property
    def differences(self) -> Tuple[str, ...]:
        """Every difference between a host's journal and what runs, and every host not read, each naming the
        host; empty when every journal matches."""
        found: List[str] = []
        for h in self.hosts:
            if h.status is not None:
                found.extend(f"{h.host}: {d}" for d in h.status.differences)
            else:
                found.append(f"{h.host}: could not be read ({h.error or 'no answer'})")
        return tuple(found)

    @property
    def live(self) -> Mapping[str, Optional[Color]]:
        """Each host's live color per its journal (``None`` for a host left out or not read)."""
        return {h.host: None if h.status is None else h.status.live for h in self.hosts}

    def __repr__(self) -> str:
        live = ", ".join(f"{h}={c}" for h, c in self.live.items())
        drift = f", {len(self.differences)} differences" if self.differences else ""
        return f"<FleetStatus {live}{drift}>"


def _callback(on_event: Optional[FleetEventCallback]) -> Optional[Callable[[str, str], None]]:
    if on_event is None:
        return None
    if not callable(on_event):
        raise TypeError(f"on_event must be a callable taking a host name and an Event, not {type(on_event).__name__}")

    def deliver(host: str, raw: str) -> None:
        on_event(host, event_from_json(raw))

    return deliver


async def _on_loop(start: Callable[[Any], Any], on_event: Optional[FleetEventCallback]) -> str:
    if on_event is None:
        raw: str = await start(None)
        return raw
    if not callable(on_event):
        raise TypeError(f"on_event must be a callable taking a host name and an Event, not {type(on_event).__name__}")
    return await on_loop_thread(start, lambda host, raw: on_event(host, event_from_json(raw)))


def _report(raw: str) -> FleetReport:
    return FleetReport.from_dict(json.loads(raw))


class Fleet:
    """Deploys one release to several app hosts behind one HAProxy backend and switches them together.

    Each host keeps its own journal and lock (:meth:`deployer` gives one host's :class:`Deployer`); the
    database and the cache are shared, so the migration runs once, from the first host. Blocking methods
    release the GIL and have ``*_async`` twins.

    >>> hosts = MemoryFleet(["web1", "web2"])
    >>> hosts.add_image("connect:v1", ready_after=0.05)
    >>> Fleet(hosts, holder="docs").deploy("connect:v1").in_rotation
    ('web1', 'web2')
    """

    def __init__(
        self, hosts: MemoryFleet, *, min_healthy_hosts: Optional[int] = None, **options: Unpack[DeployOptions]
    ) -> None:
        """A fleet over ``hosts`` (in their order), every host deployed as :class:`Deployer`'s arguments say.
        ``min_healthy_hosts``: ``None`` requires every host, so one failing before the switch aborts the
        deploy everywhere; ``n`` switches once at least ``n`` hosts are ready and leaves the others out of
        rotation, which the report and their journals say. ``watch`` watches every host's new color at once, and a
        regression on any host puts every host back in one switch. A fleet does not do the canary, balanced
        colors or hooks on the server yet (:class:`UnsupportedError`). The real fleet comes from a config
        file: :meth:`from_config`."""
        config = deploy_config(**options)
        self._inner = _Fleet(hosts, config, min_healthy_hosts=min_healthy_hosts)

    @classmethod
    def from_config(cls, path: Union[str, PathLike[str]]) -> Fleet:
        """The fleet of ``connect.toml`` at ``path`` with ``[[app_hosts]]`` and ``[fleet]`` (as ``connect-ops
        deploy`` reads it): ``[server]`` reaches HAProxy, Patroni and Redis, each app host gets its own SSH
        connection and Docker engine. Connects, with the GIL released; a file without ``[[app_hosts]]`` raises
        :class:`InvalidInputError`."""
        fleet = cls.__new__(cls)
        fleet._inner = _Fleet.from_config(path)
        return fleet

    @property
    def hosts(self) -> Tuple[str, ...]:
        """The hosts' names, in order (the first runs the migration)."""
        return tuple(self._inner.hosts)

    @property
    def min_healthy_hosts(self) -> Optional[int]:
        """How many hosts must be ready for the switch (``None``: every host)."""
        return self._inner.min_healthy_hosts

    def deployer(self, host: str) -> Deployer:
        """Host ``host``'s own :class:`Deployer`: its journal, status, adopt, or an operation on it alone.
        :class:`NotFoundError` for a name the fleet lacks."""
        return wrap(self._inner.deployer(host))

    def __repr__(self) -> str:
        return f"Fleet(hosts={self.hosts!r}, min_healthy_hosts={self.min_healthy_hosts!r})"

    def deploy(
        self,
        release: Union[Release, str],
        *,
        on_event: Optional[FleetEventCallback] = None,
        context: Optional[str] = None,
        build_on: str = "local",
        image: Optional[str] = None,
    ) -> FleetReport:
        """Deploys ``release`` to every host: shipped (with ``context``/``image``, as :meth:`Deployer.deploy`)
        and staged everywhere, the migration once, the idle color started and health-gated on every host,
        then every host's servers switched in ONE router exchange, drained and verified. ``on_event`` gets
        ``(host, event)``. A host failing before the switch raises the :class:`ConnectError` of its failure
        with nothing switched, unless ``min_healthy_hosts`` hosts are ready: then the report's
        :attr:`FleetReport.left_out` names it."""
        source = source_json(context, build_on, image)
        return _report(self._inner.deploy(release, _callback(on_event), source))

    async def deploy_async(
        self,
        release: Union[Release, str],
        *,
        on_event: Optional[FleetEventCallback] = None,
        context: Optional[str] = None,
        build_on: str = "local",
        image: Optional[str] = None,
    ) -> FleetReport:
        """:meth:`deploy` for asyncio; ``on_event`` runs on the event loop's thread. Cancelling the awaiting
        task does not stop the deploy halfway."""
        source = source_json(context, build_on, image)
        return _report(await _on_loop(lambda cb: self._inner.deploy_async(release, cb, source), on_event))

    def rollback(self, *, on_event: Optional[FleetEventCallback] = None) -> FleetReport:
        """Instant rollback of every host in rotation in ONE router exchange. Refused (nothing changed) unless
        every such host has a serving warm standby."""
        return _report(self._inner.rollback(_callback(on_event)))

    async def rollback_async(self, *, on_event: Optional[FleetEventCallback] = None) -> FleetReport:
        """:meth:`rollback` for asyncio."""
        return _report(await _on_loop(lambda cb: self._inner.rollback_async(cb), on_event))

    def status(self) -> FleetStatus:
        """Every host's status, read in parallel; a host that cannot be read is reported with its error."""
        return FleetStatus.from_dict(json.loads(self._inner.status()))

    async def status_async(self) -> FleetStatus:
        """:meth:`status` for asyncio."""
        return FleetStatus.from_dict(json.loads(await self._inner.status_async()))


__all__ = ["Fleet", "FleetEventCallback", "FleetReport", "FleetStatus", "HostOutcome", "HostStatus"]
