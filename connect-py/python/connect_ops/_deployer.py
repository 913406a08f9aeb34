"""The deployer: the runbook's blue-green deploy, rollbacks, checks and status, from Python."""

from __future__ import annotations

import asyncio
import json
from os import PathLike
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    TYPE_CHECKING,
    Tuple,
    Type,
    TypedDict,
    Union,
)

from types import TracebackType

if TYPE_CHECKING:
    # PEP 692's `**kwargs: Unpack[...]`: read by type checkers only (the annotations are strings here), so no
    # runtime dependency on Python 3.11's typing or on typing_extensions.
    from typing_extensions import Unpack

from ._connect_ops import Backends, MemoryStack, Release, _DeployConfig, _Deployer, _HeldLock, _Operation
from ._errors import InvalidInputError
from ._events import Event, event_from_json
from ._kinds import Color
from ._metrics import MetricsSnapshot
from ._policy import BackupPolicy, CanaryPolicy, Hook, Webhook, WatchPolicy, safety_net
from ._types import AppOptions, CheckReport, Journal, LockInfo, OperationRecord, Status

#: What happens to the old color after a deploy: kept up and drained for instant rollback (the default),
#: retired after ``retire_after`` seconds, or given the new release too with both serving (runbook step 6).
OldColorPolicy = Literal["warm_standby", "retire_after", "balanced"]

#: Called with each event while an operation runs.
EventCallback = Callable[[Event], Any]


def _callback(on_event: Optional[EventCallback]) -> Optional[Callable[[str], None]]:
    if on_event is None:
        return None
    if not callable(on_event):
        raise TypeError(f"on_event must be a callable taking an Event, not {type(on_event).__name__}")

    def deliver(raw: str) -> None:
        on_event(event_from_json(raw))

    return deliver


async def _with_loop_callback(
    start: Callable[[Optional[Callable[[str], None]]], Awaitable[str]], on_event: Optional[EventCallback]
) -> str:
    """Runs an async operation delivering its events on the running event loop's thread, in order, before the
    awaiting coroutine resumes; the first exception of the callback is raised after the operation ends."""
    if on_event is None:
        return await start(None)
    if not callable(on_event):
        raise TypeError(f"on_event must be a callable taking an Event, not {type(on_event).__name__}")
    return await on_loop_thread(start, lambda raw: on_event(event_from_json(raw)))


async def on_loop_thread(start: Callable[[Any], Awaitable[str]], handle: Callable[..., Any]) -> str:
    """Runs ``start(deliver)``, where the extension calls ``deliver`` from its threads: each call's arguments
    reach ``handle`` on the running event loop's thread, in order, before the awaiting coroutine resumes; the
    first exception of ``handle`` stops further calls and is raised after the operation ends."""
    loop = asyncio.get_running_loop()
    errors: List[Exception] = []

    def on_loop(*args: Any) -> None:
        if errors:
            return
        try:
            handle(*args)
        except Exception as e:  # noqa: BLE001 - re-raised below, once the operation has finished
            errors.append(e)

    def deliver(*args: Any) -> None:
        loop.call_soon_threadsafe(on_loop, *args)

    raw = await start(deliver)
    if errors:
        raise errors[0]
    return raw


