"""Typed results of the engine: operation records, status, check reports, the journal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Tuple

from ._checks import Check as Check
from ._checks import CheckReport as CheckReport
from ._connect_ops import Release
from ._data import Data, Raw
from ._recovery import ContinuousBackupState
from ._kinds import (
    AdminState,
    Color,
    ErrorKind,
    OperationKind,
    OutcomeResult,
    StepName,
    StepStatus,
)


@dataclass(frozen=True)
class StepRecord(Data):
    """One step of an operation as it ran."""

    step: StepName
    status: StepStatus
    duration_ms: int
    detail: str


@dataclass(frozen=True)
class Outcome(Data):
    """How an operation ended: ``succeeded``, ``failed`` (traffic never moved to the new release),
    ``rolled_back`` (traffic had moved, a later step failed, and traffic really went back to the standby) or
    ``interrupted`` (its process stopped mid-way; the next operation settled what it left, described in
    ``resolution``)."""

    result: OutcomeResult
    step: Optional[StepName] = None
    kind: Optional[ErrorKind] = None
    error: Optional[str] = None
    resolution: Optional[str] = None

    @property
    def succeeded(self) -> bool:
        return self.result == "succeeded"


@dataclass(frozen=True)
class RestorePoint(Data):
    """A database restore point made before a migration."""

    name: str
    lsn: str
    timeline: int


@dataclass(frozen=True, repr=False)
class OperationRecord(Data):
    """One deploy, rollback, adoption or retirement, as the journal keeps it."""

    id: str
    kind: OperationKind
    """``deploy``, ``instant_rollback``, ``full_rollback``, ``adopt``, ``retire``, ``maintenance`` or ``prune`` (a lock holder only)."""
    release: Optional[Release]
    live_before: Optional[Color]
    live_after: Optional[Color]
    holder: str
    started_unix_ms: int
    duration_ms: int
    outcome: Outcome
    steps: Tuple[StepRecord, ...]
    restore_point: Optional[RestorePoint] = None
    as_worker: bool = False
    """It ran a fleet's host as a worker (one color taking jobs, no server in HAProxy's rotation)."""

    @property
    def succeeded(self) -> bool:
        return self.outcome.succeeded

    def __repr__(self) -> str:
        what = self.kind if self.release is None else f"{self.kind} {self.release.version}"
        return (
            f"<OperationRecord {self.id} {what}: {self.outcome.result}, "
            f"live {self.live_before} -> {self.live_after}, {self.duration_ms} ms>"
        )


@dataclass(frozen=True)
class AppOptions(Data):
    """How the app runs, whatever the release (``Deployer.app``). Environment values are never shown."""

    name: str
    env: Mapping[str, str]
    """Each variable's name, its value ``"<redacted>"``."""
    container_port: int
    ports: Mapping[Color, int]
    """Each color's host port."""
    health_path: str
    stop_grace_seconds: float
    migration: Optional[Tuple[str, ...]]
    smoke_paths: Tuple[str, ...]


@dataclass(frozen=True)
class LockInfo(Data):
    """Who holds the deploy lock, for what, since when."""

    holder: str
    operation: OperationKind
    since_unix_ms: int


@dataclass(frozen=True)
class ServerStatus(Data):
    """A HAProxy server as the router shows it."""

    name: str
    admin: AdminState
    check: str
    weight: int
    current_sessions: int
    address: str


@dataclass(frozen=True)
class ContainerInfo(Data):
    """A container as the runtime shows it."""

    name: str
    id: str
    image: str
    labels: Mapping[str, str]
    state: str
    health: str
    health_log: Tuple[str, ...]
    started_unix_ms: Optional[int]
    restart_count: int = 0
    """How often the runtime restarted it after it exited (0 from engines that do not say)."""

    @property
    def release(self) -> Optional[str]:
        """The release version the container is labelled with."""
        return self.labels.get("ops.connect.release")

    @classmethod
    def from_dict(cls, raw: Raw) -> ContainerInfo:
        # The engine sends a `SystemTime` (`started_at`: seconds and nanoseconds); Python reads milliseconds.
        started = raw.get("started_at")
        started_unix_ms = (
            None if started is None else started["secs_since_epoch"] * 1000 + started["nanos_since_epoch"] // 1_000_000
        )
        return super().from_dict({**raw, "started_unix_ms": started_unix_ms})


@dataclass(frozen=True)
class ObservedSlot(Data):
    """One color as the router and the runtime show it now."""

    color: Color
    server: ServerStatus
    container: Optional[ContainerInfo]


