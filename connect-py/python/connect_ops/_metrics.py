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


@dataclass(frozen=True)
class ColorMetrics(Data):
    """One color: its HAProxy server and its container (each ``None`` when it could not be read)."""

    color: Color
    server: str
    container_name: str
    traffic: Optional[TrafficMetrics]
    container: Optional[ContainerMetrics]


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
        # The server's figures are nested; the replicas arrive as a list of (name, lag) objects.
        figures = raw["figures"]
        lag = {r["name"]: r["lag_bytes"] for r in figures["replicas"]}
        return super().from_dict({**figures, **raw, "replica_lag_bytes": lag})


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
        # Redis's figures are nested beside the rate computed over them.
        return super().from_dict({**raw["figures"], **raw})


@dataclass(frozen=True)
class StepTime(Data):
    """One step of the last operation and how long it took."""

    step: StepName
    status: StepStatus
    duration_ms: int


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
        # The continuous backup's state is nested beside when it was read.
        return super().from_dict({**raw["state"], **raw})


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
        # The sources that could not be read arrive as a list of (source, error) objects.
        unavailable = {u["source"]: u["error"] for u in raw["unavailable"]}
        return super().from_dict({**raw, "unavailable": unavailable})

    def __repr__(self) -> str:
        live = self.deploy.live if self.deploy else None
        rates = ", ".join(
            f"{c.color} {c.traffic.responses_per_s:.1f}/s" for c in self.colors if c.traffic is not None
        )
        return f"<MetricsSnapshot #{self.sequence} live={live} {rates}>"