def _argv(
    name: str, value: Optional[Sequence[str]], example: str = "['npx', 'prisma', 'migrate', 'deploy']"
) -> Optional[list[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{name} is a list of str, e.g. {example}, not a str")
    return list(value)


class DeployOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Deployer` and :class:`Fleet` (what a deploy is; see :class:`Deployer`),
    declared once: their defaults are :func:`deploy_config`'s."""

    holder: Optional[str]
    state_dir: str
    app: str
    env: Optional[Mapping[str, str]]
    migration: Optional[Sequence[str]]
    container_port: int
    health_path: str
    smoke_paths: Optional[Sequence[str]]
    stop_grace: float
    health_deadline: float
    drain_deadline: float
    router_deadline: float
    disk_warn_percent: int
    disk_fail_percent: int
    disk_paths: Optional[Sequence[str]]
    max_error_lines: int
    old_color: OldColorPolicy
    retire_after: Optional[float]
    lock_lease: float
    min_free_inodes_percent: int
    max_clock_skew: float
    migration_deadline: float
    ports: Tuple[int, int]
    watch: Optional[WatchPolicy]
    canary: Optional[CanaryPolicy]
    backup: Optional[BackupPolicy]
    hooks: Sequence[Hook]
    webhooks: Sequence[Webhook]
    keep_releases: Optional[int]
    allow_destructive_migrations: bool


def deploy_config(
    *,
    holder: Optional[str] = None,
    state_dir: str = "/opt/connect/state",
    app: str = "connect",
    env: Optional[Mapping[str, str]] = None,
    migration: Optional[Sequence[str]] = None,
    container_port: int = 3000,
    health_path: str = "/api/health",
    smoke_paths: Optional[Sequence[str]] = None,
    stop_grace: float = 10.0,
    health_deadline: float = 60.0,
    drain_deadline: float = 30.0,
    router_deadline: float = 10.0,
    disk_warn_percent: int = 80,
    disk_fail_percent: int = 95,
    disk_paths: Optional[Sequence[str]] = None,
    max_error_lines: int = 10,
    old_color: OldColorPolicy = "warm_standby",
    retire_after: Optional[float] = None,
    lock_lease: float = 30.0,
    min_free_inodes_percent: int = 5,
    max_clock_skew: float = 2.0,
    migration_deadline: float = 1800.0,
    ports: Tuple[int, int] = (3000, 3001),
    watch: Optional[WatchPolicy] = None,
    canary: Optional[CanaryPolicy] = None,
    backup: Optional[BackupPolicy] = None,
    hooks: Sequence[Hook] = (),
    webhooks: Sequence[Webhook] = (),
    keep_releases: Optional[int] = None,
    allow_destructive_migrations: bool = False,
) -> _DeployConfig:
    """What a deploy is, from :class:`Deployer`'s keyword arguments (see there): one server's deployer and a
    :class:`Fleet`'s hosts read them the same way."""
    return _DeployConfig(
        holder=holder,
        state_dir=state_dir,
        app=app,
        env=None if env is None else dict(env),
        migration=_argv("migration", migration),
        container_port=container_port,
        health_path=health_path,
        smoke_paths=_argv("smoke_paths", smoke_paths, "['/']"),
        stop_grace=stop_grace,
        health_deadline=health_deadline,
        drain_deadline=drain_deadline,
        router_deadline=router_deadline,
        disk_warn_percent=disk_warn_percent,
        disk_fail_percent=disk_fail_percent,
        disk_paths=_argv("disk_paths", disk_paths),
        max_error_lines=max_error_lines,
        old_color=old_color,
        retire_after=retire_after,
        lock_lease=lock_lease,
        min_free_inodes_percent=min_free_inodes_percent,
        max_clock_skew=max_clock_skew,
        migration_deadline=migration_deadline,
        ports=ports,
        safety_net=json.dumps(
            safety_net(
                watch=watch,
                canary=canary,
                backup=backup,
                hooks=hooks,
                webhooks=webhooks,
                keep_releases=keep_releases,
                allow_destructive_migrations=allow_destructive_migrations,
            )
        ),
    )


class Deployer:
    """Deploys releases blue-green over a set of backends, rolls them back, and tells where things stand.

    Every blocking method releases the GIL while the engine works (other Python threads run meanwhile) and
    has an ``*_async`` twin for asyncio. Operations that move traffic take ``on_event``, called with each
    :class:`Event` as it happens; ``start_*`` runs them in the background and iterates their events.

    >>> stack = MemoryStack()
    >>> stack.add_image("connect:v1", ready_after=0.1)
    >>> deployer = Deployer(stack, holder="docs")
    >>> deployer.deploy("connect:v1").live_after
    'blue'
    """

    def __init__(self, backends: Union[Backends, MemoryStack], **options: Unpack[DeployOptions]) -> None:
        """The runbook's slots (blue = ``connect_app1``/``app1`` on 3000, green = ``connect_app2``/``app2``
        on 3001) over ``backends``. Durations are seconds. ``holder`` names who deploys in the lock and the
        journal (default ``user@host pid N``); ``migration`` is the argv run in a one-off container of the new
        release after a database restore point; ``smoke_paths`` are requested from the new color after the
        switch, and an answer of 500 or more rolls it back. ``lock_lease`` is how long the deploy lock outlives a
        process that died holding it; the next operation then takes it over and settles what it left.
        ``min_free_inodes_percent`` and ``max_clock_skew`` are preflight's thresholds for the server's inodes and
        clock, beside the disk thresholds. ``migration_deadline`` bounds the migration's one-off container (30
        minutes by default, never the health gate's deadline). ``ports`` are blue's and green's host ports,
        which HAProxy's servers point at. ``env`` may hold secrets: :attr:`app` and every log show its names
        only. The safety net: ``watch`` (the new color's figures watched after the switch, rolled back on a
        breach), ``canary`` (traffic moved in steps, which needs the watch), ``backup`` (a verified backup
        before a migration), ``hooks`` (your commands at named points), ``webhooks`` (told of every
        operation), ``keep_releases`` (older release images pruned after a deploy) and
        ``allow_destructive_migrations`` (off: a migration the old color cannot survive is refused). How the containers' health is checked (``curl`` inside, another command, or from the host for
        an image without an HTTP client) is the runtime's: ``Docker(health_probe=...)``. The keywords are
        :class:`DeployOptions`, their defaults :func:`deploy_config`'s."""
        self._inner = _Deployer(backends, deploy_config(**options))

    @classmethod
    def from_config(cls, path: Union[str, PathLike[str]]) -> Deployer:
        """The deployer for the server ``connect.toml`` at ``path`` describes (as ``connect-ops`` reads it):
        connects to it, with the GIL released. A broken file raises :class:`InvalidInputError` naming its
        line and column."""
        return wrap(_Deployer.from_config(path))

    @property
    def holder(self) -> str:
        """Who deploys, as the lock and the journal record it."""
        return self._inner.holder

    @property
    def app(self) -> AppOptions:
        """The app's options: name, ports, health path, migration, smoke paths, and the environment's names
        with every value ``<redacted>``."""
        return AppOptions.from_dict(json.loads(self._inner.app()))

    @property
    def policy(self) -> Mapping[str, Any]:
        """The deploy policy as the engine holds it (durations in milliseconds, as in the journal)."""
        policy: Mapping[str, Any] = json.loads(self._inner.policy())
        return policy

    def __repr__(self) -> str:
        return f"Deployer(holder={self.holder!r})"

    # Operations that move traffic.

    def deploy(
        self,
        release: Union[Release, str],
        *,
        on_event: Optional[EventCallback] = None,
        context: Optional[str] = None,
        build_on: str = "local",
        image: Optional[str] = None,
    ) -> OperationRecord:
        """Deploys ``release`` (a :class:`Release` or ``"connect:<version>"``) to the idle color, waits for it to
        be healthy, switches traffic and keeps the old color as warm standby. Raises the
        :class:`ConnectError` subclass of the failure; traffic is then where the message says (never moved
        when the failure came before the switch).

        With ``context`` (a directory with a Dockerfile, built ``build_on="local"`` then shipped, or on the
        ``"server"``) or ``image`` (an image on this machine), the image is shipped first: only the layers the
        server lacks, reported as :class:`ShipProgress` and :class:`Shipped` events; nothing when the server has
        it."""
        source = _source(context, build_on, image)
        return _record(self._inner.deploy(release, _callback(on_event), source))

    async def deploy_async(
        self,
        release: Union[Release, str],
        *,
        on_event: Optional[EventCallback] = None,
        context: Optional[str] = None,
        build_on: str = "local",
        image: Optional[str] = None,
    ) -> OperationRecord:
        """:meth:`deploy` for asyncio. ``on_event`` runs on the event loop's thread. Cancelling the awaiting task
        does not stop the deploy halfway: the engine still undoes, records and unlocks."""
        source = _source(context, build_on, image)
        return _record(await _with_loop_callback(lambda cb: self._inner.deploy_async(release, cb, source), on_event))

    def rollback(self, *, on_event: Optional[EventCallback] = None) -> OperationRecord:
        """Instant rollback: traffic back to the warm standby with one router call."""
        return _record(self._inner.rollback(_callback(on_event)))

    async def rollback_async(self, *, on_event: Optional[EventCallback] = None) -> OperationRecord:
        """:meth:`rollback` for asyncio."""
        return _record(await _with_loop_callback(lambda cb: self._inner.rollback_async(cb), on_event))

    def rollback_to(self, version: str, *, on_event: Optional[EventCallback] = None) -> OperationRecord:
        """Full rollback: redeploys a release the journal knows through the same health-gated path."""
        return _record(self._inner.rollback_to(version, _callback(on_event)))

    async def rollback_to_async(self, version: str, *, on_event: Optional[EventCallback] = None) -> OperationRecord:
        """:meth:`rollback_to` for asyncio."""
        return _record(await _with_loop_callback(lambda cb: self._inner.rollback_to_async(version, cb), on_event))

    def retire_standby(self, *, on_event: Optional[EventCallback] = None) -> OperationRecord:
        """Stops and removes the standby color now."""
        return _record(self._inner.retire_standby(_callback(on_event)))

    async def retire_standby_async(self, *, on_event: Optional[EventCallback] = None) -> OperationRecord:
        """:meth:`retire_standby` for asyncio."""
        return _record(await _with_loop_callback(lambda cb: self._inner.retire_standby_async(cb), on_event))

    def start_deploy(self, release: Union[Release, str]) -> Operation:
        """Starts :meth:`deploy` in the background; iterate the result for its events."""
        return Operation(self._inner.start_deploy(release))

    def start_rollback(self) -> Operation:
        """Starts :meth:`rollback` in the background."""
        return Operation(self._inner.start_rollback())

    def start_rollback_to(self, version: str) -> Operation:
        """Starts :meth:`rollback_to` in the background."""
        return Operation(self._inner.start_rollback_to(version))

    # Checks and state.

    def preflight(self) -> CheckReport:
        """The runbook's pre-deployment checks: the server, disks against the thresholds, the running
        containers, the database leader, the cache. Never raises for a failed check: read ``passed``."""
        return CheckReport.from_dict(json.loads(self._inner.preflight()))

    async def preflight_async(self) -> CheckReport:
        """:meth:`preflight` for asyncio."""
        return CheckReport.from_dict(json.loads(await self._inner.preflight_async()))

    def verify(self, color: Optional[Color] = None, *, since_seconds: float = 300.0) -> CheckReport:
        """The runbook's post-deployment checks on ``color`` (default: the live one): container healthy,
        router sending it traffic, the database's check query, the cache, and error lines logged in the last
        ``since_seconds`` against the policy's limit."""
        return CheckReport.from_dict(json.loads(self._inner.verify(color, since_seconds)))

    async def verify_async(self, color: Optional[Color] = None, *, since_seconds: float = 300.0) -> CheckReport:
        """:meth:`verify` for asyncio."""
        return CheckReport.from_dict(json.loads(await self._inner.verify_async(color, since_seconds)))

    def status(self) -> Status:
        """The live color, the release on each color, the router's and runtime's view, and recent operations."""
        return Status.from_dict(json.loads(self._inner.status()))

    async def status_async(self) -> Status:
        """:meth:`status` for asyncio."""
        return Status.from_dict(json.loads(await self._inner.status_async()))

    def metrics(self, *, interval_seconds: float = 1.0) -> MetricsSnapshot:
        """One snapshot of the live figures (what ``connect-ops watch`` and the exporter show): two samples
        ``interval_seconds`` apart so the rates have an interval; ``0`` takes one sample (totals, no rates)."""
        return MetricsSnapshot.from_dict(json.loads(self._inner.metrics(interval_seconds)))

    async def metrics_async(self, *, interval_seconds: float = 1.0) -> MetricsSnapshot:
        """:meth:`metrics` for asyncio."""
        return MetricsSnapshot.from_dict(json.loads(await self._inner.metrics_async(interval_seconds)))

    def journal(self) -> Journal:
        """The journal as stored on the server."""
        return Journal.from_dict(json.loads(self._inner.journal()))

    async def journal_async(self) -> Journal:
        """:meth:`journal` for asyncio."""
        return Journal.from_dict(json.loads(await self._inner.journal_async()))

    def adopt(self) -> Journal:
        """Records what the router and the runtime show as the truth (after a change by hand, or a lost
        journal) and returns the new journal."""
        return Journal.from_dict(json.loads(self._inner.adopt()))

    async def adopt_async(self) -> Journal:
        """:meth:`adopt` for asyncio."""
        return Journal.from_dict(json.loads(await self._inner.adopt_async()))

    def break_lock(self) -> Optional[LockInfo]:
        """Removes the deploy lock whoever holds it (for a lock whose process is gone); returns who held it."""
        return _lock(self._inner.break_lock())

    async def break_lock_async(self) -> Optional[LockInfo]:
        """:meth:`break_lock` for asyncio."""
        return _lock(await self._inner.break_lock_async())

    def lock(self) -> DeployLock:
        """The deploy lock, for work of the script's own that no deploy or rollback may overlap (a database
        restore, a change by hand)::

            with deployer.lock():            # or: async with deployer.lock():
                ops.restore_logical(host, target, dump, dir=backups)

        It is taken when the block starts (``ConflictError`` naming the holder while someone else has it) and
        released when the block ends, however it ends; its lease is renewed meanwhile, so a script that dies
        holding it stops renewing and the next operation takes it over after ``lock_lease``. Operations of
        this deployer are refused while the script holds it."""
        return DeployLock(self._inner)


def wrap(inner: _Deployer) -> Deployer:
    """A :class:`Deployer` around an engine half made elsewhere (a config file's, one host's of a fleet)."""
    deployer = Deployer.__new__(Deployer)
    deployer._inner = inner
    return deployer


class DeployLock:
    """The deploy lock as a context manager (``with`` or ``async with``); see :meth:`Deployer.lock`."""

    def __init__(self, deployer: _Deployer) -> None:
        self._deployer = deployer
        self._held: Optional[_HeldLock] = None

    @property
    def held(self) -> bool:
        """Whether the lock is held now (inside the block)."""
        return self._held is not None and self._held.held

    @property
    def lost(self) -> bool:
        """Whether the lock was lost while held: its lease could not be renewed, or it was broken and taken."""
        return self._held is not None and self._held.lost

    @property
    def took_over(self) -> Optional[LockInfo]:
        """The holder whose expired lock this one took over when it was taken, if any."""
        if self._held is None:
            return None
        return _lock(self._held.took_over())

    def _taken(self, held: _HeldLock) -> DeployLock:
        # Entering a block while this object holds the lock already fails before here: the engine refuses
        # a second take (ConflictError), as for anyone else.
        self._held = held
        return self

    def __enter__(self) -> DeployLock:
        return self._taken(self._deployer.hold_lock())

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    async def __aenter__(self) -> DeployLock:
        return self._taken(await self._deployer.hold_lock_async())

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held.release_async()

    def __repr__(self) -> str:
        return f"<DeployLock {'held' if self.held else 'not held'}>"


def _record(raw: str) -> OperationRecord:
    return OperationRecord.from_dict(json.loads(raw))


def _lock(raw: str) -> Optional[LockInfo]:
    data = json.loads(raw)
    return None if data is None else LockInfo.from_dict(data)


class Operation:
    """An operation running in the background. Iterate it (``for`` or ``async for``) for its events as they
    happen; the iteration ends when the operation does. :meth:`result` returns its record or raises its
    error. Dropping it stops only the reporting, never the operation."""

    def __init__(self, inner: _Operation) -> None:
        self._inner = inner

    @property
    def done(self) -> bool:
        """Whether the operation has finished (and its events were all read)."""
        return self._inner.done

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        raw = self._inner.next_event()
        if raw is None:
            raise StopIteration
        return event_from_json(raw)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        raw = await self._inner.next_event_async()
        if raw is None:
            raise StopAsyncIteration
        return event_from_json(raw)

    def result(self) -> OperationRecord:
        """Waits for the end (GIL released) and returns the record, or raises the operation's error."""
        return _record(self._inner.result())

    async def result_async(self) -> OperationRecord:
        """:meth:`result` for asyncio."""
        while not self._inner.done:
            await self._inner.next_event_async()
        return _record(self._inner.result())

    def __repr__(self) -> str:
        return f"<Operation {'done' if self.done else 'running'}>"


__all__ = ["DeployLock", "Deployer", "Operation", "OldColorPolicy", "EventCallback", "deploy_config"]


def source_json(context: Optional[str], build_on: str, image: Optional[str]) -> Optional[str]:
    """The release source as the core's JSON (for a :class:`Fleet` too)."""
    return _source(context, build_on, image)


def _source(context: Optional[str], build_on: str, image: Optional[str]) -> Optional[str]:
    """The release source as the core's JSON, or ``None`` for a release the server must have."""
    if context is not None and image is not None:
        raise InvalidInputError("give context= or image=, not both")
    if context is not None:
        return json.dumps({"kind": "build_context", "dir": str(context), "build_on": build_on})
    if image is not None:
        return json.dumps({"kind": "local_image", "reference": image})
    return None
