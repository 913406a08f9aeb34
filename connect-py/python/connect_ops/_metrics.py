"""One snapshot of the live figures (``Deployer.metrics()``), as the ``connect-ops watch`` view and the
Prometheus exporter read them: per color HAProxy's traffic and the container, PostgreSQL, Redis, the deploy
state and the continuous backups. Rates (``*_per_s``, shares) are over ``interval_ms``; 0 means one sample,
totals only. Response times are HAProxy's averages: no source gives percentiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from ._data import Data, Raw
from ._kinds import AdminState, Color, OperationKind, OutcomeResult, StepName, StepStatus
from ._types import LockInfo


@dataclass(frozen=True)
class TrafficMetrics(Data):
    """A color's HAProxy server: totals since HAProxy started, rates over the snapshot's interval."""

    admin: Optional[AdminState]
    check: Optional[str]
    weight: Optional[int]
    responses_total: int
    responses_5xx_total: int
    current_sessions: int
    responses_per_s: float
    rate_5xx_percent: float
    response_time_avg_ms: int
    """HAProxy's average over the server's last 1024 requests (not a percentile)."""

    @classmethod
    def from_dict(cls, raw: Raw) -> TrafficMetrics:
        return cls(
            admin=raw.get("admin"),
            check=raw.get("check"),
            weight=raw.get("weight"),
            responses_total=raw["responses_total"],
            responses_5xx_total=raw["responses_5xx_total"],
            current_sessions=raw["current_sessions"],
            responses_per_s=float(raw["responses_per_s"]),
            rate_5xx_percent=float(raw["rate_5xx_percent"]),
            response_time_avg_ms=raw["response_time_avg_ms"],
        )


@dataclass(frozen=True)
class ContainerMetrics(Data):
    """A color's container: state, health, restarts and resource use."""

    release: Optional[str]
    state: str
    health: str
    restarts: int
    cpu_seconds_total: Optional[float]
    cpu_percent: Optional[float]
    """CPU over the interval in percent of one core (``None`` for a single sample)."""
    memory_bytes: Optional[int]
    memory_limit_bytes: Optional[int]

    @classmethod
    def from_dict(cls, raw: Raw) -> ContainerMetrics:
        return cls(
            release=raw.get("release"),
            state=raw["state"],
            health=raw["health"],
            restarts=raw["restarts"],
            cpu_seconds_total=raw.get("cpu_seconds_total"),
            cpu_percent=raw.get("cpu_percent"),
            memory_bytes=raw.get("memory_bytes"),
            memory_limit_bytes=raw.get("memory_limit_bytes"),
        )


@dataclass(frozen=True)
class ColorMetrics(Data):
    """One color: its HAProxy server and its container (each ``None`` when it could not be read)."""

    color: Color
    server: str
    container_name: str
    traffic: Optional[TrafficMetrics]
    container: Optional[ContainerMetrics]

    @classmethod
    def from_dict(cls, raw: Raw) -> ColorMetrics:
        traffic, container = raw.get("traffic"), raw.get("container")
        return cls(
            color=raw["color"],
            server=raw["server"],
            container_name=raw["container_name"],
            traffic=None if traffic is None else TrafficMetrics.from_dict(traffic),
            container=None if container is None else ContainerMetrics.from_dict(container),
        )


@dataclass(frozen=True)
class DatabaseMetrics(Data):
    """PostgreSQL as the leader counts it."""

    connections: Mapping[str, int]
    """Client connections by state (``active``, ``idle``…)."""
    max_connections: int
    commits: int
    rollbacks: int
    transactions_per_s: float
    replica_lag_bytes: Mapping[str, int]
    """Each streaming replica's lag; empty without a replica."""

    @classmethod
    def from_dict(cls, raw: Raw) -> DatabaseMetrics:
        figures = raw["figures"]
        return cls(
            connections=dict(figures["connections"]),
            max_connections=figures["max_connections"],
            commits=figures["commits"],
            rollbacks=figures["rollbacks"],
            transactions_per_s=float(raw["transactions_per_s"]),
            replica_lag_bytes={r["name"]: r["lag_bytes"] for r in figures["replicas"]},
        )


@dataclass(frozen=True)
class CacheMetrics(Data):
    """Redis."""

    keyspace_hits: int
    keyspace_misses: int
    used_memory_bytes: int
    connected_clients: int
    evicted_keys: int
    hit_rate_percent: Optional[float]
    """Hits in percent of the reads over the interval (``None`` without reads, or for a single sample)."""

    @classmethod
    def from_dict(cls, raw: Raw) -> CacheMetrics:
        figures = raw["figures"]
        return cls(
            keyspace_hits=figures["keyspace_hits"],
            keyspace_misses=figures["keyspace_misses"],
            used_memory_bytes=figures["used_memory_bytes"],
            connected_clients=figures["connected_clients"],
            evicted_keys=figures["evicted_keys"],
            hit_rate_percent=raw.get("hit_rate_percent"),
        )


