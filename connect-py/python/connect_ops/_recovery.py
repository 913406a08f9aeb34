"""Typed results of continuous backups and recovery (issue 17): the backups' state ``status`` and preflight
read, pgBackRest's repository, a point-in-time recovery of the cluster, and the whole server's recovery
(``recover_plan``, the dry run, and ``recover_server``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from ._checks import CheckReport
from ._data import Data, Raw


@dataclass(frozen=True)
class ContinuousBackupState(Data):
    """What a point-in-time recovery could reach now (WAL archiving plus base backups); ages in seconds,
    measured when it was read."""

    stanza: str
    last_archived_wal: Optional[str]
    last_archived_age_s: Optional[int]
    archive_failing: bool
    """The leader's latest archiving attempt failed: WAL piles up on the server, the recovery point stands."""
    last_full_backup: Optional[str]
    last_full_age_s: Optional[int]
    last_backup: Optional[str]
    """The newest base backup of any kind (full, diff, incr)."""
    last_backup_age_s: Optional[int]
    backups: int
    recoverable_from_unix: Optional[int]
    """The oldest point a recovery can reach (unix seconds: the oldest backup's end)."""

    @property
    def recoverable(self) -> bool:
        """Whether a recovery has something to start from and archiving works (preflight fails otherwise)."""
        return self.last_full_backup is not None and not self.archive_failing


@dataclass(frozen=True)
class BackrestBackup(Data):
    """One base backup in pgBackRest's repository."""

    label: str
    kind: str
    """``full``, ``diff`` or ``incr``."""
    start_unix: int
    stop_unix: int
    lsn_start: Optional[str]
    lsn_stop: Optional[str]
    """Where it became consistent: the earliest point it can recover to."""
    size_bytes: int
    repo_bytes: int
    wal_start: Optional[str]
    wal_stop: Optional[str]


@dataclass(frozen=True)
class BackrestInfo(Data):
    """``pgbackrest info``: the stanza's backups (oldest first) and the WAL archived."""

    stanza: str
    status_code: int
    """pgBackRest's: 0 ok, 2 no valid backups…"""
    status_message: str
    backups: Tuple[BackrestBackup, ...]
    wal_min: Optional[str]
    wal_max: Optional[str]
    """The newest WAL segment archived: how far "latest" reaches."""
    system_id: Optional[str] = None

    @property
    def last_full(self) -> Optional[BackrestBackup]:
        """The newest full backup."""
        return next((b for b in reversed(self.backups) if b.kind == "full"), None)


@dataclass(frozen=True)
class PitrSetup(Data):
    """What ``PatroniCluster.configure_continuous_backups`` did."""

    config_path: str
    archive_command: str
    """The ``archive_command`` set in Patroni's dynamic configuration (it follows a failover)."""
    checked: bool


@dataclass(frozen=True)
class TableChecksum(Data):
    """One table's rows and content checksum (independent of row order): equal before and after a recovery
    means the same rows."""

    table: str
    rows: int
    checksum: str


def _seconds(raw: Mapping[str, Any]) -> float:
    # A Rust `Duration` arrives as seconds and nanoseconds.
    return float(raw["secs"]) + float(raw["nanos"]) / 1e9


@dataclass(frozen=True)
class RecoveryReport(Data):
    """What a point-in-time recovery of the cluster did, phase by phase (seconds)."""

    target: str
    leader: str
    """The member restored, which leads afterwards."""
    backup: str
    """The base backup restored."""
    rebuilt: Tuple[str, ...]
    """The members rebuilt from the new leader."""
    restore_seconds: float
    replay_seconds: float
    rebuild_seconds: float
    to_writable_seconds: float
    """From the call to the leader taking writes."""
    took_seconds: float

    @classmethod
    def from_dict(cls, raw: Raw) -> RecoveryReport:
        phases = {f"{p}_seconds": _seconds(raw[p]) for p in ("restore", "replay", "rebuild", "to_writable", "took")}
        return super().from_dict({**raw, **phases})


@dataclass(frozen=True)
class SetPart(Data):
    """One part of a backup set (``configs``, ``redis``, ``uploads``, ``journal``)."""

    name: str
    files: int
    bytes: int


@dataclass(frozen=True)
class SetChoice(Data):
    """The backup set a recovery uses (its copy on this machine)."""

    dir: str
    id: str
    taken_at: str
    age_s: int
    bytes: int
    parts: Tuple[SetPart, ...]


@dataclass(frozen=True)
class DatabaseChoice(Data):
    """The base backup the database comes back from, and how far the archive after it reaches."""

    repo: str
    stanza: str
    backup: str
    kind: str
    age_s: int
    size_bytes: int
    repo_bytes: int
    wal_max: Optional[str]


@dataclass(frozen=True)
class ReleaseChoice(Data):
    """The release deployed after the recovery: the set's journal's live one."""

    version: str
    recorded_image: str
    image: str


@dataclass(frozen=True)
class PlannedStep(Data):
    """One step of a recovery and what it uses."""

    step: str
    what: str


@dataclass(frozen=True, repr=False)
class RecoverPlan(Data):
    """What ``recover_server`` would do and from which backups (``connect-ops recover --dry-run``)."""

    server: str
    set: SetChoice
    database: DatabaseChoice
    release: ReleaseChoice
    not_fresh: Tuple[str, ...]
    """Why the server is not fresh (a live journal, a slot's container); empty when it is."""
    steps: Tuple[PlannedStep, ...]

    @property
    def fresh(self) -> bool:
        """Whether ``recover_server`` goes ahead without ``force``."""
        return not self.not_fresh

    def __repr__(self) -> str:
        return (
            f"<RecoverPlan {self.server} from set {self.set.id} and backup {self.database.backup}, "
            f"release {self.release.version}{'' if self.fresh else ', NOT fresh'}>"
        )


@dataclass(frozen=True)
class StepTiming(Data):
    """One step of a recovery, measured."""

    step: str
    took_ms: int
    detail: str


@dataclass(frozen=True, repr=False)
class RecoverReport(Data):
    """What ``recover_server`` did: each step timed, the database's recovery, the tables, the deploy."""

    plan: RecoverPlan
    steps: Tuple[StepTiming, ...]
    database: RecoveryReport
    tables: Tuple[TableChecksum, ...]
    redis_keys: Optional[int]
    deploy: str
    """The deploy's record id."""
    verify: CheckReport
    took_ms: int
    """The recovery time, from the first read to the verified release."""

    def __repr__(self) -> str:
        return f"<RecoverReport {self.plan.server} in {self.took_ms / 1000:.1f} s, deploy {self.deploy}>"


__all__ = [
    "BackrestBackup",
    "BackrestInfo",
    "ContinuousBackupState",
    "DatabaseChoice",
    "PitrSetup",
    "PlannedStep",
    "RecoverPlan",
    "RecoverReport",
    "RecoveryReport",
    "ReleaseChoice",
    "SetChoice",
    "SetPart",
    "StepTiming",
    "TableChecksum",
]
