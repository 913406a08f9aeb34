"""Connect Ops for Python: zero-downtime blue-green deploys of the Connect service, with instant rollback.

The same engine as the Rust SDK (``connect-core``), with the same journal, lock, health gates and undo:

    import connect_ops as ops

    stack = ops.MemoryStack()                      # the whole server in memory; real backends plug in the same way
    stack.add_image("connect:20251014-0900")
    deployer = ops.Deployer(stack)
    print(deployer.preflight())                    # runbook §1
    record = deployer.deploy("connect:20251014-0900", on_event=print)
    print(deployer.verify())                       # runbook §5
    deployer.rollback()                            # one router call back to the warm standby

Every failure raises a subclass of :class:`ConnectError` naming the operation, the target and the fix.

The real backends plug into the same ``Deployer`` through ``Backends``::

    host = ops.SshHost("prod-host", user="deploy", key_file="/home/ci/.ssh/id_ed25519")
    backends = ops.Backends(
        host=host,
        runtime=ops.Docker(host=host),                       # the server's engine, over the SSH connection
        router=ops.Haproxy("be_app", socket="/run/haproxy/admin.sock", host=host),
        database=ops.PatroniCluster(["http://patroni1.internal:8008"], user="connect", dbname="connect"),
        cache=ops.Redis("redis.internal", 6379),
    )
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from ._connect_ops import (
    ERROR_KINDS,
    Backends,
    CommandOutput,
    DiskUsage,
    Docker,
    Haproxy,
    LocalHost,
    MemoryCache,
    MemoryCluster,
    MemoryFleet,
    MemoryHost,
    MemoryRouter,
    MemoryRuntime,
    MemoryStack,
    PatroniCluster,
    PgTarget,
    Redis,
    Release,
    SshHost,
    __version__,
    audit,
    check_migrations,
    lint_sql,
    list_backups,
    logical_backup,
    prune_backups,
    recover_plan,
    recover_server,
    refresh_logging,
    restore_logical,
    verify_backup,
)
from ._audit import AuditFinding, AuditFix, AuditReport, FindingStatus, Severity
from ._deployer import DeployLock, DeployOptions, Deployer, EventCallback, OldColorPolicy, Operation
from ._fleet import Fleet, FleetEventCallback, FleetReport, FleetStatus, HostOutcome, HostStatus
from ._recovery import (
    BackrestBackup,
    BackrestInfo,
    ContinuousBackupState,
    DatabaseChoice,
    PitrSetup,
    PlannedStep,
    RecoverPlan,
    RecoverReport,
    RecoveryReport,
    ReleaseChoice,
    SetChoice,
    SetPart,
    StepTiming,
    TableChecksum,
)
from ._errors import (
    ERRORS_BY_KIND,
    ConflictError,
    ConnectError,
    CorruptError,
    DriftError,
    FailedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    OperationTimeoutError,
    RefusedError,
    UnavailableError,
    UnhealthyError,
    UnsupportedError,
)
from ._events import (
    EVENTS_BY_NAME,
    Event,
    HealthAttempt,
    OperationFinished,
    OperationStarted,
    OtherEvent,
    StepFailed,
    StepFinished,
    StepSkipped,
    StepStarted,
    ShipProgress,
    Shipped,
    StepWarning,
    TrafficSwitched,
)
from ._kinds import (
    ERROR_KIND_NAMES,
    STEP_NAMES,
    AdminState,
    CheckStatus,
    Color,
    ErrorKind,
    OperationKind,
    OutcomeResult,
    StepName,
    StepStatus,
)
from ._policy import BackupPolicy, CanaryPolicy, Hook, HookPoint, HookSite, WatchPolicy, Webhook
from ._reports import DestructiveKind, MigrationState, MigrationTool, ShipCompression, ShipMethod
from ._types import (
    AppOptions,
    BackupListing,
    CacheInfo,
    Check,
    CheckReport,
    ContainerInfo,
    DestructiveChange,
    ImageInfo,
    Journal,
    LockInfo,
    LogicalBackup,
    Member,
    Migration,
    MigrationTable,
    ObservedSlot,
    OperationRecord,
    Outcome,
    PruneReport,
    RedisBackup,
    ReloadReport,
    RestorePoint,
    RestoreReport,
    ServerStatus,
    TransferProgress,
    ShipReport,
    SlotRecord,
    Status,
    StepRecord,
    SwitchReport,
)

from ._metrics import (
    BackupMetrics,
    CacheMetrics,
    ColorMetrics,
    ContainerMetrics,
    DatabaseMetrics,
    DeployMetrics,
    LastOperation,
    MetricsSnapshot,
    StepTime,
    TrafficMetrics,
)

from . import _types
from ._connect_ops import _bind_python_layer
from ._errors import _from_core

# The extension types its results with ``_types`` (which imports the extension) and raises ``_errors``'
# exceptions: handed over here instead of imported by it, so no module imports one that imports it back.
_bind_python_layer(_types, _from_core)

__all__ = [
    "Fleet",
    "FleetEventCallback",
    "FleetReport",
    "FleetStatus",
    "HostOutcome",
    "HostStatus",
    "MemoryFleet",
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
    "recover_plan",
    "recover_server",
    "BackupMetrics",
    "CacheMetrics",
    "ColorMetrics",
    "ContainerMetrics",
    "DatabaseMetrics",
    "DeployMetrics",
    "LastOperation",
    "MetricsSnapshot",
    "StepTime",
    "TrafficMetrics",
    "AuditFinding",
    "AuditFix",
    "AuditReport",
    "FindingStatus",
    "Severity",
    "audit",
    "AppOptions",
    "BackupPolicy",
    "CanaryPolicy",
    "Hook",
    "HookPoint",
    "HookSite",
    "WatchPolicy",
    "Webhook",
    "BackupListing",
    "DestructiveChange",
    "DestructiveKind",
    "ImageInfo",
    "Migration",
    "MigrationState",
    "MigrationTable",
    "MigrationTool",
    "PruneReport",
    "ShipCompression",
    "ShipMethod",
    "TransferProgress",
    "ShipReport",
    "AdminState",
    "CheckStatus",
    "ERROR_KIND_NAMES",
    "ErrorKind",
    "OperationKind",
    "OperationTimeoutError",
    "OutcomeResult",
    "STEP_NAMES",
    "StepName",
    "StepStatus",
    "Backends",
    "CacheInfo",
    "Check",
    "CheckReport",
    "Color",
    "CommandOutput",
    "ConflictError",
    "ConnectError",
    "ContainerInfo",
    "CorruptError",
    "DeployLock",
    "DeployOptions",
    "Deployer",
    "DiskUsage",
    "Docker",
    "DriftError",
    "ERRORS_BY_KIND",
    "ERROR_KINDS",
    "EVENTS_BY_NAME",
    "Event",
    "EventCallback",
    "FailedError",
    "Haproxy",
    "HealthAttempt",
    "InvalidInputError",
    "Journal",
    "LocalHost",
    "LockInfo",
    "LogicalBackup",
    "Member",
    "MemoryCache",
    "MemoryCluster",
    "MemoryHost",
    "MemoryRouter",
    "MemoryRuntime",
    "MemoryStack",
    "NotFoundError",
    "ObservedSlot",
    "OldColorPolicy",
    "Operation",
    "OperationFinished",
    "OperationRecord",
    "OperationStarted",
    "OtherEvent",
    "Outcome",
    "PatroniCluster",
    "PermissionDeniedError",
    "PgTarget",
    "Redis",
    "RedisBackup",
    "RefusedError",
    "Release",
    "ReloadReport",
    "RestorePoint",
    "RestoreReport",
    "ServerStatus",
    "SlotRecord",
    "SshHost",
    "Status",
    "StepFailed",
    "StepFinished",
    "StepRecord",
    "StepSkipped",
    "StepStarted",
    "ShipProgress",
    "Shipped",
    "StepWarning",
    "TrafficSwitched",
    "SwitchReport",
    "UnavailableError",
    "UnhealthyError",
    "UnsupportedError",
    "check_migrations",
    "lint_sql",
    "list_backups",
    "logical_backup",
    "prune_backups",
    "refresh_logging",
    "restore_logical",
    "verify_backup",
    "__version__",
]

# The old name of OperationTimeoutError, kept for scripts written against 0.1: reachable as
# ``connect_ops.TimeoutError`` with a DeprecationWarning, but outside ``__all__``, so ``from connect_ops
# import *`` leaves the built-in ``TimeoutError`` alone.
# Hidden from type checkers, so mypy still flags a misspelt name (and the old one) in a script.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "TimeoutError":
            warnings.warn(
                "connect_ops.TimeoutError is deprecated: use connect_ops.OperationTimeoutError (a subclass of the "
                "built-in TimeoutError, which `except TimeoutError:` already catches)",
                DeprecationWarning,
                stacklevel=2,
            )
            return OperationTimeoutError
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