@dataclass(frozen=True, repr=False)
class Status(Data):
    """Where the deployment stands, recorded (the journal) and observed (router and runtime)."""

    live: Optional[Color]
    standby: Optional[Color]
    standby_until_unix_ms: Optional[int]
    releases: Mapping[Color, str]
    """The release version on each color, per the journal."""
    observed: Tuple[ObservedSlot, ...]
    differences: Tuple[str, ...]
    """Where the journal and the observation disagree; empty when they match."""
    lock: Optional[LockInfo]
    recent: Tuple[OperationRecord, ...]
    """The last ten operations, newest first."""
    continuous_backup: Optional[ContinuousBackupState] = None
    """The database's continuous backups (last full backup, last archived WAL, their ages), when it has them
    configured and answered."""

    @classmethod
    def from_dict(cls, raw: Raw) -> Status:
        # The observation arrives as an object around its slots.
        return super().from_dict({**raw, "observed": raw["observed"]["slots"]})

    def __repr__(self) -> str:
        releases = ", ".join(f"{c}={v}" for c, v in sorted(self.releases.items()))
        drift = f", {len(self.differences)} differences" if self.differences else ""
        lock = f", locked by {self.lock.holder}" if self.lock else ""
        return f"<Status live={self.live} standby={self.standby} releases({releases}){drift}{lock}>"


@dataclass(frozen=True)
class SlotRecord(Data):
    """What the journal says runs on a color."""

    release: Release
    container: str
    since_unix_ms: int


@dataclass(frozen=True, repr=False)
class Journal(Data):
    """The journal on the server: the live color, what each color runs, and the operations."""

    format: int
    live: Optional[Color]
    balanced: bool
    slots: Mapping[Color, SlotRecord]
    standby_until_unix_ms: Optional[int]
    history: Tuple[OperationRecord, ...]
    """Oldest first."""

    @classmethod
    def from_dict(cls, raw: Raw) -> Journal:
        # Journals written before balanced mode have no `balanced`.
        return super().from_dict({**raw, "balanced": raw.get("balanced", False)})

    def __repr__(self) -> str:
        slots = ", ".join(f"{c}={s.release.version}" for c, s in sorted(self.slots.items()))
        return f"<Journal live={self.live} slots({slots}) {len(self.history)} operations>"


@dataclass(frozen=True)
class SwitchReport(Data):
    """What ``Haproxy.switch`` did, confirmed from the router's own view (``show stat``)."""

    live: str
    """The server that now takes the traffic: the only live one."""
    drained: Tuple[str, ...]
    """The servers the switch put in drain (the old one, unless it was draining already)."""
    took_seconds: float
    servers: Tuple[ServerStatus, ...]
    """The backend's servers at the confirmation."""


@dataclass(frozen=True)
class ReloadReport(Data):
    """What ``Haproxy.reload`` did, from the master's ``show proc``."""

    old_workers: Tuple[int, ...]
    new_workers: Tuple[int, ...]
    took_seconds: float


@dataclass(frozen=True)
class Member(Data):
    """A member of the Patroni cluster."""

    name: str
    role: Literal["leader", "replica"]
    state: str
    """Patroni's word: ``running``, ``streaming``, ``stopped``..."""
    lag_bytes: Optional[int]
    timeline: Optional[int]

    @property
    def is_running(self) -> bool:
        return self.state in ("running", "streaming")


@dataclass(frozen=True)
class CacheInfo(Data):
    """Redis as ``INFO``, ``LASTSAVE`` and ``DBSIZE`` show it."""

    role: str
    last_save_unix: int
    bgsave_in_progress: bool
    last_bgsave_ok: bool
    aof_enabled: bool
    keys: int


@dataclass(frozen=True)
class RedisBackup(Data):
    """A checked copy of ``dump.rdb`` on the host."""

    path: str
    sha256: str
    bytes: int
    keys: int
    last_save_unix: int


@dataclass(frozen=True)
class LogicalBackup(Data):
    """A verified ``pg_dump -Fc`` on the host."""

    path: str
    sha256: str
    bytes: int
    database: str
    toc_entries: int
    took_seconds: float


@dataclass(frozen=True)
class RestoreReport(Data):
    """What ``restore_logical`` did, with its measured recovery time."""

    database: str
    previous_kept_as: Optional[str]
    """The previous live database, renamed and kept: drop it once the restore is confirmed."""
    dump: str
    took_seconds: float
    pg_restore_seconds: float


# The chores' results live in their own module; `connect_ops._types` is where the extension looks them up.
from ._audit import AuditReport as AuditReport  # noqa: E402
from ._reports import BackupListing as BackupListing  # noqa: E402
from ._reports import DestructiveChange as DestructiveChange  # noqa: E402
from ._reports import ImageInfo as ImageInfo  # noqa: E402
from ._reports import Migration as Migration  # noqa: E402
from ._reports import MigrationTable as MigrationTable  # noqa: E402
from ._reports import PruneReport as PruneReport  # noqa: E402
from ._reports import TransferProgress as TransferProgress  # noqa: E402
from ._reports import ShipReport as ShipReport  # noqa: E402
from ._recovery import BackrestBackup as BackrestBackup  # noqa: E402
from ._recovery import BackrestInfo as BackrestInfo  # noqa: E402
from ._recovery import PitrSetup as PitrSetup  # noqa: E402
from ._recovery import RecoverPlan as RecoverPlan  # noqa: E402
from ._recovery import RecoverReport as RecoverReport  # noqa: E402
from ._recovery import RecoveryReport as RecoveryReport  # noqa: E402
from ._recovery import TableChecksum as TableChecksum  # noqa: E402