@dataclass(frozen=True)
class StepTime(Data):
    """One step of the last operation and how long it took."""

    step: StepName
    status: StepStatus
    duration_ms: int

    @classmethod
    def from_dict(cls, raw: Raw) -> StepTime:
        return cls(raw["step"], raw["status"], raw["duration_ms"])


@dataclass(frozen=True)
class LastOperation(Data):
    """The newest operation the journal records, in short."""

    id: str
    kind: OperationKind
    release: Optional[str]
    outcome: OutcomeResult
    failed_step: Optional[StepName]
    started_unix_ms: int
    duration_ms: int
    steps: Tuple[StepTime, ...]

    @classmethod
    def from_dict(cls, raw: Raw) -> LastOperation:
        return cls(
            id=raw["id"],
            kind=raw["kind"],
            release=raw.get("release"),
            outcome=raw["outcome"],
            failed_step=raw.get("failed_step"),
            started_unix_ms=raw["started_unix_ms"],
            duration_ms=raw["duration_ms"],
            steps=tuple(StepTime.from_dict(s) for s in raw["steps"]),
        )


@dataclass(frozen=True)
class DeployMetrics(Data):
    """The deploy state from the journal, and who holds the deploy lock."""

    live: Optional[Color]
    standby: Optional[Color]
    balanced: bool
    releases: Mapping[Color, str]
    maintenance: bool
    in_progress: Optional[str]
    """The id of the operation that recorded its intent and has not ended."""
    lock: Optional[LockInfo]
    last: Optional[LastOperation]
    last_backup_unix_ms: Optional[int]
    """When the newest verified backup a deploy took was made."""

    @classmethod
    def from_dict(cls, raw: Raw) -> DeployMetrics:
        lock, last = raw.get("lock"), raw.get("last")
        return cls(
            live=raw.get("live"),
            standby=raw.get("standby"),
            balanced=raw["balanced"],
            releases=dict(raw["releases"]),
            maintenance=raw["maintenance"],
            in_progress=raw.get("in_progress"),
            lock=None if lock is None else LockInfo.from_dict(lock),
            last=None if last is None else LastOperation.from_dict(last),
            last_backup_unix_ms=raw.get("last_backup_unix_ms"),
        )


@dataclass(frozen=True)
class BackupMetrics(Data):
    """Continuous backups (pgBackRest), read every 30 s by a running sampler; ages as of the snapshot."""

    last_full_backup: Optional[str]
    last_full_age_s: Optional[int]
    last_archived_wal: Optional[str]
    last_archived_age_s: Optional[int]
    archive_failing: bool
    read_unix_ms: int

    @classmethod
    def from_dict(cls, raw: Raw) -> BackupMetrics:
        state = raw["state"]
        return cls(
            last_full_backup=state.get("last_full_backup"),
            last_full_age_s=state.get("last_full_age_s"),
            last_archived_wal=state.get("last_archived_wal"),
            last_archived_age_s=state.get("last_archived_age_s"),
            archive_failing=state["archive_failing"],
            read_unix_ms=raw["read_unix_ms"],
        )


@dataclass(frozen=True)
class MetricsSnapshot(Data):
    """One sample of the deployment; a part that could not be read is ``None`` and named in ``unavailable``."""

    sequence: int
    taken_unix_ms: int
    interval_ms: int
    colors: Tuple[ColorMetrics, ...]
    """Blue then green."""
    database: Optional[DatabaseMetrics]
    cache: Optional[CacheMetrics]
    deploy: Optional[DeployMetrics]
    backup: Optional[BackupMetrics]
    unavailable: Mapping[str, str]
    """What could not be read (``router.figures``, ``cache.figures``…) and why."""

    def color(self, color: Color) -> Optional[ColorMetrics]:
        """The row of ``color``."""
        return next((c for c in self.colors if c.color == color), None)

    @classmethod
    def from_dict(cls, raw: Raw) -> MetricsSnapshot:
        database, cache, deploy, backup = (raw.get(k) for k in ("database", "cache", "deploy", "backup"))
        return cls(
            sequence=raw["sequence"],
            taken_unix_ms=raw["taken_unix_ms"],
            interval_ms=raw["interval_ms"],
            colors=tuple(ColorMetrics.from_dict(c) for c in raw["colors"]),
            database=None if database is None else DatabaseMetrics.from_dict(database),
            cache=None if cache is None else CacheMetrics.from_dict(cache),
            deploy=None if deploy is None else DeployMetrics.from_dict(deploy),
            backup=None if backup is None else BackupMetrics.from_dict(backup),
            unavailable={u["source"]: u["error"] for u in raw["unavailable"]},
        )

    def __repr__(self) -> str:
        live = self.deploy.live if self.deploy else None
        rates = ", ".join(
            f"{c.color} {c.traffic.responses_per_s:.1f}/s" for c in self.colors if c.traffic is not None
        )
        return f"<MetricsSnapshot #{self.sequence} live={live} {rates}>"
